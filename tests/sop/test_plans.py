"""Tests for sop.plans: plan validation, overrides and the day's task specs."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sop.plans import (
    Guide,
    OverrideScope,
    Plan,
    PlanOverride,
    QuotaStep,
    ReminderSlot,
    SourceHint,
    StepKind,
    default_guide_plan,
    resolve_plan,
    task_key,
    tasks_for_day,
)

MONDAY = date(2024, 5, 6)
NATIONAL_DAY = date(2024, 10, 1)
GUIDE = Guide("g1", "guide", "store-a", "张三")


def weekdays_only(d: date) -> bool:
    return d.weekday() < 5 and d != NATIONAL_DAY


def always(_: date) -> bool:
    return True


def test_default_plan_is_3_3_3() -> None:
    """The default guide plan asks for 3 moments, 3 private chats and 3 group posts."""
    plan = default_guide_plan()
    assert [(s.name, s.quota) for s in plan.steps] == [
        (StepKind.MOMENTS, 3),
        (StepKind.PRIVATE_CHATS, 3),
        (StepKind.GROUP_POSTS, 3),
    ]
    assert len(plan.slots) == 3
    assert all(s.at.minute not in (0, 30) for s in plan.slots)
    assert plan.nudge is not None
    assert plan.summary is not None


def test_tasks_on_a_workday_have_unique_natural_keys() -> None:
    """A working day yields one task per step, keyed by guide, step and local date."""
    specs = tasks_for_day(default_guide_plan(), GUIDE, MONDAY, weekdays_only)
    assert [s.step for s in specs] == ["moments", "private_chats", "group_posts"]
    assert {s.key for s in specs} == {
        "g1|moments|2024-05-06",
        "g1|private_chats|2024-05-06",
        "g1|group_posts|2024-05-06",
    }
    assert all(s.quota == 3 and s.plan_version == "guide-333@1" for s in specs)
    assert specs[0].source_hint is SourceHint.API


def test_holidays_are_off_unless_the_plan_works_on_them() -> None:
    """Non-working days give no tasks unless work_on_holidays is set."""
    plan = default_guide_plan()
    assert tasks_for_day(plan, GUIDE, NATIONAL_DAY, weekdays_only) == []
    assert tasks_for_day(plan, GUIDE, MONDAY + timedelta(days=5), weekdays_only) == []
    open_plan = PlanOverride(OverrideScope.STORE, "store-a", work_on_holidays=True).apply(plan)
    assert len(tasks_for_day(open_plan, GUIDE, NATIONAL_DAY, weekdays_only)) == 3


def test_store_then_guide_overrides_apply_in_order() -> None:
    """Store overrides apply first, guide overrides last, and both show in the version tag."""
    overrides = [
        PlanOverride(OverrideScope.GUIDE, "g1", 2, steps=(QuotaStep("moments", 5),)),
        PlanOverride(OverrideScope.STORE, "store-a", 1, steps=(QuotaStep("moments", 4),)),
        PlanOverride(OverrideScope.STORE, "store-b", 1, steps=(QuotaStep("moments", 9),)),
    ]
    plan = resolve_plan([default_guide_plan()], overrides, GUIDE)
    step = plan.step("moments")
    assert step is not None
    assert step.quota == 5
    assert plan.version_tag == "guide-333@1+store:store-a@1+guide:g1@2"
    other = resolve_plan([default_guide_plan()], overrides, Guide("g2", "guide", "store-a"))
    other_step = other.step("moments")
    assert other_step is not None
    assert other_step.quota == 4


def test_override_can_add_remove_steps_and_replace_slots() -> None:
    """An override adds free-named steps, removes steps and swaps the slot list."""
    override = PlanOverride(
        OverrideScope.GUIDE,
        "g1",
        steps=(QuotaStep("livestream_notice", 1),),
        remove_steps=frozenset({"group_posts"}),
        slots=(ReminderSlot("only", time(10, 5), 5),),
    )
    plan = resolve_plan([default_guide_plan()], [override], GUIDE)
    assert [s.name for s in plan.steps] == ["moments", "private_chats", "livestream_notice"]
    assert [s.name for s in plan.slots] == ["only"]


def test_override_restricted_to_another_role_is_ignored() -> None:
    """An override for a different role does not touch this role's plan."""
    override = PlanOverride(OverrideScope.STORE, "store-a", role="operator", window_end=time(23))
    plan = resolve_plan([default_guide_plan()], [override], GUIDE)
    assert plan.window_end == time(22, 0)
    assert plan.applied == ()


