"""Database engine and schema migrations (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import weakref
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel.ext.asyncio.session import AsyncSession

log = logging.getLogger("sopbot.store")

MIGRATIONS = Path(__file__).with_name("migrations")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def insert_for(conn: AsyncConnection) -> Any:
    """The dialect's ``insert`` (the one with ``on_conflict_do_*``) for ``conn``'s database."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


@contextlib.asynccontextmanager
async def exclusive(engine: AsyncEngine, name: str) -> AsyncIterator[None]:
    """Run the block in one process at a time across every process on this database.

    PostgreSQL: a session advisory lock (waits for the holder), for start-up steps several
    processes would otherwise race on (migrations, roster sync, rollup rebuilds). SQLite has one
    writer and several processes are a PostgreSQL deployment, so there it is a no-op.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    key = zlib.crc32(f"sopbot:exclusive:{name}".encode())
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        await conn.commit()
        try:
            yield
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            await conn.commit()


class SQLiteConnection(sqlite3.Connection):
    """A SQLite connection that closes its cursors before it closes itself.

    A task cancelled while its statement runs in aiosqlite's thread (a tick stopped at shutdown,
    a timeout) leaves the statement stepped but never reset: ``INSERT … RETURNING`` holding its
    first row still holds the write lock. SQLAlchemy then invalidates and closes the connection,
    but SQLite's close leaves a connection with a live statement open as a "zombie", lock and
    all, until the cursor is garbage-collected; the cancelled task's traceback keeps it alive,
    and every later writer waited on the lock forever. Closing the cursors resets them first.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cursors: weakref.WeakSet[sqlite3.Cursor] = weakref.WeakSet()

    def cursor(self, factory: Any = sqlite3.Cursor) -> Any:
        # Connection.execute creates its cursor through this method too.
        cur = super().cursor(factory)
        self._cursors.add(cur)
        return cur

    def close(self) -> None:
        for cur in list(self._cursors):
            cur.close()
        super().close()


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Create the async engine; SQLite gets WAL and a busy timeout so readers never block.

    ``hide_parameters``: a database error's text then never quotes the row it failed on, so
    customer text cannot reach the logs through a logged exception.
    """
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if is_sqlite(url):
        if url.startswith("sqlite+aiosqlite:///") and ":memory:" not in url:
            Path(url.removeprefix("sqlite+aiosqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        kwargs["connect_args"] = {"timeout": 30, "factory": SQLiteConnection}
    else:
        kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            # A 16 MiB page cache (default 2 MiB) keeps index pages of the message table hot on
            # the intake path without costing much of the 300 MB memory budget.
            cur.execute("PRAGMA cache_size=-16384")
            cur.close()

    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _upgrade(connection: Connection, url: str, revision: str) -> None:
    cfg = alembic_config(url)
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` on the engine's database (idempotent)."""
    url = engine.url.render_as_string(hide_password=False)
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, url, revision)
    log.info("database schema at %s", revision)


def upgrade_blocking(url: str, revision: str = "head") -> None:
    """CLI helper: ``sopbot db upgrade``."""

    async def _run() -> None:
        engine = make_engine(url)
        try:
            await upgrade(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(_run())
