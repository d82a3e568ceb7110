"""OneBot v11 frames → normalized events, on real payload shapes (gateways.md §7)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from bot.errors import FrameRejected
from bot.events import ChatMessage, ChatType, SegmentType
from bot.gateway.onebot.parse import (
    Heartbeat,
    decode_frame,
    is_response,
    parse_event,
)

GOLDEN = json.loads(
    (Path(__file__).parents[2] / "data" / "onebot_v11_events.json").read_text("utf-8")
)
RECEIVED = datetime(2025, 7, 10, tzinfo=UTC)


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _by_name(name: str) -> dict[str, Any]:
    return next(c["payload"] for c in GOLDEN if c["name"].startswith(name))


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_golden_payloads_normalize_as_expected(case: dict[str, Any]) -> None:
    """Each recorded payload maps to the expected event type and field values."""
    event = parse_event(case["payload"], received_at=RECEIVED)
    expect = dict(case["expect"])
    assert type(event).__name__ == expect.pop("type")
    for field, wanted in expect.items():
        if field == "segments":
            assert isinstance(event, ChatMessage)
            got = [[s.type.value, dict(s.data)] for s in event.segments]
        else:
            got = _plain(getattr(event, field))
        assert got == wanted, field
    if isinstance(event, ChatMessage):
        assert event.platform == "onebot11"
        assert event.received_at == RECEIVED
        assert event.raw == case["payload"]


def test_reply_auto_at_is_kept_as_mention_but_dropped_from_text_when_author_known() -> None:
    """F3: once 225925481 is known to be 2429618410's, the auto-@ leaves the text."""
    seen = {("1921576220", ChatType.GROUP, "754074796", "225925481"): "2429618410"}
    msg = parse_event(
        _by_name("F3"),
        received_at=RECEIVED,
        reply_sender=lambda *key: seen.get(key),
    )
    assert isinstance(msg, ChatMessage)
    assert msg.text == "*ore"
    assert msg.reply_to_message_id == "225925481"
    assert msg.reply_to_sender_id == "2429618410"
    assert msg.mention_user_ids == ("2429618410",)
    mention = msg.segments[1]
    assert mention.type is SegmentType.MENTION
    assert mention.data["implicit"] == "true"


def test_at_after_reply_of_someone_else_stays_in_text() -> None:
    """A deliberate @ of a third person after a reply is not the automatic one."""
    payload = _by_name("F3")
    msg = parse_event(payload, received_at=RECEIVED, reply_sender=lambda *key: "555")
    assert isinstance(msg, ChatMessage)
    assert msg.reply_to_sender_id == "555"
    assert msg.text == "@✖️ *ore"


def test_connection_account_wins_over_frame_self_id() -> None:
    """The authenticated X-Self-ID is the account, whatever the frame claims."""
    msg = parse_event(_by_name("F1"), received_at=RECEIVED, account_id="777")
    assert isinstance(msg, ChatMessage)
    assert msg.account_id == "777"


def test_string_and_array_formats_give_the_same_message() -> None:
    """F5 as CQ string and as segments normalize identically (raw aside)."""
    string = parse_event(_by_name("F5 nonebot"), received_at=RECEIVED)
    array = parse_event(_by_name("F5 in array"), received_at=RECEIVED)
    assert string == array


def test_sent_at_far_in_future_is_clamped_to_received_at() -> None:
    """A sender clock more than 5 minutes ahead is not trusted."""
    payload = dict(_by_name("F1"), time=int((RECEIVED + timedelta(hours=1)).timestamp()))
    msg = parse_event(payload, received_at=RECEIVED)
    assert isinstance(msg, ChatMessage)
    assert msg.sent_at == RECEIVED


def test_sent_at_slightly_ahead_is_kept() -> None:
    """Small skew (under 5 minutes) is normal and kept as the platform said."""
    ahead = RECEIVED + timedelta(minutes=2)
    payload = dict(_by_name("F1"), time=int(ahead.timestamp()))
    msg = parse_event(payload, received_at=RECEIVED)
    assert isinstance(msg, ChatMessage)
    assert msg.sent_at == ahead


def test_user_id_equal_to_self_id_is_a_self_message() -> None:
    """Messages from the logged-in account are is_self even without message_sent."""
    payload = dict(_by_name("F4"), user_id=123456789)
    msg = parse_event(payload, received_at=RECEIVED)
    assert isinstance(msg, ChatMessage)
    assert msg.is_self


