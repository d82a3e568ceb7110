"""Message and account-state writes on the intake hot path (SQLAlchemy Core, batched)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.models import AccountState, Message

MessageKey = tuple[str, str, str, str, str]

_T = Message.__table__  # type: ignore[attr-defined]
_KEY_COLS = ("platform", "account_id", "chat_type", "chat_id", "message_id")


def _insert(conn: AsyncConnection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


async def insert_messages(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]]
) -> dict[MessageKey, int]:
    """Insert rows, skipping ones already stored; return the new rows' keys → ids."""
    if not rows:
        return {}
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
