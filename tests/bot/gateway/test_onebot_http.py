"""HTTP POST receiver: NapCat-style signed event posts, and actions over the HTTP API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.clock import ManualClock
from bot.errors import ApiTimeout
from bot.events import AccountStatus, ChatMessage
from bot.gateway.onebot import HTTP_PATH, OneBotGateway
from bot.metrics import Metrics
from tests.fakes.onebot import FakeOneBot, RecordingSink, counter

pytestmark = pytest.mark.integration

SECRET = "hmac-secret"
NOW = datetime(2024, 6, 10, 6, 20, tzinfo=UTC)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOneBot]:
    bot = FakeOneBot("40001", secret=SECRET)
    yield bot
    await bot.close()


async def make(
    aiohttp_server: Any, **options: Any
) -> tuple[OneBotGateway, RecordingSink, Metrics, TestServer]:
    sink, metrics = RecordingSink(), Metrics()
    gw = OneBotGateway(
        sink=sink, clock=ManualClock(NOW), metrics=metrics, mode="http-post", **options
    )
    app = web.Application()
    app.add_routes(gw.routes())
    server = await aiohttp_server(app)
    await gw.start()
    return gw, sink, metrics, server


async def test_signed_post_is_accepted_with_204(aiohttp_server: Any, fake: FakeOneBot) -> None:
    """A correctly signed event → 204, account online, message in the sink."""
    gw, sink, _, server = await make(aiohttp_server, secret=SECRET)
    try:
        url = server.make_url(HTTP_PATH)
        assert await fake.post_event(url, fake.private_message("你好")) == 204
        status, msg = sink.events
        assert isinstance(status, AccountStatus)
        assert status.online
        assert isinstance(msg, ChatMessage)
        assert (msg.account_id, msg.chat_id, msg.text) == ("40001", "20001", "你好")
        assert gw.online_accounts() == ["40001"]
    finally:
        await gw.stop()


@pytest.mark.parametrize(
    ("signature", "status"),
    [
        (None, 401),
        ("sha1=0000000000000000000000000000000000000000", 403),
        ("md5=abc", 403),
        ("", 401),
    ],
)
async def test_bad_or_missing_signature_is_refused(
    aiohttp_server: Any, signature: str | None, status: int
) -> None:
    """Missing signature 401, wrong signature 403; nothing reaches the sink."""
    gw, sink, _, server = await make(aiohttp_server, secret=SECRET)
    poster = FakeOneBot("40001")  # no secret: signs nothing unless told
    try:
        event = poster.private_message("x")
        got = await poster.post_event(server.make_url(HTTP_PATH), event, signature=signature)
        assert got == status
        assert sink.events == []
    finally:
        await poster.close()
        await gw.stop()


async def test_signature_over_a_different_body_is_refused(
    aiohttp_server: Any, fake: FakeOneBot
) -> None:
    """The HMAC covers the exact body: a tampered body fails."""
    gw, sink, _, server = await make(aiohttp_server, secret=SECRET)
    try:
        signed = json.dumps(fake.private_message("原文")).encode()
        tampered = json.dumps(fake.private_message("改过")).encode()
        url = server.make_url(HTTP_PATH)
        assert await fake.post_event(url, tampered, signature=fake.sign(signed)) == 403
        assert sink.events == []
    finally:
        await gw.stop()


async def test_without_secret_posts_need_only_x_self_id(
    aiohttp_server: Any, fake: FakeOneBot
) -> None:
    """No secret configured: unsigned posts are accepted; X-Self-ID is still required."""
    gw, _, _, server = await make(aiohttp_server)
    try:
        url = server.make_url(HTTP_PATH)
        assert await fake.post_event(url, fake.heartbeat()) == 204
        assert await fake.post_event(url, fake.heartbeat(), headers={"X-Self-ID": ""}) == 400
        assert gw.online_accounts() == ["40001"]
    finally:
        await gw.stop()


async def test_bad_and_oversized_bodies_are_counted(aiohttp_server: Any, fake: FakeOneBot) -> None:
    """Non-JSON → 400 and counted; over max_frame_bytes → 413 and counted."""
    gw, sink, metrics, server = await make(aiohttp_server, secret=SECRET, max_frame_bytes=2048)
    try:
        url = server.make_url(HTTP_PATH)
        assert await fake.post_event(url, b"not json") == 400
        big = fake.private_message("长" * 2000)
        assert await fake.post_event(url, big) == 413
        assert await fake.post_event(url, fake.private_message("ok")) == 204
        for reason in ("not_json", "too_large"):
            value = counter(
                metrics, "sopbot_events_rejected_total", platform="onebot11", reason=reason
            )
            assert value == 1, reason
        assert [m.text for m in sink.of(ChatMessage)] == ["ok"]
    finally:
        await gw.stop()


async def test_actions_use_the_http_api_in_http_post_mode(
    aiohttp_server: Any, fake: FakeOneBot
) -> None:
    """Outbound sends go to POST {url}/send_group_msg with the Bearer token."""
    fake.token = "api-token"
    api_url = (await fake.serve()).replace("ws://", "http://")
    gw, _, _, server = await make(
        aiohttp_server, secret=SECRET, url=api_url, access_token="api-token", action_timeout=0.3
    )
    try:
        assert await fake.post_event(server.make_url(HTTP_PATH), fake.heartbeat()) == 204
        sent = await gw.send_group_text("5001", "您好", reply_to="77")
        assert sent.account_id == "40001"
        assert sent.message_id.isdigit()
        (call,) = fake.calls_of("send_group_msg")
        assert call["params"]["message"][0] == {"type": "reply", "data": {"id": "77"}}
        fake.silent.add("send_private_msg")
        with pytest.raises(ApiTimeout):
            await gw.send_private_text("20001", "hi")
    finally:
        await gw.stop()