def test_resolve_plan_needs_exactly_one_plan_for_the_role() -> None:
    """A guide whose role has no plan is an error, not a silent empty day."""
    with pytest.raises(LookupError):
        resolve_plan([default_guide_plan()], [], Guide("x", "operator"))


def test_plan_edit_keeps_keys_and_changes_version() -> None:
    """After an edit the same day's keys are unchanged, so stored history is not duplicated."""
    before = tasks_for_day(default_guide_plan(), GUIDE, MONDAY, always)
    edited = PlanOverride(OverrideScope.STORE, "store-a", steps=(QuotaStep("moments", 2),))
    after = tasks_for_day(edited.apply(default_guide_plan()), GUIDE, MONDAY, always)
    assert [s.key for s in before] == [s.key for s in after]
    assert after[0].quota == 2
    assert before[0].plan_version != after[0].plan_version


@pytest.mark.parametrize(
    ("at", "jitter"),
    [(time(9, 0), 1), (time(9, 30), 0), (time(8, 59, 30), 5), (time(1, 0), 0)],
)
def test_slots_that_can_only_hit_a_mark_are_rejected(at: time, jitter: int) -> None:
    """A slot whose whole jitter window is a :00/:30 minute (or off-minute) is refused."""
    with pytest.raises(ValueError, match="slot"):
        ReminderSlot("s", at, jitter)


def test_slot_on_the_hour_is_fine_with_jitter() -> None:
    """09:00 with a 10-minute jitter is allowed: the jitter skips the :00 minute."""
    assert ReminderSlot("s", time(9, 0), 10).end_minute == 9 * 60 + 10


def _plan(**changes: object) -> Plan:
    base: dict[str, object] = {
        "id": "p",
        "version": 1,
        "role": "guide",
        "steps": (QuotaStep("moments", 3),),
        "slots": (ReminderSlot("a", time(9, 12), 10),),
        "nudge": None,
        "summary": None,
        "window_end": time(22, 0),
    }
    base.update(changes)
    return Plan(**base)  # type: ignore[arg-type]


def test_plan_validation() -> None:
    """Plans reject duplicate names, slots after the window end and overlapping slots."""
    with pytest.raises(ValueError, match="duplicate step"):
        _plan(steps=(QuotaStep("m", 1), QuotaStep("m", 2)))
    with pytest.raises(ValueError, match="window_end"):
        _plan(slots=(ReminderSlot("late", time(21, 55), 10),))
    with pytest.raises(ValueError, match="overlaps"):
        _plan(slots=(ReminderSlot("a", time(9, 12), 10), ReminderSlot("b", time(9, 17), 5)))
    with pytest.raises(ValueError, match="quota"):
        QuotaStep("m", 0)


def test_slots_are_kept_in_time_order() -> None:
    """Slots given out of order are sorted, because each window ends at the next slot."""
    plan = _plan(slots=(ReminderSlot("b", time(14, 7), 5), ReminderSlot("a", time(9, 12), 5)))
    assert [s.name for s in plan.slots] == ["a", "b"]


def test_task_key_escapes_separators() -> None:
    """Ids containing the separator cannot collide with other ids."""
    assert task_key("a|b", "c", MONDAY) != task_key("a", "b|c", MONDAY)
    assert task_key("g", "s", MONDAY, "cust") == "g|s|2024-05-06|cust"


@given(
    guides=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=5, unique=True),
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 1)),
    span=st.integers(min_value=1, max_value=40),
)
def test_task_keys_are_unique_across_guides_and_days(
    guides: list[str], start: date, span: int
) -> None:
    """Keys never collide across guides, steps and dates, across month and year ends."""
    plan = default_guide_plan()
    keys = [
        spec.key
        for gid in guides
        for offset in range(span)
        for spec in tasks_for_day(plan, Guide(gid), start + timedelta(days=offset), always)
    ]
    assert len(keys) == len(set(keys)) == len(guides) * span * 3
