"""Command answers are outbox rows committed with the batch: a batch that runs again answers once,
the outbox is kicked only after the commit, and the gateway is never awaited inside the batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.clock import ManualClock
from bot.commands import CommandRegistry
from bot.dispatch import Dispatcher, Router
from bot.events import ChatMessage, ChatType
from bot.intake import BatchEnd, Intake
from bot.metrics import Metrics
from bot.roster import Roster
from bot.store.db import session_factory
from bot.store.models import Outbox
from handlers import commands
from tests.conftest import make_config

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


class NoGateway:
    """Any direct send fails the test: answers must go through the outbox."""

    async def send_private_text(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("command answered inside the intake batch")


def private(message_id: str, sender: str, text: str) -> ChatMessage:
    return ChatMessage(
        platform="onebot11",
        account_id="777",
        chat_type=ChatType.PRIVATE,
        chat_id=sender,
        message_id=message_id,
        sender_id=sender,
        text=text,
        sent_at=T0,
        received_at=T0,
    )


async def test_answer_is_queued_once_and_kicked_after_the_commit(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path)
    failures = [OperationalError("UPDATE question …", {}, Exception("server closed"))]
    kicks: list[int] = []
    flaky = Router("flaky")

    @flaky.on(BatchEnd)
    async def fail_once(event: BatchEnd) -> None:
        if failures:
            raise failures.pop()

    async def kick() -> None:
        kicks.append(1)

    metrics = Metrics()
    dispatcher = Dispatcher(
        metrics,
        commands=CommandRegistry(commands.COMMANDS),
        gateway=NoGateway(),
        cfg=cfg,
        clock=ManualClock(T0),
        outbox_kick=kick,
    )
    dispatcher.include(commands.router, flaky)
    intake = Intake(
        engine=engine,
        sessions=session_factory(engine),
        dispatcher=dispatcher,
        roster=Roster.from_config(cfg),
        clock=ManualClock(T0),
        metrics=metrics,
    )
    await intake.start()
    await intake.put(private("41", "9002", "帮助"))  # li, an operator
    await intake.put(private("42", "20001", "帮助"))  # a customer: not a command
    await intake.put(private("43", "9001", "菜单"))  # sup, in the same batch
    await intake.stop()

    async with engine.connect() as conn:
        rows = (await conn.execute(select(Outbox).order_by(Outbox.id))).all()  # type: ignore[arg-type]
    assert [(r.idempotency_key, r.kind, r.recipient_id) for r in rows] == [
        ("cmd:onebot11:777:41", "command_reply", "li"),
        ("cmd:onebot11:777:43", "command_reply", "sup"),
    ]
    assert rows[0].payload["to"] == ["onebot11", "777", "9002"]
    assert "帮助" in rows[0].payload["text"]
    assert (rows[0].due_at, rows[0].window_end) == (T0, T0 + timedelta(minutes=10))
    assert intake._metrics.intake_handler_retries._value.get() == 1
    assert kicks == [1]  # the failed attempt kicked nothing; the commit kicked once
