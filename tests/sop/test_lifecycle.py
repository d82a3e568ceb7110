"""Tests for sop.lifecycle: offsets, month arithmetic, cycles and blackout windows."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sop.lifecycle import (
    Anchor,
    BlackoutPolicy,
    BlackoutRule,
    Customer,
    LifecycleStep,
    Program,
    TouchKind,
    add_months,
    consumption_cycle_program,
    default_programs,
    due_lifecycle_steps,
    first_contact_program,
)

DATES = st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31))


def due_dates(
    customer: Customer, program: Program, start: date, days: int
) -> dict[str, list[date]]:
    """Every date in [start, start + days) each step is due, by step name."""
    found: dict[str, list[date]] = {}
    for offset in range(days):
        day = start + timedelta(days=offset)
        for task in due_lifecycle_steps(customer, [program], day):
            found.setdefault(task.step, []).append(day)
    return found


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 1, 31), 2, date(2024, 3, 31)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 11, 30), 3, date(2025, 2, 28)),
        (date(2024, 12, 15), 1, date(2025, 1, 15)),
    ],
)
def test_add_months_clamps_to_month_end(start: date, months: int, expected: date) -> None:
    """Month offsets clamp to the last day of shorter months and cross year ends."""
    assert add_months(start, months) == expected


@given(start=DATES, months=st.integers(0, 240))
def test_add_months_properties(start: date, months: int) -> None:
    """The month index moves by exactly ``months``; the day is kept or clamped to month end."""
    result = add_months(start, months)
    assert (result.year * 12 + result.month) - (start.year * 12 + start.month) == months
    last = calendar.monthrange(result.year, result.month)[1]
    assert result.day == min(start.day, last)


def test_first_contact_program_touchpoints() -> None:
    """Welcome on day 0, day 15, one month (clamped), monthly invites and 3/6/12 months."""
    customer = Customer("c1", "g1", added_on=date(2024, 1, 31))
    found = due_dates(customer, first_contact_program(), date(2024, 1, 1), 400)
    assert found["welcome"] == [date(2024, 1, 31)]
    assert found["day_15"] == [date(2024, 2, 15)]
    assert found["month_1"] == [date(2024, 2, 29)]
    assert found["month_3"] == [date(2024, 4, 30)]
    assert found["month_6"] == [date(2024, 7, 31)]
    assert found["month_12"] == [date(2025, 1, 31)]
    invites = found["monthly_invite"]
    assert invites[:3] == [date(2024, 3, 3), date(2024, 4, 3), date(2024, 5, 3)]
    assert len(invites) == 12  # Feb 2024 .. Jan 2025 month marks, +3 days each
    assert all(b > a for a, b in pairwise(invites))


@given(
    anchor=DATES,
    offset_months=st.integers(0, 24),
    every=st.integers(1, 12),
    offset_days=st.integers(0, 40),
)
def test_month_repeats_match_anchor_arithmetic(
    anchor: date, offset_months: int, every: int, offset_days: int
) -> None:
    """Repeating month steps fall exactly on anchor + months + days, with no drift."""
    step = LifecycleStep(
        "r",
        offset_days,
        offset_months=offset_months,
        repeat_every_months=every,
        until_day=800,
    )
    program = Program("p", Anchor.CONTACT_ADDED, (step,))
    customer = Customer("c", "g", added_on=anchor)
    expected = []
    k = 0
    while True:
        day = add_months(anchor, offset_months + k * every) + timedelta(days=offset_days)
        if (day - anchor).days > 800:
            break
        expected.append(day)
        k += 1
    assert due_dates(customer, program, anchor, 801).get("r", []) == expected


def test_consumption_cycle_repeats_every_45_days() -> None:
    """Care on days 1/7/15, marketing on day 40, then again from day 45 while no new purchase."""
    customer = Customer("c1", "g1", date(2023, 1, 1), last_purchase_on=date(2024, 12, 20))
    found = due_dates(customer, consumption_cycle_program(), date(2024, 12, 20), 90)
    start = date(2024, 12, 20)
    assert found["thanks"] == [start + timedelta(days=1), start + timedelta(days=46)]
    assert found["marketing_40"] == [start + timedelta(days=40), start + timedelta(days=85)]
    assert found["care_15"] == [start + timedelta(days=15), start + timedelta(days=60)]


def test_new_purchase_restarts_the_cycle() -> None:
    """The anchor is the last purchase, so a new purchase restarts maintenance days."""
    program = consumption_cycle_program()
    old = Customer("c1", "g1", date(2024, 1, 1), last_purchase_on=date(2024, 3, 1))
    new = Customer("c1", "g1", date(2024, 1, 1), last_purchase_on=date(2024, 4, 1))
    day = date(2024, 4, 10)  # day 40 of the old cycle, day 9 of the new one
    assert [t.step for t in due_lifecycle_steps(old, [program], day)] == ["marketing_40"]
    assert due_lifecycle_steps(new, [program], day) == []


def test_no_anchor_or_before_anchor_gives_nothing() -> None:
    """Customers who never bought get no cycle tasks; nothing is due before the anchor."""
    customer = Customer("c1", "g1", date(2024, 5, 1))
    assert due_lifecycle_steps(customer, [consumption_cycle_program()], date(2024, 5, 2)) == []
    assert due_lifecycle_steps(customer, default_programs(), date(2024, 4, 30)) == []


def _cycle(policy: BlackoutPolicy, *steps: LifecycleStep) -> Program:
    return Program(
        "cyc",
        Anchor.LAST_PURCHASE,
        steps,
        cycle_days=45,
        blackout=(BlackoutRule(TouchKind.MARKETING, 1, 15),),
        blackout_policy=policy,
    )


PURCHASE = date(2024, 2, 20)
BUYER = Customer("c9", "g9", date(2023, 6, 1), last_purchase_on=PURCHASE)


def test_blackout_shift_moves_marketing_to_first_allowed_day() -> None:
    """A marketing step on day 10 is shifted to day 16; care steps are not affected."""
    program = _cycle(
        BlackoutPolicy.SHIFT,
        LifecycleStep("promo", 10, TouchKind.MARKETING),
        LifecycleStep("care", 10, TouchKind.CARE),
    )
    found = due_dates(BUYER, program, PURCHASE, 45)
    assert found["promo"] == [PURCHASE + timedelta(days=16)]  # crosses 29 Feb 2024
    assert found["care"] == [PURCHASE + timedelta(days=10)]
    (task,) = due_lifecycle_steps(BUYER, [program], PURCHASE + timedelta(days=16))
    assert task.shifted_from == PURCHASE + timedelta(days=10)
    assert task.due_date == date(2024, 3, 7)
    assert task.key == "g9|cyc.promo|2024-03-07|c9"


def test_blackout_skip_drops_marketing() -> None:
    """With the skip policy a blacked-out marketing step never becomes due in that cycle."""
    program = _cycle(BlackoutPolicy.SKIP, LifecycleStep("promo", 10, TouchKind.MARKETING))
    assert due_dates(BUYER, program, PURCHASE, 45) == {}


def test_shifted_repeats_collapse_into_one_task() -> None:
    """Repeats shifted onto the same day give one task, not several."""
    program = _cycle(
        BlackoutPolicy.SHIFT, LifecycleStep("promo", 0, TouchKind.MARKETING, repeat_every_days=5)
    )
    found = due_dates(BUYER, program, PURCHASE, 45)
    offsets = [(d - PURCHASE).days for d in found["promo"]]
    assert offsets == [0, 16, 20, 25, 30, 35, 40]


def test_shift_past_cycle_end_is_dropped() -> None:
    """A shift that would leave the cycle drops the occurrence instead."""
    program = Program(
        "short",
        Anchor.LAST_PURCHASE,
        (LifecycleStep("promo", 5, TouchKind.MARKETING),),
        cycle_days=16,
        blackout=(BlackoutRule(TouchKind.MARKETING, 1, 15),),
    )
    assert due_dates(BUYER, program, PURCHASE, 64) == {}


def test_program_validation() -> None:
    """Month offsets need a non-cycle program; steps must fit in the cycle."""
    with pytest.raises(ValueError, match="month"):
        Program("p", Anchor.LAST_PURCHASE, (LifecycleStep("m", offset_months=1),), cycle_days=45)
    with pytest.raises(ValueError, match="beyond"):
        Program("p", Anchor.LAST_PURCHASE, (LifecycleStep("m", 45),), cycle_days=45)
    with pytest.raises(ValueError, match="not both"):
        LifecycleStep("x", repeat_every_days=1, repeat_every_months=1)


@given(
    offsets=st.lists(st.integers(0, 44), min_size=1, max_size=6),
    every=st.one_of(st.none(), st.integers(1, 20)),
    from_day=st.integers(0, 30),
    length=st.integers(0, 14),
    policy=st.sampled_from(list(BlackoutPolicy)),
    purchase=DATES,
)
def test_marketing_never_lands_in_a_blackout(
    offsets: list[int],
    every: int | None,
    from_day: int,
    length: int,
    policy: BlackoutPolicy,
    purchase: date,
) -> None:
    """No marketing task is ever due on a blacked-out program day; allowed ones stay put."""
    rule = BlackoutRule(TouchKind.MARKETING, from_day, from_day + length)
    steps = tuple(
        LifecycleStep(f"m{i}", off, TouchKind.MARKETING, repeat_every_days=every)
        for i, off in enumerate(sorted(set(offsets)))
    )
    program = Program("p", Anchor.LAST_PURCHASE, steps, 45, (rule,), policy)
    customer = Customer("c", "g", purchase, last_purchase_on=purchase)
    found = due_dates(customer, program, purchase, 90)
    for step in steps:
        days = {(d - purchase).days for d in found.get(step.name, [])}
        assert not any(rule.from_day <= d % 45 <= rule.to_day for d in days)
        nominal = {step.offset_days + k * (every or 45) for k in range(45)}
        allowed = {d for d in nominal if d < 45 and not rule.from_day <= d <= rule.to_day}
        assert allowed <= days


def test_customer_tasks_carry_owner_and_unique_keys() -> None:
    """Tasks belong to the customer's guide and keys include program, step and customer."""
    customer = Customer("c1", "g1", date(2024, 5, 1), last_purchase_on=date(2024, 4, 30))
    tasks = due_lifecycle_steps(customer, default_programs(), date(2024, 5, 1))
    assert {(t.program, t.step) for t in tasks} == {
        ("first_contact", "welcome"),
        ("consumption_cycle", "thanks"),
    }
    assert all(t.guide_id == "g1" for t in tasks)
    assert len({t.key for t in tasks}) == 2
