"""Intake: batched idempotent writes, handlers fed new messages once, backpressure, recalls."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import ManualClock
from bot.dispatch import Dispatcher, Router
from bot.events import AccountStatus, ChatMessage, ChatType, MessageRecall
from bot.intake import BatchEnd, Intake, StoredMessage
from bot.metrics import Metrics
from bot.roster import ActorRole, Roster
from bot.store import messages as message_store
from bot.store.db import session_factory
from bot.store.models import AccountState, Message
from tests.conftest import make_config

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def msg(
    n: int, sender: str = "12345", chat: str = "5001", text: str = "请问几点发货？"
) -> ChatMessage:
    return ChatMessage(
        platform="onebot11",
        account_id="777",
        chat_type=ChatType.GROUP,
        chat_id=chat,
        message_id=str(n),
        sender_id=sender,
        text=text,
        sent_at=T0 + timedelta(seconds=n),
        received_at=T0 + timedelta(seconds=n),
    )


def build(engine: AsyncEngine, tmp_path: Path, router: Router, **kw: object) -> Intake:
    metrics = Metrics()
    dispatcher = Dispatcher(metrics)
    dispatcher.include(router)
    return Intake(
        engine=engine,
        sessions=session_factory(engine),
        dispatcher=dispatcher,
        roster=Roster.from_config(make_config(tmp_path)),
        clock=ManualClock(T0),
        metrics=metrics,
        **kw,  # type: ignore[arg-type]
    )


async def test_messages_stored_once_and_handled_once(engine: AsyncEngine, tmp_path: Path) -> None:
    """Re-delivered messages (same batch or later) are stored once and handled once."""
    router = Router("rec")
    seen: list[StoredMessage] = []

    @router.on(StoredMessage)
    async def record(event: StoredMessage) -> None:
        seen.append(event)

    intake = build(engine, tmp_path, router, batch_size=50)
    await intake.start()
    for n in range(100):
        await intake.put(msg(n))
    await intake.put(msg(3))  # duplicate within a later batch
    await intake.put(msg(3))
    await intake.drain()
    for n in range(95, 105):  # overlap with what is stored (backfill after reconnect)
        await intake.put(msg(n))
    await intake.stop()

    async with engine.connect() as conn:
        assert await message_store.count_messages(conn) == 105
        # The tally the status page reads counts each stored message once, re-deliveries not.
        by_role = await conn.execute(
            text("SELECT actor_role, count(*) FROM message GROUP BY actor_role")
        )
        tally = await message_store.tally_by_role(conn)
        assert tally == dict(by_role.all())
        assert sum(tally.values()) == 105
    assert len(seen) == 105
    assert len({s.msg.message_id for s in seen}) == 105
    assert [s.msg.message_id for s in seen[:3]] == ["0", "1", "2"]


async def test_roles_resolved_and_stored(engine: AsyncEngine, tmp_path: Path) -> None:
    """Each stored row carries the role and operator resolved from the roster."""
    router = Router("noop")
    intake = build(engine, tmp_path, router)
    await intake.start()
    await intake.put(msg(1, sender="12345"))
    await intake.put(msg(2, sender="9002", text="您好，今天下午发货"))
    await intake.put(msg(3, sender="9999", text="自动回复"))
    await intake.stop()
    async with session_factory(engine)() as s:
        rows = (await s.exec(select(Message).order_by(col(Message.message_id)))).all()
    roles = [(r.actor_role, r.operator_id) for r in rows]
    assert roles == [
        (ActorRole.CUSTOMER.value, None),
        (ActorRole.OPERATOR.value, "li"),
        (ActorRole.BOT.value, "helper-bot"),
    ]
    assert rows[0].sent_at == T0 + timedelta(seconds=1)
    assert rows[0].sent_at.tzinfo is not None


async def test_recall_and_account_status(engine: AsyncEngine, tmp_path: Path) -> None:
    """Recalls mark the stored message; account status is upserted; handlers see both."""
    router = Router("rec")
    kinds: list[str] = []

    @router.on(object, lambda e: not isinstance(e, BatchEnd))
    async def any_event(event: object) -> None:
        kinds.append(type(event).__name__)

    intake = build(engine, tmp_path, router)
    await intake.start()
    await intake.put(AccountStatus("onebot11", "777", True, T0))
    await intake.put(msg(1))
    await intake.put(
        MessageRecall(
            "onebot11",
            "777",
            ChatType.GROUP,
            "5001",
            "1",
            "12345",
            "12345",
            T0 + timedelta(minutes=1),
        )
    )
    await intake.put(AccountStatus("onebot11", "777", False, T0 + timedelta(minutes=2), "hb"))
    await intake.stop()
    assert kinds == ["AccountStatus", "StoredMessage", "MessageRecall", "AccountStatus"]
    async with session_factory(engine)() as s:
        m = (await s.exec(select(Message))).one()
        a = (await s.exec(select(AccountState))).one()
    assert m.recalled_at == T0 + timedelta(minutes=1)
    assert (a.online, a.reason) == (False, "hb")


async def test_full_queue_applies_backpressure(engine: AsyncEngine, tmp_path: Path) -> None:
    """With the writer stopped, put() blocks once the queue is full instead of dropping."""
    router = Router("noop")
    intake = build(engine, tmp_path, router, queue_size=10)
    for n in range(10):
        await intake.put(msg(n))
    blocked = asyncio.create_task(intake.put(msg(10)))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    await intake.start()
    await asyncio.wait_for(blocked, 10)
    await intake.stop()
    async with engine.connect() as conn:
        assert await message_store.count_messages(conn) == 11


async def test_stop_while_a_batch_lingers_is_not_swallowed(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A cancel that lands as the lingering batch fills must stop the writer.

    Python 3.11's ``asyncio.wait_for`` returns the result instead of raising when the awaited
    thing finished in the same loop pass as the cancel: the writer then ran on, and ``stop()``
    (SIGTERM, test teardown) waited for it forever.
    """
    intake = build(engine, tmp_path, Router("noop"), batch_size=2, flush_interval=60.0)
    await intake.start()
    await intake.put(msg(1))
    for _ in range(10):  # let the writer take the first event and linger for the second
        await asyncio.sleep(0)
    writer = intake._tasks[0]
    await intake.put(msg(2))  # fills the batch: wakes the lingering writer ...
    writer.cancel()  # ... in the same loop pass as the cancel
    done, _ = await asyncio.wait({writer}, timeout=10)  # a bound on a hang, not a schedule
    assert writer in done
    assert writer.cancelled()


