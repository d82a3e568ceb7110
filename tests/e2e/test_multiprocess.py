"""Three real ``sopbot run`` processes on one PostgreSQL, one of them SIGKILLed and restarted.

Each process has its own config (web port, OneBot connection) and hears its own customer groups
through its own fake OneBot implementation (forward WebSocket); all share one database and one
fake WeCom, through which staff get reminders and SLA alerts as app messages. All three run on
one simulated timeline (``--simulate-from/--speed/--simulate-epoch``), so a restarted process
picks up the same simulated time. The script, on that clock:

1. two SOP reminder slots for every guide (the ``sop`` tick may run in any process);
2. customer questions in every group: some answered at once by the owner (quote or @), some
   left unanswered so that warning, breach and escalation fall due;
3. SIGKILL of the third process in the middle (during the first slot's dispatch); questions
   pushed to its groups while it is down are kept by its implementation and replayed when it
   connects again (history backfill), then it is restarted with the same config and epoch.

Then, from the fake WeCom (what reached a phone after its duplicate check) and the database:
every reminder delivered exactly once and none missing; every question logged once; every
(question, alert level) covered by exactly one delivered alert and recorded in
``alert_levels_sent``, and none for a question answered before its level came due; the daily
tasks materialized once. Waits poll state with generous guards; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text

from bot.store.db import make_engine
from handlers.alerts import outbox_key
from sop.alerts import AlertMessage
from sop.slots import ReminderKind, reminder_key
from tests.conftest import blank_postgres
from tests.fakes.onebot import FakeOneBot, segs
from tests.fakes.wecom import (
    AES_KEY,
    APP_SECRET,
    CALLBACK_TOKEN,
    CONTACT_SECRET,
    CORP_ID,
    FakeWeCom,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
log = logging.getLogger("tests.multiprocess")

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")
# Tuesday 2026-03-10, a workday: business hours (09:00-12:00) cover the whole script.
START = datetime(2026, 3, 10, 9, 58, tzinfo=TZ)
SPEED = 60.0  # one simulated minute per real second
TOKEN = "multiproc-token"
AGENT = 1000002
NODES = 3
GROUPS_PER_NODE = 2
GUIDES = 9
SLOTS = (("a", "10:05"), ("b", "10:17"))  # 5-minute jitter windows: spread over the dispatch
FRT = timedelta(minutes=10)  # warn at 80 % (8 min), breach at 10 min, escalate 2 min later
LEVELS = ("warn", "breach", "escalate1")
END = datetime(2026, 3, 10, 10, 24, tzinfo=TZ)  # past every slot and every escalation
VICTIM = NODES - 1  # the process that is killed and restarted


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Timeline:
    """The simulated clock every process runs on: ``START + (wall - epoch) * SPEED``."""

    epoch: float

    def now(self) -> datetime:
        return START + timedelta(seconds=(time.time() - self.epoch) * SPEED)

    def stamp(self) -> int:
        """Event time for a message sent now (OneBot ``time``: unix seconds)."""
        return int(self.now().timestamp())

    async def reach(self, when: datetime, limit: float = 120.0) -> None:
        await until(lambda: self.now() >= when, limit)


async def until(check: Callable[[], bool], limit: float = 60.0) -> None:
    """Return once ``check()`` holds; fail after ``limit`` real seconds (a guard only)."""

    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), limit)


async def until_async(check: Callable[[], Awaitable[bool]], limit: float = 60.0) -> None:
    async def poll() -> None:
        while not await check():
            await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), limit)


class HistoryOneBot(FakeOneBot):
    """A OneBot implementation that keeps its group history and replays it to a new client.

    Events pushed while no client is connected are kept; each forward-WS connection gets the
    whole history after ``lifecycle connect`` and before any newer event, like a client that
    backfills from history on connect. Re-deliveries are the store's job to drop.
    """

    def __init__(self, self_id: str, **kwargs: Any) -> None:
        super().__init__(self_id, **kwargs)
        self.history: list[dict[str, Any]] = []

    async def push(self, *events: Any) -> None:
        self.history.extend(dict(e) for e in events)
        await super().push(*events)

    async def push_raw(self, text: str | bytes) -> None:
        # A client that was just killed may still be listed: the replay covers what it missed.
        for ws in list(self._sockets):
            with contextlib.suppress(ConnectionError, RuntimeError):
                if not ws.closed:
                    await (ws.send_bytes(text) if isinstance(text, bytes) else ws.send_str(text))

    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.handshakes += 1
        await ws.send_str(json.dumps(self.lifecycle("connect")))
        sent = 0
        while sent < len(self.history):
            await ws.send_str(json.dumps(self.history[sent], ensure_ascii=False))
            sent += 1
        # No await between the last length check and here: a concurrent push either made it
        # into the replay or finds this socket in the list.
        self._sockets.append(ws)
        try:
            await self._serve_socket(ws)
        finally:
            with contextlib.suppress(ValueError):
                self._sockets.remove(ws)
        return ws


@dataclass(frozen=True, slots=True)
class Group:
    gid: int
    node: int

    @property
    def owner(self) -> str:
        return f"op{self.node}"

    @property
    def owner_qq(self) -> int:
        return 9100 + self.node


GROUPS = tuple(
    Group(6001 + n * GROUPS_PER_NODE + k, n) for n in range(NODES) for k in range(GROUPS_PER_NODE)
)


def config_text(node: int, *, db_url: str, port: int, onebot_url: str, wecom_url: str) -> str:
    """One process's config: everything shared except ``[web] port`` and the OneBot link."""
    slots = ", ".join(f'{{ name = "{n}", at = "{at}", jitter_min = 5 }}' for n, at in SLOTS)
    people = [
        '[[operators]]\nid = "sup"\nname = "赵主管"\nrole = "supervisor"\n'
        'wecom_user_id = "sup_wx"\n'
    ]
    people += [
        f'[[operators]]\nid = "op{n}"\nname = "群主{n}"\nrole = "operator"\n'
        f'onebot_user_ids = ["{9100 + n}"]\nwecom_user_id = "op{n}_wx"\nsupervisor = "sup"\n'
        for n in range(NODES)
    ]
    people += [
        f'[[operators]]\nid = "g{i}"\nname = "导购{i}"\nrole = "guide"\n'
        f'wecom_user_id = "g{i}_wx"\nsupervisor = "sup"\nstore = "店{i % 3}"\n'
        for i in range(GUIDES)
    ]
    groups = [
        f'[[groups]]\nid = "{g.gid}"\nname = "会员群{g.gid}"\nowners = ["{g.owner}"]\n'
        for g in GROUPS
    ]
    return f"""
[bot]
database_url = "{db_url}"
log_level = "WARNING"
instance_id = "node{node}"

[web]
host = "127.0.0.1"
port = {port}
api_token = "multiproc-api-token"

[gateway.onebot]
mode = "forward-ws"
url = "{onebot_url}"
access_token = "{TOKEN}"

[gateway.wecom]
enabled = true
corp_id = "{CORP_ID}"
agent_id = {AGENT}
app_secret = "{APP_SECRET}"
contact_secret = "{CONTACT_SECRET}"
callback_token = "{CALLBACK_TOKEN}"
encoding_aes_key = "{AES_KEY}"
base_url = "{wecom_url}"

[delivery]
every = 0.2
total_per_second = 0
per_recipient_per_minute = 0
lease = "5m"
max_attempts = 100

[digest]
enabled = false

[sla]
frt_target = "{int(FRT.total_seconds())}s"
escalation = [{{ notify = "supervisor", after_breach = "2m" }}]

[sop]
builtin_programs = false
grace = "5m"

[[sop.plans]]
id = "daily"
role = "guide"
steps = [{{ name = "moments", quota = 1 }}]
slots = [{slots}]
window_end = "22:00"

{"".join(people)}
{"".join(groups)}
"""


