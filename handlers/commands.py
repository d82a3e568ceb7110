"""Staff chat commands: private messages from staff to the bot are parsed and answered privately.

Unknown commands get the help list, not silence. Customers' private messages are not commands.

The answer is an outbox row written in the batch's transaction, together with what the command
changed, and sent right after the commit, back where the command came from (platform, account,
user). So a slow or absent gateway never holds up the intake, a failed send is retried, and a
batch that runs again (a failed commit, a replay after a crash) never answers twice: the row's
key is the command message's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import event as sa_event
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.commands import Command, CommandContext, CommandRegistry
from bot.config import AppConfig
from bot.dispatch import Router
from bot.events import ChatType
from bot.gateway.hub import GatewayHub
from bot.intake import StoredMessage
from bot.outbox import OutboxItem, enqueue
from bot.roster import ActorRole

log = logging.getLogger("sopbot.commands")
router = Router("commands")

REPLY_KIND = "command_reply"
# An answer the gateway could not take within this long is recorded as missed, not sent late.
REPLY_WINDOW = timedelta(minutes=10)
# Kicks scheduled after commits, kept until done (the loop holds tasks only weakly).
_KICKS: set[asyncio.Task[None]] = set()
_KICK_SET = "commands.kick"


def _is_staff_private(event: StoredMessage) -> bool:
    return (
        event.msg.chat_type is ChatType.PRIVATE
        and event.actor.role is ActorRole.OPERATOR
        and not event.msg.is_self
        and event.actor.operator is not None
        # Only a private chat between the staff member and the bot itself: a guide's private
        # message to a customer (same sender role, other peer) is not a command.
        and event.msg.chat_id == event.msg.sender_id
    )


@router.on(StoredMessage, _is_staff_private)
async def handle_command(
    event: StoredMessage,
    commands: CommandRegistry,
    gateway: GatewayHub,
    cfg: AppConfig,
    **deps: Any,
) -> None:
    msg, op = event.msg, event.actor.operator
    assert op is not None  # guaranteed by the filter
    parsed = commands.parse(msg.text)
    if parsed is None:
        return
    lang = cfg.bot.language
    if parsed.command is None or (
        parsed.command.roles is not None and op.role not in parsed.command.roles
    ):
        reply = commands.help_text(lang, op.role)
        if parsed.command is not None:
            reply = (
                "这个命令不适用于你的角色。\n"
                if lang != "en"
                else "That command is not for your role.\n"
            ) + reply
    else:
        ctx = CommandContext(
            op,
            msg,
            parsed.args,
            lang,
            {**deps, "gateway": gateway, "cfg": cfg, "commands": commands},
        )
        reply = await parsed.command.func(ctx)
    log.info("command %s from %s", parsed.name[:20], op.id)
    session: AsyncSession | None = deps.get("session")
    if session is None:  # called outside an intake batch: nothing to commit with
        await gateway.send_private_text(
            msg.platform, msg.sender_id, reply, account_id=msg.account_id
        )
        return
    clock: Clock = deps["clock"]
    now = clock.now()
    item = OutboxItem(
        key=reply_key(msg.platform, msg.account_id, msg.message_id),
        kind=REPLY_KIND,
        recipient_id=op.id,
        text=reply,
        due_at=now,
        window_end=now + REPLY_WINDOW,
        extra={"to": [msg.platform, msg.account_id, msg.sender_id]},
    )
    await enqueue(await session.connection(), [item], now)
    kick: Callable[[], Awaitable[None]] | None = deps.get("outbox_kick")
    if kick is not None:
        _kick_after_commit(session, kick)


def reply_key(platform: str, account_id: str, message_id: str) -> str:
    """The outbox key of the answer to one command message (one answer per message)."""
    return f"cmd:{platform}:{account_id}:{message_id}"


def _kick_after_commit(session: AsyncSession, kick: Callable[[], Awaitable[None]]) -> None:
    """Send the answer as soon as the batch commits, not at the outbox's next tick."""
    loop = asyncio.get_running_loop()

    async def run() -> None:
        try:
            await kick()
        except Exception:
            log.exception("outbox kick failed; the outbox tick sends the answer")

    def start(_session: object) -> None:
        task = loop.create_task(run())
        _KICKS.add(task)
        task.add_done_callback(_KICKS.discard)

    # Once per batch however many commands (each batch has its own session).
    if not session.info.get(_KICK_SET):
        session.info[_KICK_SET] = True
        sa_event.listen(session.sync_session, "after_commit", start, once=True)


async def _help(ctx: CommandContext) -> str:
    registry: CommandRegistry = ctx.dep("commands")
    return registry.help_text(ctx.lang, ctx.operator.role)


COMMANDS: tuple[Command, ...] = (
    Command(("help", "帮助", "菜单", "?", "？"), "显示可用命令", "show the commands", _help),
)
