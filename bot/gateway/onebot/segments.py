"""Message segments (array format, or decoded CQ string) → text, mentions, reply, ``Segment``s.

Implements gateways.md §6.2: ``reply`` → quoted id; ``at`` → mentions (``qq=all`` → mention-all);
the automatic ``at`` QQ puts after a reply stays a mention but leaves the text once we know it
names the quoted author; mentions render as ``@name`` / ``@qq``; unknown types are kept as OTHER.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.errors import FrameRejected
from bot.events import Segment, SegmentType
from bot.gateway.onebot import cq
from bot.gateway.onebot.fields import req_id

MENTION_ALL_TEXT = "@全体成员"  # how QQ clients display ``at qq=all``
_FACE_TYPES = frozenset({"face", "mface", "sface", "bface", "dice", "rps"})
_IMAGE_TYPES = frozenset({"image"})
# Members bound once: on Python 3.11 every ``SegmentType.X`` goes through a descriptor, and this
# runs for every segment of every message.
_TEXT, _REPLY, _MENTION, _MENTION_ALL = (
    SegmentType.TEXT,
    SegmentType.REPLY,
    SegmentType.MENTION,
    SegmentType.MENTION_ALL,
)


def raw_segments(message: Any) -> list[tuple[str, Mapping[str, Any]]]:
    if message is None:
        raise FrameRejected("missing_field", "message")
    if isinstance(message, str):
        items: list[Any] = list(cq.decode(message))
    elif isinstance(message, list):
        items = message
    else:
        raise FrameRejected("bad_field", "message")
    out: list[tuple[str, Mapping[str, Any]]] = []
    for item in items:
        # ``type(x) is dict`` first: what JSON gives; the ABC check is for decoded CQ codes.
        if type(item) is not dict and not isinstance(item, Mapping):
            raise FrameRejected("bad_field", "message")
        kind = item.get("type")
        if type(kind) is not str:
            raise FrameRejected("bad_field", "message")
        data = item.get("data") or {}
        if type(data) is not dict and not isinstance(data, Mapping):
            raise FrameRejected("bad_field", "message")
        out.append((kind, data))
    return out


@dataclass(frozen=True, slots=True)
class Body:
    text: str
    segments: tuple[Segment, ...]
    reply_to: str | None
    reply_sender: str | None
    mentions: tuple[str, ...]
    mention_all: bool

    @classmethod
    def build(
        cls,
        raw: list[tuple[str, Mapping[str, Any]]],
        lookup: Callable[[str], str | None] | None,
    ) -> Body:
        text: list[str] = []
        segments: list[Segment] = []
        mentions: list[str] = []
        reply_to = reply_sender = None
        mention_all = False
        previous = ""
        for kind, data in raw:
            if kind == "text":
                value = data.get("text", "")
                if not isinstance(value, str):
                    raise FrameRejected("bad_field", "message")
                text.append(value)
                segments.append(Segment(_TEXT, {"text": value}))
            elif kind == "reply":
                quoted = req_id(data, "id")
                if reply_to is None:
                    reply_to = quoted
                    reply_sender = lookup(quoted) if lookup is not None else None
                segments.append(Segment(_REPLY, {"message_id": quoted}))
            elif kind == "at":
                target = req_id(data, "qq")
                if target == "all":
                    mention_all = True
                    text.append(MENTION_ALL_TEXT)
                    segments.append(Segment(_MENTION_ALL, {}))
                    previous = kind
                    continue
                if target not in mentions:
                    mentions.append(target)
                shown = data.get("name")
                seg = {"user_id": target}
                if isinstance(shown, str) and shown:
                    seg["name"] = shown
                # QQ inserts an @ of the quoted author right after a reply: it still targets
                # that person (keep the mention) but is not something the sender typed.
                if previous == "reply" and reply_sender is not None and target == reply_sender:
                    seg["implicit"] = "true"
                else:
                    text.append("@" + (seg.get("name", "").removeprefix("@") or target))
                segments.append(Segment(_MENTION, seg))
            else:
                segments.append(_media(kind, data))
            previous = kind
        return cls(
            text="".join(text).strip(),
            segments=tuple(segments),
            reply_to=reply_to,
            reply_sender=reply_sender,
            mentions=tuple(mentions),
            mention_all=mention_all,
        )


def _media(kind: str, data: Mapping[str, Any]) -> Segment:
    if kind in _FACE_TYPES:
        seg_type = SegmentType.FACE
    elif kind in _IMAGE_TYPES:
        seg_type = SegmentType.IMAGE
    else:
        seg_type = SegmentType.OTHER
    values = {
        str(k): str(v)
        for k, v in data.items()
        if isinstance(v, str | int | float) and not isinstance(v, bool)
    }
    values["onebot_type"] = kind
    return Segment(seg_type, values)