@dataclass
class Node:
    """One ``sopbot run`` process and the OneBot implementation only it connects to."""

    index: int
    config: Path
    port: int
    fake: HistoryOneBot
    log: Path
    timeline: Timeline
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                "--config",
                str(self.config),
                "--simulate-from",
                START.isoformat(),
                "--speed",
                str(SPEED),
                "--simulate-epoch",
                repr(self.timeline.epoch),
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.starts += 1

    async def ready(self, session: aiohttp.ClientSession) -> None:
        """Its web port answers /healthz and it is connected to its implementation."""
        handshakes = self.starts

        async def healthy() -> bool:
            assert self.proc is not None
            assert self.proc.returncode is None, f"node{self.index} exited: {self.tail()}"
            try:
                async with session.get(f"http://127.0.0.1:{self.port}/healthz") as resp:
                    if resp.status != 200:
                        return False
            except aiohttp.ClientError:
                return False
            return self.fake.handshakes >= handshakes and self.fake.connected

        await until_async(healthy, 90)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM (a graceful stop), SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@dataclass
class Script:
    """Pushes the customers' and owners' messages and remembers what each should lead to."""

    nodes: list[Node]
    timeline: Timeline
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    customers: Iterator[int] = field(default_factory=lambda: itertools.count(30001))
    # (group, opening message id) → the owner's answer's message id, "" when left open
    questions: dict[tuple[str, str], str] = field(default_factory=dict)

    def _event(self, group: Group, user: int, **kwargs: Any) -> dict[str, Any]:
        fake = self.nodes[group.node].fake
        msg_id = next(self.ids)
        return fake.group_message(
            group_id=group.gid,
            user_id=user,
            message_id=msg_id,
            time=self.timeline.stamp(),
            **kwargs,
        )

    async def ask(self, group: Group, question: str, *, answer: str = "") -> None:
        """A customer asks; ``answer`` = "quote" / "at" makes the owner answer at once."""
        fake = self.nodes[group.node].fake
        customer = next(self.customers)
        asked = self._event(group, customer, text=question, nickname=f"顾客{customer}")
        events = [asked]
        if answer == "quote":
            quoted = str(asked["message_id"])
            body = segs(("reply", {"id": quoted}), ("text", {"text": "有货的，今天就能发出"}))
        elif answer == "at":
            body = segs(("at", {"qq": str(customer)}), ("text", {"text": " 活动到月底结束哦"}))
        else:
            body = None
        if body is not None:
            reply = self._event(group, group.owner_qq, segments=body, nickname="群主")
            events.append(reply)
        answered_by = str(events[1]["message_id"]) if body is not None else ""
        self.questions[(str(group.gid), str(asked["message_id"]))] = answered_by
        await fake.push(*events)


