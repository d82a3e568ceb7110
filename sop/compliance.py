"""SOP compliance: aggregate task instances into completion, timeliness, misses and streaks.

Outcome of one task record (``outcome``):
- waived: excused (``status == waived``); left out of every denominator;
- on_time / late: ``done >= quota``; late when ``completed_at`` is after ``window_end``. A
  record complete without ``completed_at`` (day-level API counts) counts as on time;
- missed: not complete and either marked missed or, given ``now``, its window has closed;
- open: not complete and its window is still open (today's work in progress).

Rates carry numerator and denominator; ``value`` is ``None`` when the denominator is 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar

from sop.plans import IsWorkday


class TaskStatus(StrEnum):
    PENDING = "pending"
    REMINDED = "reminded"
    DONE = "done"
    LATE = "late"
    MISSED = "missed"
    WAIVED = "waived"


class Outcome(StrEnum):
    ON_TIME = "on_time"
    LATE = "late"
    MISSED = "missed"
    OPEN = "open"
    WAIVED = "waived"


DEFAULT_MISS_REASON = "not_done"

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One materialized task instance as stored, with its completion so far."""

    guide_id: str
    store: str
    step: str
    local_date: date
    quota: int
    done: int
    completed_at: datetime | None
    window_end: datetime
    status: TaskStatus = TaskStatus.PENDING
    miss_reason: str | None = None
    sources: frozenset[str] = frozenset()

    @property
    def complete(self) -> bool:
        return self.done >= self.quota


def outcome(record: TaskRecord, now: datetime | None = None) -> Outcome:
    """Classify one record (see module doc)."""
    if record.status is TaskStatus.WAIVED:
        return Outcome.WAIVED
    if record.complete:
        if record.completed_at is not None and record.completed_at > record.window_end:
            return Outcome.LATE
        return Outcome.ON_TIME
    if record.status is TaskStatus.MISSED or (now is not None and now >= record.window_end):
        return Outcome.MISSED
    return Outcome.OPEN


@dataclass(frozen=True, slots=True)
class Rate:
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return None if self.denominator == 0 else self.numerator / self.denominator


@dataclass(frozen=True, slots=True)
class CompletionStats:
    """Counts over a group of task records; rates derive from them."""

    tasks: int = 0
    on_time: int = 0
    late: int = 0
    missed: int = 0
    open: int = 0
    waived: int = 0
    units_done: int = 0  # sum of min(done, quota) over non-waived tasks
    units_required: int = 0  # sum of quota over non-waived tasks
    miss_reasons: tuple[tuple[str, int], ...] = ()  # most frequent first, then by reason

    @property
    def complete(self) -> int:
        return self.on_time + self.late

    @property
    def completion_rate(self) -> Rate:
        """Complete tasks over required (non-waived) tasks, open ones included."""
        return Rate(self.complete, self.tasks - self.waived)

    @property
    def decided_completion_rate(self) -> Rate:
        """Complete over tasks whose outcome is final (open ones left out)."""
        return Rate(self.complete, self.complete + self.missed)

    @property
    def on_time_rate(self) -> Rate:
        """On-time over complete tasks."""
        return Rate(self.on_time, self.complete)

    @property
    def unit_rate(self) -> Rate:
        """Units done over units required (执行率: 2 of 3 moments counts 2/3)."""
        return Rate(self.units_done, self.units_required)


