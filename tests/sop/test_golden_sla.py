"""Golden SLA scenarios of reference/sla.md §7.11, each a script of chat events run on the engine.

Times are Asia/Shanghai wall clock converted to UTC (the server runs in UTC). The calendar is the
real ``sop.calendar.default_calendar()``: Mon–Fri 09:00–12:00 and 13:30–18:00, statutory holidays
closed, 调休 make-up weekends open. September 2024: Sat 14th is a 调休 workday, 15th–17th are the
Mid-Autumn holiday.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from sop.calendar import default_calendar
from sop.policy import SlaPolicy
from sop.questions import (
    Question,
    QuestionEngine,
    QuestionReopened,
    QuestionStatus,
    ResolvedBy,
    ResponseKind,
    ResponseLinked,
)
from sop.timers import BREACH, FOLLOWUP, due_alerts

SH = ZoneInfo("Asia/Shanghai")
CAL = default_calendar()
CHAT = "g1"
V1 = SlaPolicy(version=1)
V2 = SlaPolicy(version=2, frt_target_s=600)


def t(local: str) -> datetime:
    """``"2024-09-13 22:00"`` Shanghai wall clock → aware UTC."""
    return datetime.fromisoformat(local).replace(tzinfo=SH).astimezone(UTC)


# --- script steps -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cust:
    at: str
    msg: str
    who: str
    question: bool = True
    ack: bool = False
    exempt: bool = False
    reply: str | None = None
    mentions: tuple[str, ...] = ()
    chat: str = CHAT


@dataclass(frozen=True)
class Staff:
    at: str
    msg: str
    who: str = "op1"
    reply: str | None = None
    mentions: tuple[str, ...] = ()
    holding: bool = False
    private_to: str | None = None
    chat: str = CHAT


@dataclass(frozen=True)
class Bot:
    at: str
    msg: str
    reply: str | None = None
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recall:
    at: str
    msg: str
    chat: str = CHAT


@dataclass(frozen=True)
class SetOwners:
    owners: tuple[str, ...]


@dataclass(frozen=True)
class SetPolicy:
    policy: SlaPolicy


Step = Cust | Staff | Bot | Recall | SetOwners | SetPolicy


@dataclass
class Harness:
    owners: dict[str, tuple[str, ...]] = field(default_factory=lambda: {CHAT: ("owner_a",)})
    effects: list[object] = field(default_factory=list)
    engine: QuestionEngine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = QuestionEngine(
            V1, calendar_of=lambda _chat: CAL, owners_of=lambda chat: self.owners.get(chat, ())
        )

    def run(self, steps: list[Step]) -> None:
        e = self.engine
        for s in steps:
            match s:
                case Cust():
                    self.effects += e.on_customer_message(
                        s.chat, s.msg, s.who, t(s.at), is_question=s.question, text=s.msg,
                        is_ack=s.ack, is_exempt=s.exempt, reply_to_msg_id=s.reply,
                        mention_user_ids=s.mentions,
                    )  # fmt: skip
                case Staff():
                    self.effects += e.on_staff_message(
                        s.chat, s.msg, s.who, t(s.at), reply_to_msg_id=s.reply,
                        mention_user_ids=s.mentions, is_holding=s.holding,
                        is_private_to=s.private_to,
                    )  # fmt: skip
                case Bot():
                    self.effects += e.on_bot_message(
                        CHAT, s.msg, "bot", t(s.at), reply_to_msg_id=s.reply,
                        mention_user_ids=s.mentions,
                    )  # fmt: skip
                case Recall():
                    self.effects += e.on_recall(s.chat, s.msg, t(s.at))
                case SetOwners():
                    self.owners[CHAT] = s.owners
                case SetPolicy():
                    e.set_policy(s.policy)

    def q(self, qid: str) -> Question:
        found = self.engine.get(qid)
        if found is None:  # terminal questions leave the index; their last effect has them
            found = next(
                eff.question  # type: ignore[attr-defined]
                for eff in reversed(self.effects)
                if eff.question.id == qid  # type: ignore[attr-defined]
            )
        return found


# --- scenarios ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: list[Step]
    expect: dict[str, dict[str, object]]  # question id → field → value
    check: Callable[[Harness], None] | None = None


def _no_questions(h: Harness) -> None:
    assert h.engine.questions() == []


def _dues(h: Harness, qid: str) -> dict[str, datetime]:
    q = h.q(qid)
    return {a.level: a.at for a in due_alerts(q, h.engine.policy_for(q), CAL)}


def _bot_reply_keeps_clock(h: Harness) -> None:
    assert _dues(h, "q1")[BREACH] == t("2024-09-18 10:05")
    assert any(
        isinstance(e, ResponseLinked) and e.kind is ResponseKind.BOT and not e.counts_for_sla
        for e in h.effects
    )


def _holding_followup(h: Harness) -> None:
    q = h.q("q1")
    assert q.followup_due_at == t("2024-09-18 10:16")
    assert q.followup_done_at == t("2024-09-18 10:17")


def _reopen_restarts(h: Harness) -> None:
    reopened = [e for e in h.effects if isinstance(e, QuestionReopened)]
    assert len(reopened) == 1
    assert reopened[0].question.clock_start == t("2024-09-18 11:00")


def _recall_reply(h: Harness) -> None:
    assert _dues(h, "q1")[BREACH] == t("2024-09-18 10:05")


def _owner_frozen(h: Harness) -> None:
    assert h.q("q1").owner_ids == ("owner_a",)
    assert h.q("q2").owner_ids == ("owner_b",)


def _policy_v2(h: Harness) -> None:
    assert _dues(h, "q1")[BREACH] == t("2024-09-18 10:05")
    assert _dues(h, "q2")[BREACH] == t("2024-09-19 10:10")
    with pytest.raises(ValueError, match="policy v1"):
        due_alerts(h.q("q1"), V2, CAL)


def _utc_server(h: Harness) -> None:
    # Fri 23:30 local is still Friday 15:30 in UTC; the clock starts Sat 09:00 local (调休).
    assert _dues(h, "q2")[BREACH] == datetime(2024, 9, 14, 1, 5, tzinfo=UTC)
    assert h.q("q1").opened_at.astimezone(SH).date().isoformat() == "2024-09-13"
    assert h.q("q1").opened_at.date().isoformat() == "2024-09-12"


def _lunch_breach(h: Harness) -> None:
    assert _dues(h, "q2")[BREACH] == t("2024-09-18 13:33")


def _holiday_breach_due(h: Harness) -> None:
    assert _dues(h, "q2")[BREACH] == t("2024-09-18 09:03")


def _followup_alert(h: Harness) -> None:
    assert _dues(h, "q2") == {FOLLOWUP: t("2024-09-18 10:16")}


SCENARIOS = [
    Scenario(
        "burst of 3 messages is one question timed from the first",
        [
            Cust("2024-09-18 10:00", "m1", "alice"),
            Cust("2024-09-18 10:01", "m2", "alice", question=False),
            Cust("2024-09-18 10:03", "m3", "alice"),
            Staff("2024-09-18 10:04", "s1"),
        ],
        {"q1": {"message_ids": ("m1", "m2", "m3"), "frt_business_s": 240.0}},
    ),
    Scenario(
        "off-hours Friday question answered on a 调休 Saturday",
        [
            Cust("2024-09-13 22:00", "m1", "alice"),
            Staff("2024-09-14 09:10", "s1"),
        ],
        {"q1": {"frt_business_s": 600.0, "frt_calendar_s": 11 * 3600 + 600.0}},
    ),
    Scenario(
        "lunch break does not count",
        [
            Cust("2024-09-18 11:58", "m1", "alice"),
            Cust("2024-09-18 11:58", "m2", "bob"),
            Staff("2024-09-18 13:32", "s1", reply="m1"),
        ],
        {"q1": {"frt_business_s": 240.0, "frt_calendar_s": 5640.0}},
        _lunch_breach,
    ),
    Scenario(
        "holiday is skipped",
        [
            Cust("2024-09-14 17:58", "m1", "alice"),
            Cust("2024-09-14 17:58", "m2", "bob"),
            Staff("2024-09-18 09:02", "s1", reply="m1"),
        ],
        {"q1": {"frt_business_s": 240.0, "status": QuestionStatus.ANSWERED}},
        _holiday_breach_due,
    ),
    Scenario(
        "holding reply then a follow-up at 16 minutes breaches the follow-up",
        [
            Cust("2024-09-18 10:00", "m1", "alice"),
            Staff("2024-09-18 10:01", "s1", reply="m1", holding=True),
            Staff("2024-09-18 10:17", "s2", who="op2"),
        ],
        {
            "q1": {
                "first_responder_id": "op1",
                "holding": True,
                "frt_business_s": 60.0,
                "followup_breached": True,
            }
        },
        _holding_followup,
    ),
    Scenario(
        "holding reply still waiting schedules the follow-up alert",
        [
            Cust("2024-09-18 10:00", "m1", "alice"),
            Staff("2024-09-18 10:00:30", "s0", reply="m1"),
            Cust("2024-09-18 10:00:40", "m2", "bob"),
            Staff("2024-09-18 10:01", "s1", reply="m2", holding=True),
        ],
        {"q2": {"holding": True, "followup_breached": False}},
        _followup_alert,
    ),
    Scenario(
        "quote links the quoted question among two open",
        [
            Cust("2024-09-18 10:00", "m1", "alice"),
            Cust("2024-09-18 10:01", "m2", "bob"),
            Staff("2024-09-18 10:02", "s1", reply="m2"),
        ],
        {
            "q1": {"status": QuestionStatus.OPEN},
            "q2": {"link_method": "quote", "link_confidence": 1.0},
        },
    ),
    Scenario(
        "@mention links the asker's question among two open",
        [
            Cust("2024-09-18 10:00", "m1", "alice"),
            Cust("2024-09-18 10:01", "m2", "bob"),
            Staff("2024-09-18 10:02", "s1", mentions=("bob",)),
        ],
        {
            "q1": {"status": QuestionStatus.OPEN},
            "q2": {"link_method": "mention", "link_confidence": 0.95},
        },
    ),
    Scenario(
        "proximity among two open links the oldest at low confidence",
        [
            Cust("2024-09-18 10:00", "m1", "alice"),
            Cust("2024-09-18 10:01", "m2", "bob"),
            Staff("2024-09-18 10:02", "s1"),
        ],
        {
            "q1": {"link_method": "proximity_fifo", "link_confidence": 0.5},
            "q2": {"status": QuestionStatus.OPEN},
        },
    ),
    Scenario(
        "private-chat answer to the asker",
        [
            Cust("2024-09-18 10:00", "m1", "alice"),
            Cust("2024-09-18 10:01", "m2", "bob"),
            Staff("2024-09-18 10:03", "p1", private_to="alice", chat="dm:alice"),
        ],
        {
            "q1": {
                "link_method": "private_chat",
                "link_confidence": 0.85,
                "frt_calendar_s": 180.0,
            },
            "q2": {"status": QuestionStatus.OPEN},
        },
    ),
    Scenario(
        "operator recalls the reply: the question is open again",
        [
            Cust("2024-09-18 10:00", "m1", "alice"),
            Staff("2024-09-18 10:02", "s1", reply="m1"),
            Recall("2024-09-18 10:03", "s1"),
        ],
        {"q1": {"status": QuestionStatus.OPEN, "first_responder_id": None, "responses": ()}},
        _recall_reply,
    ),
    Scenario(
        "customer 谢谢 with nothing answered opens nothing",
        [Cust("2024-09-18 10:00", "m1", "alice", question=False, ack=True, exempt=True)],
        {},
        _no_questions,
    ),
    Scenario(
        "customer 谢谢 after an answer resolves it",
        [
            Cust("2024-09-18 10:00", "m1", "alice"),
            Staff("2024-09-18 10:02", "s1"),
            Cust("2024-09-18 10:03", "m2", "alice", question=False, ack=True, exempt=True),
        ],
        {
            "q1": {
                "status": QuestionStatus.RESOLVED,
                "resolved_by": ResolvedBy.CUSTOMER,
                "message_ids": ("m1",),
            }
        },
    ),
    Scenario(
        "reopen after resolve restarts the first-response clock",
        [
            Cust("2024-09-18 10:00", "m1", "alice"),
            Staff("2024-09-18 10:03", "s1"),
            Cust("2024-09-18 10:05", "m2", "alice", question=False, ack=True),
            Cust("2024-09-18 11:00", "m3", "alice"),
            Staff("2024-09-18 11:02", "s2", who="op2"),
        ],
        {
            "q1": {
                "reopen_count": 1,
                "status": QuestionStatus.ANSWERED,
                "first_responder_id": "op2",
                "frt_business_s": 120.0,
                "resolved_by": None,
            }
        },
        _reopen_restarts,
    ),
    Scenario(
        "bot keyword auto-reply does not count",
        [
            Cust("2024-09-18 10:00", "m1", "alice"),
            Bot("2024-09-18 10:00:05", "b1", reply="m1"),
        ],
        {"q1": {"status": QuestionStatus.OPEN, "bot_touch": True, "first_response_at": None}},
        _bot_reply_keeps_clock,
    ),
    Scenario(
        "bot answer confirmed by the customer is resolved by the bot",
        [
            Cust("2024-09-18 10:00", "m1", "alice"),
            Bot("2024-09-18 10:00:05", "b1", reply="m1"),
            Cust("2024-09-18 10:01", "m2", "alice", question=False, ack=True, reply="b1"),
        ],
        {
            "q1": {
                "status": QuestionStatus.RESOLVED,
                "resolved_by": ResolvedBy.BOT,
                "first_response_at": None,
            }
        },
    ),
    Scenario(
        "owner changed mid-question: accountability stays with the owner at open",
        [
            Cust("2024-09-18 10:00", "m1", "alice"),
            SetOwners(("owner_b",)),
            Cust("2024-09-18 10:01", "m2", "bob"),
            Staff("2024-09-18 10:30", "s1", who="owner_b", mentions=("alice",)),
        ],
        {"q1": {"owner_ids": ("owner_a",), "first_responder_id": "owner_b"}},
        _owner_frozen,
    ),
    Scenario(
        "policy v2 from the start of the day; older questions keep v1",
        [
            Cust("2024-09-18 10:00", "m1", "alice"),
            SetPolicy(V2),
            Cust("2024-09-19 10:00", "m2", "bob"),
        ],
        {"q1": {"policy_version": 1}, "q2": {"policy_version": 2}},
        _policy_v2,
    ),
    Scenario(
        "server in UTC: local day boundaries and opening hours",
        [
            Cust("2024-09-13 07:30", "m1", "alice"),  # 2024-09-12 23:30 UTC
            Staff("2024-09-13 09:05", "s1"),
            Cust("2024-09-13 23:30", "m2", "bob"),  # still Friday in UTC
        ],
        {"q1": {"frt_business_s": 300.0, "frt_calendar_s": 5700.0}},
        _utc_server,
    ),
    Scenario(
        "peer answer is recorded but the clock keeps running",
        [
            Cust("2024-09-18 10:00", "m1", "alice"),
            Cust("2024-09-18 10:01", "m2", "carol", question=False, reply="m1"),
        ],
        {"q1": {"peer_answered": True, "status": QuestionStatus.OPEN}},
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_golden_scenario(scenario: Scenario) -> None:
    """Each golden scenario ends with the questions in the expected state."""
    h = Harness()
    h.run(scenario.steps)
    for qid, fields in scenario.expect.items():
        q = h.q(qid)
        actual = {name: getattr(q, name) for name in fields}
        assert actual == fields, qid
    if scenario.check is not None:
        scenario.check(h)
