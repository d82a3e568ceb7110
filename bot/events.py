"""Gateway-neutral inbound events (reference/gateways.md §6).

Every adapter maps its wire format to these frozen values. Ids are strings scoped by
(platform, account, chat); times are aware UTC. The sender's role is *not* here: it comes from
our roster when the event is handled, never from the payload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ChatType(StrEnum):
    GROUP = "group"
    PRIVATE = "private"


class SegmentType(StrEnum):
    TEXT = "text"
    MENTION = "mention"
    MENTION_ALL = "mention_all"
    REPLY = "reply"
    IMAGE = "image"
    FACE = "face"  # emoji / sticker / market face
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Segment:
    """One provider-neutral message segment; ``data`` values are strings."""

    type: SegmentType
    data: Mapping[str, str] = field(default_factory=dict)


def dedup_key(
    platform: str, account_id: str, chat_type: str, chat_id: str, message_id: str, kind: str
) -> str:
    """Stable key for idempotent inserts (gateways.md §6.4)."""
    raw = "|".join((platform, account_id, chat_type, chat_id, message_id, kind))
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A message seen in a group or private chat, normalized."""

    platform: str
    account_id: str
    chat_type: ChatType
    chat_id: str
    message_id: str
    sender_id: str
    text: str
    sent_at: datetime
    received_at: datetime
    sender_name: str = ""
    reply_to_message_id: str | None = None
    reply_to_sender_id: str | None = None
    mention_user_ids: tuple[str, ...] = ()
    mention_all: bool = False
    is_self: bool = False
    platform_role: str | None = None
    segments: tuple[Segment, ...] = ()
    raw: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def dedup_key(self) -> str:
        return dedup_key(
            self.platform,
            self.account_id,
            self.chat_type.value,
            self.chat_id,
            self.message_id,
            "message",
        )

    @property
    def media_only(self) -> bool:
        """True when the message carries no words: only stickers, images or faces."""
        return not self.text.strip() and any(
            s.type in (SegmentType.IMAGE, SegmentType.FACE, SegmentType.OTHER)
            for s in self.segments
        )


@dataclass(frozen=True, slots=True)
class MessageRecall:
    """A message was withdrawn (撤回) by its sender or an admin."""

    platform: str
    account_id: str
    chat_type: ChatType
    chat_id: str
    message_id: str
    sender_id: str
    operator_id: str
    at: datetime


class MemberChangeKind(StrEnum):
    GROUP_JOIN = "group_join"
    GROUP_LEAVE = "group_leave"
    FRIEND_ADD = "friend_add"
    CONTACT_DELETE = "contact_delete"


@dataclass(frozen=True, slots=True)
class MemberChange:
    """A customer joined or left a group, or became / stopped being a contact of an account."""

    platform: str
    account_id: str
    kind: MemberChangeKind
    user_id: str
    at: datetime
    chat_id: str | None = None  # the group for joins/leaves
    operator_id: str | None = None  # who invited / removed, when the platform says


@dataclass(frozen=True, slots=True)
class AccountStatus:
    """A bot account connected, disconnected, or missed its heartbeats."""

    platform: str
    account_id: str
    online: bool
    at: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CardClick:
    """A member of staff clicked a button on a card we sent them (WeCom template cards).

    Not an ``InboundEvent``: it is not chat and is not stored by the intake; the composition
    root feeds it straight to the dispatcher. ``task_id`` is ``card_task_id`` of the outbox key
    the card was sent with; ``response_code`` (single use) lets a handler update that card.
    """

    platform: str
    account_id: str  # corp id
    user_id: str  # the staff member's platform user id
    event_key: str  # the button's key (``done`` / ``snooze`` for SOP cards)
    task_id: str  # the card's task_id (derived from our idempotency key)
    response_code: str  # single use, 72 h: updates this card for this user
    card_type: str
    at: datetime
    agent_id: str = ""


def card_task_id(key: str) -> str:
    """The card id (≤128 chars of ``[0-9A-Za-z_-@]``) of a card sent with idempotency ``key``.

    A click names only this id, so handlers find the card's outbox row by recomputing it.
    """
    return "sop-" + hashlib.sha256(key.encode()).hexdigest()[:40]


InboundEvent = ChatMessage | MessageRecall | MemberChange | AccountStatus
