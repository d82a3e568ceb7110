"""Daily SOP plans: quota steps, reminder slots and overrides, and the day's task specs.

A ``Plan`` says what one role must do each day (the 3+3+3 routine for guides), when it is
reminded, and when the day's tasks close. ``resolve_plan`` layers per-store then per-guide
overrides on top of the role's plan; ``tasks_for_day`` turns a resolved plan into the task
instances to materialize for one guide on one local date. Everything here is pure: the caller
supplies "is this a working day" as a callable (the business calendar lives elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, time
from enum import StrEnum
from itertools import pairwise
from urllib.parse import quote

IsWorkday = Callable[[date], bool]


class StepKind(StrEnum):
    """Built-in quota step names; plans may also use free-named steps."""

    MOMENTS = "moments"
    PRIVATE_CHATS = "private_chats"
    GROUP_POSTS = "group_posts"


class SourceHint(StrEnum):
    """Where completion of a step is expected to come from."""

    OBSERVED = "observed"  # counted from messages the gateway sees
    API = "api"  # verified through a platform API (moment results, behaviour data)
    SELF = "self"  # the guide's own "完成" command


class OverrideScope(StrEnum):
    STORE = "store"
    GUIDE = "guide"


@dataclass(frozen=True, slots=True)
class QuotaStep:
    """Do ``quota`` units of ``name`` each day (e.g. 3 moments)."""

    name: str
    quota: int
    source_hint: SourceHint = SourceHint.SELF

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("step name must not be empty")
        if self.quota < 1:
            raise ValueError(f"step {self.name!r}: quota must be >= 1, got {self.quota}")


_MARK_MINUTES = frozenset({0, 30})


@dataclass(frozen=True, slots=True)
class ReminderSlot:
    """A reminder at local time ``at``, pushed later by a per-guide jitter of < ``jitter_min``.

    The jittered instant is never inside a :00 or :30 minute (WeCom congestion marks), so the
    window ``[at, at + jitter_min)`` must contain at least one other minute.
    """

    name: str
    at: time
    jitter_min: int = 10

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("slot name must not be empty")
        if self.at.tzinfo is not None:
            raise ValueError(f"slot {self.name!r}: 'at' is a local wall time, give it no tzinfo")
        if self.at.second or self.at.microsecond:
            raise ValueError(f"slot {self.name!r}: 'at' must be on a whole minute")
        if not 0 <= self.jitter_min <= 60:
            raise ValueError(f"slot {self.name!r}: jitter_min must be within 0..60")
        width = max(self.jitter_min, 1)
        minutes = {(self.at.minute + i) % 60 for i in range(width)}
        if minutes <= _MARK_MINUTES:
            raise ValueError(
                f"slot {self.name!r}: {self.at:%H:%M} with jitter {self.jitter_min} min can "
                "only land on a :00/:30 minute; move it or widen the jitter"
            )

    @property
    def end_minute(self) -> int:
        """Minutes after midnight of the end of the jitter window (exclusive)."""
        return self.at.hour * 60 + self.at.minute + max(self.jitter_min, 1)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one role does each day, when it is reminded, and when the day's tasks close.

    ``window_end`` is the local time on the task's own date after which an unfinished task is
    missed and a finished one counts as late; every slot window must end before it.
    """

    id: str
    version: int
    role: str
    steps: tuple[QuotaStep, ...]
    slots: tuple[ReminderSlot, ...]
    nudge: ReminderSlot | None
    summary: ReminderSlot | None
    window_end: time
    work_on_holidays: bool = False
    # Labels of the overrides applied by resolve_plan, in order; part of version_tag.
    applied: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        _unique("step", (s.name for s in self.steps))
        _unique("slot", (s.name for s in self.slots))
        if self.window_end.tzinfo is not None:
            raise ValueError("window_end is a local wall time, give it no tzinfo")
        end = self.window_end.hour * 60 + self.window_end.minute
        for slot in (*self.slots, *((self.nudge,) if self.nudge else ())):
            if slot.end_minute > end:
                raise ValueError(
                    f"plan {self.id!r}: slot {slot.name!r} (+jitter) ends after window_end "
                    f"{self.window_end:%H:%M}"
                )
        ordered = tuple(sorted(self.slots, key=lambda s: s.at))
        if ordered != self.slots:
            # Slot windows chain to the next slot (see slots.slot_times), so order matters.
            object.__setattr__(self, "slots", ordered)
        for earlier, later in pairwise(ordered):
            if earlier.end_minute > later.at.hour * 60 + later.at.minute:
                raise ValueError(
                    f"plan {self.id!r}: slot {earlier.name!r} (+jitter) overlaps {later.name!r}"
                )

    @property
    def version_tag(self) -> str:
        """Stable label of the plan version plus applied overrides, stored on each task."""
        return "+".join((f"{self.id}@{self.version}", *self.applied))

    def step(self, name: str) -> QuotaStep | None:
        return next((s for s in self.steps if s.name == name), None)


