"""A row the database refuses must not stall intake: it is isolated, counted and dropped.

Retrying a connection failure is right; retrying a row the database will never take (an id
longer than its column, on PostgreSQL) would hold every later event behind it forever. The
refused event is counted as ``store_refused``; its batch neighbours are stored and handled.
A NUL in customer text is stripped, not refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import ManualClock
from bot.dispatch import Dispatcher, Router
from bot.events import ChatMessage, ChatType
from bot.intake import Intake, StoredMessage
from bot.metrics import Metrics
from bot.roster import Roster
from bot.store.db import session_factory
from tests.conftest import make_config
from tests.fakes.onebot import counter

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def _msg(message_id: str, text_: str = "你好") -> ChatMessage:
    return ChatMessage(
        platform="onebot11",
        account_id="777",
        chat_type=ChatType.GROUP,
        chat_id="5001",
        message_id=message_id,
        sender_id="20001",
        text=text_,
        sent_at=T0,
        received_at=T0 + timedelta(seconds=1),
    )


async def test_refused_row_is_dropped_alone_and_intake_goes_on(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A poison row in a batch costs that row only; later batches flow; NUL text is kept."""
    metrics = Metrics()
    router = Router("seen")
    seen: list[str] = []

    @router.on(StoredMessage)
    async def note(event: StoredMessage) -> None:
        seen.append(event.msg.message_id)

    dispatcher = Dispatcher(metrics)
    dispatcher.include(router)
    intake = Intake(
        engine=engine,
        sessions=session_factory(engine),
        dispatcher=dispatcher,
        roster=Roster.from_config(make_config(tmp_path)),
        clock=ManualClock(T0),
        metrics=metrics,
        batch_size=50,
        flush_interval=0.05,
    )
    await intake.start()
    try:
        poison = "9" * 300  # the message_id column holds 128: PostgreSQL refuses the row
        for event in (_msg("1"), _msg(poison), _msg("2", "a\x00b"), _msg("3")):
            await intake.put(event)
        await intake.drain()
        for n in range(4, 8):
            await intake.put(_msg(str(n)))
        await intake.drain()
    finally:
        await intake.stop()

    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT message_id, text FROM message"))
        rows = {str(r[0]): str(r[1]) for r in result}
    good = [str(n) for n in range(1, 8)]
    refused = counter(
        metrics, "sopbot_events_rejected_total", platform="onebot11", reason="store_refused"
    )
    if engine.dialect.name == "postgresql":
        assert sorted(rows) == good
        assert refused == 1
    else:  # SQLite does not enforce lengths: the long id is simply stored
        assert sorted(rows) == sorted([*good, poison])
        assert refused == 0
    assert rows["2"] == "ab"
    assert [s for s in seen if s != poison] == good
