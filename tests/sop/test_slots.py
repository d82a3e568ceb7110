"""Tests for sop.slots: jittered due times, windows, idempotency keys and the late policy."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sop.plans import ReminderSlot, default_guide_plan
from sop.slots import (
    LateAction,
    ReminderKind,
    day_window_end,
    jitter_seconds,
    late_policy,
    local_date_of,
    nudge_time,
    reminder_key,
    slot_due_at,
    slot_times,
    summary_time,
)

SH = "Asia/Shanghai"
ZONES = ["Asia/Shanghai", "UTC", "Asia/Kolkata", "America/New_York", "Europe/Berlin"]


@st.composite
def slots(draw: st.DrawFn) -> ReminderSlot:
    at = time(draw(st.integers(0, 22)), draw(st.integers(0, 59)))
    jitter = draw(st.integers(0, 60))
    minutes = {(at.minute + i) % 60 for i in range(max(jitter, 1))}
    assume(not minutes <= {0, 30})
    return ReminderSlot("s", at, jitter)


@given(
    slot=slots(),
    guide=st.text(max_size=12),
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
    tz=st.sampled_from(ZONES),
)
def test_jitter_is_stable_inside_the_window_and_off_the_marks(
    slot: ReminderSlot, guide: str, day: date, tz: str
) -> None:
    """Due times never fall in a local :00/:30 minute, stay in the window and are repeatable."""
    due = slot_due_at(slot, guide, day, tz)
    assert due.tzinfo is UTC
    assert due == slot_due_at(slot, guide, day, tz)
    local = due.astimezone(ZoneInfo(tz))
    assert local.minute not in (0, 30)
    base = datetime.combine(day, slot.at, tzinfo=ZoneInfo(tz)).astimezone(UTC)
    assert base <= due < base + timedelta(minutes=max(slot.jitter_min, 1))


@given(
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
    guide=st.text(max_size=12),
)
def test_shanghai_slots_keep_their_local_date_across_utc_midnight(day: date, guide: str) -> None:
    """An early Shanghai slot is on the previous UTC date but keeps its local date."""
    slot = ReminderSlot("early", time(7, 5), 10)
    due = slot_due_at(slot, guide, day, SH)
    assert local_date_of(due, SH) == day
    assert due.date() == day - timedelta(days=1)


def test_year_boundary_example() -> None:
    """New Year's Day 07:05 in Shanghai is 23:05 UTC on 31 December."""
    due = slot_due_at(ReminderSlot("early", time(7, 5), 0), "g", date(2025, 1, 1), SH)
    assert due == datetime(2024, 12, 31, 23, 5, tzinfo=UTC)
    assert local_date_of(datetime(2024, 12, 31, 16, 30, tzinfo=UTC)) == date(2025, 1, 1)


def test_ten_thousand_guides_are_spread_over_the_window() -> None:
    """10,000 guides' reminders for one slot spread evenly over the allowed jitter minutes."""
    slot = ReminderSlot("morning", time(8, 55), 10)  # window 08:55-09:04, minus 09:00
    dues = [slot_due_at(slot, f"guide-{i}", date(2024, 5, 6), SH) for i in range(10_000)]
    per_minute = Counter(d.astimezone(ZoneInfo(SH)).strftime("%H:%M") for d in dues)
    assert "09:00" not in per_minute
    assert len(per_minute) == 9
    assert max(per_minute.values()) < 1.15 * 10_000 / 9
    assert min(per_minute.values()) > 0.85 * 10_000 / 9
    assert len(set(dues)) > 500  # second resolution, not nine bursts


def test_jitter_changes_by_day_and_slot() -> None:
    """The same guide's offset differs between days and slots (not a fixed per-guide delay)."""
    slot = ReminderSlot("m", time(9, 12), 10)
    offsets = {jitter_seconds(slot, "g", date(2024, 5, d), SH) for d in range(1, 29)}
    assert len(offsets) > 20


