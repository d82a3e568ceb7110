"""OneBot v11 event frames (decoded JSON objects) → normalized events (gateways.md §6).

Pure mapping: no I/O, no clock reads (``received_at`` is passed in). The parser is tolerant of
implementation quirks (numeric ids in segments, ``message_sent``, millisecond ``time``, unknown
segment types and fields) but rejects frames whose required fields are missing or ill-typed with
``FrameRejected(reason)``, so the transport can count them and move on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from bot.errors import FrameRejected
from bot.events import (
    ChatMessage,
    ChatType,
    MemberChange,
    MemberChangeKind,
    MessageRecall,
)
from bot.gateway.onebot.fields import event_time, opt_id, req_id, req_str
from bot.gateway.onebot.segments import Body, raw_segments

PLATFORM = "onebot11"
_ROLES = frozenset({"owner", "admin", "member"})

ReplySenderLookup = Callable[[str, ChatType, str, str], str | None]
"""(account_id, chat_type, chat_id, message_id) → sender id of a message we have seen, if any."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """``meta_event`` heartbeat; ``interval_s`` from the frame, ``online`` from ``status``."""

    account_id: str
    interval_s: float | None
    online: bool | None


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """``meta_event`` lifecycle: ``enable`` / ``disable`` / ``connect``."""

    account_id: str
    sub_type: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed event we do not map (requests, bans, pokes…); ``kind`` is for debug logs."""

    account_id: str
    kind: str


Parsed = ChatMessage | MessageRecall | MemberChange | Heartbeat | Lifecycle | Ignored


def decode_frame(data: str | bytes, max_bytes: int) -> dict[str, Any]:
    """Decode one transport frame into a JSON object, or raise ``FrameRejected``."""
    if _size_exceeds(data, max_bytes):
        raise FrameRejected("too_large")
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise FrameRejected("not_json") from None
    if not isinstance(frame, dict):
        raise FrameRejected("not_object")
    return frame


def _size_exceeds(data: str | bytes, max_bytes: int) -> bool:
    if isinstance(data, bytes):
        return len(data) > max_bytes
    # A UTF-8 character is 1-4 bytes: only encode when the character count cannot decide.
    if len(data) > max_bytes:
        return True
    if len(data) * 4 <= max_bytes:
        return False
    return len(data.encode("utf-8", "surrogatepass")) > max_bytes


_GROUP, _PRIVATE = ChatType.GROUP, ChatType.PRIVATE  # bound once: hot path (see segments)


def is_response(frame: Mapping[str, Any]) -> bool:
    """Action responses share the Universal socket: they carry ``echo`` and no ``post_type``."""
    return "post_type" not in frame and ("echo" in frame or "retcode" in frame)


def parse_event(
    frame: Mapping[str, Any],
    *,
    received_at: datetime,
    account_id: str | None = None,
    reply_sender: ReplySenderLookup | None = None,
    keep_raw: bool = True,
) -> Parsed:
    """Map one event frame. ``account_id`` (from the connection) wins over the frame's self_id.

    ``keep_raw=False`` leaves ``ChatMessage.raw`` empty: a decoded frame is a handful of dicts
    and lists, and kept on every queued message they were most of what the garbage collector
    walked under load (the intake stores it only with ``[intake] store_raw``).
    """
    post_type = frame.get("post_type")
    if post_type is None:
        raise FrameRejected("missing_field", "post_type")
    if not isinstance(post_type, str):
        raise FrameRejected("bad_field", "post_type")
    account = account_id if account_id is not None else req_id(frame, "self_id")
    if post_type in ("message", "message_sent"):
        return _message(frame, post_type, account, received_at, reply_sender, keep_raw)
    if post_type == "notice":
        return _notice(frame, account, received_at)
    if post_type == "meta_event":
        return _meta(frame, account)
    if post_type == "request":
        kind = frame.get("request_type")
        return Ignored(account, f"request.{kind if isinstance(kind, str) else '?'}")
    raise FrameRejected("unknown_post_type")


# -- message events ------------------------------------------------------------------------


