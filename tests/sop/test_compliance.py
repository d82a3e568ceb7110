"""Tests for sop.compliance: outcomes, rates, grouping, misses and streaks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sop.compliance import (
    CompletionStats,
    Outcome,
    Rate,
    Streak,
    TaskRecord,
    TaskStatus,
    by_day,
    by_guide,
    by_step,
    by_store,
    missed,
    outcome,
    streak,
    streaks_by_guide,
    summarize,
)

MON = date(2024, 5, 6)


def close_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 14, 0, tzinfo=UTC)  # 22:00 Shanghai


def rec(
    day: date = MON,
    *,
    guide: str = "g1",
    store: str = "s1",
    step: str = "moments",
    done: int = 3,
    quota: int = 3,
    late_by: timedelta | None = None,
    status: TaskStatus = TaskStatus.PENDING,
    reason: str | None = None,
) -> TaskRecord:
    end = close_of(day)
    completed = None
    if done >= quota:
        completed = end - timedelta(hours=2) if late_by is None else end + late_by
    return TaskRecord(guide, store, step, day, quota, done, completed, end, status, reason)


def weekdays(d: date) -> bool:
    return d.weekday() < 5


@pytest.mark.parametrize(
    ("record", "now", "expected"),
    [
        (rec(), None, Outcome.ON_TIME),
        (rec(late_by=timedelta(minutes=1)), None, Outcome.LATE),
        (rec(done=1), None, Outcome.OPEN),
        (rec(done=1), close_of(MON), Outcome.MISSED),
        (rec(done=1, status=TaskStatus.MISSED), None, Outcome.MISSED),
        (rec(done=0, status=TaskStatus.WAIVED), None, Outcome.WAIVED),
        (
            TaskRecord("g", "s", "private_chats", MON, 3, 4, None, close_of(MON)),
            None,
            Outcome.ON_TIME,
        ),
    ],
)
def test_outcome(record: TaskRecord, now: datetime | None, expected: Outcome) -> None:
    """Records are on time, late, open, missed or waived as the module doc defines."""
    assert outcome(record, now) is expected


def test_rates_have_numerator_denominator_and_none_for_empty() -> None:
    """Rates keep their parts and have no value when nothing was required."""
    assert Rate(0, 0).value is None
    assert Rate(1, 4).value == 0.25
    empty = summarize([])
    assert empty == CompletionStats()
    assert empty.completion_rate.value is None
    assert empty.on_time_rate.value is None


def test_summarize_counts_units_and_reasons() -> None:
    """Counts, unit progress and miss reasons (most frequent first) over a set of records."""
    records = [
        rec(),
        rec(step="private_chats", late_by=timedelta(hours=1)),
        rec(step="group_posts", done=1, status=TaskStatus.MISSED, reason="sick"),
        rec(MON + timedelta(days=1), done=0, status=TaskStatus.MISSED),
        rec(MON + timedelta(days=2), done=0, status=TaskStatus.MISSED),
        rec(MON + timedelta(days=3), done=0, status=TaskStatus.WAIVED, reason="leave"),
        rec(MON + timedelta(days=4), done=2),
    ]
    stats = summarize(records)
    assert (stats.tasks, stats.on_time, stats.late, stats.missed, stats.open, stats.waived) == (
        7,
        1,
        1,
        3,
        1,
        1,
    )
    assert stats.completion_rate == Rate(2, 6)
    assert stats.decided_completion_rate == Rate(2, 5)
    assert stats.on_time_rate == Rate(1, 2)
    assert stats.unit_rate == Rate(3 + 3 + 1 + 0 + 0 + 2, 18)
    assert stats.miss_reasons == (("not_done", 2), ("sick", 1))


def test_grouping_by_guide_store_day_and_step() -> None:
    """Aggregations split the same records by guide, store, day and step."""
    records = [
        rec(guide="g1", store="s1"),
        rec(guide="g2", store="s1", done=0, status=TaskStatus.MISSED),
        rec(MON + timedelta(days=1), guide="g3", store="s2", step="group_posts"),
    ]
    assert {k: v.complete for k, v in by_guide(records).items()} == {"g1": 1, "g2": 0, "g3": 1}
    assert {k: v.tasks for k, v in by_store(records).items()} == {"s1": 2, "s2": 1}
    assert {k: v.missed for k, v in by_day(records).items()} == {
        MON: 1,
        MON + timedelta(days=1): 0,
    }
    assert set(by_step(records)) == {"moments", "group_posts"}


def test_missed_lists_records_with_reasons_oldest_first() -> None:
    """The missed list is sorted by date and keeps each reason."""
    later = rec(MON + timedelta(days=1), done=0, status=TaskStatus.MISSED, reason="offline")
    earlier = rec(done=1, status=TaskStatus.MISSED, reason="sick")
    assert missed([later, rec(), earlier]) == [earlier, later]


def full_day(day: date, guide: str = "g1") -> list[TaskRecord]:
    return [rec(day, guide=guide, step=s) for s in ("moments", "private_chats", "group_posts")]


def test_weekend_does_not_break_a_streak() -> None:
    """Fri complete, weekend without tasks, Mon complete: a streak of 2."""
    fri = MON - timedelta(days=3)
    records = full_day(fri) + full_day(MON)
    assert streak(records, weekdays, MON) == Streak(current=2, best=2)


def test_missed_workday_breaks_and_best_is_kept() -> None:
    """A missed working day resets the current streak; the best run is remembered."""
    records = [r for offset in range(3) for r in full_day(MON + timedelta(days=offset))]
    records += [rec(MON + timedelta(days=3), done=1, status=TaskStatus.MISSED)]
    records += full_day(MON + timedelta(days=4))
    assert streak(records, weekdays, MON + timedelta(days=4)) == Streak(current=1, best=3)


def test_unfinished_day_off_and_open_today_do_not_break() -> None:
    """An unfinished non-working day and today's open tasks neither count nor break."""
    sat = MON + timedelta(days=5)
    records = [
        *full_day(MON + timedelta(days=4)),
        rec(sat, done=0, status=TaskStatus.MISSED),
        rec(MON + timedelta(days=7), done=1),  # next Monday, still open
    ]
    assert streak(records, weekdays, MON + timedelta(days=7)) == Streak(current=1, best=1)