def summarize(records: Iterable[TaskRecord], now: datetime | None = None) -> CompletionStats:
    """Counts for one group of records."""
    counts: Counter[Outcome] = Counter()
    reasons: Counter[str] = Counter()
    units_done = units_required = tasks = 0
    for record in records:
        tasks += 1
        result = outcome(record, now)
        counts[result] += 1
        if result is Outcome.WAIVED:
            continue
        units_done += min(max(record.done, 0), record.quota)
        units_required += record.quota
        if result is Outcome.MISSED:
            reasons[record.miss_reason or DEFAULT_MISS_REASON] += 1
    return CompletionStats(
        tasks=tasks,
        on_time=counts[Outcome.ON_TIME],
        late=counts[Outcome.LATE],
        missed=counts[Outcome.MISSED],
        open=counts[Outcome.OPEN],
        waived=counts[Outcome.WAIVED],
        units_done=units_done,
        units_required=units_required,
        miss_reasons=tuple(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def aggregate(
    records: Iterable[TaskRecord], key: Callable[[TaskRecord], K], now: datetime | None = None
) -> dict[K, CompletionStats]:
    """``summarize`` per group, keyed by ``key(record)``, in first-seen order."""
    groups: dict[K, list[TaskRecord]] = {}
    for record in records:
        groups.setdefault(key(record), []).append(record)
    return {k: summarize(rs, now) for k, rs in groups.items()}


def by_guide(
    records: Iterable[TaskRecord], now: datetime | None = None
) -> dict[str, CompletionStats]:
    return aggregate(records, lambda r: r.guide_id, now)


def by_store(
    records: Iterable[TaskRecord], now: datetime | None = None
) -> dict[str, CompletionStats]:
    return aggregate(records, lambda r: r.store, now)


def by_day(
    records: Iterable[TaskRecord], now: datetime | None = None
) -> dict[date, CompletionStats]:
    return aggregate(records, lambda r: r.local_date, now)


def by_step(
    records: Iterable[TaskRecord], now: datetime | None = None
) -> dict[str, CompletionStats]:
    return aggregate(records, lambda r: r.step, now)


def missed(records: Iterable[TaskRecord], now: datetime | None = None) -> list[TaskRecord]:
    """The missed records, oldest first, for a "missed with reason" list."""
    found = [r for r in records if outcome(r, now) is Outcome.MISSED]
    return sorted(found, key=lambda r: (r.local_date, r.guide_id, r.step))


@dataclass(frozen=True, slots=True)
class Streak:
    """Consecutive fully-complete days: the run ending at the latest decided day, and the best."""

    current: int
    best: int


class _Day(StrEnum):
    COMPLETE = "complete"
    BROKEN = "broken"
    NEUTRAL = "neutral"


def _day_state(records: list[TaskRecord], workday: bool, now: datetime | None) -> _Day:
    outcomes = [outcome(r, now) for r in records]
    required = [o for o in outcomes if o is not Outcome.WAIVED]
    if not required:
        return _Day.NEUTRAL  # nothing required that day (all waived): neither counts nor breaks
    if all(o in (Outcome.ON_TIME, Outcome.LATE) for o in required):
        return _Day.COMPLETE
    if Outcome.MISSED in required and workday:
        return _Day.BROKEN
    # Still open, or an unfinished day off: undecided / not required, so the run carries on.
    return _Day.NEUTRAL


def streak(
    records: Iterable[TaskRecord],
    is_workday: IsWorkday,
    through: date,
    now: datetime | None = None,
) -> Streak:
    """One guide's streak of fully complete days up to and including ``through``.

    A day counts when all its non-waived tasks are complete (late completion counts). A
    working day with a missed task breaks the run. Days with no tasks, days off that were not
    completed, and days still open neither count nor break.
    """
    days: dict[date, list[TaskRecord]] = {}
    for record in records:
        if record.local_date <= through:
            days.setdefault(record.local_date, []).append(record)
    run = best = 0
    for day in sorted(days):
        state = _day_state(days[day], is_workday(day), now)
        if state is _Day.COMPLETE:
            run += 1
            best = max(best, run)
        elif state is _Day.BROKEN:
            run = 0
    return Streak(current=run, best=best)


def streaks_by_guide(
    records: Iterable[TaskRecord],
    is_workday: IsWorkday,
    through: date,
    now: datetime | None = None,
) -> dict[str, Streak]:
    groups: dict[str, list[TaskRecord]] = {}
    for record in records:
        groups.setdefault(record.guide_id, []).append(record)
    return {g: streak(rs, is_workday, through, now) for g, rs in groups.items()}
