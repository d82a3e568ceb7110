"""Intake: gateway events → bounded queue → batched, idempotent writes → handlers.

Gateways ``await intake.put(event)``; when the queue is full that await blocks, so the gateway
stops reading its socket (backpressure, never dropping). A writer task takes up to ``batch_size``
events or whatever arrived within ``flush_interval``, stores new messages in one transaction
(duplicates are skipped by the unique natural key), then feeds the batch to the handlers with
one shared session committed once. A database outage is retried with backoff: nothing is lost.

Messages are stored ``handled = false``; the handlers' transaction sets the flag with their
effects. If that transaction fails, the handlers' in-memory state (the question engine) is ahead
of the store: it is reloaded from the store (``add_resync`` hooks) and the batch runs again. A
process killed between the two transactions leaves its messages unhandled: ``replay`` feeds them
to the handlers at the next start (SQLite), or when their account comes online again in any
process (PostgreSQL; a tick takes what no account came back for).
An event the database refuses for its content (an SQLSTATE data or integrity error, which no
retry can fix) is isolated from its batch, counted as rejected (``store_refused``) and logged
by id, so one bad row never stalls the intake behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import RowMapping
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.dispatch import Dispatcher
from bot.events import AccountStatus, ChatMessage, ChatType, InboundEvent, MessageRecall
from bot.metrics import Metrics
from bot.roster import Actor, Roster
from bot.store import messages as message_store

log = logging.getLogger("sopbot.intake")

Stored = dict[int, tuple[Actor, int]]  # position in the batch → (sender, message row id)
Resync = Callable[[], Awaitable[None]]
T = TypeVar("T")
_NEVER = 1 << 62  # no batch is waiting to fill

# SQLSTATE classes that name the data, not the connection: data exception, integrity
# constraint violation, program limit exceeded (e.g. an index row too large).
_REFUSED_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})


def is_refused(exc: BaseException) -> bool:
    """True when the database refused the rows themselves: retrying the same write cannot help.

    Connection loss, lock timeouts, a server shutting down or a missing table are transient
    (or need an operator): those are retried, never dropped.
    """
    if isinstance(exc, ValueError | TypeError):
        return True  # a value the driver cannot encode (UnicodeEncodeError is a ValueError)
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return is_refused(exc.orig) if exc.orig is not None else False
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return False
        if isinstance(exc, DataError | IntegrityError):
            return True
        # asyncpg's errors reach SQLAlchemy as generic DBAPIErrors carrying the SQLSTATE.
        code = getattr(exc.orig, "sqlstate", None)
        return isinstance(code, str) and code[:2] in _REFUSED_SQLSTATE_CLASSES
    return False


@dataclass(frozen=True, slots=True)
class BatchEnd:
    """Fed after every event of a batch was handled, before its session commits.

    Handlers that buffer writes per batch (in ``session.info``) flush them here, so a batch of a
    thousand messages costs a few statements, not a few per message.
    """

    size: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message that was new to the store, with its resolved sender."""

    msg: ChatMessage
    actor: Actor
    row_id: int


