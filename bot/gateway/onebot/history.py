"""``get_group_msg_history`` responses (go-cqhttp extension, NapCat, LLBot) → ``ChatMessage``.

History entries are message events without some envelope fields on some implementations, so the
missing ones are filled from the request before the normal parser runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.errors import FrameRejected
from bot.events import ChatMessage
from bot.gateway.onebot.parse import ReplySenderLookup, parse_event


def parse_history(
    data: Any,
    account_id: str,
    group_id: str,
    *,
    received_at: datetime,
    reply_sender: ReplySenderLookup | None = None,
    keep_raw: bool = True,
) -> tuple[list[ChatMessage], list[FrameRejected]]:
    """Messages of ``data["messages"]`` in order, plus one rejection per unusable entry."""
    entries = data.get("messages") if isinstance(data, Mapping) else None
    if not isinstance(entries, list):
        return [], [FrameRejected("bad_field", "messages")] if data is not None else []
    messages: list[ChatMessage] = []
    rejected: list[FrameRejected] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            rejected.append(FrameRejected("not_object"))
            continue
        frame = {"post_type": "message", "message_type": "group", "group_id": group_id, **entry}
        try:
            parsed = parse_event(
                frame,
                received_at=received_at,
                account_id=account_id,
                reply_sender=reply_sender,
                keep_raw=keep_raw,
            )
        except FrameRejected as exc:
            rejected.append(exc)
            continue
        if isinstance(parsed, ChatMessage):
            messages.append(parsed)
    return messages, rejected
