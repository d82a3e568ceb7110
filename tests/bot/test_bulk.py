"""Bulk driver SQL stores values exactly as SQLAlchemy's types would, and reads them back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import bulk
from bot.store.bulk import Bulk, chunk_sizes
from bot.store.models import Message, SlaRollup

M = Message.__table__  # type: ignore[attr-defined]
ROLL = SlaRollup.__table__  # type: ignore[attr-defined]
COLUMNS = ("platform", "account_id", "chat_type", "chat_id", "message_id", "sender_id",
           "sender_name", "actor_role", "operator_id", "is_self", "text",
           "reply_to_message_id", "mention_user_ids", "mention_all", "sent_at", "received_at",
           "recalled_at", "raw")  # fmt: skip
INSERT = Bulk(M, COLUMNS, "ON CONFLICT (message_id, chat_id, chat_type, account_id, platform)"
              " DO NOTHING RETURNING id, message_id")  # fmt: skip
T0 = datetime(2026, 3, 10, 2, 0, 0, 123456, tzinfo=UTC)


def _row(i: int, **over: Any) -> dict[str, Any]:
    row = {
        "platform": "onebot11",
        "account_id": "10000",
        "chat_type": "group",
        "chat_id": str(5000 + i % 3),
        "message_id": str(i),
        "sender_id": "20001",
        "sender_name": "顾客",
        "actor_role": "customer",
        "operator_id": None if i % 2 else "li",
        "is_self": bool(i % 2),
        "text": "请问'几点\"发货？",
        "reply_to_message_id": None,
        "mention_user_ids": [] if i % 2 else ["9001", "9002"],
        "mention_all": i % 5 == 0,
        "sent_at": T0 + timedelta(seconds=i),
        # Another zone: stored as the same instant in UTC.
        "received_at": (T0 + timedelta(seconds=i, microseconds=7)).astimezone(
            timezone(timedelta(hours=8))
        ),
        "recalled_at": None,
        "raw": None if i % 2 else {"k": [1, "二"]},
    }
    row.update(over)
    return row


async def test_rows_read_back_as_sqlalchemy_returns_them(engine: AsyncEngine) -> None:
    rows = [_row(i) for i in range(1, 1200)]  # several chunks (1024 + 128 + 32 + ...)
    async with engine.begin() as conn:
        returned = await INSERT.run(conn, rows[:600])
        # Tuples in column order write the same thing as mappings.
        returned += await INSERT.run(conn, [tuple(r[c] for c in COLUMNS) for r in rows[600:]])
        again = await INSERT.run(conn, rows[:10])  # conflicts: nothing written, nothing back
    assert len(returned) == len(rows)
    assert again == []
    async with engine.connect() as conn:
        stored = {r.message_id: r for r in (await conn.execute(select(M))).all()}
    for row in rows:
        got = stored[row["message_id"]]
        for name in COLUMNS:
            want = row[name]
            if isinstance(want, datetime):
                want = want.astimezone(UTC)
            assert getattr(got, name) == want, name


async def test_naive_timestamps_are_refused(engine: AsyncEngine) -> None:
    naive = datetime(2026, 3, 10, 2, 0)  # noqa: DTZ001 (the point of the test)
    async with engine.begin() as conn:
        with pytest.raises(ValueError, match="naive"):
            await INSERT.run(conn, [_row(1, sent_at=naive)])


def test_chunks_are_powers_of_two_below_the_cap() -> None:
    assert chunk_sizes(1000, 1024) == [512, 256, 128, 64, 32, 8]
    assert chunk_sizes(2500, 1024) == [1024, 1024, 256, 128, 64, 4]
    assert chunk_sizes(0, 1024) == []
    assert all(sum(chunk_sizes(n, 256)) == n for n in range(3000))


NEW_ONLY = Bulk(
    M, COLUMNS, "ON CONFLICT (message_id, chat_id, chat_type, account_id, platform) DO NOTHING"
)
KEY = ("platform", "account_id", "chat_type", "chat_id", "message_id")


async def test_insert_new_gives_the_ids_of_the_rows_it_wrote(engine: AsyncEngine) -> None:
    """Without RETURNING on SQLite: ids from the insert's row count, duplicates read back."""
    first = [_row(i) for i in range(1, 300)]
    again = [_row(i) for i in range(150, 700)]  # 150 stored already, interleaved at the front
    async with engine.begin() as conn:
        got = await NEW_ONLY.insert_new(conn, first, KEY)
        got_again = await NEW_ONLY.insert_new(
            conn, [tuple(r[c] for c in COLUMNS) for r in again], KEY
        )
        nothing = await NEW_ONLY.insert_new(conn, first[:5], KEY)
        stored = {
            tuple(r[1:]): r[0]
            for r in (await conn.execute(select(M.c.id, *(M.c[k] for k in KEY)))).all()
        }
    assert nothing == {}
    assert len(got) == len(first)
    assert set(got_again) == {tuple(r[k] for k in KEY) for r in again[150:]}
    for key, row_id in {**got, **got_again}.items():
        assert stored[key] == row_id


async def test_read_by_values_takes_any_number_of_values_in_one_statement(
    engine: AsyncEngine,
) -> None:
    rows = [_row(i) for i in range(1, 2500)]
    async with engine.begin() as conn:
        await NEW_ONLY.insert_new(conn, rows, KEY)
        wanted = [str(i) for i in range(1, 2500, 2)] + ["nope", "", "'; DROP TABLE message"]
        got = await bulk.read_by_values(conn, M, "message_id", wanted, COLUMNS, lock=True)
        orm = (await conn.execute(select(*(M.c[c] for c in COLUMNS)))).all()
    by_id = {r.message_id: r._asdict() for r in orm}
    assert sorted(r["message_id"] for r in got) == sorted(wanted[:-3])
    assert all(r == by_id[r["message_id"]] for r in got)
