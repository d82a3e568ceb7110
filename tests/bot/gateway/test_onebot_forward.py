"""Forward WebSocket: we connect to a fake NapCat server, and reconnect when it restarts."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.clock import ManualClock
from bot.events import AccountStatus, ChatMessage
from bot.gateway.onebot import Backoff, OneBotGateway
from bot.metrics import Metrics
from tests.fakes.onebot import FakeOneBot, RecordingSink, wait_until

pytestmark = pytest.mark.integration

TOKEN = "forward-token"
NOW = datetime(2024, 6, 10, 6, 20, tzinfo=UTC)


class Sleeps:
    """Injected sleep: records each backoff delay and waits only a token moment."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0.01)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOneBot]:
    bot = FakeOneBot("30001", token=TOKEN)
    yield bot
    await bot.close()


async def start(
    url: str, token: str = TOKEN, **options: Any
) -> tuple[OneBotGateway, RecordingSink, Sleeps]:
    sink, sleeps = RecordingSink(), Sleeps()
    gw = OneBotGateway(
        sink=sink,
        clock=ManualClock(NOW),
        metrics=Metrics(),
        access_token=token,
        mode="forward-ws",
        url=url,
        backoff=Backoff(base=0.5, cap=4.0, rng=random.Random(1)),
        sleep=sleeps,
        **options,
    )
    await gw.start()
    return gw, sink, sleeps


def statuses(sink: RecordingSink) -> list[tuple[bool, str]]:
    return [(s.online, s.reason) for s in sink.of(AccountStatus)]


async def test_forward_ws_identifies_account_and_carries_events_and_actions(
    fake: FakeOneBot,
) -> None:
    """The lifecycle frame names the account; events flow in; actions go out with echo."""
    url = await fake.serve()
    gw, sink, _ = await start(url)
    try:
        await wait_until(lambda: gw.online_accounts() == ["30001"])
        assert gw.routes() == []
        await fake.push(fake.group_message("你好", group_id=6001))
        (msg,) = await sink.wait_count(ChatMessage, 1)
        assert (msg.account_id, msg.chat_id, msg.text) == ("30001", "6001", "你好")
        sent = await gw.send_group_text("6001", "收到")
        assert sent.account_id == "30001"
        assert fake.calls_of("send_group_msg")[0]["params"]["group_id"] == 6001
    finally:
        await gw.stop()
    await wait_until(lambda: not fake.connected)


async def test_implementation_restart_is_followed_by_a_reconnect(fake: FakeOneBot) -> None:
    """Server goes away and comes back on the same port: offline, backoff, online again."""
    url = await fake.serve()
    gw, sink, sleeps = await start(url)
    try:
        await wait_until(lambda: fake.handshakes == 1 and gw.online_accounts() == ["30001"])
        await fake.stop_server()
        await wait_until(lambda: len(sleeps.delays) >= 3)  # refused while it is down
        await fake.serve()
        await wait_until(lambda: fake.handshakes == 2 and gw.online_accounts() == ["30001"])
        assert statuses(sink) == [
            (True, "connected"),
            (False, "disconnected"),
            (True, "connected"),
        ]
        # capped exponential growth with jitter while refused
        assert all(0.25 <= d < 4.0 for d in sleeps.delays)
        assert sleeps.delays[2] > sleeps.delays[0]
        await fake.push(fake.group_message("重连后", message_id=5))
        (msg,) = await sink.wait_count(ChatMessage, 1)
        assert msg.text == "重连后"
        await gw.send_private_text("20001", "ok")
    finally:
        await gw.stop()


async def test_wrong_token_keeps_backing_off(fake: FakeOneBot) -> None:
    """A 401 from the implementation is not fatal: the client retries with growing delays."""
    url = await fake.serve()
    gw, _, sleeps = await start(url, token="wrong")
    try:
        await wait_until(lambda: len(sleeps.delays) >= 4)
        assert fake.handshakes == 0
        assert gw.online_accounts() == []
        assert sleeps.delays[3] > sleeps.delays[0]
    finally:
        await gw.stop()


async def test_backfill_after_reconnect_pushes_history_to_the_sink(fake: FakeOneBot) -> None:
    """With backfill_count set, a returning account's known groups are backfilled."""
    url = await fake.serve()
    gw, sink, _ = await start(url, backfill_count=5)
    try:
        await wait_until(lambda: gw.online_accounts() == ["30001"])
        await fake.push(fake.group_message("live", group_id=6001, message_id=1))
        await sink.wait_count(ChatMessage, 1)
        fake.results["get_group_msg_history"] = {
            "messages": [fake.group_message("missed", group_id=6001, message_id=2)]
        }
        await fake.restart()
        messages = await sink.wait_count(ChatMessage, 2)
        assert [m.text for m in messages] == ["live", "missed"]
        call = fake.calls_of("get_group_msg_history")[0]
        assert call["params"] == {"group_id": 6001, "count": 5}
    finally:
        await gw.stop()
