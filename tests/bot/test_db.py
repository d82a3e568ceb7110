"""The SQLite engine survives a task cancelled while its statement runs in the driver's thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from bot.store.db import make_engine


def _write_lock_free(path: Path) -> bool:
    probe = sqlite3.connect(path, timeout=0)  # no busy wait: answer at once
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


async def test_cancelled_returning_insert_releases_the_write_lock(tmp_path: Path) -> None:
    """A writer cancelled while its ``INSERT … RETURNING`` runs leaves no lock behind.

    The statement finishes in aiosqlite's thread with its first row unread; SQLAlchemy
    invalidates the connection. Before the fix the closed connection stayed open inside SQLite
    (a live statement keeps it) and held the write lock while the cancelled task's traceback
    lived: every later writer, the intake's flush at shutdown among them, waited forever.
    """
    path = tmp_path / "t.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    entered, release = threading.Event(), threading.Event()

    def gate(value: int) -> int:  # runs in the driver's thread, inside the statement
        entered.set()
        release.wait(10)
        return value

    @event.listens_for(engine.sync_engine, "connect")
    def _register(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.create_function("gate", 1, gate)

    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)"))

        async def writer() -> None:
            async with engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO t (v) SELECT gate(1) UNION ALL SELECT 2 RETURNING id")
                )

        task = asyncio.create_task(writer())
        assert await asyncio.to_thread(entered.wait, 10)
        task.cancel()  # lands while the statement is inside gate()
        release.set()
        outcome = await asyncio.gather(task, return_exceptions=True)
        assert isinstance(outcome[0], asyncio.CancelledError)
        assert _write_lock_free(path)  # while the traceback (and its cursor) is still alive
        async with engine.begin() as conn:  # and the engine's own writers go on
            await conn.execute(text("INSERT INTO t (v) VALUES (3)"))
            count = (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one()
        assert count == 1  # the cancelled insert was rolled back
    finally:
        release.set()
        await engine.dispose()
