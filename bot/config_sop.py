"""Config section for the SOP engine: ``[sop]`` plans, overrides, content library, programs.

The models here only validate and convert: ``SopSection.plans_for_core()`` and friends hand the
pure ``sop`` values (``Plan``, ``PlanOverride``, ``ContentItem``, ``Program``) to the runtime.
With no ``[[sop.plans]]`` the 3+3+3 guide plan applies; with no ``[[sop.programs]]`` the
built-in lifecycle programs run unless ``builtin_programs = false``; a configured program with
a built-in's id replaces it.
"""

from __future__ import annotations

from datetime import time
from typing import Literal

from pydantic import Field, model_validator

from bot.config_types import Duration, Section
from sop.content import ContentItem
from sop.lifecycle import (
    Anchor,
    BlackoutPolicy,
    BlackoutRule,
    LifecycleStep,
    Program,
    TouchKind,
    default_programs,
)
from sop.plans import (
    OverrideScope,
    Plan,
    PlanOverride,
    QuotaStep,
    ReminderSlot,
    SourceHint,
    default_guide_plan,
)

Source = Literal["observed", "api", "self"]


class StepConfig(Section):
    name: str = Field(min_length=1, max_length=64)
    quota: int = Field(ge=1)
    source: Source = "self"

    def core(self) -> QuotaStep:
        return QuotaStep(self.name, self.quota, SourceHint(self.source))


class SlotConfig(Section):
    name: str = Field(min_length=1, max_length=64)
    at: time
    jitter_min: int = Field(default=10, ge=0, le=60)

    def core(self) -> ReminderSlot:
        return ReminderSlot(self.name, self.at, self.jitter_min)


class PlanConfig(Section):
    id: str = Field(min_length=1, max_length=64)
    version: int = Field(default=1, ge=1)
    role: str = "guide"
    steps: tuple[StepConfig, ...] = Field(min_length=1)
    slots: tuple[SlotConfig, ...] = ()
    nudge: SlotConfig | None = None
    summary: SlotConfig | None = None
    window_end: time = time(22, 0)
    work_on_holidays: bool = False

    def core(self) -> Plan:
        return Plan(
            id=self.id,
            version=self.version,
            role=self.role,
            steps=tuple(s.core() for s in self.steps),
            slots=tuple(s.core() for s in self.slots),
            nudge=self.nudge.core() if self.nudge else None,
            summary=self.summary.core() if self.summary else None,
            window_end=self.window_end,
            work_on_holidays=self.work_on_holidays,
        )

    @model_validator(mode="after")
    def _valid(self) -> PlanConfig:
        self.core()  # the pure core's checks (slot order, window_end, :00/:30) name the problem
        return self


class OverrideConfig(Section):
    scope: Literal["store", "guide"]
    target: str = Field(min_length=1)
    version: int = Field(default=1, ge=1)
    role: str | None = None
    steps: tuple[StepConfig, ...] = ()
    remove_steps: tuple[str, ...] = ()
    slots: tuple[SlotConfig, ...] | None = None
    window_end: time | None = None
    work_on_holidays: bool | None = None

    def core(self) -> PlanOverride:
        return PlanOverride(
            scope=OverrideScope(self.scope),
            target=self.target,
            version=self.version,
            role=self.role,
            steps=tuple(s.core() for s in self.steps),
            remove_steps=frozenset(self.remove_steps),
            slots=None if self.slots is None else tuple(s.core() for s in self.slots),
            window_end=self.window_end,
            work_on_holidays=self.work_on_holidays,
        )


class ContentConfig(Section):
    id: str = Field(min_length=1, max_length=64)
    text: str = ""
    link: str | None = None
    steps: tuple[str, ...] = ()

    def core(self) -> ContentItem:
        return ContentItem(self.id, self.text, self.link, frozenset(self.steps))

    @model_validator(mode="after")
    def _valid(self) -> ContentConfig:
        self.core()
        return self


class BlackoutConfig(Section):
    kind: Literal["care", "marketing", "invite"] = "marketing"
    from_day: int = Field(default=1, ge=0)
    to_day: int = Field(default=15, ge=0)

    def core(self) -> BlackoutRule:
        return BlackoutRule(TouchKind(self.kind), self.from_day, self.to_day)


class LifecycleStepConfig(Section):
    name: str = Field(min_length=1, max_length=48)
    offset_days: int = Field(default=0, ge=0)
    offset_months: int = Field(default=0, ge=0)
    kind: Literal["care", "marketing", "invite"] = "care"
    repeat_every_days: int | None = Field(default=None, ge=1)
    repeat_every_months: int | None = Field(default=None, ge=1)
    until_day: int | None = Field(default=None, ge=0)

    def core(self) -> LifecycleStep:
        return LifecycleStep(
            name=self.name,
            offset_days=self.offset_days,
            kind=TouchKind(self.kind),
            repeat_every_days=self.repeat_every_days,
            offset_months=self.offset_months,
            repeat_every_months=self.repeat_every_months,
            until_day=self.until_day,
        )


class ProgramConfig(Section):
    id: str = Field(min_length=1, max_length=48)
    anchor: Literal["contact_added", "last_purchase"] = "contact_added"
    cycle_days: int | None = Field(default=None, ge=1)
    blackout: tuple[BlackoutConfig, ...] = ()
    blackout_policy: Literal["shift", "skip"] = "shift"
    steps: tuple[LifecycleStepConfig, ...] = Field(min_length=1)

    def core(self) -> Program:
        return Program(
            id=self.id,
            anchor=Anchor(self.anchor),
            steps=tuple(s.core() for s in self.steps),
            cycle_days=self.cycle_days,
            blackout=tuple(b.core() for b in self.blackout),
            blackout_policy=BlackoutPolicy(self.blackout_policy),
        )

    @model_validator(mode="after")
    def _valid(self) -> ProgramConfig:
        self.core()
        return self


class SopSection(Section):
    enabled: bool = True
    # Days ahead materialized besides today (1 = tomorrow too).
    lead_days: int = Field(default=1, ge=0, le=7)
    # A reminder this late is still sent normally; later (inside its window) it is marked 补发.
    grace: Duration = 300.0
    # Count a guide's group post only in groups listed with monitored = true.
    monitored_groups_only: bool = True
    plans: tuple[PlanConfig, ...] = ()
    overrides: tuple[OverrideConfig, ...] = ()
    content: tuple[ContentConfig, ...] = ()
    programs: tuple[ProgramConfig, ...] = ()
    # Run the built-in lifecycle programs (first_contact, consumption_cycle) besides ``programs``.
    builtin_programs: bool = True

    @model_validator(mode="after")
    def _unique(self) -> SopSection:
        roles = [p.role for p in self.plans]
        for role in roles:
            if roles.count(role) > 1:
                raise ValueError(f"plans: more than one plan for role {role!r}")
        ids = [c.id for c in self.content]
        if len(set(ids)) != len(ids):
            raise ValueError("content: duplicate item id")
        return self

    def core_plans(self) -> tuple[Plan, ...]:
        return tuple(p.core() for p in self.plans) or (default_guide_plan(),)

    def core_overrides(self) -> tuple[PlanOverride, ...]:
        return tuple(o.core() for o in self.overrides)

    def core_content(self) -> tuple[ContentItem, ...]:
        return tuple(c.core() for c in self.content)

    def core_programs(self) -> tuple[Program, ...]:
        builtin = default_programs() if self.builtin_programs else ()
        configured = tuple(p.core() for p in self.programs)
        ids = {p.id for p in configured}
        return (*(p for p in builtin if p.id not in ids), *configured)
