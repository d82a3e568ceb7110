"""Reverse WebSocket: a fake NapCat connects to our aiohttp endpoint over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.clock import ManualClock
from bot.errors import ActionFailed, ApiTimeout, NetworkError
from bot.events import AccountStatus, ChatMessage, MemberChange, MessageRecall
from bot.gateway.base import Gateway
from bot.gateway.onebot import WS_PATH, OneBotGateway
from bot.metrics import Metrics
from tests.fakes.onebot import FakeOneBot, RecordingSink, counter, segs, wait_until

pytestmark = pytest.mark.integration

TOKEN = "test-token-不可见"
NOW = datetime(2024, 6, 10, 6, 20, tzinfo=UTC)


@dataclass
class Harness:
    gw: OneBotGateway
    sink: RecordingSink
    metrics: Metrics
    server: TestServer

    @property
    def url(self) -> Any:
        return self.server.make_url(WS_PATH)

    def rejected(self, reason: str) -> float:
        return counter(
            self.metrics, "sopbot_events_rejected_total", platform="onebot11", reason=reason
        )


Make = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make(aiohttp_server: Any) -> AsyncIterator[Make]:
    made: list[OneBotGateway] = []

    async def factory(**options: Any) -> Harness:
        sink, metrics = RecordingSink(), Metrics()
        options.setdefault("access_token", TOKEN)
        gw = OneBotGateway(sink=sink, clock=ManualClock(NOW), metrics=metrics, **options)
        app = web.Application()
        app.add_routes(gw.routes())
        server = await aiohttp_server(app)
        await gw.start()
        made.append(gw)
        return Harness(gw, sink, metrics, server)

    yield factory
    for gw in made:
        await gw.stop()


@pytest.fixture
async def fakes() -> AsyncIterator[Callable[..., FakeOneBot]]:
    made: list[FakeOneBot] = []

    def factory(self_id: str = "10001", **options: Any) -> FakeOneBot:
        options.setdefault("token", TOKEN)
        fake = FakeOneBot(self_id, **options)
        made.append(fake)
        return fake

    yield factory
    for fake in made:
        await fake.close()


async def connected(h: Harness, fake: FakeOneBot) -> FakeOneBot:
    await fake.connect_reverse(h.url)
    await wait_until(lambda: fake.self_id in h.gw.online_accounts())
    return fake


async def test_gateway_satisfies_the_gateway_port(make: Make) -> None:
    """OneBotGateway is usable wherever handlers expect the Gateway protocol."""
    h = await make()
    port: Gateway = h.gw
    assert port.platform == "onebot11"
    assert port.online_accounts() == []


async def test_connect_reports_online_and_delivers_events_in_order(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """Connection → AccountStatus(online); pushed events reach the sink in wire order."""
    h = await make()
    fake = await connected(h, fakes())
    events = [fake.group_message(f"第{i}条", message_id=i + 1) for i in range(30)]
    at_all = segs(("at", {"qq": "all"}), ("text", {"text": " 通知 [CQ:at,qq=1]"}))
    events.insert(10, fake.group_message(segments=at_all, fmt="string", message_id=99))
    events.append(
        fake.notice(
            "group_increase", sub_type="approve", group_id=5001, operator_id=9002, user_id=20009
        )
    )
    events.append(
        fake.notice("group_recall", group_id=5001, user_id=20001, operator_id=20001, message_id=3)
    )
    await fake.push(*events)
    await h.sink.wait_count(MessageRecall, 1)
    status = h.sink.events[0]
    assert isinstance(status, AccountStatus)
    assert (status.account_id, status.online, status.at) == ("10001", True, NOW)
    messages = h.sink.of(ChatMessage)
    assert [m.message_id for m in messages] == [str(e["message_id"]) for e in events[:-2]]
    assert messages[10].mention_all
    assert messages[10].text == "@全体成员 通知 [CQ:at,qq=1]"
    assert messages[10].mention_user_ids == ()
    assert all(m.account_id == "10001" and m.received_at == NOW for m in messages)
    assert isinstance(h.sink.events[-2], MemberChange)
    assert counter(h.metrics, "sopbot_connected_accounts", platform="onebot11") == 1
    received = counter(
        h.metrics, "sopbot_events_received_total", platform="onebot11", kind="message"
    )
    assert received == 31


@pytest.mark.parametrize("keep_raw", [True, False])
async def test_raw_frame_kept_only_when_asked(
    make: Make, fakes: Callable[..., FakeOneBot], keep_raw: bool
) -> None:
    """The decoded frame rides on the event only for ``[intake] store_raw`` (the app passes
    it as ``keep_raw``); otherwise queued events do not hold it."""
    h = await make(keep_raw=keep_raw)
    fake = await connected(h, fakes())
    frame = fake.group_message("有货吗", message_id=7)
    await fake.push(frame)
    await h.sink.wait_count(ChatMessage, 1)
    (msg,) = h.sink.of(ChatMessage)
    assert msg.text == "有货吗"
    assert msg.raw == (frame if keep_raw else None)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-Self-ID": "10001"}, 401),
        ({"X-Self-ID": "10001", "Authorization": "Bearer wrong"}, 403),
        ({"X-Self-ID": "10001", "Authorization": "Basic dXNlcjpwYXNz"}, 403),
        ({"Authorization": f"Bearer {TOKEN}"}, 400),
        ({"X-Self-ID": "10001 OR 1=1", "Authorization": f"Bearer {TOKEN}"}, 400),
        ({"X-Self-ID": "10001", "Authorization": f"Bearer {TOKEN}", "X-Client-Role": "API"}, 400),
    ],
)
async def test_bad_credentials_are_refused_before_the_upgrade(
    make: Make, fakes: Callable[..., FakeOneBot], headers: dict[str, str], status: int
) -> None:
    """Missing token 401, wrong token 403, missing/bad X-Self-ID or split role 400."""
    h = await make()
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await fakes().connect_reverse(h.url, headers=headers)
    assert info.value.status == status
    assert h.gw.online_accounts() == []
    assert h.sink.events == []


async def test_token_in_query_string_is_accepted(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """``?access_token=`` works like the Bearer header (NapCat WS server behaviour)."""
    h = await make()
    fake = fakes()
    await fake.connect_reverse(
        h.url.with_query(access_token=TOKEN), headers={"X-Self-ID": "10001"}
    )
    await wait_until(lambda: h.gw.online_accounts() == ["10001"])


async def test_no_token_configured_accepts_any_client(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """Without an access token the endpoint is open (a warning is logged at start)."""
    h = await make(access_token=None)
    await connected(h, fakes(token=None))


async def test_second_connection_for_same_self_id_is_refused(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """A duplicate X-Self-ID gets 409; the first connection keeps working."""
    h = await make()
    first = await connected(h, fakes())
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await fakes().connect_reverse(h.url)
    assert info.value.status == 409
    await first.push(first.group_message("还在吗"))
    await h.sink.wait_count(ChatMessage, 1)


async def test_two_accounts_at_once_and_account_choice(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """Two bots connect; a group send goes through the account seen in that group."""
    h = await make()
    a = await connected(h, fakes("10001"))
    b = await connected(h, fakes("10002"))
    assert h.gw.online_accounts() == ["10001", "10002"]
    await b.push(b.group_message("hi", group_id=7007))
    await h.sink.wait_count(ChatMessage, 1)
    sent = await h.gw.send_group_text("7007", "您好")
    assert sent.account_id == "10002"
    assert b.calls_of("send_group_msg")
    assert not a.calls_of("send_group_msg")
    sent = await h.gw.send_group_text("8008", "hello")  # unknown group: first online account
    assert sent.account_id == "10001"
    sent = await h.gw.send_private_text("20001", "私聊", account_id="10002")
    assert sent.account_id == "10002"
    assert counter(h.metrics, "sopbot_connected_accounts", platform="onebot11") == 2


async def test_action_round_trip_with_echo_and_reply_segment(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """send_group_text → send_group_msg with reply + text; message_id comes back as a string."""
    h = await make()
    fake = await connected(h, fakes())
    sent = await h.gw.send_group_text("5001", "已为您查询 [CQ:at,qq=all]", reply_to="225925481")
    (call,) = fake.calls_of("send_group_msg")
    assert call["params"] == {
        "group_id": 5001,
        "message": segs(
            ("reply", {"id": "225925481"}), ("text", {"text": "已为您查询 [CQ:at,qq=all]"})
        ),
    }
    assert isinstance(call["echo"], str)
    assert call["echo"]
    assert sent.platform == "onebot11"
    assert sent.account_id == "10001"
    assert sent.message_id.isdigit()
    assert counter(h.metrics, "sopbot_send_latency_seconds_count", platform="onebot11") == 1
    data = await h.gw.call("10001", "get_login_info")
    assert data == {"user_id": 10001, "nickname": "fake"}


async def test_reply_to_our_message_resolves_the_quoted_author(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """A customer quoting our message: reply_to_sender_id is us, the auto-@ leaves the text."""
    h = await make()
    fake = await connected(h, fakes())
    sent = await h.gw.send_group_text("5001", "活动今晚开始")
    quoted = int(sent.message_id)
    quote = segs(("reply", {"id": quoted}), ("at", {"qq": 10001}), ("text", {"text": " 几点？"}))
    await fake.push(fake.group_message(segments=quote))
    (msg,) = await h.sink.wait_count(ChatMessage, 1)
    assert msg.reply_to_message_id == sent.message_id
    assert msg.reply_to_sender_id == "10001"
    assert msg.mention_user_ids == ("10001",)
    assert msg.text == "几点？"


async def test_action_timeout_raises_and_counts_a_failed_send(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """No response within action_timeout → ApiTimeout; the connection stays usable."""
    h = await make(action_timeout=0.2)
    fake = await connected(h, fakes())
    fake.silent.add("send_group_msg")
    with pytest.raises(ApiTimeout):
        await h.gw.send_group_text("5001", "hello")
    assert counter(h.metrics, "sopbot_sends_failed_total", platform="onebot11") == 1
    fake.silent.clear()
    await h.gw.send_group_text("5001", "hello again")


async def test_failed_action_raises_action_failed_with_retcode(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """status failed → ActionFailed carrying the implementation's retcode."""
    h = await make()
    fake = await connected(h, fakes())
    fake.fail["send_private_msg"] = 1400
    with pytest.raises(ActionFailed) as info:
        await h.gw.send_private_text("20001", "hi")
    assert info.value.code == 1400