def _unique(what: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {what} name {name!r}")
        seen.add(name)


@dataclass(frozen=True, slots=True)
class Guide:
    """A person who receives a daily plan (导购 / 群运营者)."""

    id: str
    role: str = "guide"
    store: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class PlanOverride:
    """Changes to a role's plan for one store or one guide; ``None`` keeps the plan's value.

    ``steps`` replace same-named steps or add new ones; ``remove_steps`` drops steps;
    ``slots`` replaces the whole slot list. Store overrides apply before guide overrides.
    """

    scope: OverrideScope
    target: str
    version: int = 1
    role: str | None = None  # restrict to plans of this role; None = any
    steps: tuple[QuotaStep, ...] = ()
    remove_steps: frozenset[str] = frozenset()
    slots: tuple[ReminderSlot, ...] | None = None
    window_end: time | None = None
    work_on_holidays: bool | None = None

    def matches(self, guide: Guide, plan: Plan) -> bool:
        if self.role is not None and self.role != plan.role:
            return False
        if self.scope is OverrideScope.STORE:
            return bool(guide.store) and self.target == guide.store
        return self.target == guide.id

    def apply(self, plan: Plan) -> Plan:
        by_name = {s.name: s for s in plan.steps if s.name not in self.remove_steps}
        for step in self.steps:
            by_name[step.name] = step  # dict keeps the original order for replaced steps
        return replace(
            plan,
            steps=tuple(by_name.values()),
            slots=plan.slots if self.slots is None else self.slots,
            window_end=plan.window_end if self.window_end is None else self.window_end,
            work_on_holidays=(
                plan.work_on_holidays if self.work_on_holidays is None else self.work_on_holidays
            ),
            applied=(*plan.applied, f"{self.scope.value}:{self.target}@{self.version}"),
        )


def default_guide_plan() -> Plan:
    """The Kuaiyu 3+3+3 routine: 3 moments, 3 private chats, 3 group posts a day."""
    return Plan(
        id="guide-333",
        version=1,
        role="guide",
        steps=(
            QuotaStep(StepKind.MOMENTS, 3, SourceHint.API),
            QuotaStep(StepKind.PRIVATE_CHATS, 3, SourceHint.OBSERVED),
            QuotaStep(StepKind.GROUP_POSTS, 3, SourceHint.OBSERVED),
        ),
        # Off the :00/:30 marks WeCom warns about; jitter keeps them off (see slots.py).
        slots=(
            ReminderSlot("morning", time(9, 12), 10),
            ReminderSlot("afternoon", time(14, 7), 10),
            ReminderSlot("evening", time(19, 17), 10),
        ),
        nudge=ReminderSlot("nudge", time(20, 47), 8),
        summary=ReminderSlot("summary", time(21, 13), 5),
        window_end=time(22, 0),
    )


def resolve_plan(plans: Sequence[Plan], overrides: Sequence[PlanOverride], guide: Guide) -> Plan:
    """The guide's effective plan: the role's plan, then store overrides, then guide overrides.

    Raises ``LookupError`` when no plan, or more than one, exists for the guide's role.
    """
    candidates = [p for p in plans if p.role == guide.role]
    if len(candidates) != 1:
        raise LookupError(f"expected one plan for role {guide.role!r}, found {len(candidates)}")
    plan = candidates[0]
    for scope in (OverrideScope.STORE, OverrideScope.GUIDE):
        for override in overrides:
            if override.scope is scope and override.matches(guide, plan):
                plan = override.apply(plan)
    return plan


def task_key(guide_id: str, step: str, local_date: date, customer_id: str | None = None) -> str:
    """Natural unique key of a task instance: guide, step, local date [, customer].

    Parts are percent-encoded so an id containing the separator cannot collide.
    """
    parts = [quote(guide_id, safe=""), quote(step, safe=""), local_date.isoformat()]
    if customer_id is not None:
        parts.append(quote(customer_id, safe=""))
    return "|".join(parts)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One quota task to materialize for a guide on a local date."""

    guide_id: str
    step: str
    local_date: date
    quota: int
    plan_version: str
    key: str
    source_hint: SourceHint = SourceHint.SELF


def is_plan_day(plan: Plan, local_date: date, is_workday: IsWorkday) -> bool:
    """Whether the plan runs on this date (holidays off unless ``work_on_holidays``)."""
    return plan.work_on_holidays or is_workday(local_date)


def tasks_for_day(
    plan: Plan, guide: Guide, local_date: date, is_workday: IsWorkday
) -> list[TaskSpec]:
    """The guide's quota tasks for ``local_date``; empty on a day off.

    Keys do not include the plan version: re-materializing after a plan edit finds the
    existing rows, so history is kept and the edit applies from the next new day.
    """
    if not is_plan_day(plan, local_date, is_workday):
        return []
    return [
        TaskSpec(
            guide_id=guide.id,
            step=step.name,
            local_date=local_date,
            quota=step.quota,
            plan_version=plan.version_tag,
            key=task_key(guide.id, step.name, local_date),
            source_hint=step.source_hint,
        )
        for step in plan.steps
    ]
