"""The outbox: every reminder, alert and digest is a row with a unique idempotency key.

Producers ``enqueue`` rows (a second enqueue of the same key is a no-op, so a restart or a second
process never duplicates a reminder). ``OutboxDispatcher.run_once`` claims due rows with a lease
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several processes share the work), marking them
``sending``; each row is marked ``sent`` in its own transaction right after its send, so a crash
leaves at most one unconfirmed send per sender (1 on SQLite, 16 in parallel on PostgreSQL, each
recipient's rows in order). A process that dies mid-send leaves its rows leased; once the lease
expires another pass re-claims and sends them: at-least-once, and exactly-once at receivers that
drop a repeated message (WeCom's duplicate check). A row whose lease ran out while it waited for
the rate limiter is left for the next pass. Rows past their window are recorded as ``missed``
instead of sent late; failures are retried with backoff up to ``max_attempts``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.clock import Clock
from bot.errors import GatewayError, NotConnected
from bot.ratelimit import RateLimiter
from bot.store.db import insert_for
from bot.store.models import Outbox

log = logging.getLogger("sopbot.outbox")

_T = Outbox.__table__  # type: ignore[attr-defined]

PENDING, SENDING, SENT, MISSED, FAILED = "pending", "sending", "sent", "missed", "failed"
_INTERRUPTED = "interrupted send"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    key: str
    kind: str
    recipient_id: str
    text: str
    due_at: datetime
    window_end: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    key: str
    kind: str
    recipient_id: str
    payload: dict[str, Any]
    due_at: datetime
    window_end: datetime | None
    attempts: int
    lease_until: datetime | None = None

    @property
    def text(self) -> str:
        return str(self.payload.get("text", ""))


@dataclass(slots=True)
class DispatchStats:
    claimed: int = 0
    sent: int = 0
    sent_late: int = 0
    missed: int = 0
    failed: int = 0
    retried: int = 0


Sender = Callable[[OutboxRow], Awaitable[None]]


async def enqueue(conn: AsyncConnection, items: Sequence[OutboxItem], now: datetime) -> int:
    """Insert items whose key is new; return how many were inserted."""
    if not items:
        return 0
    rows = [
        {
            "idempotency_key": i.key,
            "kind": i.kind,
            "recipient_id": i.recipient_id,
            "channel": "",
            "payload": {"text": i.text, **i.extra},
            "due_at": i.due_at,
            "window_end": i.window_end,
            "status": PENDING,
            "attempts": 0,
            "created_at": now,
        }
        for i in items
    ]
    stmt = (
        insert_for(conn)(_T)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(_T.c.id)
    )
    result = await conn.execute(stmt, rows)
    return len(result.all())


class OutboxDispatcher:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        clock: Clock,
        sender: Sender,
        owner: str,
        limiter: RateLimiter | None = None,
        lease: timedelta = timedelta(minutes=2),
        batch_size: int = 500,
        max_attempts: int = 5,
        retry_base: timedelta = timedelta(seconds=30),
        retry_max: timedelta = timedelta(minutes=10),
        concurrency: int | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._sender = sender
        self._owner = owner
        self._limiter = limiter
        self._lease = lease
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._retry_base = retry_base
        self._retry_max = retry_max
        if concurrency is None:
            # SQLite has one writer: parallel senders only contend for it.
            concurrency = 16 if engine.dialect.name == "postgresql" else 1
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._concurrency = concurrency
        self._lock = asyncio.Lock()  # one pass at a time per process
        self._again = False

    async def kick(self) -> None:
        """Dispatch now (e.g. right after alerts were enqueued) instead of at the next tick.

        If a pass is already running in this process, it makes one more pass when it ends (so
        rows enqueued after its last claim do not wait for the tick) and this returns at once.
        """
        if self._lock.locked():
            self._again = True
            return
        await self.run_once()

    async def run_once(self) -> DispatchStats:
        """A full pass that starts after this call: waits for a running pass, then runs."""
        async with self._lock:
            stats = DispatchStats()
            await self._pass(stats)
            while self._again:
                self._again = False
                await self._pass(stats)
            return stats

    async def _pass(self, stats: DispatchStats) -> None:
        """One pass: expire rows past their window, then claim and send due rows in batches."""
        stats.missed += await self._expire()
        while True:
            rows = await self._claim()
            if not rows:
                break
            stats.claimed += len(rows)
            await self._send_batch(rows, stats)
            if len(rows) < self._batch_size:
                break

    async def _send_batch(self, rows: list[OutboxRow], stats: DispatchStats) -> None:
        """Send a claimed batch: recipients in parallel, each recipient's rows in due order.

        Every row keeps its own mark-sending / send / mark-sent sequence, so a crash still
        leaves at most one unconfirmed send per worker (``concurrency`` in all) to be re-sent.
        """
        by_recipient: dict[str, list[OutboxRow]] = {}
        for row in rows:
            by_recipient.setdefault(row.recipient_id, []).append(row)
        queue = list(by_recipient.values())
        queue.reverse()

        async def worker() -> None:
            while queue:
                for row in queue.pop():
                    await self._send_one(row, stats)

        workers = min(self._concurrency, len(queue))
        await asyncio.gather(*(worker() for _ in range(workers)))

    async def _expire(self) -> int:
        now = self._clock.now()
        late = (
            _T.c.status.in_((PENDING, SENDING)),
            _T.c.window_end.is_not(None),
            _T.c.window_end < now,
            or_(_T.c.lease_until.is_(None), _T.c.lease_until < now),
        )
        stmt = (
            update(_T)
            .where(*late)
            .values(status=MISSED, lease_owner=None, lease_until=None, last_error="window passed")
        )
        async with self._engine.begin() as conn:
            # Every pass: look before writing (an empty UPDATE still takes SQLite's write lock).
            if (await conn.execute(select(_T.c.id).where(*late).limit(1))).first() is None:
                return 0
            result = await conn.execute(stmt)
        missed = int(result.rowcount or 0)
        if missed:
            log.info("outbox: %d rows missed their window", missed)
        return missed

    async def _claim(self) -> list[OutboxRow]:
        now = self._clock.now()
        due = (
            select(_T.c.id)
            .where(_T.c.status.in_((PENDING, SENDING)))
            .where(_T.c.due_at <= now)
            .where(or_(_T.c.lease_until.is_(None), _T.c.lease_until < now))
            .order_by(_T.c.due_at, _T.c.id)
            .limit(self._batch_size)
        )
        async with self._engine.begin() as conn:
            if (await conn.execute(due.limit(1))).first() is None:
                return []  # nothing due: no write (and no SQLite write lock) this pass
            if conn.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            stmt = (
                update(_T)
                .where(_T.c.id.in_(due.scalar_subquery()))
                .values(
                    status=SENDING,
                    lease_owner=self._owner,
                    lease_until=now + self._lease,
                    # A row still "sending" lost its holder between send and sent-mark.
                    last_error=case((_T.c.status == SENDING, _INTERRUPTED), else_=_T.c.last_error),
                )
                .returning(
                    _T.c.id,
                    _T.c.idempotency_key,
                    _T.c.kind,
                    _T.c.recipient_id,
                    _T.c.payload,
                    _T.c.due_at,
                    _T.c.window_end,
                    _T.c.attempts,
                    _T.c.lease_until,
                    _T.c.last_error,
                )
            )
            result = (await conn.execute(stmt)).all()
        rows = []
        for r in sorted(result, key=lambda r: (r.due_at, r.id)):
            if r.last_error == _INTERRUPTED:
                # The previous holder died between the send and the sent-mark, so the message
                # may already be out: we resend (at-least-once) with the same key, which
                # receivers with a duplicate check (WeCom) use to drop the copy.
                log.info("outbox: re-claimed %s %s after an interrupted send", r.kind, r.id)
            rows.append(
                OutboxRow(
                    id=int(r.id),
                    key=r.idempotency_key,
                    kind=r.kind,
                    recipient_id=r.recipient_id,
                    payload=dict(r.payload or {}),
                    due_at=r.due_at,
                    window_end=r.window_end,
                    attempts=int(r.attempts),
                    lease_until=r.lease_until,
                )
            )
        return rows

    async def _mark(self, row_id: int, **values: Any) -> bool:
        stmt = (
            update(_T)
            .where(and_(_T.c.id == row_id, _T.c.lease_owner == self._owner))
            .values(**values)
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)

    async def _send_one(self, row: OutboxRow, stats: DispatchStats) -> None:
        now = self._clock.now()
        if row.window_end is not None and now > row.window_end:
            await self._mark(
                row.id,
                status=MISSED,
                lease_owner=None,
                lease_until=None,
                last_error="window passed",
            )
            stats.missed += 1
            return
        if self._limiter is not None:
            await self._limiter.acquire(row.recipient_id)
        if row.lease_until is not None and self._clock.now() >= row.lease_until:
            # Our lease ran out while we waited for the rate limit. Nothing was sent: hand the
            # row back (a no-op if another pass already took it over).
            await self._mark(row.id, status=PENDING, lease_owner=None, lease_until=None)
            return
        try:
            await self._sender(row)
        except NotConnected as exc:
            # Nobody to send through yet (gateway reconnecting, bot just started): not the
            # message's fault, so it costs no attempt; try again shortly.
            await self._mark(
                row.id,
                status=PENDING,
                lease_owner=None,
                lease_until=self._clock.now() + self._retry_base,
                last_error=f"not connected: {exc}"[:500],
            )
            stats.retried += 1
            return
        except GatewayError as exc:
            await self._failed(row, exc, stats)
            return
        sent_at = self._clock.now()
        await self._mark(
            row.id,
            status=SENT,
            sent_at=sent_at,
            lease_owner=None,
            lease_until=None,
            last_error=None,
        )
        stats.sent += 1
        if sent_at - row.due_at > timedelta(minutes=5):
            stats.sent_late += 1

    async def _failed(self, row: OutboxRow, exc: Exception, stats: DispatchStats) -> None:
        error = f"{type(exc).__name__}: {exc}"[:500]
        # Only real send failures count: a crash or an expired lease re-claims a row for free.
        attempts = row.attempts + 1
        if attempts >= self._max_attempts:
            await self._mark(
                row.id,
                status=FAILED,
                attempts=attempts,
                lease_owner=None,
                lease_until=None,
                last_error=error,
            )
            stats.failed += 1
            log.error(
                "outbox: %s %s failed for good after %d attempts: %s",
                row.kind,
                row.id,
                attempts,
                error,
            )
            return
        backoff = min(self._retry_base * (2 ** (attempts - 1)), self._retry_max)
        retry_at = self._clock.now() + backoff
        await self._mark(
            row.id,
            status=PENDING,
            attempts=attempts,
            lease_owner=None,
            lease_until=retry_at,
            last_error=error,
        )
        stats.retried += 1
        log.warning(
            "outbox: %s %s attempt %d failed, retry at %s: %s",
            row.kind,
            row.id,
            attempts,
            retry_at.isoformat(),
            error,
        )