async def test_sending_without_any_online_account_fails_fast(make: Make) -> None:
    """No connected account: NetworkError, not a hang."""
    h = await make()
    with pytest.raises(NetworkError):
        await h.gw.send_group_text("5001", "hi")
    with pytest.raises(NetworkError):
        await h.gw.send_group_text("5001", "hi", account_id="10001")


async def test_bad_frames_between_good_ones_are_counted_and_skipped(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """Garbage between two messages: both messages arrive, each bad frame is counted by reason,
    and the same socket still carries actions afterwards."""
    h = await make(max_frame_bytes=4096)
    fake = await connected(h, fakes())
    await fake.push(fake.group_message("第一条", message_id=1))
    await fake.push_raw("{not json")
    await fake.push_raw("[1, 2, 3]")
    await fake.push_raw(b'{"post_type": "message_recv"}')
    await fake.push_raw('{"post_type": "message", "message_type": "group"}')
    await fake.push_raw('{"echo": "999", "retcode": 0}')
    await fake.push_raw('{"pad": "' + "x" * 5000 + '"}')
    await fake.push(fake.group_message("第二条", message_id=2))
    messages = await h.sink.wait_count(ChatMessage, 2)
    assert [m.text for m in messages] == ["第一条", "第二条"]
    for reason in (
        "not_json",
        "not_object",
        "unknown_post_type",
        "missing_field",
        "unmatched_echo",
        "too_large",
    ):
        assert h.rejected(reason) == 1, reason
    assert fake.connected
    await h.gw.send_group_text("5001", "still here")


async def test_sink_backpressure_holds_the_next_frame(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """The next frame is not read until the sink has accepted the previous event."""
    h = await make()
    fake = await connected(h, fakes())
    h.sink.gate = asyncio.Event()
    await fake.push(fake.group_message("一", message_id=1), fake.group_message("二", message_id=2))
    await asyncio.sleep(0.05)  # give the socket time to deliver both frames
    assert h.sink.of(ChatMessage) == []
    h.sink.gate.set()
    messages = await h.sink.wait_count(ChatMessage, 2)
    assert [m.text for m in messages] == ["一", "二"]


async def test_heartbeat_watchdog_marks_account_offline_then_online(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """Three missed heartbeat intervals → AccountStatus(offline); the next beat → online."""
    h = await make(watchdog_period=0.01)
    fake = await connected(h, fakes())
    await fake.push(fake.heartbeat(interval_ms=30))

    def went_offline(events: list[Any]) -> bool:
        return any(isinstance(e, AccountStatus) and not e.online for e in events)

    await h.sink.wait_for(went_offline)
    offline = h.sink.of(AccountStatus)[-1]
    assert offline.reason == "heartbeat_timeout"
    assert h.gw.online_accounts() == []
    assert counter(h.metrics, "sopbot_connected_accounts", platform="onebot11") == 0
    await fake.push(fake.heartbeat(interval_ms=60_000))
    await wait_until(lambda: h.gw.online_accounts() == ["10001"])
    assert h.sink.of(AccountStatus)[-1].online


async def test_heartbeat_reporting_qq_offline_marks_account_offline(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """NapCat heartbeat status.online=false: the QQ login is gone though the socket is up."""
    h = await make()
    fake = await connected(h, fakes())
    await fake.push(fake.heartbeat(online=False))
    await wait_until(lambda: h.gw.online_accounts() == [])
    assert h.sink.of(AccountStatus)[-1].reason == "implementation_offline"


async def test_disconnect_reports_offline_and_fails_pending_calls(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """Socket closes → AccountStatus(offline), pending actions fail with NetworkError."""
    h = await make()
    fake = await connected(h, fakes())
    fake.silent.add("get_msg")
    pending = asyncio.create_task(h.gw.call("10001", "get_msg", message_id=1))
    await wait_until(lambda: bool(fake.calls_of("get_msg")))
    await fake.disconnect()
    with pytest.raises(NetworkError):
        await pending
    await wait_until(lambda: h.gw.online_accounts() == [])
    last = h.sink.of(AccountStatus)[-1]
    assert (last.online, last.reason) == (False, "disconnected")
    await connected(h, fake)  # the same account may come back


async def test_history_unsupported_is_remembered(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """retcode 1404 → None, and the implementation is not asked again."""
    h = await make()
    fake = await connected(h, fakes())
    assert await h.gw.get_group_msg_history("10001", "5001") is None
    assert await h.gw.get_group_msg_history("10001", "5001") is None
    assert len(fake.calls_of("get_group_msg_history")) == 1


async def test_history_is_parsed_into_messages(
    make: Make, fakes: Callable[..., FakeOneBot]
) -> None:
    """get_group_msg_history entries become ChatMessages of that group; bad entries counted."""
    h = await make()
    fake = await connected(h, fakes())
    old = [fake.group_message("早", message_id=11), fake.group_message("晚", message_id=12)]
    for entry in old:
        del entry["post_type"]  # NapCat history entries may lack the envelope
    fake.results["get_group_msg_history"] = {"messages": [*old, {"message_id": "x"}, 3]}
    messages = await h.gw.get_group_msg_history("10001", "5001", count=2)
    assert messages is not None
    assert [(m.chat_id, m.message_id, m.text) for m in messages] == [
        ("5001", "11", "早"),
        ("5001", "12", "晚"),
    ]
    assert fake.calls_of("get_group_msg_history")[0]["params"] == {"group_id": 5001, "count": 2}
    assert h.rejected("missing_field") == 1
    assert h.rejected("not_object") == 1


async def test_stop_closes_every_socket(make: Make, fakes: Callable[..., FakeOneBot]) -> None:
    """stop() closes all reverse-WS connections and refuses new ones."""
    h = await make()
    fake = await connected(h, fakes())
    await h.gw.stop()
    await wait_until(lambda: not fake.connected)
    await wait_until(lambda: h.gw.online_accounts() == [])
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await fakes("10002").connect_reverse(h.url)
    assert info.value.status == 503
