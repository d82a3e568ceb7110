"""Matterbridge adapter: /api/stream reading and reconnects, synthesized ids, POST /api/message."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.clock import ManualClock
from bot.config_wecom import MatterbridgeSection
from bot.errors import GatewayError, NetworkError
from bot.events import AccountStatus, ChatMessage, ChatType, SegmentType
from bot.gateway.backoff import Backoff
from bot.gateway.matterbridge import MatterbridgeGateway, synthesized_id
from bot.gateway.matterbridge.gateway import parse_timestamp
from bot.metrics import Metrics
from tests.fakes.matterbridge import INCOMING_SAMPLE, FakeMatterbridge
from tests.fakes.onebot import RecordingSink, counter

pytestmark = pytest.mark.integration

NOW = datetime(2024, 6, 10, 6, 20, tzinfo=UTC)
TOKEN = "mb-token"


class RecordedSleep:
    """Backoff sleeps are recorded; they return at once while ``open``, else block."""

    def __init__(self, open_: bool = True) -> None:
        self.calls: list[float] = []
        self.called = asyncio.Event()
        self.open = asyncio.Event()
        if open_:
            self.open.set()

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.called.set()
        await self.open.wait()


class Rig:
    def __init__(self, token: str = TOKEN, gw_token: str = TOKEN, open_: bool = True) -> None:
        self.fake = FakeMatterbridge(token=token)
        self.sink = RecordingSink()
        self.metrics = Metrics()
        self.sleep = RecordedSleep(open_)
        self.gw_token = gw_token
        self.gw: MatterbridgeGateway

    async def start(self) -> None:
        url = await self.fake.start()
        self.gw = MatterbridgeGateway(
            url=url,
            gateway="mygateway",
            token=self.gw_token,
            sink=self.sink,
            clock=ManualClock(NOW),
            metrics=self.metrics,
            sleep=self.sleep,
            backoff=Backoff(base=1.0, cap=8.0),
        )
        await self.gw.start()

    async def stop(self) -> None:
        await self.gw.stop()
        await self.fake.close()

    async def messages(self, n: int) -> list[ChatMessage]:
        await self.sink.wait_for(
            lambda ev: len([e for e in ev if isinstance(e, ChatMessage)]) >= n
        )
        return self.sink.of(ChatMessage)

    async def online(self, value: bool, count: int = 1) -> None:
        def done(events: list[Any]) -> bool:
            return (
                len([e for e in events if isinstance(e, AccountStatus) and e.online is value])
                >= count
            )

        await self.sink.wait_for(done)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    await r.start()
    yield r
    await r.stop()


async def test_stream_message_mapping(rig: Rig) -> None:
    """The api.yaml sample becomes a group message with a synthesized id and no reply link."""
    await rig.online(True)
    rig.fake.push(INCOMING_SAMPLE)
    [msg] = await rig.messages(1)
    assert msg.platform == "matterbridge"
    assert msg.account_id == "mygateway"
    assert msg.chat_type is ChatType.GROUP
    assert msg.chat_id == "mygateway:mygreatchannel"
    assert (msg.sender_id, msg.sender_name) == ("U4MCXJKNC", "alice")
    assert msg.text == "Testing, testing, 1-2-3."
    parts = "mygateway|mygreatchannel|U4MCXJKNC|2018-11-04T19:53:33.0307+00:00|"
    expected = hashlib.sha256((parts + msg.text).encode()).hexdigest()[:40]
    assert msg.message_id == expected
    assert msg.reply_to_message_id is None  # parent_id is the source platform's, unusable
    assert msg.sent_at == datetime(2018, 11, 4, 19, 53, 33, 30700, tzinfo=UTC)
    assert msg.is_self is False
    assert rig.gw.online_accounts() == ["mygateway"]


async def test_redelivery_has_same_dedup_key(rig: Rig) -> None:
    """The same message seen twice (e.g. across a reconnect) maps to one dedup key."""
    rig.fake.push(INCOMING_SAMPLE)
    rig.fake.push(dict(INCOMING_SAMPLE))
    first, second = await rig.messages(2)
    assert first.dedup_key == second.dedup_key


async def test_mentions_resolve_to_known_senders_only(rig: Rig) -> None:
    """``@alice`` links to her user id once she has spoken in that chat; unknown names do not."""
    rig.fake.push(INCOMING_SAMPLE)
    reply = {
        **INCOMING_SAMPLE,
        "userid": "U0GUIDE",
        "username": "guide",
        "text": "@alice 好的 @bob",
    }
    rig.fake.push(reply)
    _, answer = await rig.messages(2)
    assert answer.mention_user_ids == ("U4MCXJKNC",)
    assert [s.type for s in answer.segments] == [SegmentType.TEXT, SegmentType.MENTION]


async def test_non_message_events_and_bad_lines_skipped(rig: Rig) -> None:
    """join_leave / typing events are ignored; a non-JSON line is counted; the stream goes on."""
    rig.fake.push({**INCOMING_SAMPLE, "event": "join_leave", "text": "alice joined"})
    rig.fake.push({**INCOMING_SAMPLE, "event": "user_typing", "text": ""})
    rig.fake.push(b"{not json\n")
    rig.fake.push({**INCOMING_SAMPLE, "text": "still here"})
    [msg] = await rig.messages(1)
    assert msg.text == "still here"
    assert (
        counter(
            rig.metrics, "sopbot_events_rejected_total", platform="matterbridge", reason="bad_json"
        )
        == 1
    )


async def test_reconnects_with_backoff_after_stream_ends(rig: Rig) -> None:
    """A dropped stream → offline, a backoff sleep, a new stream → online again."""
    await rig.online(True)
    rig.fake.drop_streams()
    await rig.online(False)
    await rig.online(True, count=2)
    assert rig.fake.connections == 2
    assert len(rig.sleep.calls) == 1
    assert 0.5 <= rig.sleep.calls[0] <= 1.0
    rig.fake.push(INCOMING_SAMPLE)
    await rig.messages(1)


async def test_wrong_token_refused_and_backs_off() -> None:
    """A wrong Bearer token is refused (401); the reader backs off instead of spinning."""
    r = Rig(gw_token="wrong", open_=False)
    await r.start()
    try:
        await asyncio.wait_for(r.sleep.called.wait(), 3.0)  # a guard, not a schedule
        assert r.fake.refused == 1
        assert r.fake.connections == 0
        assert r.gw.online_accounts() == []
    finally:
        await r.stop()


async def test_post_message(rig: Rig) -> None:
    """send_group_text POSTs {text, username, gateway, event} with the token; id from the echo."""
    sent = await rig.gw.send_group_text("mygateway", "大家好")
    assert rig.fake.posted == [
        {"text": "大家好", "username": "sopbot", "gateway": "mygateway", "event": ""}
    ]
    ts = "2024-06-10T14:20:01.123456789+08:00"
    assert sent.message_id == synthesized_id("mygateway", "api", "sopbot", ts, "大家好")
    await rig.gw.send_group_text("mygateway:mygreatchannel", "again")
    with pytest.raises(GatewayError):
        await rig.gw.send_group_text("othergateway", "x")
    with pytest.raises(GatewayError):
        await rig.gw.send_private_text("U4MCXJKNC", "x")


async def test_post_refused_is_network_error() -> None:
    """A 401 on POST /api/message is a NetworkError and counted as a failed send."""
    r = Rig(gw_token="wrong", open_=False)
    await r.start()
    try:
        with pytest.raises(NetworkError):
            await r.gw.send_group_text("mygateway", "x")
        assert counter(r.metrics, "sopbot_sends_failed_total", platform="matterbridge") == 1
    finally:
        await r.stop()


def test_timestamps() -> None:
    """RFC 3339 with nanoseconds, epoch seconds, garbage and the far future."""
    assert parse_timestamp("2024-06-10T14:20:00.123456789+08:00", NOW) == datetime(
        2024, 6, 10, 6, 20, 0, 123456, tzinfo=UTC
    )
    assert parse_timestamp("1541361213.030700", NOW) == datetime.fromtimestamp(
        1541361213.0307, UTC
    )
    assert parse_timestamp("yesterday", NOW) == NOW
    assert parse_timestamp("2030-01-01T00:00:00Z", NOW) == NOW


def test_from_config() -> None:
    """[gateway.matterbridge] builds the adapter; enabling it without a gateway name fails."""
    section = MatterbridgeSection(enabled=True, gateway="gw1", token="t")
    gw = MatterbridgeGateway.from_config(
        section, sink=RecordingSink(), clock=ManualClock(NOW), metrics=Metrics()
    )
    assert (gw.platform, gw.gateway, gw.routes()) == ("matterbridge", "gw1", [])
    with pytest.raises(ValueError, match="gateway"):
        MatterbridgeSection(enabled=True)
