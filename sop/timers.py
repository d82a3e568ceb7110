"""Due times of a question's alerts: warn, breach, escalation, backlog and follow-up (sla.md §7.9).

The runtime keeps a timer per due time and, on fire, re-checks the question with these functions
before sending. Quiet hours are the calendar's closed hours: an alert that falls due while closed
is held to the next opening. Each level fires at most once per question and per reopen cycle.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from sop.policy import SlaPolicy

if TYPE_CHECKING:
    from sop.questions import Question


class Calendar(Protocol):
    """The part of ``sop.calendar.BusinessCalendar`` the SLA engine uses."""

    @property
    def version(self) -> int: ...

    def is_open(self, t: datetime) -> bool: ...

    def next_open(self, t: datetime) -> datetime: ...

    def add_business(self, start: datetime, seconds: float) -> datetime: ...

    def business_seconds(self, a: datetime, b: datetime) -> float: ...


WARN = "warn"
BREACH = "breach"
BACKLOG = "backlog"
FOLLOWUP = "followup"


def escalation_level(index: int) -> str:
    """Level name of the ladder's ``index``-th step (0-based), e.g. ``escalate1``."""
    return f"escalate{index + 1}"


def level_key(level: str, cycle: int) -> str:
    """The once-only key of a level: reopening restarts the clock, so it gets fresh keys."""
    return level if cycle == 0 else f"{level}@r{cycle}"


def base_level(key: str) -> str:
    """``breach@r1`` → ``breach``."""
    return key.split("@", 1)[0]


def add_time(calendar: Calendar, start: datetime, seconds: float, *, business: bool) -> datetime:
    """``start`` plus ``seconds`` of business or calendar time."""
    if business:
        return calendar.add_business(start, seconds)
    return start + timedelta(seconds=seconds)


def hold_for_quiet_hours(calendar: Calendar, at: datetime) -> datetime:
    """``at`` itself when the calendar is open, else its next opening."""
    return at if calendar.is_open(at) else calendar.next_open(at)


def followup_due(holding_at: datetime, policy: SlaPolicy, calendar: Calendar) -> datetime:
    """When a substantive follow-up to a holding reply sent at ``holding_at`` is due."""
    return add_time(
        calendar,
        holding_at,
        policy.followup_after_holding_s,
        business=policy.business_hours_only,
    )


def frt_due(question: Question, policy: SlaPolicy, calendar: Calendar) -> datetime:
    """When the first response of the current cycle is due."""
    return add_time(
        calendar, question.clock_start, policy.frt_target_s, business=policy.business_hours_only
    )


def backlog_due(question: Question, policy: SlaPolicy, calendar: Calendar) -> datetime:
    """When the question counts as backlog (48 h, calendar time unless the policy says)."""
    return add_time(
        calendar,
        question.clock_start,
        policy.backlog_window_s,
        business=policy.backlog_business_time,
    )


@dataclass(frozen=True, slots=True)
class DueAlert:
    """One alert to send at ``at`` (``due_at`` held past quiet hours)."""

    at: datetime
    question_id: str
    level: str  # once-only key, see level_key()
    notify: str  # "owners", "supervisor", "responder", or several joined by "+"
    due_at: datetime


def _raw_due(
    question: Question, policy: SlaPolicy, calendar: Calendar
) -> list[tuple[str, str, datetime]]:
    from sop.questions import QuestionStatus

    if question.status is QuestionStatus.OPEN:
        start = question.clock_start
        target = policy.frt_target_s

        def after(origin: datetime, seconds: float) -> datetime:
            return add_time(calendar, origin, seconds, business=policy.business_hours_only)

        breach_at = after(start, target)
        due = [
            (WARN, policy.warn_notify, after(start, target * policy.warn_ratio)),
            (BREACH, policy.breach_notify, breach_at),
        ]
        for i, step in enumerate(policy.escalation):
            if step.at_ratio is not None:
                at = after(start, target * step.at_ratio)
            else:
                at = after(breach_at, step.after_s_past_breach or 0.0)
            due.append((escalation_level(i), step.notify, at))
        due.append((BACKLOG, policy.backlog_notify, backlog_due(question, policy, calendar)))
        return due
    if (
        question.status is QuestionStatus.ANSWERED
        and question.followup_pending
        and question.followup_due_at is not None
    ):
        return [(FOLLOWUP, policy.followup_notify, question.followup_due_at)]
    return []


Rung = tuple[datetime, datetime, str, str]
"""One level of a question's alert ladder: (at, due_at, level key, notify)."""


def ladder(question: Question, policy: SlaPolicy, calendar: Calendar) -> list[Rung]:
    """Every alert level of ``question`` in its current state, soonest first, sent or not.

    Plain tuples: the runtime keeps a question's ladder while it is open (it is re-armed on
    every message that touches it), and tuples of times and strings cost the collector nothing.
    """
    if policy.version != question.policy_version:
        raise ValueError(
            f"question {question.id} runs on policy v{question.policy_version}, "
            f"got v{policy.version}"
        )
    hold = policy.quiet_hours_follow_calendar
    rungs: list[Rung] = []
    for level, notify, due_at in _raw_due(question, policy, calendar):
        at = hold_for_quiet_hours(calendar, due_at) if hold else due_at
        rungs.append((at, due_at, level_key(level, question.reopen_count), notify))
    rungs.sort(key=lambda r: (r[0], r[1]))
    return rungs


def due_alerts(
    question: Question,
    policy: SlaPolicy,
    calendar: Calendar,
    already_sent_levels: Collection[str] = (),
) -> list[DueAlert]:
    """Every alert still to send for ``question`` in its current state, soonest first.

    ``policy`` must be the version the question opened under. ``already_sent_levels`` holds the
    level keys (``DueAlert.level``) already sent; they are never returned again.
    """
    sent = set(already_sent_levels)
    return [
        DueAlert(at, question.id, key, notify, due_at)
        for at, due_at, key, notify in ladder(question, policy, calendar)
        if key not in sent
    ]


def next_due(
    question: Question,
    policy: SlaPolicy,
    calendar: Calendar,
    already_sent_levels: Collection[str] = (),
) -> DueAlert | None:
    """The soonest alert still to send, or None when nothing more is due."""
    alerts = due_alerts(question, policy, calendar, already_sent_levels)
    return alerts[0] if alerts else None


def ready_alerts(
    question: Question,
    policy: SlaPolicy,
    calendar: Calendar,
    now: datetime,
    already_sent_levels: Collection[str] = (),
) -> list[DueAlert]:
    """The alerts to send at ``now`` (a timer fired, or the sweeper caught up)."""
    return [a for a in due_alerts(question, policy, calendar, already_sent_levels) if a.at <= now]
