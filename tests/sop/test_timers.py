"""Alert due times: 80 % warn, 100 % breach, escalation ladder, backlog, follow-up, quiet hours."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from sop.calendar import default_calendar
from sop.policy import EscalationStep, SlaPolicy
from sop.questions import Question, QuestionStatus
from sop.timers import (
    BACKLOG,
    BREACH,
    FOLLOWUP,
    WARN,
    Calendar,
    DueAlert,
    due_alerts,
    escalation_level,
    level_key,
    next_due,
    ready_alerts,
)

DAY = datetime(2024, 9, 18, tzinfo=UTC)


class DayShift:
    """Fake calendar open 09:00-18:00 UTC every day: the smallest thing the Protocol needs."""

    version = 7

    def is_open(self, t: datetime) -> bool:
        return 9 <= t.hour < 18

    def next_open(self, t: datetime) -> datetime:
        if self.is_open(t):
            return t
        day = t.replace(hour=9, minute=0, second=0, microsecond=0)
        return day if t.hour < 9 else day + timedelta(days=1)

    def add_business(self, start: datetime, seconds: float) -> datetime:
        t = self.next_open(start)
        left = timedelta(seconds=seconds)
        while True:
            close = t.replace(hour=18, minute=0, second=0, microsecond=0)
            if t + left <= close:
                return t + left
            left -= close - t
            t = self.next_open(close)

    def business_seconds(self, a: datetime, b: datetime) -> float:
        total, t = 0.0, a
        while t < b:
            if self.is_open(t):
                total += 60
            t += timedelta(minutes=1)
        return total


FAKE: Calendar = DayShift()


def h(hour: float, day: int = 0) -> datetime:
    return DAY + timedelta(days=day, hours=hour)


def question(opened: datetime, **changes: object) -> Question:
    q = Question(
        id="q1",
        chat="g1",
        asker_id="alice",
        opened_at=opened,
        message_ids=("m1",),
        owner_ids=("own",),
        policy_version=1,
        calendar_version=7,
        last_customer_msg_at=opened,
    )
    return dataclasses.replace(q, **changes)  # type: ignore[arg-type]


def levels(alerts: list[DueAlert]) -> dict[str, datetime]:
    return {a.level: a.at for a in alerts}


def test_warn_breach_escalation_backlog_in_business_time() -> None:
    """Warn at 80 %, breach at 100 %, +30 min escalation in business time, backlog 48 h wall."""
    q = question(h(17.95))  # 17:57, three business minutes before closing
    got = levels(due_alerts(q, SlaPolicy(), FAKE))
    assert got == {
        WARN: h(9 + 1 / 60, 1),  # 4 min: 3 today + 1 tomorrow
        BREACH: h(9 + 2 / 60, 1),
        escalation_level(0): h(9 + 32 / 60, 1),
        BACKLOG: h(17.95, 2),
    }


def test_calendar_time_targets_when_not_business_hours_only() -> None:
    """A 24/7 target counts wall time; the alert is still held to the opening."""
    q = question(h(17.95))
    alerts = due_alerts(q, SlaPolicy(business_hours_only=False), FAKE)
    breach = next(a for a in alerts if a.level == BREACH)
    assert breach.due_at == h(17.95) + timedelta(minutes=5)
    assert breach.at == h(9, 1)


def test_quiet_hours_hold_alert_to_next_opening() -> None:
    """A backlog alert due at night is sent at 09:00."""
    q = question(h(3))  # 03:00: off hours; the wall-clock 48 h ends at 03:00 too
    backlog = next(a for a in due_alerts(q, SlaPolicy(), FAKE) if a.level == BACKLOG)
    assert backlog.due_at == h(3, 2)
    assert backlog.at == h(9, 2)


def test_quiet_hours_can_be_turned_off() -> None:
    """With quiet_hours_follow_calendar off the alert goes out when due."""
    q = question(h(3))
    policy = SlaPolicy(quiet_hours_follow_calendar=False)
    backlog = next(a for a in due_alerts(q, policy, FAKE) if a.level == BACKLOG)
    assert backlog.at == backlog.due_at == h(3, 2)


def test_ratio_escalation_step_and_notify_targets() -> None:
    """An at_ratio step fires at that share of the target and carries its recipients."""
    policy = SlaPolicy(
        escalation=(EscalationStep(notify="owners+supervisor", at_ratio=2.0),),
    )
    alerts = due_alerts(question(h(10)), policy, FAKE)
    step = next(a for a in alerts if a.level == "escalate1")
    assert step.at == h(10) + timedelta(minutes=10)
    assert step.notify == "owners+supervisor"
    assert next(a for a in alerts if a.level == WARN).notify == "owners"
    assert next(a for a in alerts if a.level == BACKLOG).notify == "supervisor"


def test_each_level_once() -> None:
    """Levels already sent are never due again."""
    q = question(h(10))
    alerts = due_alerts(q, SlaPolicy(), FAKE, already_sent_levels={WARN, BREACH})
    assert [a.level for a in alerts] == ["escalate1", BACKLOG]


def test_reopen_gets_fresh_level_keys() -> None:
    """After a reopen the clock restarts, so warn can fire again under a new key."""
    q = question(h(10), reopen_count=1, last_reopened_at=h(12))
    first = next_due(q, SlaPolicy(), FAKE, already_sent_levels={WARN, BREACH})
    assert first is not None
    assert first.level == level_key(WARN, 1) == "warn@r1"
    assert first.at == h(12) + timedelta(minutes=4)


def test_answered_question_has_only_followup_due() -> None:
    """A holding answer waits for its follow-up; nothing else is due."""
    q = question(
        h(10),
        status=QuestionStatus.ANSWERED,
        first_response_at=h(10.1),
        first_responder_id="op1",
        holding=True,
        followup_due_at=h(10.35),
    )
    alerts = due_alerts(q, SlaPolicy(), FAKE)
    assert [(a.level, a.at, a.notify) for a in alerts] == [(FOLLOWUP, h(10.35), "responder")]
    done = dataclasses.replace(q, followup_done_at=h(10.3))
    assert due_alerts(done, SlaPolicy(), FAKE) == []


@pytest.mark.parametrize(
    "status", [QuestionStatus.RESOLVED, QuestionStatus.DISMISSED, QuestionStatus.WITHDRAWN]
)
def test_closed_questions_have_nothing_due(status: QuestionStatus) -> None:
    """Resolved, dismissed or withdrawn questions never alert."""
    assert next_due(question(h(10), status=status), SlaPolicy(), FAKE) is None


def test_ready_alerts_are_those_due_by_now() -> None:
    """At 10:04:30 only the warn is ready."""
    q = question(h(10))
    ready = ready_alerts(q, SlaPolicy(), FAKE, h(10) + timedelta(minutes=4, seconds=30))
    assert [a.level for a in ready] == [WARN]


def test_wrong_policy_version_is_refused() -> None:
    """A question keeps the policy it opened under."""
    with pytest.raises(ValueError, match="v1"):
        due_alerts(question(h(10)), SlaPolicy(version=2), FAKE)


def test_backlog_in_business_time_when_configured() -> None:
    """backlog_business_time counts 48 business hours."""
    policy = SlaPolicy(backlog_business_time=True)
    backlog = next(a for a in due_alerts(question(h(9)), policy, FAKE) if a.level == BACKLOG)
    assert backlog.at == h(9 + 48 - 5 * 9, 5)  # five 9-hour days, then 3 hours


def test_real_calendar_lunch_break_holds_due_times() -> None:
    """With the office calendar, a question at 11:58 local breaches at 13:33 local."""
    cal = default_calendar()
    opened = datetime(2024, 9, 18, 3, 58, tzinfo=UTC)  # 11:58 Asia/Shanghai
    got = levels(due_alerts(question(opened, calendar_version=cal.version), SlaPolicy(), cal))
    assert got[WARN] == datetime(2024, 9, 18, 5, 32, tzinfo=UTC)  # 13:32 local
    assert got[BREACH] == datetime(2024, 9, 18, 5, 33, tzinfo=UTC)
