"""Shared parts of the fault tests: a dedicated PostgreSQL that can be stopped and restarted,
the whole app on a loopback port, a pusher that floods it, and waits that end on a condition.

Waits poll state (counters, row counts) and fail after a generous guard; none asserts a time.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import re
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import text

from bot.keys import ENGINE, METRICS
from bot.store.db import make_engine
from tests.fakes.onebot import FakeOneBot, counter

ROOT = Path(__file__).resolve().parents[2]
PG_SCRIPT = ROOT / "scripts" / "pg-test.sh"


def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


# -- a PostgreSQL of our own -------------------------------------------------------------------


@dataclass
class PgServer:
    """A throwaway server from ``scripts/pg-test.sh`` that a test may stop and start again.

    ``pause()`` stops the postmaster with the data kept (``pg_ctl stop -m fast``: open
    connections are terminated, new ones refused); ``resume()`` starts it on the same port.
    """

    dir: Path
    url: str = ""
    port: int = 0
    running: bool = False

    async def start(self) -> str:
        out = await _run(str(PG_SCRIPT), "start", str(self.dir))
        self.url = out.strip().splitlines()[-1]
        match = re.search(r":(\d+)/", self.url)
        assert match, self.url
        self.port = int(match.group(1))
        self.running = True
        return self.url

    async def pause(self) -> None:
        if not self.running:
            return
        self.running = False
        await _run(*self._as_owner(), str(self._bin("pg_ctl")), "stop", "-D", str(self._data()),
                   "-m", "fast", "-w", "-t", "30", "-s")  # fmt: skip

    async def resume(self) -> None:
        if self.running:
            return
        self.running = True
        await _run(*self._as_owner(), str(self._bin("pg_ctl")), "start", "-D", str(self._data()),
                   "-l", str(self.dir / "postgres.log"), "-o", f"-p {self.port}",
                   "-w", "-t", "30", "-s")  # fmt: skip

    async def stop(self) -> None:
        await _run(str(PG_SCRIPT), "stop", str(self.dir))

    def _data(self) -> Path:
        return self.dir / "data"

    def _bin(self, name: str) -> Path:
        bindir = pg_bindir()
        assert bindir is not None
        return bindir / name

    def _as_owner(self) -> list[str]:
        # PostgreSQL refuses to run as root: act as the data directory's owner, like the script.
        if os.geteuid() != 0:
            return []
        owner = pwd.getpwuid(self._data().stat().st_uid).pw_name
        return ["runuser", "-u", owner, "--"]


async def _run(*argv: str) -> str:
    # stdin/stdout of a started postmaster must not be our pipes, or we would wait on it forever:
    # pg-test.sh and ``pg_ctl -l`` both detach it; only this call's own stdout is captured.
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"{argv[0]} failed: {err.decode(errors='replace')[-2000:]}"
    return out.decode()


# -- the app on a loopback port ----------------------------------------------------------------


@dataclass
class Bot:
    app: web.Application
    server: TestServer

    def url(self, path: str) -> Any:
        return self.server.make_url(path)

    def received(self) -> int:
        """Messages the gateway has read off its socket."""
        return int(
            counter(
                self.app[METRICS],
                "sopbot_events_received_total",
                platform="onebot11",
                kind="message",
            )
        )

    def stored(self) -> int:
        """Messages committed to the store (new ones)."""
        return int(counter(self.app[METRICS], "sopbot_messages_stored_total"))

    def duplicates(self) -> int:
        return int(counter(self.app[METRICS], "sopbot_messages_duplicate_total"))

    async def unhandled(self) -> int:
        """Stored messages whose handlers' transaction has not committed yet."""
        async with self.app[ENGINE].connect() as conn:
            rows = await conn.execute(text("SELECT count(*) FROM message WHERE NOT handled"))
            return int(rows.scalar_one())

    async def message_ids(self) -> list[str]:
        async with self.app[ENGINE].connect() as conn:
            rows = await conn.execute(text("SELECT message_id FROM message ORDER BY id"))
            return [str(r[0]) for r in rows]


async def count_rows(url: str, table: str = "message", where: str = "") -> int:
    """Rows in ``table`` through a connection of our own (the app's may be gone)."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
            return int((await conn.execute(text(sql))).scalar_one())
    finally:
        await engine.dispose()


# -- load -------------------------------------------------------------------------------------


@dataclass
class Pusher:
    """Pushes group messages over the fake's socket, one after another, until told to stop.

    ``sent`` counts the frames the fake's socket accepted; a send that blocks (the receiver
    stopped reading and the socket buffers are full) holds the count still.
    """

    fake: FakeOneBot
    first_id: int = 1
    text_bytes: int = 16_384
    limit: int = 100_000
    sent: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def event(self, n: int) -> dict[str, Any]:
        filler = "好" * (self.text_bytes // 3)
        return self.fake.group_message(
            f"第{n}条 {filler}", group_id=5001, user_id=20001 + n % 7, message_id=n
        )

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        n = self.first_id
        while not self.stop.is_set() and self.sent < self.limit:
            await self.fake.push(self.event(n))
            self.sent += 1
            n += 1

    async def finish(self) -> int:
        """Stop after the send in flight; the number of messages sent in all."""
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 60)
        return self.sent

    @property
    def blocked(self) -> bool:
        return self.task is not None and not self.task.done()


async def until(check: Callable[[], bool], limit: float = 30.0, step: float = 0.02) -> None:
    """Return once ``check()`` holds; fail after ``limit`` seconds (a guard, not a timing)."""

    async def poll() -> None:
        while not check():
            await asyncio.sleep(step)

    await asyncio.wait_for(poll(), limit)


async def until_still(read: Callable[[], int], quiet: float = 0.6, limit: float = 30.0) -> int:
    """Wait until ``read()`` has not changed for ``quiet`` seconds; return its value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    value, since = read(), loop.time()
    while loop.time() - since < quiet:
        assert loop.time() < deadline, "still moving after the guard"
        await asyncio.sleep(0.05)
        now = read()
        if now != value:
            value, since = now, loop.time()
    return value


# -- SQLite held by another writer -------------------------------------------------------------


class SqliteLock:
    """Another connection holding ``BEGIN EXCLUSIVE`` on a SQLite database until released."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None

    async def take(self) -> None:
        conn = sqlite3.connect(
            self._path, timeout=30, isolation_level=None, check_same_thread=False
        )
        # In a thread: it may wait out (busy timeout) a write of the bot's in progress.
        await asyncio.to_thread(conn.execute, "BEGIN EXCLUSIVE")
        self._conn = conn

    async def release(self) -> None:
        self.release_now()

    def release_now(self) -> None:
        if self._conn is not None:
            self._conn.execute("ROLLBACK")
            self._conn.close()
            self._conn = None
