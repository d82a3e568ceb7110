"""The gateway port: what handlers and the runtime may ask of any chat platform.

Adapters (OneBot v11, simulator, later WeCom and Matterbridge) implement ``Gateway`` and push
normalized events (``bot.events``) into an ``EventSink``. Awaiting the sink is the backpressure:
an adapter must not read its next frame before the sink has accepted the previous event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bot.events import InboundEvent

EventSink = Callable[[InboundEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SentMessage:
    """What the platform said about a message we sent."""

    platform: str
    account_id: str
    message_id: str


class Gateway(Protocol):
    """Outbound side of a platform connection."""

    platform: str

    def online_accounts(self) -> list[str]:
        """Account ids that can send right now."""
        ...

    async def send_private_text(
        self, user_id: str, text: str, *, account_id: str | None = None
    ) -> SentMessage:
        """Send a private (1:1) text message to ``user_id``."""
        ...

    async def send_group_text(
        self,
        group_id: str,
        text: str,
        *,
        account_id: str | None = None,
        reply_to: str | None = None,
    ) -> SentMessage:
        """Send a text message into a group, optionally quoting ``reply_to``."""
        ...
