"""The simulator gateway: deterministic cast and day script, played on a ManualClock."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import pytest

from bot.clock import ManualClock
from bot.config import AppConfig
from bot.errors import GatewayError
from bot.events import (
    AccountStatus,
    ChatMessage,
    ChatType,
    InboundEvent,
    MemberChange,
    MemberChangeKind,
    MessageRecall,
    SegmentType,
)
from bot.gateway.base import Gateway
from bot.gateway.simulator import (
    Behaviour,
    Cast,
    DayScript,
    Outcome,
    SimulatorGateway,
    build_event,
    day_script,
    demo_cast,
)
from bot.gateway.simulator.script import SHANGHAI, MessageSpec
from bot.metrics import Metrics
from bot.roster import ActorRole, Roster
from sop import detect

DAY = date(2025, 3, 10)  # a Monday
DAY_START = datetime.combine(DAY, time(0), SHANGHAI).astimezone(UTC)
ACCOUNT = "sim-bot"


@pytest.fixture(scope="module")
def cast() -> Cast:
    return demo_cast(7, 4, 12)


@pytest.fixture(scope="module")
def script(cast: Cast) -> DayScript:
    return day_script(cast, DAY, seed=7)


def _messages(script: DayScript, behaviour: Behaviour | None = None) -> list[ChatMessage]:
    out = []
    for item in script.actions:
        if behaviour is not None and item.behaviour is not behaviour:
            continue
        event = build_event(item, account_id=ACCOUNT, received_at=item.at)
        if isinstance(event, ChatMessage):
            out.append(event)
    return out


# -- cast ---------------------------------------------------------------------------------


def test_cast_is_deterministic_by_seed() -> None:
    """The same seed gives the same people and ids; another seed gives other ids."""
    assert demo_cast(3, 4, 12) == demo_cast(3, 4, 12)
    assert demo_cast(3, 4, 12).staff != demo_cast(4, 4, 12).staff


def test_cast_builds_a_valid_roster(cast: Cast) -> None:
    """operators() and groups() validate as AppConfig, on the simulator platform."""
    cfg = AppConfig(operators=cast.operators(), groups=cast.groups())
    assert {g.platform for g in cfg.groups} == {"simulator"}
    assert len(cfg.groups) == 4
    roles = Counter(op.role for op in cfg.operators)
    assert roles["guide"] >= 3
    assert roles["supervisor"] == roles["admin"] == 1
    assert roles["operator"] >= 1
    assert roles["specialist"] >= 1
    assert all(op.store for op in cfg.operators if op.role == "guide")
    ids = [uid for op in cfg.operators for uid in op.onebot_user_ids]
    assert all(uid.isdigit() for uid in ids)
    assert "美素宝妈交流群 1群" in {g.name for g in cfg.groups}


def test_roster_from_the_cast_tells_staff_from_customers(cast: Cast, script: DayScript) -> None:
    """Scripted staff messages resolve to operators and customer messages to customers."""
    roster = Roster(cast.operators(), cast.groups())
    staff = cast.staff_user_ids()
    for m in _messages(script):
        role = roster.classify(m).role
        assert role is (ActorRole.OPERATOR if m.sender_id in staff else ActorRole.CUSTOMER)
    assert all(roster.is_monitored("simulator", g.id) for g in cast.sim_groups)


def test_cast_user_ids_are_unique(cast: Cast) -> None:
    """Staff, customers and groups never share an id."""
    ids = [s.user_id for s in cast.staff]
    ids += [c.user_id for g in cast.sim_groups for c in g.customers]
    ids += [g.id for g in cast.sim_groups]
    assert len(ids) == len(set(ids))
    assert sum(len(g.customers) for g in cast.sim_groups) == 4 * 12


# -- script -------------------------------------------------------------------------------


def test_script_is_deterministic_by_seed(cast: Cast) -> None:
    """Same seed and day → the same script; another seed or day → a different one."""
    assert day_script(cast, DAY, seed=7) == day_script(cast, DAY, seed=7)
    assert day_script(cast, DAY, seed=8) != day_script(cast, DAY, seed=7)
    assert day_script(cast, DAY + timedelta(days=1), seed=7) != day_script(cast, DAY, seed=7)


def test_script_is_sorted_inside_its_local_day(script: DayScript) -> None:
    """Actions are sorted, aware UTC, and fall inside the Asia/Shanghai day."""
    times = [a.at for a in script.actions]
    assert times == sorted(times)
    assert all(t.tzinfo is UTC for t in times)
    assert times[0] >= DAY_START
    assert times[-1] < DAY_START + timedelta(days=1)
    ids = [a.action.message_id for a in script.actions if isinstance(a.action, MessageSpec)]
    assert len(ids) == len(set(ids))


def test_one_day_shows_every_behaviour(script: DayScript) -> None:
    """Questions, quotes, mentions, proximity, holding, unanswered, recalls, joins, posts."""
    assert script.missing() == []
    outcomes = script.outcomes()
    assert len(script.questions) >= 24
    for outcome in (Outcome.QUOTE, Outcome.MENTION, Outcome.PROXIMITY):
        assert outcomes[outcome] >= 2
    assert outcomes[Outcome.UNANSWERED] >= 1
    assert outcomes[Outcome.WITHDRAWN] == 1
    assert script.count(Behaviour.RECALL) == 1
    assert script.count(Behaviour.JOIN) >= 1
    assert script.count(Behaviour.FRIEND_ADD) >= 1
    assert script.count(Behaviour.HOLDING) >= 1
    assert script.count(Behaviour.THANKS) >= 1
    assert any(q.late for q in script.questions if q.answered_at is not None)
    assert any(len(q.message_ids) > 1 for q in script.questions)  # bursts
    stickers = _messages(script, Behaviour.STICKER)
    assert stickers
    assert all(m.media_only for m in stickers)


@pytest.mark.parametrize(("seed", "groups", "customers"), [(1, 1, 1), (2, 2, 3), (5, 10, 30)])
def test_small_and_large_casts_still_show_every_behaviour(
    seed: int, groups: int, customers: int
) -> None:
    """Even a one-group, one-customer demo day is complete."""
    assert day_script(demo_cast(seed, groups, customers), DAY, seed=seed).missing() == []


def test_answers_are_shaped_by_their_link(script: DayScript) -> None:
    """Quote → reply segment to the question; mention → @asker; proximity → plain; private."""
    by_question: dict[str, list[ChatMessage]] = {}
    for m in _messages(script, Behaviour.ANSWER):
        qid = m.raw["simulator"]["question_id"] if m.raw else ""
        by_question.setdefault(qid, []).append(m)
    for q in script.questions:
        answers = by_question.get(q.question_id, [])
        if q.outcome in (Outcome.UNANSWERED, Outcome.WITHDRAWN):
            assert answers == []
            continue
        (answer,) = answers
        assert answer.sent_at == q.answered_at
        assert q.opened_at < answer.sent_at
        assert answer.sender_id == q.responder_id
        if q.outcome is Outcome.QUOTE:
            assert answer.reply_to_message_id in q.message_ids
            assert answer.reply_to_sender_id == q.asker_id
            assert answer.segments[0].type is SegmentType.REPLY
            assert not answer.text.startswith("@")  # the client's implicit @ is not typed
        elif q.outcome is Outcome.MENTION:
            assert answer.mention_user_ids == (q.asker_id,)
            assert answer.reply_to_message_id is None
            assert answer.text.startswith("@")
        elif q.outcome is Outcome.PROXIMITY:
            assert answer.reply_to_message_id is None
            assert answer.mention_user_ids == ()
            assert answer.chat_type is ChatType.GROUP
        else:
            assert answer.chat_type is ChatType.PRIVATE
            assert answer.chat_id == q.asker_id


def test_proximity_answers_are_unambiguous(script: DayScript) -> None:
    """When a plain follow-up is sent, its question is the only one open in the group."""
    for q in script.questions:
        if q.outcome is not Outcome.PROXIMITY:
            continue
        assert q.first_response_at is not None
        assert q.answered_at is not None
        for other in script.questions:
            if other is q or other.group_id != q.group_id or other.opened_at > q.answered_at:
                continue
            closed = other.first_response_at
            if other.outcome is Outcome.WITHDRAWN:
                continue  # recalled within two minutes, before anyone answered
            assert closed is not None
            assert closed <= q.first_response_at


def test_scripted_questions_and_chatter_match_the_detector(script: DayScript) -> None:
    """Every scripted question text is detected; chatter, thanks and posts are not."""
    for m in _messages(script, Behaviour.QUESTION):
        assert detect.classify(m.text).is_question, m.text
    for behaviour in (Behaviour.CHATTER, Behaviour.THANKS, Behaviour.GUIDE_POST):
        for m in _messages(script, behaviour):
            assert not detect.classify(m.text).is_question, m.text
    for m in _messages(script, Behaviour.HOLDING):
        assert detect.is_holding_reply(m.text), m.text


def test_more_questions_in_the_evening_than_at_night(cast: Cast) -> None:
    """Question volume follows the day: evenings busy, small hours quiet."""
    hours: Counter[int] = Counter()
    for seed in range(5):
        for q in day_script(cast, DAY, seed=seed).questions:
            hours[q.opened_at.astimezone(SHANGHAI).hour] += 1
    evening = sum(hours[h] for h in range(18, 23))
    night = sum(hours[h] for h in range(1, 6))
    assert evening > 4 * night


def test_guides_post_in_groups_and_chat_privately(cast: Cast, script: DayScript) -> None:
    """Guides post in up to three distinct groups and send private messages (3+3+3)."""
    posts = _messages(script, Behaviour.GUIDE_POST)
    groups_by_guide: dict[str, set[str]] = {}
    for m in posts:
        groups_by_guide.setdefault(m.sender_id, set()).add(m.chat_id)
    guide_ids = {g.user_id for g in cast.guides}
    assert set(groups_by_guide) == guide_ids
    assert max(len(v) for v in groups_by_guide.values()) == 3
    assert sum(m.mention_all for m in posts) == 1
    private = _messages(script, Behaviour.GUIDE_PRIVATE)
    assert {m.sender_id for m in private} == guide_ids
    assert all(m.chat_type is ChatType.PRIVATE for m in private)


def test_customer_text_exercises_escaping(script: DayScript) -> None:
    """A script tag and an already-escaped entity arrive as plain customer text."""
    texts = [m.text for m in _messages(script)]
    assert any("<script>alert(1)</script>" in t for t in texts)
    assert any("&lt;" in t for t in texts)


def test_recall_join_and_friend_add_events(cast: Cast, script: DayScript) -> None:
    """Recall names a scripted message; joins carry the group; friend adds name the guide."""
    events = [build_event(a, account_id=ACCOUNT, received_at=a.at) for a in script.actions]
    message_ids = {e.message_id for e in events if isinstance(e, ChatMessage)}
    recalls = [e for e in events if isinstance(e, MessageRecall)]
    assert [r.message_id in message_ids for r in recalls] == [True]
    changes = [e for e in events if isinstance(e, MemberChange)]
    joins = [c for c in changes if c.kind is MemberChangeKind.GROUP_JOIN]
    assert joins
    assert all(c.chat_id in {g.id for g in cast.sim_groups} for c in joins)
    adds = [c for c in changes if c.kind is MemberChangeKind.FRIEND_ADD]
    assert adds
    assert all(c.operator_id in {g.user_id for g in cast.guides} for c in adds)


# -- gateway ------------------------------------------------------------------------------


class _Recorder:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.events: list[tuple[datetime, InboundEvent]] = []

    async def __call__(self, event: InboundEvent) -> None:
        self.events.append((self.clock.now(), event))


def _gateway(
    cast: Cast, clock: ManualClock, sink: _Recorder, **kw: int | None
) -> SimulatorGateway:
    return SimulatorGateway(
        sink=sink,
        clock=clock,
        metrics=Metrics(),
        cast=cast,
        seed=7,
        account_id=ACCOUNT,
        start_day=DAY,
        days=kw.get("days", 1),
    )


async def test_plays_one_day_in_order_on_a_manual_clock(cast: Cast, script: DayScript) -> None:
    """Every scripted event arrives in order, exactly at its scripted time, without sleeping."""
    clock = ManualClock(DAY_START)
    sink = _Recorder(clock)
    gw = _gateway(cast, clock, sink)
    await gw.start()
    first = sink.events[0][1]
    assert isinstance(first, AccountStatus)
    assert first.online
    assert gw.online_accounts() == [ACCOUNT]
    for minute in range(24 * 60 + 1):
        await clock.set(DAY_START + timedelta(minutes=minute))
    assert gw.finished
    played = sink.events[1:]
    assert len(played) == len(script.actions)
    for (received, event), item in zip(played, script.actions, strict=True):
        assert received == item.at
        if isinstance(event, ChatMessage):
            assert isinstance(item.action, MessageSpec)
            assert event.message_id == item.action.message_id
            assert event.sent_at == event.received_at == item.at
            assert event.platform == "simulator"
    await gw.stop()


async def test_events_wait_for_their_time(cast: Cast, script: DayScript) -> None:
    """Nothing is delivered before its time: at 09:00 only the night's events have arrived."""
    clock = ManualClock(DAY_START)
    sink = _Recorder(clock)
    gw = _gateway(cast, clock, sink)
    await gw.start()
    nine = DAY_START + timedelta(hours=9)
    for minute in range(9 * 60 + 1):
        await clock.set(DAY_START + timedelta(minutes=minute))
    expected = sum(1 for a in script.actions if a.at <= nine)
    assert len(sink.events) - 1 == expected
    await gw.stop()


