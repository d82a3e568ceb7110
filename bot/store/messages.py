"""Message and account-state writes on the intake hot path (bulk driver SQL, batched)."""

from __future__ import annotations

import typing
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import ColumnClause

from bot.store.bulk import Bulk
from bot.store.db import insert_for
from bot.store.models import AccountState, Message, MessageTally

MessageKey = tuple[str, str, str, str, str]

_T = Message.__table__  # type: ignore[attr-defined]
_KEY_COLS = ("platform", "account_id", "chat_type", "chat_id", "message_id")


# The column order of a message row (``insert_messages``); the natural key comes first.
COLUMNS = (
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
    "handled",
)
_INSERT = Bulk(_T, COLUMNS, f"ON CONFLICT ({','.join(_KEY_COLS)}) DO NOTHING")


async def insert_messages(
    conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]
) -> dict[MessageKey, int]:
    """Insert rows (tuples in ``COLUMNS`` order), skipping ones already stored; return the new
    rows' keys → ids."""
    if not rows:
        return {}
    new = await _INSERT.insert_new(conn, rows, _KEY_COLS)  # keys: the five _KEY_COLS values
    return typing.cast(dict[MessageKey, int], new)


# Spelled as the partial index ``ix_message_unhandled`` is, so that SQLite's planner uses it.
_UNHANDLED: ColumnClause[Any] = literal_column("NOT message.handled")
_ID_CHUNK = 10_000  # ids per statement: far under either database's bound-parameter limit


async def mark_handled(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Record that the handlers' effects of these messages are written (same transaction)."""
    if ids and max(ids) - min(ids) + 1 == len(ids):
        # One batch's new rows are numbered in a run: two bounds instead of a thousand values.
        span = _T.c.id.between(min(ids), max(ids))
        await conn.execute(update(_T).where(span).values(handled=True))
        return
    for i in range(0, len(ids), _ID_CHUNK):
        chunk = ids[i : i + _ID_CHUNK]
        await conn.execute(update(_T).where(_T.c.id.in_(chunk)).values(handled=True))


async def claim_unhandled(conn: AsyncConnection, ids: Sequence[int]) -> set[int]:
    """Lock these message rows (PostgreSQL) and return the ones still unhandled.

    A handler transaction starts with this: a replay in another process skips locked rows and
    this one skips rows a replay already handled, so each message's effects are written once.
    """
    claimed: set[int] = set()
    for i in range(0, len(ids), _ID_CHUNK):
        chunk = ids[i : i + _ID_CHUNK]
        stmt = (
            select(_T.c.id)
            .where(_T.c.id.in_(chunk), _UNHANDLED)
            .order_by(_T.c.id)  # one lock order for every process
            .with_for_update()
        )
        claimed.update(int(r) for r in (await conn.execute(stmt)).scalars())
    return claimed


async def unhandled(
    conn: AsyncConnection,
    *,
    limit: int,
    account: tuple[str, str] | None = None,
    received_before: datetime | None = None,
    exclude: Collection[int] = (),
    skip_locked: bool = False,
) -> list[RowMapping]:
    """The oldest unhandled messages (stored, effects never committed), in id order.

    ``account``: (platform, account id) only; ``exclude``: this process's batches in flight;
    ``skip_locked``: leave rows another process is handling (PostgreSQL).
    """
    stmt = select(_T).where(_UNHANDLED).order_by(_T.c.id).limit(limit)
    if account is not None:
        stmt = stmt.where(_T.c.platform == account[0], _T.c.account_id == account[1])
    if received_before is not None:
        stmt = stmt.where(_T.c.received_at < received_before)
    if exclude:
        stmt = stmt.where(_T.c.id.not_in(list(exclude)))
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await conn.execute(stmt)).mappings())


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
    stmt = insert_for(conn)(table).values(
        platform=platform, account_id=account_id, online=online, changed_at=at, reason=reason
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["platform", "account_id"],
        set_={"online": online, "changed_at": at, "reason": reason},
    )
    await conn.execute(stmt)


async def count_messages(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(_T))).scalar_one())


_TALLY = MessageTally.__table__  # type: ignore[attr-defined]
TallyKey = tuple[str, str, str]  # platform, account id, actor role


_ADD_TO_TALLY = Bulk(
    _TALLY,
    ("platform", "account_id", "actor_role", "count"),
    "ON CONFLICT (platform, account_id, actor_role)"
    " DO UPDATE SET count = message_tally.count + excluded.count",
)


async def add_to_tally(conn: AsyncConnection, counts: dict[TallyKey, int]) -> None:
    """Add newly stored messages to ``message_tally`` (in the caller's transaction)."""
    if counts:
        # Sorted: one lock order for every process that updates the same rows.
        await _ADD_TO_TALLY.run(conn, [(*key, n) for key, n in sorted(counts.items())])


async def tally_by_role(conn: AsyncConnection) -> dict[str, int]:
    """Stored messages by actor role, all accounts (from ``message_tally``)."""
    role, n = _TALLY.c.actor_role, func.sum(_TALLY.c["count"])
    result = await conn.execute(select(role, n).group_by(role))
    return {str(r): int(c) for r, c in result.all()}


async def recent_messages(conn: AsyncConnection, limit: int = 50) -> list[dict[str, Any]]:
    stmt = select(_T).order_by(_T.c.id.desc()).limit(limit)
    return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]
