"""All connected gateways behind one object, routed by platform."""

from __future__ import annotations

from bot.errors import GatewayError
from bot.gateway.base import Gateway, SentMessage


class GatewayHub:
    def __init__(self) -> None:
        self._by_platform: dict[str, Gateway] = {}

    def add(self, gateway: Gateway) -> None:
        self._by_platform[gateway.platform] = gateway

    def get(self, platform: str) -> Gateway:
        try:
            return self._by_platform[platform]
        except KeyError:
            raise GatewayError(f"no gateway for platform {platform!r}") from None

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(self._by_platform)

    def online(self) -> dict[str, list[str]]:
        return {p: g.online_accounts() for p, g in self._by_platform.items()}

    async def send_private_text(
        self, platform: str, user_id: str, text: str, *, account_id: str | None = None
    ) -> SentMessage:
        return await self.get(platform).send_private_text(user_id, text, account_id=account_id)

    async def send_group_text(
        self,
        platform: str,
        group_id: str,
        text: str,
        *,
        account_id: str | None = None,
        reply_to: str | None = None,
    ) -> SentMessage:
        return await self.get(platform).send_group_text(
            group_id, text, account_id=account_id, reply_to=reply_to
        )