async def test_stop_cancels_cleanly(cast: Cast) -> None:
    """stop() ends the script task; no events follow and the account goes offline."""
    clock = ManualClock(DAY_START)
    sink = _Recorder(clock)
    gw = _gateway(cast, clock, sink, days=None)
    await gw.start()
    await clock.advance(timedelta(hours=10))
    await gw.stop()
    assert gw.online_accounts() == []
    last = sink.events[-1][1]
    assert isinstance(last, AccountStatus)
    assert not last.online
    seen = len(sink.events)
    await clock.advance(timedelta(days=2))
    assert len(sink.events) == seen
    await gw.stop()  # idempotent
    assert len(sink.events) == seen


async def test_restart_resumes_without_replaying(cast: Cast, script: DayScript) -> None:
    """Stopping and starting again continues the day; no scripted message arrives twice."""
    clock = ManualClock(DAY_START)
    sink = _Recorder(clock)
    gw = _gateway(cast, clock, sink)
    await gw.start()
    for minute in range(12 * 60):
        await clock.set(DAY_START + timedelta(minutes=minute))
    await gw.stop()
    await gw.start()
    for minute in range(12 * 60, 24 * 60 + 1):
        await clock.set(DAY_START + timedelta(minutes=minute))
    ids = [e.message_id for _, e in sink.events if isinstance(e, ChatMessage)]
    assert len(ids) == len(set(ids)) == len(_messages(script))
    await gw.stop()