def _message(
    frame: Mapping[str, Any],
    post_type: str,
    account: str,
    received_at: datetime,
    reply_sender: ReplySenderLookup | None,
    keep_raw: bool,
) -> ChatMessage:
    message_type = req_str(frame, "message_type")
    user_id = req_id(frame, "user_id")
    message_id = req_id(frame, "message_id")
    is_self = post_type == "message_sent" or user_id == account
    if message_type == "group":
        chat_type, chat_id = _GROUP, req_id(frame, "group_id")
    elif message_type == "private":
        chat_type = _PRIVATE
        # Our own private messages name the peer in target_id; user_id is ourselves then.
        chat_id = req_id(frame, "target_id") if post_type == "message_sent" else user_id
    else:
        raise FrameRejected("bad_field", "message_type")
    sender = frame.get("sender") or {}
    if type(sender) is not dict and not isinstance(sender, Mapping):  # dict: the fast check
        raise FrameRejected("bad_field", "sender")
    name = sender.get("card") or sender.get("nickname") or ""
    if not isinstance(name, str):
        # Some implementations send numeric nicknames; anything else is not a name at all.
        name = str(name) if isinstance(name, int | float) and not isinstance(name, bool) else ""
    role = sender.get("role")
    lookup = None
    if reply_sender is not None:

        def lookup(reply_id: str) -> str | None:
            return reply_sender(account, chat_type, chat_id, reply_id)

    body = Body.build(raw_segments(frame.get("message")), lookup)
    return ChatMessage(
        platform=PLATFORM,
        account_id=account,
        chat_type=chat_type,
        chat_id=chat_id,
        message_id=message_id,
        sender_id=user_id,
        text=body.text,
        sent_at=event_time(frame, received_at),
        received_at=received_at,
        sender_name=name,
        reply_to_message_id=body.reply_to,
        reply_to_sender_id=body.reply_sender,
        mention_user_ids=body.mentions,
        mention_all=body.mention_all,
        is_self=is_self,
        platform_role=role if isinstance(role, str) and role in _ROLES else None,
        segments=body.segments,
        raw=frame if keep_raw else None,
    )


# -- notices and meta events ---------------------------------------------------------------


def _notice(
    frame: Mapping[str, Any], account: str, received_at: datetime
) -> MessageRecall | MemberChange | Ignored:
    notice_type = req_str(frame, "notice_type")
    if notice_type in ("group_increase", "group_decrease"):
        kind = (
            MemberChangeKind.GROUP_JOIN
            if notice_type == "group_increase"
            else MemberChangeKind.GROUP_LEAVE
        )
        return MemberChange(
            platform=PLATFORM,
            account_id=account,
            kind=kind,
            user_id=req_id(frame, "user_id"),
            at=event_time(frame, received_at),
            chat_id=req_id(frame, "group_id"),
            operator_id=opt_id(frame, "operator_id"),
        )
    if notice_type == "friend_add":
        return MemberChange(
            platform=PLATFORM,
            account_id=account,
            kind=MemberChangeKind.FRIEND_ADD,
            user_id=req_id(frame, "user_id"),
            at=event_time(frame, received_at),
        )
    if notice_type in ("group_recall", "friend_recall"):
        user_id = req_id(frame, "user_id")
        group = notice_type == "group_recall"
        return MessageRecall(
            platform=PLATFORM,
            account_id=account,
            chat_type=ChatType.GROUP if group else ChatType.PRIVATE,
            chat_id=req_id(frame, "group_id") if group else user_id,
            message_id=req_id(frame, "message_id"),
            sender_id=user_id,
            operator_id=(opt_id(frame, "operator_id") or user_id) if group else user_id,
            at=event_time(frame, received_at),
        )
    return Ignored(account, f"notice.{notice_type}")


def _meta(frame: Mapping[str, Any], account: str) -> Heartbeat | Lifecycle | Ignored:
    meta_type = req_str(frame, "meta_event_type")
    if meta_type == "lifecycle":
        return Lifecycle(account, req_str(frame, "sub_type"))
    if meta_type == "heartbeat":
        interval = frame.get("interval")
        if interval is not None and (
            isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0
        ):
            raise FrameRejected("bad_field", "interval")
        status = frame.get("status")
        online = status.get("online") if isinstance(status, Mapping) else None
        return Heartbeat(
            account,
            interval_s=None if interval is None else float(interval) / 1000.0,
            online=online if isinstance(online, bool) else None,
        )
    return Ignored(account, f"meta.{meta_type}")


def dumps(obj: Any) -> str:
    """JSON text for a frame we send (orjson: compact, UTF-8, no ASCII escaping)."""
    return orjson.dumps(obj).decode()
