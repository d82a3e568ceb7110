"""A real ``sopbot run`` process is stopped by signals while a fake OneBot feeds it.

- SIGTERM: a graceful stop flushes what intake holds. The test holds the SQLite database with
  another connection's ``BEGIN EXCLUSIVE`` so that the last events are provably still in the
  process's memory (read off the socket, per /metrics, but not written) when the signal lands;
  the process must keep running until it could write them, then exit 0 with all of them stored.
- SIGKILL: nothing already stored is lost, and work continues from the store after a restart:
  the customer's question opened before the kill is the one the operator's reply answers
  after it, and the implementation's re-deliveries are not stored twice.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import text

from bot.store.db import make_engine
from tests.fakes.onebot import FakeOneBot, segs
from tests.faults.rig import ROOT, SqliteLock, count_rows, until

pytestmark = pytest.mark.integration

TOKEN = "signal-token"
START = datetime(2026, 3, 10, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Tuesday morning
GROUP = 5001
CUSTOMER, OPERATOR = 20001, 9002


_SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """One ``sopbot run`` subprocess on a fixed loopback port, with its SQLite database."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = _free_port()
        self.db = tmp / "bot.db"
        self.url = f"sqlite+aiosqlite:///{self.db}"
        self.config = tmp / "sopbot.toml"
        self.config.write_text(
            f"""
[bot]
database_url = "{self.url}"
log_level = "WARNING"

[web]
host = "127.0.0.1"
port = {self.port}

[gateway.onebot]
access_token = "{TOKEN}"

[[operators]]
id = "li"
name = "李群主"
role = "operator"
onebot_user_ids = ["{OPERATOR}"]

[[groups]]
platform = "onebot11"
id = "{GROUP}"
name = "宝妈群"
owners = ["li"]
""",
            encoding="utf-8",
        )
        self.proc: asyncio.subprocess.Process | None = None
        self.runs = 0

    async def start(self) -> None:
        self.runs += 1
        log = (self.tmp / f"run{self.runs}.log").open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--config",
            str(self.config),
            "--simulate-from",
            START.isoformat(),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        async with aiohttp.ClientSession() as http:

            async def ready() -> None:
                while True:
                    assert self.running, self.log()
                    try:
                        async with http.get(self.http("/healthz")) as r:
                            if r.status == 200:
                                return
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(ready(), 60)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def http(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in sorted(self.tmp.glob("run*.log"))
        )

    async def metric(self, name: str, **labels: str) -> float:
        """One sample from the process's /metrics (0 when absent)."""
        async with aiohttp.ClientSession() as http, http.get(self.http("/metrics")) as r:
            body = await r.text()
        for line in body.splitlines():
            match = _SAMPLE.match(line)
            if match and match[1] == name and dict(_LABEL.findall(match[2] or "")) == labels:
                return float(match[3])
        return 0.0

    async def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, limit: float = 60) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), limit)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def proc(tmp_path: Path) -> AsyncIterator[Proc]:
    p = Proc(tmp_path)
    yield p
    await p.kill()


@pytest.fixture
async def fake() -> AsyncIterator[FakeOneBot]:
    fb = FakeOneBot("777", token=TOKEN, time=int(START.timestamp()))
    yield fb
    await fb.close()


def _msg(fake: FakeOneBot, n: int, text_: str = "", **kw: Any) -> dict[str, Any]:
    kw.setdefault("user_id", CUSTOMER)
    return fake.group_message(text_ or f"聊天{n}", group_id=GROUP, message_id=n, **kw)


async def _message_ids(url: str) -> list[int]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT message_id FROM message"))
            return sorted(int(r[0]) for r in rows)
    finally:
        await engine.dispose()


@pytest.mark.timeout(120)
async def test_sigterm_flushes_buffered_events_and_exits_zero(
    proc: Proc, fake: FakeOneBot
) -> None:
    """Events read but not yet written when SIGTERM lands are all stored; exit status 0."""
    await proc.start()
    await fake.connect_reverse(proc.http("/onebot/v11/ws"))
    await fake.push(*(_msg(fake, n) for n in range(1, 11)))

    async def stored(n: int) -> bool:
        return await count_rows(proc.url) == n

    await _until_async(lambda: stored(10))
    lock = SqliteLock(proc.db)
    await lock.take()
    try:
        await fake.push(*(_msg(fake, n) for n in range(11, 61)))

        async def read_all() -> bool:
            got = await proc.metric(
                "sopbot_events_received_total", kind="message", platform="onebot11"
            )
            return got == 60

        await _until_async(read_all)
        assert await proc.metric("sopbot_messages_stored_total") == 10  # 50 held in memory
        await proc.signal(signal.SIGTERM)
        # Shutdown has begun (the bot closed the socket) but the process waits for its flush.
        await until(lambda: not fake.connected)
        assert proc.running
    finally:
        lock.release_now()
    assert await proc.wait() == 0, proc.log()
    assert await _message_ids(proc.url) == list(range(1, 61))


