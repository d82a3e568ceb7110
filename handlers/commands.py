"""Staff chat commands: private messages from staff to the bot are parsed and answered privately.

Unknown commands get the help list, not silence. Customers' private messages are not commands.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.commands import Command, CommandContext, CommandRegistry
from bot.config import AppConfig
from bot.dispatch import Router
from bot.events import ChatType
from bot.gateway.hub import GatewayHub
from bot.intake import StoredMessage
from bot.roster import ActorRole

log = logging.getLogger("sopbot.commands")
router = Router("commands")


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
    await gateway.send_private_text(msg.platform, msg.sender_id, reply, account_id=msg.account_id)


async def _help(ctx: CommandContext) -> str:
    registry: CommandRegistry = ctx.dep("commands")
    return registry.help_text(ctx.lang, ctx.operator.role)


COMMANDS: tuple[Command, ...] = (
    Command(("help", "帮助", "菜单", "?", "？"), "显示可用命令", "show the commands", _help),
)