QUESTIONS = (
    "请问这款面霜还有货吗？",
    "这个活动什么时候结束？",
    "宝宝湿疹可以用吗？",
    "怎么申请退货呀？",
    "发货大概要几天？",
    "会员积分怎么兑换？",
)


@pytest.fixture
async def fresh_db() -> AsyncIterator[str]:
    """An empty database of its own on the test server (the processes migrate it)."""
    async with blank_postgres("sopbot_mp") as url:
        yield url


async def _rows(url: str, sql: str) -> list[Any]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql))).all())
    finally:
        await engine.dispose()


async def _scalar(url: str, sql: str) -> int:
    return int((await _rows(url, sql))[0][0])


def _delivered_keys(wecom: FakeWeCom, prefix: str = "") -> Counter[tuple[str, str]]:
    """(idempotency key, msgtype) of every message WeCom delivered after its duplicate check."""
    return Counter(
        (str(b.get("sopbot_idempotency_key", "")), str(b.get("msgtype")))
        for b in wecom.delivered
        if str(b.get("sopbot_idempotency_key", "")).startswith(prefix)
    )


def _sent_keys(wecom: FakeWeCom, prefix: str) -> Counter[str]:
    """Every ``message/send`` request (before the duplicate check) per idempotency key."""
    return Counter(
        str((c.body or {}).get("sopbot_idempotency_key", ""))
        for c in wecom.api_calls("send")
        if c.path.endswith("/message/send")
        and str((c.body or {}).get("sopbot_idempotency_key", "")).startswith(prefix)
    )


Pair = tuple[str, str]  # (question public id, level key)


def decode_alerts(
    recipient: str, questions: list[str], levels: dict[str, set[str]]
) -> dict[str, set[Pair]]:
    """Outbox key → the (question, level) pairs it covers, for every candidate pair set.

    ``handlers.alerts.outbox_key`` hashes the covered pairs; the candidates are the combinations
    of the levels the store says were sent for the row's questions that go to ``recipient``
    (the owner gets warnings and breaches, the supervisor escalations).
    """
    to_recipient = {"escalate1"} if recipient == "sup" else {"warn", "breach"}
    per_question = []
    for qid in questions:
        mine = sorted(levels.get(qid, set()) & to_recipient)
        subsets = [
            {lv for i, lv in enumerate(mine) if mask >> i & 1} for mask in range(1, 1 << len(mine))
        ]
        per_question.append([(qid, s) for s in subsets])
    keys: dict[str, set[Pair]] = {}
    for combo in itertools.product(*per_question):
        pairs = tuple((qid, lv) for qid, s in combo for lv in sorted(s))
        message = AlertMessage(recipient_id=recipient, text="", items=(), sent_levels=pairs)
        keys[outbox_key(message)] = set(pairs)
    return keys


