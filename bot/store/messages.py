"""Message and account-state writes on the intake hot path (SQLAlchemy Core, batched)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.models import AccountState, Message

MessageKey = tuple[str, str, str, str, str]

_T = Message.__table__  # type: ignore[attr-defined]
_KEY_COLS = ("platform", "account_id", "chat_type", "chat_id", "message_id")


def _insert(conn: AsyncConnection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


_SQLITE_COLS = (
    "platform",
    "account_id",
    "chat_type",
    "chat_id",
    "message_id",
    "sender_id",
    "sender_name",
    "actor_role",
    "operator_id",
    "is_self",
    "text",
    "reply_to_message_id",
    "mention_user_ids",
    "mention_all",
    "sent_at",
    "received_at",
    "recalled_at",
    "raw",
)
_SQLITE_CHUNK = 1024  # 18 columns x 1024 rows stays under SQLite's 32766 bound parameters


def _chunk_sizes(n: int) -> list[int]:
    """Split ``n`` rows into power-of-two chunks (1000 = 512+256+128+64+32+8).

    sqlite3 caches a prepared statement per distinct SQL text, and a multi-row INSERT's text
    depends on its row count: with every batch size its own statement, the cache held up to 128
    statements of thousands of parameters each per connection (hundreds of MB at a steady
    rate). Eleven sizes at most are ever prepared this way.
    """
    sizes = []
    while n >= _SQLITE_CHUNK:
        sizes.append(_SQLITE_CHUNK)
        n -= _SQLITE_CHUNK
    bit = _SQLITE_CHUNK // 2
    while n:
        if n >= bit:
            sizes.append(bit)
            n -= bit
        bit //= 2
    return sizes


def _sqlite_ts(value: datetime | None) -> str | None:
    # The exact text SQLAlchemy's SQLite DateTime writes ("%Y-%m-%d %H:%M:%S.%f"), so both
    # paths read back alike; isoformat with fixed microseconds is that text, several times faster.
    if value is None:
        return None
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _sqlite_params(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["platform"],
        row["account_id"],
        row["chat_type"],
        row["chat_id"],
        row["message_id"],
        row["sender_id"],
        row["sender_name"],
        row["actor_role"],
        row["operator_id"],
        1 if row["is_self"] else 0,
        row["text"],
        row["reply_to_message_id"],
        orjson.dumps(row["mention_user_ids"]).decode() if row["mention_user_ids"] else "[]",
        1 if row["mention_all"] else 0,
        _sqlite_ts(row["sent_at"]),
        _sqlite_ts(row["received_at"]),
        _sqlite_ts(row["recalled_at"]),
        None if row["raw"] is None else orjson.dumps(row["raw"]).decode(),
    )


@functools.cache
def _sqlite_insert_sql(rows: int) -> str:
    one = "(" + ",".join("?" * len(_SQLITE_COLS)) + ")"
    return (
        f"INSERT INTO message ({','.join(_SQLITE_COLS)}) VALUES "
        + ",".join([one] * rows)
        + f" ON CONFLICT ({','.join(_KEY_COLS)}) DO NOTHING"
        + f" RETURNING id, {','.join(_KEY_COLS)}"
    )


async def _insert_sqlite(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]]
) -> dict[MessageKey, int]:
    """The intake hot path on SQLite: one multi-row statement per chunk, no per-row ORM work."""
    out: dict[MessageKey, int] = {}
    start = 0
    for size in _chunk_sizes(len(rows)):
        chunk = rows[start : start + size]
        start += size
        sql = _sqlite_insert_sql(size)
        params = tuple(chain.from_iterable(map(_sqlite_params, chunk)))
        result = await conn.exec_driver_sql(sql, params)
        for r in result.all():
            row_id, *key = tuple(r)
            out[(key[0], key[1], key[2], key[3], key[4])] = int(row_id)
    return out


async def insert_messages(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]]
) -> dict[MessageKey, int]:
    """Insert rows, skipping ones already stored; return the new rows' keys → ids."""
    if not rows:
        return {}
    if conn.dialect.name == "sqlite":
        return await _insert_sqlite(conn, rows)
    stmt = (
        _insert(conn)(_T)
        .on_conflict_do_nothing(index_elements=list(_KEY_COLS))
        .returning(_T.c.id, *(_T.c[c] for c in _KEY_COLS))
    )
    result = await conn.execute(stmt, list(rows))
    return {(r[1], r[2], r[3], r[4], r[5]): int(r[0]) for r in result.all()}


async def mark_recalled(conn: AsyncConnection, key: MessageKey, at: datetime) -> int:
    stmt = (
        update(_T)
        .where(*(_T.c[c] == v for c, v in zip(_KEY_COLS, key, strict=True)))
        .where(_T.c.recalled_at.is_(None))
        .values(recalled_at=at)
    )
    result = await conn.execute(stmt)
    return int(result.rowcount or 0)


async def upsert_account_state(
    conn: AsyncConnection, platform: str, account_id: str, online: bool, at: datetime, reason: str
) -> None:
    table = AccountState.__table__  # type: ignore[attr-defined]
    stmt = _insert(conn)(table).values(
        platform=platform, account_id=account_id, online=online, changed_at=at, reason=reason
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["platform", "account_id"],
        set_={"online": online, "changed_at": at, "reason": reason},
    )
    await conn.execute(stmt)


async def count_messages(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(_T))).scalar_one())


async def recent_messages(conn: AsyncConnection, limit: int = 50) -> list[dict[str, Any]]:
    stmt = select(_T).order_by(_T.c.id.desc()).limit(limit)
    return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]
