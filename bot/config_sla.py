"""Config sections of the question log and SLA engine: [sla], [calendar], [detector].

Each section turns into the pure core's value: ``SlaSection.policy()`` → ``sop.policy.SlaPolicy``,
``CalendarSection.calendar()`` / ``group_calendars()`` → ``sop.calendar.BusinessCalendar``,
``DetectorSection.detector()`` → ``sop.detect.DetectorConfig``. Durations accept "5m", "48h".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.config_types import Duration, Section
from sop.calendar import BusinessCalendar, parse_intervals, parse_weekly
from sop.detect import DEFAULT, DetectorConfig
from sop.policy import EscalationStep, SlaPolicy


class EscalationConfig(Section):
    """One rung of the ladder: ``at = "80%"`` of the FRT target or ``after_breach = "30m"``."""

    notify: str = "supervisor"
    at: str = ""
    after_breach: Duration | None = None

    def step(self) -> EscalationStep:
        if self.at:
            return EscalationStep(notify=self.notify, at_ratio=_ratio(self.at))
        return EscalationStep(notify=self.notify, after_s_past_breach=self.after_breach)

    @model_validator(mode="after")
    def _valid(self) -> EscalationConfig:
        self.step()  # raises ValueError with the core's message
        return self


def _ratio(text: str) -> float:
    t = text.strip()
    try:
        return float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise ValueError(f'at must be a share of the target such as "80%", got {text!r}') from None


class SlaSection(Section):
    enabled: bool = True
    policy_version: int = Field(default=1, ge=1)
    frt_target: Duration = 300.0
    backlog_window: Duration = 172800.0
    backlog_basis: Literal["calendar", "business"] = "calendar"
    business_hours_only: bool = True
    followup_after_holding: Duration = 900.0
    burst_merge: Duration = 180.0
    proximity_window: Duration = 600.0
    reopen_window: Duration = 259200.0
    auto_resolve_after_answer: Duration = 86400.0
    warn_at: str = "80%"
    warn_notify: str = "owners"
    breach_notify: str = "owners"
    backlog_notify: str = "supervisor"
    followup_notify: str = "responder"
    strict_confidence: float = Field(default=0.8, ge=0, le=1)
    quiet_hours_follow_calendar: bool = True
    escalation: tuple[EscalationConfig, ...] = (
        EscalationConfig(notify="supervisor", after_breach=1800.0),
    )
    supervisors: tuple[str, ...] = ()
    alert_window: Duration = 86400.0

    def policy(self) -> SlaPolicy:
        return SlaPolicy(
            version=self.policy_version,
            frt_target_s=self.frt_target,
            backlog_window_s=self.backlog_window,
            backlog_business_time=self.backlog_basis == "business",
            business_hours_only=self.business_hours_only,
            followup_after_holding_s=self.followup_after_holding,
            burst_merge_s=self.burst_merge,
            proximity_window_s=self.proximity_window,
            reopen_window_s=self.reopen_window,
            auto_resolve_after_answer_s=self.auto_resolve_after_answer,
            warn_ratio=_ratio(self.warn_at),
            escalation=tuple(e.step() for e in self.escalation),
            strict_confidence=self.strict_confidence,
            quiet_hours_follow_calendar=self.quiet_hours_follow_calendar,
            warn_notify=self.warn_notify,
            breach_notify=self.breach_notify,
            backlog_notify=self.backlog_notify,
            followup_notify=self.followup_notify,
        )

    @model_validator(mode="after")
    def _valid(self) -> SlaSection:
        self.policy()
        return self


class GroupCalendarConfig(Section):
    """Per-group hours (e.g. 24/7 during 大促): weekly hours and dates on top of [calendar]."""

    platform: str = "onebot11"
    group: str
    weekly: dict[str, str] = Field(default_factory=dict)
    extra_holidays: tuple[date, ...] = ()
    extra_workdays: tuple[date, ...] = ()

    @field_validator("group", mode="before")
    @classmethod
    def _as_string(cls, v: object) -> object:
        return str(v) if isinstance(v, int) else v

    @field_validator("weekly")
    @classmethod
    def _parse(cls, v: dict[str, str]) -> dict[str, str]:
        parse_weekly(v)
        return v


class CalendarSection(Section):
    version: int = Field(default=1, ge=1)
    weekly: dict[str, str] = Field(default_factory=lambda: {"mon-fri": "09:00-12:00,13:30-18:00"})
    makeup_day_hours: str = ""
    statutory: bool = True
    extra_holidays: tuple[date, ...] = ()
    extra_workdays: tuple[date, ...] = ()
    groups: tuple[GroupCalendarConfig, ...] = ()

    @field_validator("weekly")
    @classmethod
    def _parse(cls, v: dict[str, str]) -> dict[str, str]:
        parse_weekly(v)
        return v

    @field_validator("makeup_day_hours")
    @classmethod
    def _parse_makeup(cls, v: str) -> str:
        if v:
            parse_intervals(v)
        return v

    def calendar(self, tz: str) -> BusinessCalendar:
        return BusinessCalendar(
            tz=tz,
            weekly=parse_weekly(self.weekly),
            statutory=self.statutory,
            makeup_day_intervals=parse_intervals(self.makeup_day_hours)
            if self.makeup_day_hours
            else None,
            extra_holidays=frozenset(self.extra_holidays),
            extra_workdays=frozenset(self.extra_workdays),
            version=self.version,
        )

    def calendar_of(self, tz: str) -> Callable[[str], BusinessCalendar]:
        """Engine chat key ("<platform>:<chat id>") → that chat's calendar."""
        base = self.calendar(tz)
        groups = self.group_calendars(tz)

        by_key: dict[str, BusinessCalendar] = {}  # engine chat key → calendar (hot path)

        def calendar_of(chat: str) -> BusinessCalendar:
            found = by_key.get(chat)
            if found is None:
                platform, _, raw = chat.partition(":")
                found = groups.get((platform, raw), base)
                if len(by_key) < 100_000:
                    by_key[chat] = found
            return found

        return calendar_of

    def group_calendars(self, tz: str) -> dict[tuple[str, str], BusinessCalendar]:
        """(platform, group id) → that group's calendar, built on the tenant calendar."""
        base = self.calendar(tz)
        out: dict[tuple[str, str], BusinessCalendar] = {}
        for g in self.groups:
            changes: dict[str, object] = {
                "extra_holidays": g.extra_holidays,
                "extra_workdays": g.extra_workdays,
            }
            if g.weekly:
                changes["weekly"] = parse_weekly(g.weekly)
            out[(g.platform, g.group)] = base.with_overrides(**changes)
        return out


class DetectorSection(Section):
    threshold: float = Field(default=DEFAULT.threshold, ge=0, le=1)
    # Word lists: ``replace`` swaps a default list, ``extra`` appends to it.
    replace: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    extra: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    def detector(self) -> DetectorConfig:
        cfg = DEFAULT.with_overrides(threshold=self.threshold, **self.replace)
        return cfg.with_extra(**self.extra) if self.extra else cfg

    @model_validator(mode="after")
    def _valid(self) -> DetectorSection:
        lists = {
            n
            for n in DetectorConfig.__dataclass_fields__
            if isinstance(getattr(DEFAULT, n), tuple)
        }
        for name in (*self.replace, *self.extra):
            if name not in lists:
                raise ValueError(f"unknown word list {name!r} (one of {', '.join(sorted(lists))})")
        return self
