"""Plugin (a): the handler only counts group messages; ``/count`` answers the count privately."""

from nonebot import on_command, on_message
from nonebot.adapters.onebot.v11 import Bot, GroupMessageEvent, PrivateMessageEvent
from nonebot.plugin import PluginMetadata

__plugin_meta__ = PluginMetadata(
    name="bench_count", description="counts group messages", usage="/count"
)

_seen = [0]

counter = on_message(priority=10, block=False)


@counter.handle()
async def _count(event: GroupMessageEvent) -> None:
    _seen[0] += 1


report = on_command("count", priority=1, block=True)


@report.handle()
async def _report(bot: Bot, event: PrivateMessageEvent) -> None:
    await bot.send_private_msg(user_id=event.user_id, message=f"count {_seen[0]}")