async def test_a_failing_sink_does_not_stop_the_day(cast: Cast, script: DayScript) -> None:
    """An exception from the sink is logged and the next events still arrive."""
    clock = ManualClock(DAY_START)
    seen: list[InboundEvent] = []

    async def flaky(event: InboundEvent) -> None:
        seen.append(event)
        if len(seen) == 3:
            raise RuntimeError("boom")

    gw = SimulatorGateway(
        sink=flaky,
        clock=clock,
        metrics=Metrics(),
        cast=cast,
        seed=7,
        account_id=ACCOUNT,
        start_day=DAY,
        days=1,
    )
    await gw.start()
    for minute in range(24 * 60 + 1):
        await clock.set(DAY_START + timedelta(minutes=minute))
    assert len(seen) == 1 + len(script.actions)
    await gw.stop()


async def test_unbounded_run_moves_on_to_the_next_day(cast: Cast) -> None:
    """After the last action of a day the next day's script is generated and played."""
    clock = ManualClock(DAY_START)
    sink = _Recorder(clock)
    gw = _gateway(cast, clock, sink, days=2)
    await gw.start()
    for step in range(2 * 24 * 12 + 1):
        await clock.set(DAY_START + timedelta(minutes=5 * step))
    assert [s.day for s in gw.days_played] == [DAY, DAY + timedelta(days=1)]
    ids = [e.message_id for _, e in sink.events if isinstance(e, ChatMessage)]
    assert len(ids) == len(set(ids))
    assert len(ids) > 400
    await gw.stop()


