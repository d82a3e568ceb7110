"""The question engine against its pre-optimisation reference, on long random event streams.

``tests/sop/reference_engine.py`` is the engine as it was before its indexes; every call here runs
on both, and the two must return the same effects (compared field by field, floats bit for bit,
datetimes with their tzinfo), raise the same errors, and hold the same questions afterwards. The
streams mix every entry point, several chats and askers, out-of-order timestamps, replays, quotes
of known and unknown ids, policy changes and restarts (``load``) at advancing ``now``. A failure
names the seed and step to replay.
"""

from __future__ import annotations

import dataclasses
import random
from bisect import insort
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import pytest

from sop import questions as new
from sop.calendar import ALWAYS_OPEN, default_calendar
from sop.linking import Candidate, link_group_message
from sop.policy import SlaPolicy
from sop.timers import Calendar
from tests.sop import reference_engine as ref

T0 = datetime(2024, 9, 18, 1, 0, tzinfo=UTC)  # Wed 09:00 in Shanghai: business hours matter
WORKDAYS = default_calendar()
GROUPS = ("g1", "g2", "g3")
ASKERS = ("c1", "c2", "c3", "c4", "c5")
OPERATORS = ("op1", "op2")
# Mostly seconds apart, sometimes across a burst, proximity, quiet or reopen window.
STEPS_S = (0, 0, 1, 5, 20, 60, 100, 200, 400, 700, 1800, 3600, 5 * 3600, 86400, 3 * 86400)
STEP_WEIGHTS = (4, 2, 8, 8, 8, 8, 6, 6, 5, 4, 3, 2, 1, 1, 1)


def calendar_of(chat: str) -> Calendar:
    return WORKDAYS if chat == "g1" else ALWAYS_OPEN


def owners_of(chat: str) -> tuple[str, ...]:
    return ("own", chat)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_PLAIN_MEMO: dict[int, tuple[object, object]] = {}  # id -> (the object, kept alive; its value)


def plain(x: object) -> object:
    """A value both engines' (distinct) classes reduce to identically when bit-identical."""
    t = type(x)
    if x is None or t is str or t is int or t is bool:
        return x
    if isinstance(x, float):
        return ("float", x.hex())  # tells -0.0 from 0.0
    if isinstance(x, datetime):
        return ("datetime", repr(x))  # equal instants in other zones are not identical
    if isinstance(x, list | tuple):
        return (t.__name__, tuple(plain(v) for v in x))
    if isinstance(x, Enum):
        return (t.__name__, x.value)
    memo = _PLAIN_MEMO.get(id(x))
    if memo is not None:
        return memo[1]
    names = _FIELD_NAMES.get(t)
    if names is None:
        if not dataclasses.is_dataclass(x):
            return x
        names = _FIELD_NAMES[t] = tuple(f.name for f in dataclasses.fields(x))
    value = (t.__name__, tuple((n, plain(getattr(x, n))) for n in names))
    if len(_PLAIN_MEMO) > 200_000:
        _PLAIN_MEMO.clear()
    _PLAIN_MEMO[id(x)] = (x, value)  # immutable values: reduce each object once
    return value


def outcome(call: Callable[[], object]) -> object:
    try:
        return ("ok", plain(call()))
    except (KeyError, ValueError) as exc:
        return ("raised", type(exc).__name__, str(exc))


def random_policy(rng: random.Random, version: int) -> SlaPolicy:
    return SlaPolicy(
        version=version,
        burst_merge_s=rng.choice((0, 60, 180)),
        proximity_window_s=rng.choice((0, 120, 600)),
        reopen_window_s=rng.choice((600, 7200, 259200)),
        auto_resolve_after_answer_s=rng.choice((0, 3600, 86400)),
        followup_after_holding_s=rng.choice((60, 900)),
        business_hours_only=rng.random() < 0.5,
    )


