"""The store goes away while events flow: nothing is dropped, nothing is stored twice.

Two outages, on the real app behind a real reverse WebSocket, with a fake OneBot flooding it:

- PostgreSQL stopped (``pg_ctl stop -m fast``) and started again on a dedicated instance of
  ``scripts/pg-test.sh``. The issue's figure is 30 s; the test keeps the server down for
  ``OUTAGE_S`` (6 s) at least, which exercises the same path (connections refused, writer
  backing off) and keeps the suite fast;
- SQLite locked by another connection holding ``BEGIN EXCLUSIVE`` for as long.

In both, intake buffers up to its bound (``queue_size`` + the writer's batch + two stored
batches), then the gateway stops reading its socket: the count of messages read stands still
below what the implementation sent, and the implementation's sends block once the socket
buffers are full. When the store is back, every message sent is stored exactly once and the
handlers' transaction for each has committed (none left ``handled = false``).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import text

from bot.app import create_app
from bot.clock import ManualClock
from bot.gateway.onebot import WS_PATH
from bot.keys import DISPATCHER, ENGINE, METRICS
from bot.store.questions import question_id_for
from sop.questions import QuestionEngine
from tests.conftest import REQUIRE_PG, make_config
from tests.fakes.onebot import FakeOneBot, counter, segs
from tests.faults.rig import (
    Bot,
    PgServer,
    Pusher,
    SqliteLock,
    count_rows,
    pg_bindir,
    until,
    until_still,
)

pytestmark = pytest.mark.integration

NOW = datetime(2024, 6, 10, 6, 20, tzinfo=UTC)
OB_TOKEN = "test-onebot-token"
QUEUE, BATCH = 40, 10
BOUND = QUEUE + 3 * BATCH + 1  # queue + writer's batch + two stored batches + one blocked put
OUTAGE_S = 6.0
WARMUP = 25


async def _bot(tmp_path: Path, url: str) -> Bot:
    cfg = make_config(
        tmp_path,
        bot={"data_dir": str(tmp_path), "database_url": url, "log_level": "WARNING"},
        intake={"queue_size": QUEUE, "batch_size": BATCH, "flush_interval": 0.01},
    )
    app = create_app(cfg, clock=ManualClock(NOW))
    server = TestServer(app)
    await server.start_server()
    return Bot(app, server)


async def _outage(
    bot: Bot,
    fake: FakeOneBot,
    down: Callable[[], Awaitable[None]],
    up: Callable[[], Awaitable[None]],
) -> None:
    await fake.connect_reverse(bot.url(WS_PATH))
    pusher = Pusher(fake, limit=WARMUP)
    pusher.start()
    await until(lambda: bot.stored() == WARMUP)
    assert await pusher.finish() == WARMUP

    loop = asyncio.get_running_loop()
    await down()
    down_at = loop.time()
    flood = Pusher(fake, first_id=WARMUP + 1)
    flood.start()
    # The gateway reads until intake is full, then stops reading: its count stands still.
    read = await until_still(bot.received)
    in_memory = read - bot.stored()
    assert 0 < in_memory <= BOUND, (read, bot.stored())
    # Once the socket buffers are full too, the implementation's send blocks.
    sent_while_down = await until_still(lambda: flood.sent)
    assert flood.blocked
    assert sent_while_down > in_memory  # the rest waits in the socket: not read, not dropped
    assert bot.received() == read
    await asyncio.sleep(max(0.0, OUTAGE_S - (loop.time() - down_at)))
    assert bot.received() == read

    await up()
    total = WARMUP + await flood.finish()
    await until(lambda: bot.stored() == total, limit=60)
    ids = await bot.message_ids()
    assert len(ids) == total
    assert sorted(map(int, ids)) == list(range(1, total + 1))
    assert bot.duplicates() == 0

    async def handled() -> None:  # the handlers' effects of every message committed too
        while await bot.unhandled():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(handled(), 30)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOneBot]:
    fb = FakeOneBot("777", token=OB_TOKEN)
    yield fb
    await fb.close()


@pytest.fixture
async def pg() -> AsyncIterator[PgServer]:
    if pg_bindir() is None and not REQUIRE_PG:
        pytest.skip("no PostgreSQL server binaries (scripts/pg-test.sh installs them as root)")
    # mktemp -d, as the script asks: its owner (postgres, when we are root) must reach it.
    server = PgServer(Path(tempfile.mkdtemp(prefix="sopbot-pg-fault-")))
    await server.start()
    yield server
    await server.stop()


@pytest.mark.postgres
@pytest.mark.timeout(120)
async def test_postgresql_restart_mid_flood_loses_and_duplicates_nothing(
    pg: PgServer, fake: FakeOneBot, tmp_path: Path
) -> None:
    """PostgreSQL down for seconds: bounded buffer, backpressure, then every event once."""
    bot = await _bot(tmp_path, pg.url)
    try:
        await _outage(bot, fake, pg.pause, pg.resume)
    finally:
        await pg.resume()  # no-op when it is up; the app's teardown flushes into it
        await fake.disconnect()
        await bot.server.close()


@pytest.mark.timeout(120)
async def test_sqlite_locked_by_another_writer_loses_and_duplicates_nothing(
    fake: FakeOneBot, tmp_path: Path
) -> None:
    """SQLite held by BEGIN EXCLUSIVE elsewhere: bounded buffer, backpressure, every event once."""
    path = tmp_path / "bot.db"
    bot = await _bot(tmp_path, f"sqlite+aiosqlite:///{path}")
    lock = SqliteLock(path)
    try:
        await _outage(bot, fake, lock.take, lock.release)
    finally:
        lock.release_now()
        await fake.disconnect()
        await bot.server.close()


# The handlers' transaction (question effects + messages marked handled) fails twice with a
# transient error (serialization failure) before it commits; nothing else does.
_FAIL_HANDLED_TWICE = (
    "CREATE SEQUENCE fault_seq",
    """CREATE FUNCTION fail_handled() RETURNS trigger AS $$
    BEGIN
        IF nextval('fault_seq') <= 2 THEN
            RAISE EXCEPTION 'injected: could not serialize access' USING ERRCODE = '40001';
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    "CREATE TRIGGER fail_handled BEFORE UPDATE OF handled ON message"
    " FOR EACH STATEMENT EXECUTE FUNCTION fail_handled()",
)