@pytest.mark.timeout(240)
async def test_three_processes_share_one_database_through_a_kill(
    fresh_db: str, tmp_path: Path
) -> None:
    """3 processes, 1 SIGKILL + restart: each reminder, question and alert level exactly once."""
    timeline = Timeline(epoch=time.time())
    wecom = FakeWeCom()
    wecom_url = await wecom.start()
    nodes: list[Node] = []
    for n in range(NODES):
        fake = HistoryOneBot(str(10001 + n), token=TOKEN)
        port = _free_port()
        config = tmp_path / f"node{n}.toml"
        text_ = config_text(
            n, db_url=fresh_db, port=port, onebot_url=await fake.serve(), wecom_url=wecom_url
        )
        config.write_text(text_, encoding="utf-8")
        nodes.append(Node(n, config, port, fake, tmp_path / f"node{n}.log", timeline))
    script = Script(nodes, timeline)
    victim = nodes[VICTIM]
    session = aiohttp.ClientSession()
    passed = False
    try:
        # All three at once on the empty database: migrations and the roster sync take turns
        # under an advisory lock.
        await asyncio.gather(*(node.start() for node in nodes))
        await asyncio.gather(*(node.ready(session) for node in nodes))

        # Phase 1, every group: two questions answered at once (quote, @), one left open.
        for g in GROUPS:
            await script.ask(g, QUESTIONS[0], answer="quote")
            await script.ask(g, QUESTIONS[1], answer="at")
            await script.ask(g, QUESTIONS[2])
        stored = len(GROUPS) * 5
        await until_async(lambda: _has(fresh_db, "message", stored), 60)

        # Kill one process while the first slot's reminders go out.
        await until(lambda: bool(_delivered_keys(wecom, "sop:")), 120)
        victim.kill()
        assert victim.proc is not None
        await victim.proc.wait()

        # Phase 2, while it is down: an open question everywhere (the victim's are kept by its
        # implementation), and an answered one in the groups of the processes still running.
        for g in GROUPS:
            await script.ask(g, QUESTIONS[3])
            if g.node != VICTIM:
                await script.ask(g, QUESTIONS[4], answer="quote")
        await timeline.reach(timeline.now() + timedelta(minutes=2))
        await victim.start()
        await victim.ready(session)

        # Phase 3, after the restart: an answered question in every group.
        for g in GROUPS:
            await script.ask(g, QUESTIONS[5], answer="at")
        total = sum(len(f.history) for f in (n.fake for n in nodes))
        await until_async(lambda: _has(fresh_db, "message", total), 60)

        # Until the end of the script: every slot and every escalation has fallen due and the
        # outbox is idle, then a little longer for anything still in flight.
        await timeline.reach(END)
        open_questions = [q for q, answer in script.questions.items() if not answer]
        expected_levels = len(open_questions) * len(LEVELS)

        async def settled() -> bool:
            busy = await _scalar(
                fresh_db, "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')"
            )
            levels = await _rows(fresh_db, "SELECT alert_levels_sent FROM question")
            return busy == 0 and sum(len(_levels(r[0])) for r in levels) >= expected_levels

        try:
            await until_async(settled, 90)
        except TimeoutError:
            log.error("not settled: %s", await _state(fresh_db))
            raise
        await until_quiet(lambda: len(wecom.calls), quiet=2.0, limit=60)
        await asyncio.gather(*(node.stop() for node in nodes))
        await _check(fresh_db, script, wecom)
        passed = True
    finally:
        await asyncio.gather(*(node.stop() for node in nodes))
        await session.close()
        for node in nodes:
            await node.fake.close()
        await wecom.close()
        if not passed:
            for node in nodes:
                log.error("node%d log (last 3000 chars):\n%s", node.index, node.tail())


async def _state(url: str) -> str:
    """Outbox and alert-level counts, for the failure message of a wait that ran out."""
    outbox = await _rows(url, "SELECT kind, status, count(*) FROM outbox GROUP BY kind, status")
    levels = await _rows(url, "SELECT public_id, status, alert_levels_sent FROM question")
    return f"outbox {[tuple(r) for r in outbox]}; questions {[tuple(r) for r in levels]}"


async def _has(url: str, table: str, count: int) -> bool:
    return await _scalar(url, f"SELECT count(*) FROM {table}") >= count