async def test_outbound_sends_are_recorded_and_group_sends_echoed(
    cast: Cast, caplog: pytest.LogCaptureFixture
) -> None:
    """Sends land in outbox_log; group sends come back as is_self; customer text is not logged."""
    clock = ManualClock(DAY_START)
    sink = _Recorder(clock)
    gw = _gateway(cast, clock, sink)
    gateway: Gateway = gw  # satisfies the port
    with pytest.raises(GatewayError):
        await gateway.send_group_text(cast.sim_groups[0].id, "x")
    await gw.start()
    minute = 0
    while len(sink.events) < 2:
        minute += 1
        await clock.set(DAY_START + timedelta(minutes=minute))
    quoted = next(e for _, e in sink.events if isinstance(e, ChatMessage) and not e.is_self)
    group = cast.sim_groups[0]
    guide = cast.guides[0]
    caplog.set_level(logging.INFO, logger="bot.gateway.simulator")
    sent = await gateway.send_group_text(quoted.chat_id, "群里的答复", reply_to=quoted.message_id)
    reminder = await gateway.send_private_text(guide.user_id, "今天还差1条群发")
    await gateway.send_private_text(group.customers[0].user_id, "顾客私信内容")
    for _ in range(5):
        await asyncio.sleep(0)
    assert [(t, text) for _, t, text in gw.outbox_log] == [
        (quoted.chat_id, "群里的答复"),
        (guide.user_id, "今天还差1条群发"),
        (group.customers[0].user_id, "顾客私信内容"),
    ]
    assert all(at == clock.now() for at, _, _ in gw.outbox_log)
    assert sent.platform == "simulator"
    assert sent.message_id != reminder.message_id
    (echo,) = [
        e for _, e in sink.events if isinstance(e, ChatMessage) and e.message_id == sent.message_id
    ]
    assert echo.is_self
    assert echo.message_id == sent.message_id
    assert echo.reply_to_message_id == quoted.message_id
    assert echo.reply_to_sender_id == quoted.sender_id
    assert "今天还差1条群发" in caplog.text  # the bot's own reminder may be logged
    assert "群里的答复" not in caplog.text
    assert "顾客私信内容" not in caplog.text
    with pytest.raises(GatewayError):
        await gateway.send_group_text("123", "not our group")
    await gw.stop()
