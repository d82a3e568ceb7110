"""Typed reads of OneBot frame fields: ids as strings, times as aware UTC.

Every helper raises ``FrameRejected("missing_field" | "bad_field", name)`` so the transport can
count the frame by reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.errors import FrameRejected

log = logging.getLogger(__name__)

FUTURE_TOLERANCE = timedelta(minutes=5)
MS_THRESHOLD = 1e12  # NapCat falls back to Date.now() (milliseconds) when msgTime is missing
MAX_ID_CHARS = 128  # the store's id columns; a longer id could never be written


def coerce_id(value: Any, name: str) -> str:
    # bool is an int subclass; a JSON true is never a valid id.
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise FrameRejected("bad_field", name)
    # An id the database refuses (too long, NUL) would otherwise fail its whole batch there.
    if not text or len(text) > MAX_ID_CHARS or "\x00" in text:
        raise FrameRejected("bad_field", name)
    return text


def req_id(obj: Mapping[str, Any], name: str) -> str:
    if obj.get(name) is None:
        raise FrameRejected("missing_field", name)
    return coerce_id(obj[name], name)


def opt_id(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    return None if value is None else coerce_id(value, name)


def req_str(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        raise FrameRejected("missing_field", name)
    if not isinstance(value, str):
        raise FrameRejected("bad_field", name)
    return value


def event_time(frame: Mapping[str, Any], received_at: datetime) -> datetime:
    value = frame.get("time")
    if value is None:
        raise FrameRejected("missing_field", "time")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FrameRejected("bad_field", "time")
    seconds = float(value)
    if seconds > MS_THRESHOLD:
        seconds /= 1000.0
    if not math.isfinite(seconds) or seconds < 0 or seconds > 1e11:
        raise FrameRejected("bad_field", "time")
    sent_at = datetime.fromtimestamp(seconds, UTC)
    if sent_at - received_at > FUTURE_TOLERANCE:
        ahead = int((sent_at - received_at).total_seconds())
        log.info("onebot event time %ds in the future; clamped to received_at", ahead)
        return received_at
    return sent_at