async def until_quiet(read: Callable[[], int], *, quiet: float, limit: float) -> None:
    """Wait until ``read()`` has not changed for ``quiet`` real seconds (guard: ``limit``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    value, since = read(), loop.time()
    while loop.time() - since < quiet:
        assert loop.time() < deadline, "still moving after the guard"
        await asyncio.sleep(0.1)
        if (now := read()) != value:
            value, since = now, loop.time()


def _levels(raw: Any) -> set[str]:
    return set(json.loads(raw) if isinstance(raw, str) else raw or [])


async def _check(url: str, script: Script, wecom: FakeWeCom) -> None:
    # -- reminders: every guide's two slots, each delivered exactly once (text + card) --------
    day = START.date()
    expected_reminders = {
        reminder_key(f"g{i}", day, slot, ReminderKind.SLOT): f"g{i}_wx"
        for i in range(GUIDES)
        for slot, _ in SLOTS
    }
    rows = await _rows(
        url, "SELECT idempotency_key, kind, status FROM outbox WHERE kind LIKE 'sop%'"
    )
    assert Counter((r.kind, r.status) for r in rows) == {
        ("sop_slot", "sent"): len(expected_reminders)
    }
    assert {r.idempotency_key for r in rows} == set(expected_reminders)
    delivered = _delivered_keys(wecom, "sop:")
    for key, user in expected_reminders.items():
        assert delivered[(key, "text")] == 1, key
        assert delivered[(key, "template_card")] == 1, key
        bodies = [b for b in wecom.delivered if b.get("sopbot_idempotency_key") == key]
        assert {b["touser"] for b in bodies} == {user}
    assert sum(delivered.values()) == 2 * len(expected_reminders)
    resent = sum(max(0, n - 2) for n in _sent_keys(wecom, "sop:").values())
    log.warning("reminder sends dropped by the duplicate check: %d", resent)

    # -- the sop tick materialized each guide's task once -----------------------------------
    tasks = await _rows(
        url,
        "SELECT guide_id, step, local_date, count(*) AS n FROM task_instance "
        "GROUP BY guide_id, step, local_date",
    )
    assert all(t.n == 1 for t in tasks)
    assert {t.guide_id for t in tasks if t.local_date == day} == {f"g{i}" for i in range(GUIDES)}

    # -- questions: one row per opening message, all of them --------------------------------
    qrows = await _rows(
        url,
        "SELECT public_id, chat_id, open_message_id, first_response_at, opened_at, "
        "first_responder_id, first_response_message_id, alert_levels_sent FROM question",
    )
    opened = Counter((r.chat_id, r.open_message_id) for r in qrows)
    assert set(opened) == set(script.questions), "questions missing or extra"
    assert set(opened.values()) == {1}, "a question logged twice"
    by_msg = {(r.chat_id, r.open_message_id): r for r in qrows}
    sent_levels = {r.public_id: _levels(r.alert_levels_sent) for r in qrows}

    # -- alerts: each (question, level) covered by exactly one delivered alert ----------------
    expected: set[Pair] = set()
    answered_ids: set[str] = set()
    owners = {str(g.gid): g.owner for g in GROUPS}
    for asked, answer in script.questions.items():
        row = by_msg[asked]
        if answer:
            answered_ids.add(row.public_id)
            # The owner's quote or @ answered it, long before the warning was due.
            assert (row.first_responder_id, row.first_response_message_id) == (
                owners[row.chat_id],
                answer,
            )
            assert row.first_response_at - row.opened_at < FRT * 0.8
        else:
            assert row.first_response_at is None
            expected |= {(row.public_id, lv) for lv in LEVELS}
    alerts = await _rows(
        url,
        "SELECT idempotency_key, recipient_id, status, payload FROM outbox WHERE kind = 'alert'",
    )
    delivered_alerts = _delivered_keys(wecom, "sla-alert:")
    covered: Counter[Pair] = Counter()
    for a in alerts:
        assert a.status == "sent", a
        assert delivered_alerts[(a.idempotency_key, "text")] == 1, a.idempotency_key
        payload = json.loads(a.payload) if isinstance(a.payload, str) else a.payload
        decoded = decode_alerts(a.recipient_id, list(payload["questions"]), sent_levels)
        assert a.idempotency_key in decoded, f"cannot tell what {a.idempotency_key} covers"
        covered.update(decoded[a.idempotency_key])
    duplicates = {pair: n for pair, n in covered.items() if n > 1}
    log.warning(
        "alert rows: %d; (question, level) pairs covered more than once: %s",
        len(alerts),
        duplicates,
    )
    assert not {q for q, _ in covered} & answered_ids, "alert for an answered question"
    assert not duplicates, "an alert level went out more than once"
    assert set(covered) == expected
    assert {(q, lv) for q, levels in sent_levels.items() for lv in levels} == expected
    assert sum(delivered_alerts.values()) == len(alerts)