def check_index(engine: new.QuestionEngine) -> None:
    """The indexed engine's lookups hold exactly what a scan of its questions gives."""
    qs = list(engine._q.values())
    by_key: dict[object, list[tuple[datetime, str]]] = {}
    opened: dict[str, list[tuple[datetime, str]]] = {}
    pending: dict[str, list[tuple[datetime, str]]] = {}
    for q in qs:
        key = (q.clock_start, q.id)
        insort(by_key.setdefault((q.chat, q.asker_id), []), key)
        if q.status is new.QuestionStatus.OPEN:
            insort(opened.setdefault(q.chat, []), key)
        if q.is_live and q.followup_pending:
            insort(pending.setdefault(q.chat, []), key)
    assert engine._of == by_key
    assert engine._opened == opened
    assert engine._pending == pending
    assert set(engine._answered) == {q.id for q in qs if q.status is new.QuestionStatus.ANSWERED}
    assert set(engine._resolved) == {q.id for q in qs if q.status is new.QuestionStatus.RESOLVED}
    assert sorted(engine._seq, key=engine._seq.__getitem__) == list(engine._q)
    for chat, ids in engine._by_chat.items():
        assert set(ids) == {q.id for q in qs if q.chat == chat}


class Pair:
    """The reference and the real engine, driven in lockstep."""

    def __init__(
        self,
        rng: random.Random,
        *,
        seed: int,
        indexed_checks: bool = True,
        policy: SlaPolicy | None = None,
    ) -> None:
        self.rng = rng
        self.seed = seed
        self.step = 0
        self.indexed_checks = indexed_checks
        self.policies = [policy or random_policy(rng, 1)]
        self.ref = self._ref_engine()
        self.new = self._new_engine()
        self.snapshots: list[tuple[object, object]] = []

    def _ref_engine(self) -> ref.QuestionEngine:
        *older, current = self.policies
        return ref.QuestionEngine(
            current, calendar_of=calendar_of, owners_of=owners_of, older_policies=older
        )

    def _new_engine(self) -> new.QuestionEngine:
        *older, current = self.policies
        return new.QuestionEngine(
            current, calendar_of=calendar_of, owners_of=owners_of, older_policies=older
        )

    def both(self, what: str, call: Callable[[Any], object]) -> object:
        """Run ``call`` on each engine; they must agree on the outcome and the state after."""
        self.step += 1
        expected = outcome(lambda: call(self.ref))
        got = outcome(lambda: call(self.new))
        where = f"seed {self.seed} step {self.step}: {what}"
        assert got == expected, where
        assert plain(self.new.questions()) == plain(self.ref.questions()), where
        # The state both keep the same way: message keys (lists in order), _q's order, ids.
        assert self.new._by_msg == self.ref._by_msg, where
        assert list(self.new._q) == list(self.ref._q), where
        assert self.new._counter == self.ref._counter, where
        if self.indexed_checks:
            check_index(self.new)
        return expected

    def restart(self) -> None:
        """A new process loads what the old one held."""
        held_ref, held_new = self.ref.questions(), self.new.questions()
        self.ref, self.new = self._ref_engine(), self._new_engine()
        self.both("load", lambda e: e.load(held_ref if e is self.ref else held_new))

    def set_policy(self) -> None:
        policy = random_policy(self.rng, len(self.policies) + 1)
        self.policies.append(policy)
        self.both("set_policy", lambda e: e.set_policy(policy))

    def snapshot(self) -> None:
        ids = [q.id for q in self.ref.questions()]
        if ids:
            qid = self.rng.choice(ids)
            self.snapshots.append((self.ref.get(qid), self.new.get(qid)))

    def adopt(self) -> None:
        """Another process moved a question: adopt an older copy, or a closed one."""
        if not self.snapshots:
            return
        old_ref, old_new = self.rng.choice(self.snapshots)
        assert isinstance(old_ref, ref.Question)
        assert isinstance(old_new, new.Question)
        status = self.rng.choice((None, "dismissed", "resolved", "answered"))
        if status is not None:
            old_ref = dataclasses.replace(old_ref, status=ref.QuestionStatus(status))
            old_new = dataclasses.replace(old_new, status=new.QuestionStatus(status))
        self.both("adopt", lambda e: e.adopt(old_ref if e is self.ref else old_new))