@pytest.mark.postgres
@pytest.mark.timeout(60)
async def test_a_failed_handler_transaction_is_run_again_from_the_store(
    db_url: str, fake: FakeOneBot, tmp_path: Path
) -> None:
    """The intake's second transaction fails after the question engine has taken the batch in:
    memory is reloaded from the store and the batch runs again, so the question is logged once,
    in the store and in memory, and the operator's later reply answers it."""
    if not db_url.startswith("postgresql"):
        pytest.skip("injects the failure with a PL/pgSQL trigger")
    bot = await _bot(tmp_path, db_url)
    try:
        async with bot.app[ENGINE].begin() as conn:
            for sql in _FAIL_HANDLED_TWICE:
                await conn.execute(text(sql))
        await fake.connect_reverse(bot.url(WS_PATH))
        await fake.push(
            fake.group_message(
                "请问这款奶粉什么时候发货？", group_id=5001, user_id=20001, message_id=1
            )
        )
        await until(lambda: bot.stored() == 1)

        async def handled() -> None:
            while await bot.unhandled():
                await asyncio.sleep(0.05)

        await asyncio.wait_for(handled(), 30)
        assert counter(bot.app[METRICS], "sopbot_intake_handler_retries_total") == 2
        assert await count_rows(db_url, "question") == 1
        engine: QuestionEngine = bot.app[DISPATCHER].deps["question_engine"]
        assert [q.id for q in engine.questions()] == [question_id_for(1)]

        reply = segs(("reply", {"id": "1"}), ("text", {"text": "今天下午发货"}))
        await fake.push(
            fake.group_message("", group_id=5001, user_id=9002, message_id=2, segments=reply)
        )
        await asyncio.wait_for(handled(), 30)
        answered = "status = 'answered' AND first_response_message_id = '2'"

        async def answered_once() -> None:
            while await count_rows(db_url, "question", answered) != 1:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(answered_once(), 30)
        assert await count_rows(db_url, "question") == 1
    finally:
        await fake.disconnect()
        await bot.server.close()