def _unhandled_rows(n: int, *, account: str = "777", first: int = 0) -> list[tuple[object, ...]]:
    """Message rows as the intake's first transaction writes them (``handled`` false)."""
    base: dict[str, object] = {
        "platform": "onebot11",
        "account_id": account,
        "chat_type": "group",
        "chat_id": "5001",
        "sender_id": "12345",
        "sender_name": "",
        "actor_role": "customer",
        "operator_id": None,
        "is_self": False,
        "text": "在吗",
        "reply_to_message_id": None,
        "mention_user_ids": [],
        "mention_all": False,
        "sent_at": T0,
        "received_at": T0,
        "recalled_at": None,
        "raw": None,
        "handled": False,
    }
    return [
        tuple({**base, "message_id": str(i)}[c] for c in message_store.COLUMNS)
        for i in range(first, first + n)
    ]


async def _unhandled(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await message_store.unhandled(conn, limit=1_000)
    return [r["message_id"] for r in rows]


async def test_a_store_error_in_a_handler_reloads_memory_and_runs_the_batch_again(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """The handlers' transaction fails once: their memory is reloaded and the batch runs again,
    so memory and store end up with every message once and nothing is left unhandled."""
    router = Router("flaky")
    seen: list[str] = []
    reloads: list[int] = []
    failures = [OperationalError("UPDATE question …", {}, Exception("server closed"))]

    @router.on(StoredMessage)
    async def record(event: StoredMessage) -> None:
        seen.append(event.msg.message_id)

    @router.on(BatchEnd)
    async def write(event: BatchEnd) -> None:
        if failures:
            raise failures.pop()

    async def reload() -> None:
        seen.clear()  # memory as the store has it: nothing handled yet
        reloads.append(1)

    intake = build(engine, tmp_path, router, batch_size=50)
    intake.add_resync(reload)
    await intake.start()
    for n in range(20):
        await intake.put(msg(n))
    await intake.stop()

    assert reloads == [1]
    assert sorted(seen, key=int) == [str(n) for n in range(20)]
    assert await _unhandled(engine) == []
    assert intake._metrics.intake_handler_retries._value.get() == 1


async def test_writes_the_store_refuses_cost_only_the_event_that_made_them(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A handler's write refused for its content (an integrity error: running it again cannot
    help) is isolated: the batch is run again one event per transaction, only that event's
    effects are dropped (counted), and every message ends up handled."""
    router = Router("picky")
    committed: list[str] = []
    pending: list[str] = []

    @router.on(StoredMessage)
    async def record(event: StoredMessage) -> None:
        pending.append(event.msg.message_id)

    @router.on(BatchEnd)
    async def write(event: BatchEnd, session: AsyncSession) -> None:
        batch = list(pending)
        pending.clear()
        if "3" in batch:
            raise IntegrityError("INSERT INTO question …", {}, Exception("CHECK constraint"))

        def done(_session: object) -> None:
            committed.extend(batch)

        sa_event.listen(session.sync_session, "after_commit", done, once=True)

    async def reload() -> None:
        pending.clear()

    intake = build(engine, tmp_path, router, batch_size=50)
    intake.add_resync(reload)
    await intake.start()
    for n in range(6):
        await intake.put(msg(n))
    await intake.stop()

    assert sorted(committed) == ["0", "1", "2", "4", "5"]
    assert await _unhandled(engine) == []
    rejected = intake._metrics.events_rejected.labels("onebot11", "handler_refused")
    assert rejected._value.get() == 1


async def test_replay_runs_the_handlers_a_crash_left_unfinished(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Killed between its two transactions (messages committed, handlers' effects not), the
    next process's ``replay`` feeds those messages to its handlers, once."""
    stuck = Router("stuck")
    entered = asyncio.Event()

    @stuck.on(BatchEnd)
    async def hang(event: BatchEnd) -> None:
        entered.set()
        await asyncio.Event().wait()  # the process dies here

    first = build(engine, tmp_path, stuck, batch_size=50)
    await first.start()
    for n in range(5):
        await first.put(msg(n))
    await asyncio.wait_for(entered.wait(), 10)
    for task in first._tasks:  # no flush, no commit: what SIGKILL leaves
        task.cancel()
    await asyncio.gather(*first._tasks, return_exceptions=True)
    assert await _unhandled(engine) == ["0", "1", "2", "3", "4"]

    router = Router("rec")
    seen: list[tuple[str, ActorRole, int]] = []

    @router.on(StoredMessage)
    async def record(event: StoredMessage) -> None:
        seen.append((event.msg.text, event.actor.role, event.row_id))

    second = build(engine, tmp_path, router)
    assert await second.replay() == 5
    assert [s[0] for s in seen] == ["请问几点发货？"] * 5
    assert {s[1] for s in seen} == {ActorRole.CUSTOMER}
    assert await _unhandled(engine) == []
    assert await second.replay() == 0  # handled once
    assert len(seen) == 5


async def test_replay_by_account_and_age_and_never_a_batch_in_flight(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """What a replay takes: one account's rows (it came online here), rows older than the grace
    (the PostgreSQL tick: nobody came back for them), never this process's batches in flight."""
    rows = _unhandled_rows(3) + _unhandled_rows(2, account="888", first=10)
    async with engine.begin() as conn:
        ids = sorted((await message_store.insert_messages(conn, rows)).values())
        got = await message_store.unhandled(conn, limit=9, exclude=ids[:1])
        assert [r["id"] for r in got] == ids[1:]
    router = Router("rec")
    seen: list[str] = []

    @router.on(StoredMessage)
    async def record(event: StoredMessage) -> None:
        seen.append(event.msg.message_id)

    intake = build(engine, tmp_path, router, replay_grace=30.0)
    assert await intake.replay(account=("onebot11", "888")) == 2
    assert seen == ["10", "11"]
    assert await intake.replay(before=T0) == 0  # received at T0: not before it
    assert await intake.replay(before=T0 + timedelta(seconds=1)) == 3
    assert seen == ["10", "11", "0", "1", "2"]
    if engine.dialect.name == "sqlite":
        assert await intake.replay_left_behind() == 0  # one process: the start replays all


async def test_an_account_coming_online_replays_its_rows_before_its_new_messages(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """PostgreSQL: a dead process's unhandled rows are replayed where their account reconnects,
    ahead of what it delivers now; other accounts' rows are left to theirs."""
    if engine.dialect.name == "sqlite":
        pytest.skip("one process per SQLite store: its start replays everything")
    async with engine.begin() as conn:
        await message_store.insert_messages(
            conn, _unhandled_rows(2, first=1) + _unhandled_rows(1, account="888", first=10)
        )
    router = Router("rec")
    seen: list[str] = []

    @router.on(StoredMessage)
    async def record(event: StoredMessage) -> None:
        seen.append(event.msg.message_id)

    intake = build(engine, tmp_path, router)
    await intake.start()
    assert await intake.replay_at_start() == 0
    await intake.put(AccountStatus("onebot11", "777", True, T0))
    await intake.put(msg(3))
    await intake.stop()
    assert seen == ["1", "2", "3"]
    assert await _unhandled(engine) == ["10"]


async def test_claim_skips_rows_another_process_already_handled(engine: AsyncEngine) -> None:
    rows = _unhandled_rows(4)
    async with engine.begin() as conn:
        ids = sorted((await message_store.insert_messages(conn, rows)).values())
        await message_store.mark_handled(conn, ids[:2])
    async with engine.begin() as conn:
        assert await message_store.claim_unhandled(conn, ids) == set(ids[2:])
