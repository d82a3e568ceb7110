"""Reaching a member of staff privately: pick the platform and user id for an operator.

WeCom when the operator has a ``wecom_user_id`` and a WeCom gateway is running; otherwise a
private message through OneBot (or the simulator) to their first platform user id. Never a group.
"""

from __future__ import annotations

from bot.errors import GatewayError
from bot.gateway.base import SentMessage
from bot.gateway.hub import GatewayHub
from bot.roster import Roster

_PRIVATE_PLATFORMS = ("onebot11", "simulator")


class Delivery:
    def __init__(self, hub: GatewayHub, roster: Roster) -> None:
        self._hub = hub
        self._roster = roster

    def route(self, operator_id: str) -> tuple[str, str]:
        """(platform, user id) to reach ``operator_id`` now; GatewayError if there is none."""
        op = self._roster.operator(operator_id)
        if op is None:
            raise GatewayError(f"unknown operator {operator_id!r}")
        platforms = self._hub.platforms
        if op.wecom_user_id and "wecom" in platforms:
            return "wecom", op.wecom_user_id
        if op.onebot_user_ids:
            online = self._hub.online()
            for platform in _PRIVATE_PLATFORMS:
                if platform in platforms and online.get(platform):
                    return platform, op.onebot_user_ids[0]
        raise GatewayError(f"no online gateway can reach operator {operator_id!r}")

    async def send(self, operator_id: str, text: str) -> SentMessage:
        platform, user_id = self.route(operator_id)
        return await self._hub.send_private_text(platform, user_id, text)
