"""Reminder due times: per-guide jittered slot instants, their windows, keys and late policy.

Jitter is a pure function of (guide id, local date, slot name): the same guide gets the same
instant every time it is computed, different guides spread evenly over the slot's jitter window
at one-second resolution, and no instant ever falls inside a :00 or :30 minute of the tenant's
local time (WeCom's congestion marks). Local wall times are converted to UTC through zoneinfo;
the offset is added in UTC, so DST zones cannot produce a skipped or doubled instant.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sop.plans import Plan, ReminderSlot

DEFAULT_TZ = "Asia/Shanghai"
DEFAULT_GRACE = timedelta(minutes=5)


class ReminderKind(StrEnum):
    SLOT = "slot"  # the per-slot digest of what is left
    NUDGE = "nudge"  # end-of-day nudge
    SUMMARY = "summary"  # supervisor summary
    URGE = "urge"  # manual 催办


class LateAction(StrEnum):
    SEND = "send"  # due now (within the grace period)
    SEND_LATE = "send_late"  # overdue but its window is still open
    MISSED = "missed"  # window closed: record as missed, do not send


@dataclass(frozen=True, slots=True)
class SlotDue:
    """When one reminder is due (UTC) and until when sending it still makes sense (UTC)."""

    slot_name: str
    kind: ReminderKind
    due_at: datetime
    window_end: datetime


def _utc_wall(local_date: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(local_date, at, tzinfo=tz).astimezone(UTC)


@functools.lru_cache(maxsize=1024)
def _allowed_minutes(at: time, jitter_min: int, local_date: date, tz: str) -> tuple[int, ...]:
    """Minutes of the jitter window whose local minute is not :00 or :30.

    The same for every recipient of the slot that day: cached, as a day's schedule asks it
    once per guide and slot (10,000 guides: most of the schedule's time before).
    """
    zone = ZoneInfo(tz)
    base = _utc_wall(local_date, at, zone)
    return tuple(
        i
        for i in range(max(jitter_min, 1))
        if (base + timedelta(minutes=i)).astimezone(zone).minute not in (0, 30)
    )


def jitter_seconds(slot: ReminderSlot, recipient_id: str, local_date: date, tz: str) -> int:
    """Seconds after ``slot.at`` for this recipient: stable, spread, never in a :00/:30 minute."""
    # One block per minute of the window; drop the blocks whose local minute is a mark.
    allowed = _allowed_minutes(slot.at, slot.jitter_min, local_date, tz)
    if not allowed:  # only possible for zones with odd offsets (e.g. +05:45)
        raise ValueError(f"slot {slot.name!r} has no jitter minute off :00/:30 in {tz}")
    seconds_per_block = 60 if slot.jitter_min else 1
    digest = hashlib.sha256(
        f"{recipient_id}\x1f{local_date.isoformat()}\x1f{slot.name}".encode()
    ).digest()
    pick = int.from_bytes(digest[:8], "big") % (len(allowed) * seconds_per_block)
    block, second = divmod(pick, seconds_per_block)
    return allowed[block] * 60 + second


def slot_due_at(slot: ReminderSlot, recipient_id: str, local_date: date, tz: str) -> datetime:
    """The UTC instant of ``slot`` for this recipient on ``local_date``."""
    base = _utc_wall(local_date, slot.at, ZoneInfo(tz))
    return base + timedelta(seconds=jitter_seconds(slot, recipient_id, local_date, tz))


def day_window_end(plan: Plan, local_date: date, tz: str) -> datetime:
    """UTC instant at which the day's tasks close (``plan.window_end`` on ``local_date``)."""
    return _utc_wall(local_date, plan.window_end, ZoneInfo(tz))


def slot_times(plan: Plan, guide_id: str, local_date: date, tz: str) -> list[SlotDue]:
    """The guide's slot reminders for ``local_date``, in order.

    A slot's window ends when the next slot falls due (that reminder supersedes it); the last
    slot's window ends at the day's ``window_end``.
    """
    dues = [slot_due_at(s, guide_id, local_date, tz) for s in plan.slots]
    close = day_window_end(plan, local_date, tz)
    ends = [*dues[1:], close]
    return [
        SlotDue(slot.name, ReminderKind.SLOT, due, max(due, end))
        for slot, due, end in zip(plan.slots, dues, ends, strict=True)
    ]


def nudge_time(plan: Plan, guide_id: str, local_date: date, tz: str) -> SlotDue | None:
    """The guide's end-of-day nudge; useful until the day's tasks close."""
    if plan.nudge is None:
        return None
    due = slot_due_at(plan.nudge, guide_id, local_date, tz)
    return SlotDue(
        plan.nudge.name, ReminderKind.NUDGE, due, max(due, day_window_end(plan, local_date, tz))
    )


def summary_time(plan: Plan, recipient_id: str, local_date: date, tz: str) -> SlotDue | None:
    """A supervisor's daily summary; still worth sending until local midnight."""
    if plan.summary is None:
        return None
    due = slot_due_at(plan.summary, recipient_id, local_date, tz)
    midnight = _utc_wall(local_date + timedelta(days=1), time(0, 0), ZoneInfo(tz))
    return SlotDue(plan.summary.name, ReminderKind.SUMMARY, due, midnight)


def local_date_of(instant: datetime, tz: str = DEFAULT_TZ) -> date:
    """The tenant-local calendar date of an aware instant."""
    _require_aware(instant, "instant")
    return instant.astimezone(ZoneInfo(tz)).date()


def reminder_key(guide_id: str, local_date: date, slot_name: str, kind: ReminderKind | str) -> str:
    """Outbox idempotency key: one reminder per recipient, local date, slot and kind."""
    return ":".join(
        (
            "sop",
            ReminderKind(kind).value,
            quote(guide_id, safe=""),
            local_date.isoformat(),
            quote(slot_name, safe=""),
        )
    )


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def late_policy(
    due_at: datetime, window_end: datetime, now: datetime, grace: timedelta = DEFAULT_GRACE
) -> LateAction:
    """Decide what to do with a reminder at ``now`` (e.g. after a restart).

    Within ``grace`` of ``due_at`` it is sent normally; later but before ``window_end`` it is
    sent marked late; from ``window_end`` on it is recorded as missed. Raises ``ValueError``
    if it is not due yet, so a dispatcher bug cannot send early.
    """
    for name, value in (("due_at", due_at), ("window_end", window_end), ("now", now)):
        _require_aware(value, name)
    if now < due_at:
        raise ValueError(f"reminder not due yet: due {due_at.isoformat()}, now {now.isoformat()}")
    if now >= window_end:
        return LateAction.MISSED
    if now - due_at <= grace:
        return LateAction.SEND
    return LateAction.SEND_LATE
