"""Alert batching: one plain message per staff recipient, oldest question first."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from sop.alerts import Roster, build_alert_messages, format_duration, plain, recipients
from sop.calendar import ALWAYS_OPEN, default_calendar
from sop.questions import Question
from sop.timers import DueAlert

NOW = datetime(2024, 9, 18, 6, 0, tzinfo=UTC)  # 14:00 Asia/Shanghai
ROSTER = Roster(
    supervisors={"g1": ("sup1",)},
    default_supervisors=("team",),
    group_names={"g1": "会员一群", "g2": "VIP群"},
    customer_names={"alice": "小王", "bob": "Bob"},
    customer_chats=frozenset({"g1", "g2"}),
)


def question(qid: str, chat: str, asker: str, minutes_ago: float, **kw: object) -> Question:
    opened = NOW - timedelta(minutes=minutes_ago)
    q = Question(
        id=qid,
        chat=chat,
        asker_id=asker,
        opened_at=opened,
        message_ids=("m",),
        owner_ids=("own1",),
        policy_version=1,
        calendar_version=1,
        last_customer_msg_at=opened,
        snippet="请问这个商品什么时候发货？我已经等了三天了，订单号是 12345",
    )
    return dataclasses.replace(q, **kw)  # type: ignore[arg-type]


def alert(q: Question, level: str, notify: str = "owners") -> DueAlert:
    return DueAlert(NOW, q.id, level, notify, NOW)


def test_one_message_per_recipient_oldest_first() -> None:
    """Questions for the same owner are listed in one message, oldest first."""
    newer = question("q2", "g2", "bob", 10)
    older = question("q1", "g1", "alice", 90)
    qs = {q.id: q for q in (newer, older)}
    msgs = build_alert_messages(
        [alert(newer, "warn"), alert(older, "breach")],
        qs,
        ROSTER,
        calendar_of=lambda _c: ALWAYS_OPEN,
        now=NOW,
    )
    assert [m.recipient_id for m in msgs] == ["own1"]
    (msg,) = msgs
    assert [i.question_id for i in msg.items] == ["q1", "q2"]
    assert msg.sent_levels == (("q2", "warn"), ("q1", "breach"))
    lines = msg.text.splitlines()
    assert lines[0].startswith("【SLA提醒】你有 2 个问题")
    assert "【已超时】群「会员一群」· 客户 小王 · 已等待 1小时30分钟" in lines[1]
    assert lines[1].endswith("编号 q1")
    assert "【即将超时】群「VIP群」" in lines[2]


def test_most_severe_level_shown_once_per_question() -> None:
    """warn and breach of one question in one batch make one line, labelled breach."""
    q = question("q1", "g1", "alice", 30)
    (msg,) = build_alert_messages(
        [alert(q, "warn"), alert(q, "breach")],
        {"q1": q},
        ROSTER,
        calendar_of=lambda _c: ALWAYS_OPEN,
        now=NOW,
    )
    assert len(msg.items) == 1
    assert msg.items[0].level == "breach"
    assert len(msg.sent_levels) == 2


def test_escalation_goes_to_supervisor_and_english() -> None:
    """A supervisor step reaches the chat's supervisor; lang='en' renders English."""
    q = question("q1", "g1", "alice", 120)
    (msg,) = build_alert_messages(
        [alert(q, "escalate1", "supervisor")],
        {"q1": q},
        ROSTER,
        calendar_of=lambda _c: ALWAYS_OPEN,
        now=NOW,
        lang="en",
    )
    assert msg.recipient_id == "sup1"
    assert msg.text.startswith("[SLA alert] 1 question(s)")
    assert "[escalated] group 会员一群 · customer 小王 · waited 2h business / 2h calendar" in (
        msg.text
    )


def test_waited_time_in_business_and_calendar_form() -> None:
    """Waiting since 11:00 local at 14:00 local is 1 h 30 min of office time (lunch break)."""
    q = question("q1", "g1", "alice", 180)
    (msg,) = build_alert_messages(
        [alert(q, "breach")], {"q1": q}, ROSTER, calendar_of=lambda _c: default_calendar(), now=NOW
    )
    item = msg.items[0]
    assert (item.waited_business_s, item.waited_calendar_s) == (5400.0, 10800.0)
    assert "1小时30分钟（工作时间）/ 3小时（自然时间）" in msg.text


def test_recipients_never_customers_or_groups() -> None:
    """A customer group or the asker is never a recipient, even when misconfigured."""
    q = question("q1", "g1", "alice", 5, owner_ids=("g1", "alice", "own1", "own1"))
    assert recipients(q, "owners", ROSTER) == ("own1",)


def test_ownerless_question_goes_to_team_queue_and_responder_target() -> None:
    """No owner: the supervisors; 'responder' targets the holding responder."""
    ownerless = question("q1", "g9", "alice", 5, owner_ids=())
    assert recipients(ownerless, "owners", ROSTER) == ("team",)
    held = question("q2", "g1", "alice", 5, first_responder_id="op7")
    assert recipients(held, "responder+supervisor", ROSTER) == ("op7", "sup1")
    assert recipients(question("q3", "g1", "bob", 5), "responder", ROSTER) == ("own1",)


def test_unknown_questions_are_skipped() -> None:
    """An alert for a question no longer known builds nothing."""
    q = question("q1", "g1", "alice", 5)
    assert (
        build_alert_messages(
            [alert(q, "warn")], {}, ROSTER, calendar_of=lambda _c: ALWAYS_OPEN, now=NOW
        )
        == []
    )


def test_snippet_is_plain_short_and_defused() -> None:
    """Customer text becomes one line of at most 30 characters without markup."""
    text = "  <a href='x'>点我</a>\n**加粗** [链接](http://x) @所有人\u202e\u200b 还有很多很多字\t"
    out = plain(text, 30)
    assert len(out) <= 30
    assert out.endswith("…")
    for ch in "<>*[]\n\t\u202e\u200b@":
        assert ch not in out
    assert plain("  短句 ", 30) == "短句"
    q = question("q1", "g1", "alice", 5)
    (msg,) = build_alert_messages(
        [alert(q, "warn")], {"q1": q}, ROSTER, calendar_of=lambda _c: ALWAYS_OPEN, now=NOW
    )
    assert len(msg.items[0].snippet) <= 30


def test_format_duration() -> None:
    """Durations read as days, hours and minutes in both languages."""
    assert format_duration(30) == "不到1分钟"
    assert format_duration(3725) == "1小时2分钟"
    assert format_duration(2 * 86400 + 60, lang="en") == "2d 1m"