@pytest.mark.timeout(120)
async def test_sigkill_restart_recovers_from_the_store(proc: Proc, fake: FakeOneBot) -> None:
    """After SIGKILL, stored messages and the open question survive and carry on."""
    await proc.start()
    await fake.connect_reverse(proc.http("/onebot/v11/ws"))
    await fake.push(
        _msg(fake, 1, "请问这款奶粉今天几点发货？"),
        *(_msg(fake, n) for n in range(2, 6)),
    )
    await _until_async(lambda: _rows_are(proc.url, "question", 1))
    await _until_async(lambda: _rows_are(proc.url, "message", 5))
    await proc.signal(signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL
    await fake.disconnect()

    await proc.start()
    await fake.connect_reverse(proc.http("/onebot/v11/ws"))
    # The implementation re-delivers what it was unsure of, then the operator answers.
    reply = segs(("reply", {"id": "1"}), ("text", {"text": "今天下午四点发货"}))
    await fake.push(
        _msg(fake, 4),
        _msg(fake, 5),
        _msg(fake, 6, user_id=OPERATOR, segments=reply),
    )
    await _until_async(lambda: _answered(proc.url))
    assert await _message_ids(proc.url) == [1, 2, 3, 4, 5, 6]
    assert await count_rows(proc.url, "question") == 1
    assert await proc.metric("sopbot_messages_duplicate_total") == 2
    await proc.signal(signal.SIGTERM)
    assert await proc.wait() == 0, proc.log()


@pytest.mark.timeout(120)
async def test_sigkill_between_the_intake_transactions_is_replayed_at_restart(
    proc: Proc, fake: FakeOneBot
) -> None:
    """Killed after a batch's messages committed and before its handlers' effects did: the
    restart runs the handlers on those stored messages, so the question is logged, once.

    A trigger holds the second transaction back (it refuses marking messages handled), which
    pins the process between the two when the kill lands.
    """
    await proc.start()
    await fake.connect_reverse(proc.http("/onebot/v11/ws"))
    with sqlite3.connect(proc.db) as db:
        db.execute(
            "CREATE TRIGGER hold_handled BEFORE UPDATE OF handled ON message"
            " BEGIN SELECT RAISE(ABORT, 'held by the test'); END"
        )
    await fake.push(_msg(fake, 1, "请问这款奶粉今天几点发货？"), _msg(fake, 2, "好的"))

    async def held() -> bool:
        got = await proc.metric(
            "sopbot_events_rejected_total", platform="onebot11", reason="handler_refused"
        )
        return got >= 1

    await _until_async(held)
    await proc.signal(signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL
    await fake.disconnect()
    assert await _message_ids(proc.url) == [1, 2]
    assert await count_rows(proc.url, "question") == 0  # the effects died with the process
    assert await count_rows(proc.url, "message", "NOT handled") == 2
    with sqlite3.connect(proc.db) as db:
        db.execute("DROP TRIGGER hold_handled")

    await proc.start()  # ready = replay done (it runs before the gateways start)
    assert await count_rows(proc.url, "question") == 1
    assert await count_rows(proc.url, "message", "NOT handled") == 0
    assert await proc.metric("sopbot_messages_replayed_total") == 2
    await fake.connect_reverse(proc.http("/onebot/v11/ws"))
    reply = segs(("reply", {"id": "1"}), ("text", {"text": "今天下午四点发货"}))
    await fake.push(_msg(fake, 1), _msg(fake, 3, user_id=OPERATOR, segments=reply))
    await _until_async(lambda: _answered(proc.url, "3"))
    assert await count_rows(proc.url, "question") == 1
    await proc.signal(signal.SIGTERM)
    assert await proc.wait() == 0, proc.log()


async def _rows_are(url: str, table: str, n: int) -> bool:
    return await count_rows(url, table) == n


async def _answered(url: str, message_id: str = "6") -> bool:
    where = f"first_responder_id = 'li' AND first_response_message_id = '{message_id}'"
    return await count_rows(url, "question", where) == 1


async def _until_async(check: Any, limit: float = 30.0) -> None:
    """Poll an async ``check()`` until it holds; fail after ``limit`` seconds (a guard)."""

    async def poll() -> None:
        while not await check():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), limit)