class Intake:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        roster: Roster,
        clock: Clock,
        metrics: Metrics,
        queue_size: int = 5_000,
        batch_size: int = 1_000,
        flush_interval: float = 0.02,
        store_raw: bool = False,
        retry_max_delay: float = 5.0,
        replay_grace: float = 300.0,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._dispatcher = dispatcher
        self._roster = roster
        self._clock = clock
        self._metrics = metrics
        self._queue: asyncio.Queue[tuple[InboundEvent, float]] = asyncio.Queue(queue_size)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._store_raw = store_raw
        self._retry_max_delay = retry_max_delay
        # Stored batches wait here for the handler task: batch N+1 is written while batch N is
        # handled (two batches at most, so backpressure still reaches the gateways).
        self._stored: asyncio.Queue[tuple[list[tuple[InboundEvent, float]], Stored]] = (
            asyncio.Queue(2)
        )
        self._tasks: list[asyncio.Task[None]] = []
        # SQLite has one writer: the next batch's insert and this batch's handler writes would
        # only fight over its lock (busy-wait sleeps), so there the two stages run in turn.
        self._pipelined = engine.dialect.name != "sqlite"
        self._pending = 0  # events put and not yet handled
        # The batch being gathered waits for this many queued events (``put`` wakes it).
        self._fill = _NEVER
        self._filled = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        # Handlers run one batch at a time: live batches, replays and reloads take turns.
        self._turn = asyncio.Lock()
        self._inflight: set[int] = set()  # row ids stored here and not yet handled
        self._resync: list[Resync] = []
        # PostgreSQL: rows unhandled this long belong to an account that came back nowhere.
        self._replay_grace = timedelta(seconds=replay_grace)

    def add_resync(self, hook: Resync) -> None:
        """Register a reload of in-memory handler state from the store (run in order)."""
        self._resync.append(hook)

    async def put(self, event: InboundEvent) -> None:
        """The gateways' sink. Blocks while the queue is full (backpressure)."""
        self._pending += 1
        self._idle.clear()
        queue = self._queue
        if queue.full():
            await queue.put((event, self._loop_time()))
        else:
            queue.put_nowait((event, self._loop_time()))
        if queue.qsize() >= self._fill:
            self._filled.set()

    def _loop_time(self) -> float:
        # Replaced by the running loop's clock in start(): get_running_loop() makes a system
        # call (getpid) on every use, a few percent of the loop at 10,000 events/s.
        return asyncio.get_running_loop().time()

    async def start(self) -> None:
        self._loop_time = asyncio.get_running_loop().time  # type: ignore[method-assign]
        self._tasks = [
            asyncio.create_task(self._run(), name="intake-writer"),
            asyncio.create_task(self._run_handlers(), name="intake-handlers"),
        ]

    async def stop(self) -> None:
        """Flush everything queued, then stop the writer and the handler task."""
        if not self._tasks:
            return
        await self.drain()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def drain(self) -> None:
        """Wait until every event put so far has been written and handled."""
        while self._pending:
            if not self._tasks or any(t.done() for t in self._tasks):
                raise RuntimeError("intake writer is not running")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self._idle.wait()

    async def _run_handlers(self) -> None:
        while True:
            batch, stored = await self._stored.get()
            await self._finish(batch, stored)

    async def _finish(self, batch: list[tuple[InboundEvent, float]], stored: Stored) -> None:
        try:
            async with self._turn:
                if self._pipelined:
                    # An account (re)connected here: what it delivered before and a dead process
                    # stored without handling is ours now, and older than this batch.
                    for event, _ in batch:
                        if isinstance(event, AccountStatus) and event.online:
                            await self._replay((event.platform, event.account_id), None)
                await self._handle_until_written(batch, stored)
        finally:
            self._inflight.difference_update(row_id for _, row_id in stored.values())
            self._pending -= len(batch)
            if self._pending <= 0:
                self._pending = 0
                self._idle.set()

    async def _handle_until_written(
        self, batch: Sequence[tuple[InboundEvent, float]], stored: Stored
    ) -> None:
        """Run the handlers on ``batch`` until their transaction commits (holding the turn)."""
        delay = 0.05
        reload = False
        while True:
            try:
                if reload:
                    await self._reload()
                    reload = False
                await self._handle(batch, stored)
                return
            except Exception as exc:
                if not reload and is_refused(exc):
                    # The store refuses what the handlers wrote: the same batch would fail again.
                    await self._reload_until_done()
                    if len(batch) > 1:  # one event per transaction: only the culprit is lost
                        for pos, item in enumerate(batch):
                            one = {0: stored[pos]} if pos in stored else {}
                            await self._handle_until_written([item], one)
                        return
                    event = batch[0][0]
                    log.error(
                        "handlers' writes refused (%s) for %s account=%.64s message=%.64s;"
                        " its effects are dropped",
                        type(exc).__name__,
                        type(event).__name__,
                        event.account_id,
                        getattr(event, "message_id", "-"),
                    )
                    self._metrics.events_rejected.labels(event.platform, "handler_refused").inc()
                    await self._mark_until_done([row_id for _, row_id in stored.values()])
                    return
                # Memory (the question engine) has seen the batch and the store has not: reload
                # memory from the store and run the batch again, as a restart would.
                reload = True
                self._metrics.intake_handler_retries.inc()
                log.warning(
                    "handlers' transaction failed (%s); reloading and retrying %d events in %.2fs",
                    type(exc).__name__,
                    len(batch),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_delay)

    async def _reload(self) -> None:
        for hook in self._resync:
            await hook()

    async def _until_done(self, op: Callable[[], Awaitable[T]], what: str) -> T:
        """``op()`` retried with backoff until it succeeds (the store is down or locked)."""
        delay = 0.05
        while True:
            try:
                return await op()
            except Exception as exc:
                log.warning("%s failed (%s); retrying in %.2fs", what, type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_delay)

    async def _reload_until_done(self) -> None:
        await self._until_done(self._reload, "reload")

    async def _mark_until_done(self, ids: Sequence[int]) -> None:
        async def mark() -> None:
            async with self._engine.begin() as conn:
                await message_store.mark_handled(conn, ids)

        await self._until_done(mark, f"marking {len(ids)} handled")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            queue = self._queue
            first = await queue.get()
            batch = [first]
            deadline = loop.time() + self._flush_interval
            while len(batch) < self._batch_size:
                ready = min(queue.qsize(), self._batch_size - len(batch))
                if ready:
                    batch += [queue.get_nowait() for _ in range(ready)]
                    continue
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                # Linger for the rest of the batch (or the deadline): one wake-up per batch,
                # not one per event trickling in.
                self._fill = min(self._batch_size - len(batch), queue.maxsize)
                self._filled.clear()
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that lands in
                # the pass where the event is set, and the writer would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._filled.wait()
                self._fill = _NEVER
            await self._process_with_retry(batch)
            self._metrics.intake_queue_depth.set(self._queue.qsize())

    async def _process_with_retry(self, batch: list[tuple[InboundEvent, float]]) -> None:
        stored = await self._store(batch)
        self._inflight.update(row_id for _, row_id in stored.values())
        if self._pipelined:
            await self._stored.put((batch, stored))
        else:
            await self._finish(batch, stored)

    async def _store(self, batch: Sequence[tuple[InboundEvent, float]]) -> Stored:
        """Write ``batch``, retrying outages; isolate and drop rows the database refuses."""
        delay = 0.05
        while True:
            try:
                return await self._write(batch)
            except Exception as exc:
                if is_refused(exc):
                    if len(batch) == 1:
                        self._refused(batch[0][0], exc)
                        return {}
                    return await self._store_each(batch)
                # The database is down or locked (or something unknown failed: never drop on a
                # guess): keep the batch, wait, retry. The queue fills behind us and the
                # gateways block on put(): backpressure instead of loss.
                log.warning(
                    "store unavailable (%s); retrying %d events in %.2fs",
                    type(exc).__name__,
                    len(batch),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_delay)

    async def _store_each(self, batch: Sequence[tuple[InboundEvent, float]]) -> Stored:
        """One event per transaction, so a refused one does not take its batch down with it."""
        stored: Stored = {}
        for pos, item in enumerate(batch):
            one = await self._store([item])
            if 0 in one:
                stored[pos] = one[0]
        return stored

    def _refused(self, event: InboundEvent, exc: BaseException) -> None:
        self._metrics.events_rejected.labels(event.platform, "store_refused").inc()
        # Ids only (bounded): the exception text may quote the refused row, customer text too.
        log.error(
            "store refused %s account=%.64s chat=%.64s message=%.64s (%s); event dropped",
            type(event).__name__,
            event.account_id,
            getattr(event, "chat_id", "-"),
            getattr(event, "message_id", "-"),
            getattr(getattr(exc, "orig", None), "sqlstate", None) or type(exc).__name__,
        )

    async def _write(self, batch: Sequence[tuple[InboundEvent, float]]) -> Stored:
        """Store the batch; return, by position in the batch, the new messages' actor and id."""
        rows: list[tuple[Any, ...]] = []
        positions: dict[message_store.MessageKey, tuple[int, Actor]] = {}
        for pos, (event, _) in enumerate(batch):
            if not isinstance(event, ChatMessage):
                continue
            actor = self._roster.classify(event)
            row = self._row(event, actor)
            key: message_store.MessageKey = row[:5]
            if key in positions:
                continue  # the same message twice in one batch: the first one wins
            positions[key] = (pos, actor)
            rows.append(row)
        async with self._engine.begin() as conn:
            inserted = await message_store.insert_messages(conn, rows)
            await message_store.add_to_tally(
                conn, Counter((k[0], k[1], positions[k][1].role.value) for k in inserted)
            )
            for event, _ in batch:
                if isinstance(event, MessageRecall):
                    await message_store.mark_recalled(
                        conn,
                        (
                            event.platform,
                            event.account_id,
                            event.chat_type.value,
                            event.chat_id,
                            event.message_id,
                        ),
                        event.at,
                    )
                elif isinstance(event, AccountStatus):
                    await message_store.upsert_account_state(
                        conn,
                        event.platform,
                        event.account_id,
                        event.online,
                        event.at,
                        event.reason,
                    )
        now = self._loop_time()
        self._metrics.intake_commit_latency.observe_many([now - received for _, received in batch])
        self._metrics.messages_stored.inc(len(inserted))
        # Every message not inserted is a re-delivery (already stored, or twice in this batch).
        messages = sum(1 for e, _ in batch if isinstance(e, ChatMessage))
        self._metrics.messages_duplicate.inc(messages - len(inserted))
        return {positions[key][0]: (positions[key][1], row_id) for key, row_id in inserted.items()}

    def _row(self, msg: ChatMessage, actor: Actor) -> tuple[Any, ...]:
        """The message's row, in ``message_store.COLUMNS`` order (the natural key first)."""
        return (
            msg.platform,
            msg.account_id,
            msg.chat_type.value,
            msg.chat_id,
            msg.message_id,
            msg.sender_id,
            _no_nul(msg.sender_name)[:255],
            actor.role.value,
            actor.operator.id if actor.operator else None,
            msg.is_self,
            _no_nul(msg.text),
            msg.reply_to_message_id,
            list(msg.mention_user_ids),
            msg.mention_all,
            msg.sent_at,
            msg.received_at,
            None,
            dict(msg.raw) if self._store_raw and msg.raw is not None else None,
            False,  # handled: set with the handlers' effects
        )

    async def _handle(self, batch: Sequence[tuple[InboundEvent, float]], stored: Stored) -> None:
        """One transaction: the handlers' effects and the batch's messages marked handled.

        A store error inside a handler aborts it (raised), rather than commit the batch without
        that handler's writes.
        """
        feed = self._dispatcher.feed
        async with self._sessions() as session:
            if self._pipelined and stored:
                # Several processes (PostgreSQL): lock our rows; one a replay took is not ours.
                ids = sorted(row_id for _, row_id in stored.values())
                mine = await message_store.claim_unhandled(await session.connection(), ids)
                if len(mine) < len(ids):
                    stored = {p: v for p, v in stored.items() if v[1] in mine}
            for pos, (event, _) in enumerate(batch):
                if isinstance(event, ChatMessage):
                    if pos not in stored:
                        continue  # a re-delivery: handlers already saw it once
                    actor, row_id = stored[pos]
                    await feed(
                        StoredMessage(event, actor, row_id), session=session, reraise=_store_error
                    )
                else:
                    await feed(event, session=session, reraise=_store_error)
            await feed(BatchEnd(len(batch)), session=session, reraise=_store_error)
            if stored:
                ids = [row_id for _, row_id in stored.values()]
                await message_store.mark_handled(await session.connection(), ids)
            await session.commit()

    async def replay_at_start(self) -> int:
        """SQLite: run the handlers on every stored message a crash left unhandled.

        Only one process writes a SQLite store, so every such row is this process's own. On
        PostgreSQL rows belong to whichever process hears their account: an account replays
        its own rows when it comes online (``_finish``), the tick the ones nobody came back for.
        """
        return 0 if self._pipelined else await self.replay()

    async def replay_left_behind(self) -> int:
        """PostgreSQL tick: rows unhandled for longer than the replay grace, any account.

        Their account has not come back online anywhere to replay them (a process that died
        and whose accounts went nowhere).
        """
        if not self._pipelined:
            return 0
        return await self.replay(before=self._clock.now() - self._replay_grace)

    async def replay(
        self, *, account: tuple[str, str] | None = None, before: datetime | None = None
    ) -> int:
        """Run the handlers on stored messages whose effects never committed; return how many.

        ``account``: (platform, account id) only; ``before``: only rows received before then.
        Batches in flight in this process are never taken; on PostgreSQL rows another process
        is handling (locked) are skipped, and that process skips the ones taken here.
        """
        async with self._turn:
            return await self._replay(account, before)

    async def _replay(self, account: tuple[str, str] | None, before: datetime | None) -> int:
        total = 0
        while rows := await self._unhandled(account, before):
            # Handled like a live batch (claimed on PostgreSQL, retried, reloaded on failure).
            batch: list[tuple[InboundEvent, float]] = []
            stored: Stored = {}
            for pos, row in enumerate(rows):
                msg = _message_of(row)
                batch.append((msg, 0.0))
                stored[pos] = (self._roster.classify(msg), int(row["id"]))
            await self._handle_until_written(batch, stored)
            self._metrics.messages_replayed.inc(len(rows))
            total += len(rows)
        if total:
            log.warning("replayed %d stored message(s) whose handlers had not committed", total)
        return total

    async def _unhandled(
        self, account: tuple[str, str] | None, before: datetime | None
    ) -> list[RowMapping]:
        async def read() -> list[RowMapping]:
            async with self._engine.connect() as conn:
                return await message_store.unhandled(
                    conn,
                    limit=self._batch_size,
                    account=account,
                    received_before=before,
                    exclude=self._inflight,
                    skip_locked=self._pipelined,
                )

        return await self._until_done(read, "replay read")


def _store_error(exc: Exception) -> bool:
    # Everything SQLAlchemy raises from a statement (DBAPIError is a StatementError).
    return isinstance(exc, StatementError)


def _message_of(row: RowMapping) -> ChatMessage:
    """A stored message as the gateway delivered it, as far as the row keeps it.

    Segments are not stored: a replayed message without text is not known to be media-only.
    """
    return ChatMessage(
        platform=row["platform"],
        account_id=row["account_id"],
        chat_type=ChatType(row["chat_type"]),
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        sender_id=row["sender_id"],
        text=row["text"],
        sent_at=row["sent_at"],
        received_at=row["received_at"],
        sender_name=row["sender_name"],
        reply_to_message_id=row["reply_to_message_id"],
        mention_user_ids=tuple(row["mention_user_ids"] or ()),
        mention_all=bool(row["mention_all"]),
        is_self=bool(row["is_self"]),
        raw=row["raw"],
    )


def _no_nul(text: str) -> str:
    # PostgreSQL text cannot hold NUL; a stray one must not cost the whole message.
    return text.replace("\x00", "") if "\x00" in text else text
