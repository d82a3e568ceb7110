"""Customer lifecycle programs: touchpoints at offsets from an anchor, with blackout windows.

A ``Program`` is anchored on a customer event (contact added, last purchase). Its steps fall on
day and/or calendar-month offsets from the anchor, optionally repeating. Day 0 is the anchor
date itself. Month offsets are always computed from the anchor (never step by step), clamping
to the month's last day, so 31 Jan + 1 month is 28/29 Feb and + 2 months is 31 Mar.

With ``cycle_days`` set (the 45-day consumption cycle) the program restarts every cycle while
the anchor stays the same: program day = days since anchor mod ``cycle_days``; step offsets and
blackout days are program days. A new purchase moves the anchor and so restarts the cycle.

Blackouts: a step whose program day falls in a ``BlackoutRule`` for its kind is either shifted
to the first allowed day after the blackout (``BlackoutPolicy.SHIFT``, the default: the touch
still happens, just not in the maintenance-only days) or dropped (``SKIP``). A shift that would
leave the cycle is dropped. Occurrences shifted onto the same day collapse into one task.
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from sop.plans import task_key


class Anchor(StrEnum):
    CONTACT_ADDED = "contact_added"
    LAST_PURCHASE = "last_purchase"


class TouchKind(StrEnum):
    CARE = "care"  # maintenance / service, allowed any time
    MARKETING = "marketing"  # selling; blacked out in maintenance-only days
    INVITE = "invite"  # invitation to an event, store visit or livestream


class BlackoutPolicy(StrEnum):
    SHIFT = "shift"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class BlackoutRule:
    """No ``kind`` touches on program days ``from_day``..``to_day`` (inclusive)."""

    kind: TouchKind = TouchKind.MARKETING
    from_day: int = 1
    to_day: int = 15

    def __post_init__(self) -> None:
        if not 0 <= self.from_day <= self.to_day:
            raise ValueError("blackout needs 0 <= from_day <= to_day")

    def blocks(self, kind: TouchKind, day: int) -> bool:
        return kind is self.kind and self.from_day <= day <= self.to_day


@dataclass(frozen=True, slots=True)
class LifecycleStep:
    """A touchpoint ``offset_months`` + ``offset_days`` after the anchor, maybe repeating.

    Repeats every ``repeat_every_days`` or ``repeat_every_months`` (not both), up to and
    including program day ``until_day`` when given.
    """

    name: str
    offset_days: int = 0
    kind: TouchKind = TouchKind.CARE
    repeat_every_days: int | None = None
    offset_months: int = 0
    repeat_every_months: int | None = None
    until_day: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("lifecycle step name must not be empty")
        if self.offset_days < 0 or self.offset_months < 0:
            raise ValueError(f"step {self.name!r}: offsets must be >= 0")
        if self.repeat_every_days is not None and self.repeat_every_months is not None:
            raise ValueError(f"step {self.name!r}: repeat by days or by months, not both")
        for every in (self.repeat_every_days, self.repeat_every_months):
            if every is not None and every < 1:
                raise ValueError(f"step {self.name!r}: repeat interval must be >= 1")

    @property
    def uses_months(self) -> bool:
        return bool(self.offset_months) or self.repeat_every_months is not None


@dataclass(frozen=True, slots=True)
class Program:
    id: str
    anchor: Anchor
    steps: tuple[LifecycleStep, ...]
    cycle_days: int | None = None
    blackout: tuple[BlackoutRule, ...] = ()
    blackout_policy: BlackoutPolicy = BlackoutPolicy.SHIFT

    def __post_init__(self) -> None:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"program {self.id!r}: duplicate step names")
        if self.cycle_days is not None:
            if self.cycle_days < 1:
                raise ValueError(f"program {self.id!r}: cycle_days must be >= 1")
            for step in self.steps:
                if step.uses_months:
                    raise ValueError(f"program {self.id!r}: month offsets need cycle_days=None")
                if step.offset_days >= self.cycle_days:
                    raise ValueError(f"program {self.id!r}: step {step.name!r} beyond the cycle")


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    guide_id: str
    added_on: date
    last_purchase_on: date | None = None
    name: str = ""

    def anchor_date(self, anchor: Anchor) -> date | None:
        return self.added_on if anchor is Anchor.CONTACT_ADDED else self.last_purchase_on


@dataclass(frozen=True, slots=True)
class CustomerTask:
    """A named touchpoint for one customer, owned by the customer's guide, due on a date."""

    customer_id: str
    guide_id: str
    program: str
    step: str
    kind: TouchKind
    due_date: date
    key: str
    shifted_from: date | None = None  # nominal date when a blackout moved it


@functools.lru_cache(maxsize=1 << 16)
def add_months(start: date, months: int) -> date:
    """``start`` plus calendar months, clamped to the target month's last day.

    Cached: planning a day asks it for every customer's anchor and month step, and a store's
    anchors fall on a few hundred dates.
    """
    index = start.year * 12 + (start.month - 1) + months
    year, month0 = divmod(index, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(start.day, last))