class Stream:
    """A random but reproducible conversation across a few groups and private chats."""

    def __init__(
        self,
        seed: int,
        *,
        groups: tuple[str, ...] = GROUPS,
        askers: tuple[str, ...] = ASKERS,
        question_share: float = 0.5,
        indexed_checks: bool = True,
    ) -> None:
        self.rng = random.Random(seed)
        self.pair = Pair(self.rng, seed=seed, indexed_checks=indexed_checks)
        self.groups = groups
        self.askers = askers
        self.question_share = question_share
        self.now = self.last = T0
        self.counter = 0
        self.sent: list[tuple[str, str]] = []  # (chat, message id) of every message so far
        self.ids: list[str] = []

    # --- choices ---------------------------------------------------------------------------

    def tick(self) -> datetime:
        """Advance ``now``; a message is sometimes stamped a little before it (out of order),
        or at the very instant of the previous one (ties at every comparison)."""
        r = self.rng.random()
        if r < 0.1:
            return self.last
        step = self.rng.choices(STEPS_S, STEP_WEIGHTS)[0]
        self.now += timedelta(seconds=step + self.rng.choice((0, self.rng.random())))
        self.last = self.now
        if r < 0.2:
            self.last = self.now - timedelta(seconds=self.rng.uniform(0, 900))
        return self.last

    def msg_id(self, chat: str) -> str:
        if self.sent and self.rng.random() < 0.03:
            return self.rng.choice(self.sent)[1]  # a replay, or the same id in another chat
        self.counter += 1
        msg = f"m{self.counter}"
        self.sent.append((chat, msg))
        return msg

    def reply_to(self) -> str | None:
        r = self.rng.random()
        if r < 0.55 or not self.sent:
            return None
        if r < 0.75:
            return self.sent[-1][1]
        if r < 0.95:
            return self.rng.choice(self.sent)[1]
        return "unknown"

    def mentions(self) -> tuple[str, ...]:
        if self.rng.random() < 0.75:
            return ()
        people = (*self.askers, *OPERATORS)
        return tuple(self.rng.choice(people) for _ in range(self.rng.randint(1, 3)))

    def group(self) -> str:
        if self.rng.random() < 0.02:
            return f"dm:{self.rng.choice(self.askers)}"  # odd but allowed: a non-group chat
        return self.rng.choice(self.groups)

    def some_id(self) -> str:
        held = [q.id for q in self.pair.ref.questions()]
        pool = held * 3 + self.ids + ["nope"]
        return self.rng.choice(pool)

    # --- events ----------------------------------------------------------------------------

    def customer(self) -> None:
        chat, at = self.group(), self.tick()
        msg, who = self.msg_id(chat), self.rng.choice(self.askers)
        r = self.rng.random()
        qid = None
        if r < 0.1:
            qid = f"X{self.rng.randrange(40)}"  # caller-named, sometimes already in use
            self.ids.append(qid)
        kw: dict[str, Any] = {
            "is_question": self.rng.random() < self.question_share,
            "text": self.rng.choice(("  请问怎么退款？ ", "好的", "", "x" * 300)),
            "is_ack": self.rng.random() < 0.1,
            "is_exempt": self.rng.random() < 0.05,
            "reply_to_msg_id": self.reply_to(),
            "mention_user_ids": self.mentions(),
            "question_id": qid,
        }
        self.pair.both(
            f"customer {chat} {msg} {who} {at} {kw}",
            lambda e: e.on_customer_message(chat, msg, who, at, **kw),
        )

    def staff(self) -> None:
        at, who = self.tick(), self.rng.choice(OPERATORS)
        kw: dict[str, Any] = {"is_holding": self.rng.random() < 0.25}
        if self.rng.random() < 0.15:
            asker = self.rng.choice(self.askers)
            chat = f"dm:{asker}"
            kw["is_private_to"] = asker
        else:
            chat = self.group()
            kw["reply_to_msg_id"] = self.reply_to()
            kw["mention_user_ids"] = self.mentions()
            kw["mention_all"] = self.rng.random() < 0.05
        msg = self.msg_id(chat)
        self.pair.both(
            f"staff {chat} {msg} {who} {at} {kw}",
            lambda e: e.on_staff_message(chat, msg, who, at, **kw),
        )

    def bot(self) -> None:
        chat, at = self.group(), self.tick()
        msg, reply, mentions = self.msg_id(chat), self.reply_to(), self.mentions()
        self.pair.both(
            f"bot {chat} {msg} {at} reply={reply} mentions={mentions}",
            lambda e: e.on_bot_message(
                chat, msg, "bot", at, reply_to_msg_id=reply, mention_user_ids=mentions
            ),
        )

    def recall(self) -> None:
        if not self.sent:
            return
        chat, msg = self.rng.choice(self.sent)
        if self.rng.random() < 0.1:
            chat = self.rng.choice(self.groups)  # the id, but in another chat
        at, by_sender = self.tick(), self.rng.random() < 0.7
        self.pair.both(
            f"recall {chat} {msg}", lambda e: e.on_recall(chat, msg, at, by_sender=by_sender)
        )

    def left(self) -> None:
        chat, who, at = self.group(), self.rng.choice(self.askers), self.tick()
        self.pair.both(f"left {chat} {who}", lambda e: e.on_customer_left(chat, who, at))

    def command(self) -> None:
        qid, at = self.some_id(), self.tick()
        if self.rng.random() < 0.6:
            method = self.rng.choice(("manual", "reaction"))
            self.pair.both(
                f"resolve {qid}", lambda e: e.resolve(qid, by="op1", at=at, method=method)
            )
        else:
            reason = self.rng.choice(("spam", " 广告 ", "  "))
            self.pair.both(
                f"dismiss {qid}", lambda e: e.dismiss(qid, by="sup", reason=reason, at=at)
            )

    def sweep(self) -> None:
        """The runtime's periodic sweep, sometimes late, sometimes limited to some ids."""
        now = self.now + timedelta(seconds=self.rng.choice((0, 60, 3600, 86400)))
        kind = self.rng.randrange(5)
        if kind == 0:
            self.pair.both(f"quiet_due {now}", lambda e: e.quiet_due(now))
        elif kind == 1:
            due = self.pair.ref.quiet_due(now)
            ids = [*due, self.some_id()] if self.rng.random() < 0.5 else None
            self.pair.both(f"quiet_resolve {now} {ids}", lambda e: e.quiet_resolve(now, ids))
        elif kind == 2:
            ids = [self.some_id(), self.some_id()] if self.rng.random() < 0.3 else None
            self.pair.both(
                f"flag_followup_breaches {now} {ids}",
                lambda e: e.flag_followup_breaches(now, ids),
            )
        elif kind == 3:
            self.pair.both(f"prune {now}", lambda e: e.prune(now))
        else:
            qid = self.some_id()
            self.pair.both(f"get {qid}", lambda e: e.get(qid))

    def run(self, events: int) -> None:
        actions: list[tuple[Callable[[], None], float]] = [
            (self.customer, 40),
            (self.staff, 22),
            (self.bot, 5),
            (self.recall, 6),
            (self.left, 2),
            (self.command, 5),
            (self.sweep, 8),
            (self.pair.snapshot, 3),
            (self.pair.adopt, 2),
            (self.pair.restart, 0.5),
            (self.pair.set_policy, 0.5),
        ]
        funcs, weights = zip(*actions, strict=True)
        for _ in range(events):
            self.rng.choices(funcs, weights)[0]()
        for chat in (*self.groups, *(f"dm:{a}" for a in self.askers)):
            assert plain(self.pair.new.questions(chat)) == plain(self.pair.ref.questions(chat))


