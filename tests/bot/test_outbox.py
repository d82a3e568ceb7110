"""Outbox: idempotent enqueue, leases, windows, retries, and no double sends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.clock import ManualClock
from bot.errors import ActionFailed, NotConnected
from bot.outbox import OutboxDispatcher, OutboxItem, OutboxRow, enqueue
from bot.store.db import session_factory
from bot.store.models import Outbox

T0 = datetime(2026, 11, 23, 1, 12, tzinfo=UTC)


def item(n: int, *, due: datetime = T0, window: timedelta | None = None) -> OutboxItem:
    return OutboxItem(
        key=f"sop:slot:g{n}:2026-11-23:morning",
        kind="sop_slot",
        recipient_id=f"g{n}",
        text=f"提醒 {n}",
        due_at=due,
        window_end=due + window if window else None,
    )


class Recorder:
    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.sent: list[str] = []
        self.fail = fail or {}

    async def __call__(self, row: OutboxRow) -> None:
        if row.recipient_id in self.fail:
            raise self.fail[row.recipient_id]
        self.sent.append(row.recipient_id)


async def rows(engine: AsyncEngine) -> dict[str, Outbox]:
    async with session_factory(engine)() as s:
        return {r.recipient_id: r for r in (await s.exec(select(Outbox).order_by(col(Outbox.id))))}


def dispatcher(
    engine: AsyncEngine, clock: ManualClock, sender: Recorder, owner: str = "p1"
) -> OutboxDispatcher:
    return OutboxDispatcher(
        engine=engine,
        clock=clock,
        sender=sender,
        owner=owner,
        lease=timedelta(minutes=2),
        retry_base=timedelta(seconds=30),
        retry_max=timedelta(minutes=10),
        max_attempts=3,
    )


async def test_enqueue_is_idempotent_and_due_rows_are_sent_once(engine: AsyncEngine) -> None:
    """The same key twice is one row; due rows are sent once; future rows wait."""
    clock = ManualClock(T0)
    async with engine.begin() as conn:
        assert (
            await enqueue(conn, [item(1), item(2), item(3, due=T0 + timedelta(hours=1))], T0) == 3
        )
        assert await enqueue(conn, [item(1), item(2)], T0) == 0
    sender = Recorder()
    out = dispatcher(engine, clock, sender)
    stats = await out.run_once()
    assert (stats.sent, sender.sent) == (2, ["g1", "g2"])
    assert (await out.run_once()).sent == 0
    await clock.advance(timedelta(hours=1))
    await out.run_once()
    assert sender.sent == ["g1", "g2", "g3"]
    assert {r.status for r in (await rows(engine)).values()} == {"sent"}


async def test_past_window_is_missed_not_sent(engine: AsyncEngine) -> None:
    """A row whose window ended while nobody sent it is recorded missed."""
    clock = ManualClock(T0 + timedelta(hours=3))
    async with engine.begin() as conn:
        await enqueue(
            conn, [item(1, window=timedelta(hours=2)), item(2, window=timedelta(hours=5))], T0
        )
    sender = Recorder()
    stats = await dispatcher(engine, clock, sender).run_once()
    assert (stats.missed, stats.sent, sender.sent) == (1, 1, ["g2"])
    assert (await rows(engine))["g1"].status == "missed"


async def test_failures_back_off_capped_and_fail_after_max(engine: AsyncEngine) -> None:
    """A refused send is retried with capped backoff and marked failed after max attempts."""
    clock = ManualClock(T0)
    async with engine.begin() as conn:
        await enqueue(conn, [item(1)], T0)
    sender = Recorder({"g1": ActionFailed("send_private_msg", 1404)})
    out = dispatcher(engine, clock, sender)
    await out.run_once()
    r = (await rows(engine))["g1"]
    assert (r.status, r.attempts, r.lease_until) == ("pending", 1, T0 + timedelta(seconds=30))
    await clock.advance(timedelta(seconds=31))
    await out.run_once()
    r = (await rows(engine))["g1"]
    assert (r.attempts, r.lease_until) == (2, clock.now() + timedelta(seconds=60))
    await clock.advance(timedelta(seconds=61))
    await out.run_once()
    r = (await rows(engine))["g1"]
    assert (r.status, r.attempts) == ("failed", 3)
    assert r.last_error is not None
    assert "1404" in r.last_error


async def test_not_connected_costs_no_attempt(engine: AsyncEngine) -> None:
    """With no gateway online the row waits and retries without burning attempts."""
    clock = ManualClock(T0)
    async with engine.begin() as conn:
        await enqueue(conn, [item(1)], T0)
    sender = Recorder({"g1": NotConnected("no online gateway")})
    out = dispatcher(engine, clock, sender)
    for _ in range(10):
        await out.run_once()
        await clock.advance(timedelta(seconds=31))
    r = (await rows(engine))["g1"]
    assert (r.status, r.attempts) == ("pending", 0)
    del sender.fail["g1"]
    await out.run_once()
    assert sender.sent == ["g1"]


async def test_interrupted_send_is_reclaimed_after_the_lease(engine: AsyncEngine) -> None:
    """A row left 'sending' by a dead process is re-sent once its lease has expired."""
    clock = ManualClock(T0)
    async with engine.begin() as conn:
        await enqueue(conn, [item(1)], T0)
        await conn.execute(
            update(Outbox.__table__).values(  # type: ignore[attr-defined]
                status="sending", lease_owner="dead", lease_until=T0 + timedelta(minutes=2)
            )
        )
    sender = Recorder()
    out = dispatcher(engine, clock, sender)
    await out.run_once()
    assert sender.sent == []  # still leased by the dead process
    await clock.advance(timedelta(minutes=3))
    await out.run_once()
    assert sender.sent == ["g1"]
    r = (await rows(engine))["g1"]
    assert (r.status, r.attempts) == ("sent", 0)


async def test_two_dispatchers_never_send_a_row_twice(engine: AsyncEngine) -> None:
    """Two processes' dispatchers racing over the same rows send each exactly once."""
    clock = ManualClock(T0)
    async with engine.begin() as conn:
        await enqueue(conn, [item(n) for n in range(200)], T0)
    sender = Recorder()
    a, b = dispatcher(engine, clock, sender, "p1"), dispatcher(engine, clock, sender, "p2")
    await asyncio.gather(a.run_once(), b.run_once(), a.run_once(), b.run_once())
    assert sorted(sender.sent) == sorted(f"g{n}" for n in range(200))
