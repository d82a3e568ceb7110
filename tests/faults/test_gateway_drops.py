"""Gateway connections drop mid-stream: the link comes back and the gap is filled, once.

- forward WS (we dial the implementation): the implementation goes away; the gateway retries
  with capped, jittered backoff until it is back, then asks ``get_group_msg_history`` for each
  group it knows and stores what it missed (overlap with stored messages is skipped);
- reverse WS (the implementation dials us): it drops and reconnects; the endpoint accepts the
  same account again and backfills the same way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bot.app import create_app
from bot.clock import ManualClock
from bot.gateway.onebot import WS_PATH
from bot.keys import METRICS
from tests.conftest import make_config
from tests.fakes.onebot import FakeOneBot, counter
from tests.faults.rig import Bot, until

pytestmark = pytest.mark.integration

NOW = datetime(2024, 6, 10, 6, 20, tzinfo=UTC)
OB_TOKEN = "test-onebot-token"
GROUP = 5001


async def _bot(tmp_path: Path, db_url: str, **onebot: Any) -> Bot:
    cfg = make_config(
        tmp_path,
        bot={"data_dir": str(tmp_path), "database_url": db_url},
        gateway={"onebot": {"access_token": OB_TOKEN, **onebot}},
    )
    app = create_app(cfg, clock=ManualClock(NOW))
    server = TestServer(app)
    await server.start_server()
    return Bot(app, server)


def _online(bot: Bot) -> float:
    return counter(bot.app[METRICS], "sopbot_connected_accounts", platform="onebot11")


def _msg(fake: FakeOneBot, n: int) -> dict[str, Any]:
    return fake.group_message(f"消息{n}", group_id=GROUP, user_id=20001, message_id=n)


async def _stored_once(bot: Bot, expected: int) -> None:
    await until(lambda: bot.stored() == expected)
    ids = await bot.message_ids()
    assert sorted(map(int, ids)) == list(range(1, expected + 1))


@pytest.fixture
async def fake() -> AsyncIterator[FakeOneBot]:
    fb = FakeOneBot("777", token=OB_TOKEN)
    yield fb
    await fb.close()


async def test_forward_ws_reconnects_with_backoff_and_backfills_the_gap(
    db_url: str, tmp_path: Path, fake: FakeOneBot, caplog: pytest.LogCaptureFixture
) -> None:
    """Implementation down, then back: retries back off, history fills the gap, no duplicate."""
    url = await fake.serve()
    bot = await _bot(tmp_path, db_url, mode="forward-ws", url=url, reconnect_max_delay=0.4)
    try:
        await until(lambda: _online(bot) == 1)
        await fake.push(*(_msg(fake, n) for n in range(1, 6)))
        await _stored_once(bot, 5)

        caplog.set_level(logging.INFO, logger="bot.gateway.onebot.client")
        await fake.stop_server()
        await until(lambda: _online(bot) == 0)
        # Messages 6..8 happen while we are away; the implementation keeps them in history,
        # together with 4 and 5, which we already have.
        fake.results["get_group_msg_history"] = {"messages": [_msg(fake, n) for n in range(4, 9)]}
        await until(lambda: sum("reconnecting" in r.getMessage() for r in caplog.records) >= 3)
        await fake.serve()
        await until(lambda: _online(bot) == 1)
        await fake.push(_msg(fake, 9))
        await _stored_once(bot, 9)

        assert fake.handshakes == 2
        (history,) = fake.calls_of("get_group_msg_history")
        assert history["params"] == {"group_id": GROUP, "count": 20}
        assert bot.duplicates() == 2  # 4 and 5 came back in the history and were skipped
        retries = [r for r in caplog.records if "reconnecting" in r.getMessage()]
        assert len(retries) >= 3
        delays = [float(re.findall(r"in ([0-9.]+)s", r.getMessage())[0]) for r in retries]
        assert all(0 < d <= 0.4 for d in delays), delays  # capped by reconnect_max_delay
    finally:
        await fake.disconnect()
        await bot.server.close()


async def test_reverse_ws_implementation_reconnects_and_gap_is_backfilled(
    db_url: str, tmp_path: Path, fake: FakeOneBot
) -> None:
    """The implementation drops and dials again: accepted as the same account, gap backfilled."""
    bot = await _bot(tmp_path, db_url)
    try:
        await fake.connect_reverse(bot.url(WS_PATH))
        await until(lambda: _online(bot) == 1)
        await fake.push(*(_msg(fake, n) for n in range(1, 4)))
        await _stored_once(bot, 3)

        await fake.disconnect()
        await until(lambda: _online(bot) == 0)
        fake.results["get_group_msg_history"] = {"messages": [_msg(fake, n) for n in range(2, 7)]}
        await fake.connect_reverse(bot.url(WS_PATH))
        await until(lambda: _online(bot) == 1)
        await fake.push(_msg(fake, 7))
        await _stored_once(bot, 7)
        assert bot.duplicates() == 2
        assert len(fake.calls_of("get_group_msg_history")) == 1
    finally:
        await fake.disconnect()
        await bot.server.close()