def test_heartbeat_without_interval_or_status() -> None:
    """A minimal heartbeat is still a heartbeat; the watchdog then keeps its last interval."""
    beat = parse_event(
        {"time": 1, "self_id": 1, "post_type": "meta_event", "meta_event_type": "heartbeat"},
        received_at=RECEIVED,
    )
    assert beat == Heartbeat("1", interval_s=None, online=None)


def _bad(**changes: Any) -> dict[str, Any]:
    payload = dict(_by_name("F4"))
    for key, value in changes.items():
        if value is ...:
            payload.pop(key)
        else:
            payload[key] = value
    return payload


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        (_bad(post_type="message_recv"), "unknown_post_type", ""),
        (_bad(post_type=...), "missing_field", "post_type"),
        (_bad(post_type=3), "bad_field", "post_type"),
        (_bad(self_id=...), "missing_field", "self_id"),
        (_bad(user_id=True), "bad_field", "user_id"),
        (_bad(user_id=...), "missing_field", "user_id"),
        (_bad(group_id=[1]), "bad_field", "group_id"),
        (_bad(message_id=""), "bad_field", "message_id"),
        (_bad(message_type="channel"), "bad_field", "message_type"),
        (_bad(message=...), "missing_field", "message"),
        (_bad(message={"type": "text"}), "bad_field", "message"),
        (_bad(message=[{"type": "text", "data": {"text": 5}}]), "bad_field", "message"),
        (_bad(message=[{"type": "reply", "data": {}}]), "missing_field", "id"),
        (_bad(message=[{"type": "at", "data": {"qq": None}}]), "missing_field", "qq"),
        (_bad(message=["hello"]), "bad_field", "message"),
        (_bad(sender="someone"), "bad_field", "sender"),
        (_bad(time="yesterday"), "bad_field", "time"),
        (_bad(time=-5), "bad_field", "time"),
        (_bad(time=...), "missing_field", "time"),
        (
            {"time": 1, "self_id": 1, "post_type": "notice", "notice_type": "group_recall"},
            "missing_field",
            "user_id",
        ),
        (
            {
                "time": 1,
                "self_id": 1,
                "post_type": "meta_event",
                "meta_event_type": "heartbeat",
                "interval": "30s",
            },
            "bad_field",
            "interval",
        ),
    ],
)
def test_bad_events_are_rejected_with_a_reason(
    payload: dict[str, Any], reason: str, field: str
) -> None:
    """Missing or ill-typed fields raise FrameRejected with a metrics reason and field name."""
    with pytest.raises(FrameRejected) as info:
        parse_event(payload, received_at=RECEIVED)
    assert info.value.reason == reason
    assert info.value.detail == field


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "not_json"),
        ("[1, 2]", "not_object"),
        ('"just a string"', "not_object"),
        (b"\xff\xfe", "not_json"),
        ("{" + " " * 2000 + "}", "too_large"),
        ("{" + "好" * 400 + "}", "too_large"),
    ],
)
def test_decode_frame_rejects_unusable_frames(data: str | bytes, reason: str) -> None:
    """Non-JSON, non-object and oversized frames get distinct reasons."""
    with pytest.raises(FrameRejected) as info:
        decode_frame(data, max_bytes=1024)
    assert info.value.reason == reason


def test_decode_frame_counts_utf8_bytes_not_characters() -> None:
    """A frame under the limit in characters but over it in UTF-8 bytes is too large."""
    frame = json.dumps({"t": "好" * 400}, ensure_ascii=False)
    assert len(frame) < 1024 < len(frame.encode())
    with pytest.raises(FrameRejected):
        decode_frame(frame, max_bytes=1024)
    assert decode_frame(frame, max_bytes=4096) == {"t": "好" * 400}


def test_response_frames_are_told_apart_from_events() -> None:
    """Frames with echo/retcode and no post_type are action responses (gateways.md §8)."""
    assert is_response({"status": "failed", "retcode": 1404, "data": None, "echo": "123"})
    assert is_response({"status": "ok", "retcode": 0, "data": None})
    assert not is_response(_by_name("F4"))
    assert not is_response({"post_type": "message", "echo": "1"})
