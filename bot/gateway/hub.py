"""All connected gateways behind one object, routed by platform.

An idempotency key given to ``send_private_text`` reaches the gateways whose
``send_private_text`` accepts one (WeCom puts it in the payload so its duplicate check drops a
re-sent reminder); the others (OneBot, simulator) never see it.
"""

from __future__ import annotations

import inspect

from bot.errors import GatewayError
from bot.gateway.base import Gateway, SentMessage


class GatewayHub:
    def __init__(self) -> None:
        self._by_platform: dict[str, Gateway] = {}
        self._keyed: set[str] = set()  # platforms whose private sends take an idempotency key

    def add(self, gateway: Gateway) -> None:
        self._by_platform[gateway.platform] = gateway
        params = inspect.signature(gateway.send_private_text).parameters
        if "idempotency_key" in params:
            self._keyed.add(gateway.platform)
        else:
            self._keyed.discard(gateway.platform)

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
        self,
        platform: str,
        user_id: str,
        text: str,
        *,
        account_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> SentMessage:
        gateway = self.get(platform)
        if idempotency_key is not None and platform in self._keyed:
            send = gateway.send_private_text
            return await send(  # type: ignore[call-arg]
                user_id, text, account_id=account_id, idempotency_key=idempotency_key
            )
        return await gateway.send_private_text(user_id, text, account_id=account_id)

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
