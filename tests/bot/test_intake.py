"""Intake: batched idempotent writes, handlers fed new messages once, backpressure, recalls."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

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