def _effective_day(program: Program, kind: TouchKind, day: int) -> int | None:
    """Program day after applying blackouts, or None when the occurrence is dropped."""
    for _ in range(len(program.blackout) + 1):
        rule = next((r for r in program.blackout if r.blocks(kind, day)), None)
        if rule is None:
            return day
        if program.blackout_policy is BlackoutPolicy.SKIP:
            return None
        day = rule.to_day + 1
        if program.cycle_days is not None and day >= program.cycle_days:
            return None
    # Rules chained more times than there are rules: they must form a loop; drop.
    return None


def _max_shift(program: Program) -> int:
    return sum(r.to_day - r.from_day + 1 for r in program.blackout)


def _nominal_days(step: LifecycleStep, anchor: date, lo: int, hi: int) -> Iterator[int]:
    """Nominal days since anchor of the step's occurrences within [lo, hi]."""
    until = hi if step.until_day is None else min(hi, step.until_day)
    if step.uses_months:
        every = step.repeat_every_months or 0
        k = 0
        if every:
            # Months are 28..31 days: start a couple of repeats early, then walk forward.
            k = max(0, (max(lo - step.offset_days, 0) // 31 - step.offset_months) // every - 1)
        while True:
            months = step.offset_months + k * every
            day = (add_months(anchor, months) - anchor).days + step.offset_days
            if day > until:
                return
            if day >= lo:
                yield day
            if not every:
                return
            k += 1
    every_d = step.repeat_every_days
    if every_d is None:
        if lo <= step.offset_days <= until:
            yield step.offset_days
        return
    k = max(0, -(-(lo - step.offset_days) // every_d))
    day = step.offset_days + k * every_d
    while day <= until:
        yield day
        day += every_d


def _due_steps(program: Program, anchor: date, day: int) -> Iterator[tuple[LifecycleStep, int]]:
    """(step, nominal day since anchor) of occurrences whose effective day is ``day``."""
    if program.cycle_days is not None:
        cycle, position = divmod(day, program.cycle_days)
        base = cycle * program.cycle_days
        for step in program.steps:
            for nominal in _nominal_days(step, anchor, 0, program.cycle_days - 1):
                if _effective_day(program, step.kind, nominal) == position:
                    yield step, base + nominal
        return
    lo = max(0, day - _max_shift(program))
    for step in program.steps:
        for nominal in _nominal_days(step, anchor, lo, day):
            if _effective_day(program, step.kind, nominal) == day:
                yield step, nominal


def due_lifecycle_steps(
    customer: Customer, programs: Sequence[Program], local_date: date
) -> list[CustomerTask]:
    """The customer's lifecycle touchpoints due on ``local_date``, one per program step.

    Due dates are calendar dates: whether the guide works that day is the caller's concern.
    """
    tasks: list[CustomerTask] = []
    for program in programs:
        anchor = customer.anchor_date(program.anchor)
        if anchor is None or local_date < anchor:
            continue
        day = (local_date - anchor).days
        seen: set[str] = set()
        for step, nominal in _due_steps(program, anchor, day):
            if step.name in seen:
                continue  # several occurrences shifted onto one day: one task
            seen.add(step.name)
            nominal_date = anchor + timedelta(days=nominal)
            tasks.append(
                CustomerTask(
                    customer_id=customer.id,
                    guide_id=customer.guide_id,
                    program=program.id,
                    step=step.name,
                    kind=step.kind,
                    due_date=local_date,
                    key=task_key(
                        customer.guide_id, f"{program.id}.{step.name}", local_date, customer.id
                    ),
                    shifted_from=None if nominal_date == local_date else nominal_date,
                )
            )
    return tasks


def first_contact_program() -> Program:
    """Skincare-style relationship touchpoints from the first contact (cases.md)."""
    return Program(
        id="first_contact",
        anchor=Anchor.CONTACT_ADDED,
        steps=(
            LifecycleStep("welcome", 0, TouchKind.CARE),
            LifecycleStep("day_15", 15, TouchKind.CARE),  # review request before day 15 ends
            LifecycleStep("month_1", kind=TouchKind.CARE, offset_months=1),  # using core products
            LifecycleStep(
                "monthly_invite",
                3,  # three days after each month mark, so it never stacks on month_N care
                TouchKind.INVITE,
                offset_months=1,
                repeat_every_months=1,
            ),
            LifecycleStep("month_3", kind=TouchKind.CARE, offset_months=3),
            LifecycleStep("month_6", kind=TouchKind.CARE, offset_months=6),
            LifecycleStep("month_12", kind=TouchKind.CARE, offset_months=12),
        ),
    )


def consumption_cycle_program() -> Program:
    """Zhenmo's 45-day cycle: maintenance only on days 1-15, marketing around day 40."""
    return Program(
        id="consumption_cycle",
        anchor=Anchor.LAST_PURCHASE,
        steps=(
            LifecycleStep("thanks", 1, TouchKind.CARE),
            LifecycleStep("care_7", 7, TouchKind.CARE),
            LifecycleStep("care_15", 15, TouchKind.CARE),
            LifecycleStep("marketing_40", 40, TouchKind.MARKETING),
        ),
        cycle_days=45,
        blackout=(BlackoutRule(TouchKind.MARKETING, 1, 15),),
    )


def default_programs() -> tuple[Program, ...]:
    return (first_contact_program(), consumption_cycle_program())