@pytest.mark.parametrize("seed", range(60))
def test_random_streams_match_reference(seed: int) -> None:
    """Mixed traffic in three groups: same effects, errors and state as the reference."""
    Stream(seed).run(500)


@pytest.mark.parametrize("seed", range(3))
def test_large_backlog_matches_reference(seed: int) -> None:
    """One busy group with hundreds of live questions (the indexes' long lists)."""
    stream = Stream(
        1000 + seed,
        groups=("g2",),
        askers=tuple(f"c{i}" for i in range(60)),
        question_share=0.8,
        indexed_checks=False,
    )
    stream.run(2500)
    check_index(stream.pair.new)
    assert len(stream.pair.ref.questions()) > 100


Step = Callable[[Any], object]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_cross_chat_message_keys_match_reference() -> None:
    """Message keys outside the question's own chat, which only odd streams reach.

    A bot quoting a private answer (its id is keyed by the question's chat, not the bot's); a
    message id that is both a response and a merged message of one question (recalling the
    message must leave the response indexed); responses at the same instant (credit by id).
    """
    pair = Pair(random.Random(0), seed=-1, policy=SlaPolicy())

    def cust(chat: str, msg: str, who: str, minute: float, **kw: Any) -> Step:
        return lambda e: e.on_customer_message(chat, msg, who, at(minute), **kw)

    def staff(chat: str, msg: str, minute: float, **kw: Any) -> Step:
        return lambda e: e.on_staff_message(chat, msg, "op1", at(minute), **kw)

    steps: list[tuple[str, Step]] = [
        ("ask", cust("g1", "m1", "c1", 0, is_question=True)),
        ("private answer", staff("dm:c1", "p1", 1, is_private_to="c1")),
        ("staff message x", staff("g1", "x", 2, reply_to_msg_id="m1")),
        (
            "asker quotes the private answer in the dm chat, with the same id x",
            cust("dm:c1", "x", "c1", 3, is_question=False, reply_to_msg_id="p1"),
        ),
        (
            "bot quotes the private answer",
            lambda e: e.on_bot_message("dm:c1", "b1", "bot", at(4), reply_to_msg_id="p1"),
        ),
        ("staff replays b1 in g1", staff("g1", "b1", 5)),
        ("recall b1 in g1", lambda e: e.on_recall("g1", "b1", at(6))),
        ("recall x: the merged message", lambda e: e.on_recall("g1", "x", at(7))),
        ("staff replays x", staff("g1", "x", 8)),
        ("recall x: the response", lambda e: e.on_recall("g1", "x", at(9))),
        ("second answer", staff("g1", "s2", 10)),
        ("same instant, smaller id", staff("g1", "s1", 10, reply_to_msg_id="m1")),
        ("recall s2", lambda e: e.on_recall("g1", "s2", at(11))),
        ("ask at the staff message's instant", cust("g1", "m9", "c2", 12, is_question=True)),
        ("mention at that instant", staff("g1", "s9", 12, mention_user_ids=("c2", "c1"))),
    ]
    for what, call in steps:
        pair.both(what, call)
    q1 = pair.new.get("q1")
    assert q1 is not None
    assert q1.first_response_message_id == "s1"
    assert pair.new._by_msg.get(("g1", "b1")) is None  # recalled


@pytest.mark.parametrize("seed", range(20))
def test_link_group_message_matches_reference(seed: int) -> None:
    """The public list-based linker, on candidates in any order, with ties and answered ones."""
    rng = random.Random(seed)
    for _ in range(300):
        n = rng.randrange(6)
        rows = [
            (f"q{i}", rng.choice(ASKERS[:3]), at(rng.choice((0, 1, 1, 2, 5, 30))), rng.random())
            for i in range(n)
        ]
        kw: dict[str, Any] = {
            "at": at(rng.choice((0, 1, 2, 10, 40))),
            "quoted_question_id": rng.choice((None, None, None, "q0", "zz")),
            "mention_user_ids": tuple(rng.sample(ASKERS, rng.choice((0, 0, 1, 2)))),
            "mention_all": rng.random() < 0.1,
            "proximity_window_s": rng.choice((0.0, 60.0, 600.0)),
        }
        expected = ref.link_group_message(
            [ref.Candidate(i, a, t, o < 0.6) for i, a, t, o in rows], **kw
        )
        got = link_group_message([Candidate(i, a, t, o < 0.6) for i, a, t, o in rows], **kw)
        assert plain(got) == plain(expected), (rows, kw)