def test_late_completion_counts_and_waived_days_are_neutral() -> None:
    """Late but complete days extend a streak; fully waived days are skipped."""
    records = [
        rec(MON, late_by=timedelta(hours=1)),
        rec(MON + timedelta(days=1), done=0, status=TaskStatus.WAIVED),
        rec(MON + timedelta(days=2)),
    ]
    assert streak(records, weekdays, MON + timedelta(days=2)) == Streak(2, 2)


def test_now_turns_unfinished_past_days_into_breaks() -> None:
    """Given ``now`` after the window, a still-pending record is a miss and breaks the streak."""
    records = [*full_day(MON), rec(MON + timedelta(days=1), done=1)]
    day2 = MON + timedelta(days=1)
    assert streak(records, weekdays, day2) == Streak(1, 1)
    assert streak(records, weekdays, day2, now=close_of(day2)) == Streak(0, 1)


def test_streaks_by_guide_and_through_date() -> None:
    """Streaks are per guide and ignore days after ``through``."""
    records = full_day(MON, "g1") + full_day(MON, "g2") + full_day(MON + timedelta(days=1), "g2")
    assert streaks_by_guide(records, weekdays, MON) == {"g1": Streak(1, 1), "g2": Streak(1, 1)}


@given(st.lists(st.sampled_from(["done", "missed", "open", "none"]), max_size=40))
def test_current_streak_never_exceeds_best(pattern: list[str]) -> None:
    """Whatever the history, 0 <= current <= best <= number of days."""
    records: list[TaskRecord] = []
    for offset, kind in enumerate(pattern):
        day = MON + timedelta(days=offset)
        if kind == "done":
            records.append(rec(day))
        elif kind == "missed":
            records.append(rec(day, done=0, status=TaskStatus.MISSED))
        elif kind == "open":
            records.append(rec(day, done=1))
    result = streak(records, weekdays, MON + timedelta(days=len(pattern)))
    assert 0 <= result.current <= result.best <= len(pattern)