def test_slot_windows_chain_to_the_next_slot() -> None:
    """A slot's window ends when the next slot is due; the last ends at the day's close."""
    plan = default_guide_plan()
    dues = slot_times(plan, "g1", date(2024, 5, 6), SH)
    assert [d.slot_name for d in dues] == ["morning", "afternoon", "evening"]
    assert all(d.kind is ReminderKind.SLOT for d in dues)
    assert dues[0].window_end == dues[1].due_at
    assert dues[1].window_end == dues[2].due_at
    assert dues[2].window_end == datetime(2024, 5, 6, 14, 0, tzinfo=UTC)
    assert dues[0].due_at.astimezone(ZoneInfo(SH)).strftime("%H") == "09"


def test_nudge_and_summary_times() -> None:
    """The nudge is useful until the day closes; the summary until local midnight."""
    plan = default_guide_plan()
    day = date(2024, 12, 31)
    nudge = nudge_time(plan, "g1", day, SH)
    summary = summary_time(plan, "sup1", day, SH)
    assert nudge is not None
    assert summary is not None
    assert nudge.kind is ReminderKind.NUDGE
    assert nudge.window_end == day_window_end(plan, day, SH)
    assert summary.window_end == datetime(2024, 12, 31, 16, 0, tzinfo=UTC)
    assert nudge.due_at < nudge.window_end
    assert summary.due_at < summary.window_end


def test_reminder_key_is_stable_and_distinct() -> None:
    """Keys identify recipient, date, slot and kind, and escape separators."""
    day = date(2024, 5, 6)
    key = reminder_key("g1", day, "morning", ReminderKind.SLOT)
    assert key == "sop:slot:g1:2024-05-06:morning"
    assert key == reminder_key("g1", day, "morning", "slot")
    others = {
        reminder_key("g1", day, "morning", ReminderKind.NUDGE),
        reminder_key("g1", day + timedelta(days=1), "morning", ReminderKind.SLOT),
        reminder_key("g1", day, "evening", ReminderKind.SLOT),
        reminder_key("g1:x", day, "morning", ReminderKind.SLOT),
    }
    assert key not in others
    assert len(others) == 4


DUE = datetime(2024, 5, 6, 1, 15, tzinfo=UTC)
END = datetime(2024, 5, 6, 6, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "action"),
    [
        (DUE, LateAction.SEND),
        (DUE + timedelta(minutes=5), LateAction.SEND),
        (DUE + timedelta(minutes=5, seconds=1), LateAction.SEND_LATE),
        (END - timedelta(seconds=1), LateAction.SEND_LATE),
        (END, LateAction.MISSED),
        (END + timedelta(days=3), LateAction.MISSED),
    ],
)
def test_late_policy(now: datetime, action: LateAction) -> None:
    """On time within grace, late while the window is open, missed once it has closed."""
    assert late_policy(DUE, END, now) is action


def test_late_policy_refuses_early_and_naive_times() -> None:
    """Asking before the due time or with naive datetimes is an error."""
    with pytest.raises(ValueError, match="not due"):
        late_policy(DUE, END, DUE - timedelta(seconds=1))
    with pytest.raises(ValueError, match="aware"):
        late_policy(DUE, END, datetime(2024, 5, 6, 3, 0))  # noqa: DTZ001 - the point of the test


@given(
    offsets=st.lists(st.integers(0, 10 * 3600), min_size=2, max_size=10),
)
def test_late_policy_only_gets_worse_with_time(offsets: list[int]) -> None:
    """As ``now`` advances, send never follows send_late and nothing follows missed."""
    order = {LateAction.SEND: 0, LateAction.SEND_LATE: 1, LateAction.MISSED: 2}
    ranks = [order[late_policy(DUE, END, DUE + timedelta(seconds=s))] for s in sorted(offsets)]
    assert ranks == sorted(ranks)
