"""The whole app over real sockets: fake OneBot implementation → sopbot → store, web, commands."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import text
from sqlmodel import col, select

from bot.app import OUTBOX, TICKS, create_app
from bot.clock import ManualClock
from bot.gateway.onebot import WS_PATH
from bot.keys import CLOCK, ENGINE, INTAKE, METRICS, SESSIONS
from bot.store import messages as message_store
from bot.store.models import AccountState, Message, Outbox
from handlers.commands import REPLY_KIND
from tests.conftest import make_config
from tests.fakes.onebot import FakeOneBot, counter, segs, wait_until
from tests.handlers.test_dashboard_support import PASSWORD, USERS, csrf_of

pytestmark = pytest.mark.integration

NOW = datetime(2024, 6, 10, 6, 20, tzinfo=UTC)
API_TOKEN = "test-api-token"
OB_TOKEN = "test-onebot-token"


@dataclass
class Bot:
    app: web.Application
    server: TestServer

    def url(self, path: str) -> Any:
        return self.server.make_url(path)

    def received(self) -> float:
        return counter(
            self.app[METRICS], "sopbot_events_received_total", platform="onebot11", kind="message"
        )

    async def messages(self) -> list[Message]:
        async with self.app[SESSIONS]() as s:
            return list((await s.exec(select(Message).order_by(col(Message.id)))).all())


@pytest.fixture
async def bot(
    db_url: str, tmp_path: Path, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> Bot:
    # db_url before aiohttp_server: the app (and its intake flush) must stop before the
    # database is dropped at teardown.
    cfg = make_config(
        tmp_path,
        bot={"data_dir": str(tmp_path), "database_url": db_url},
        web={"port": 0, "api_token": API_TOKEN, "users": USERS, "session_secret": "s" * 32},
    )
    app = create_app(cfg, clock=ManualClock(NOW))
    server = await aiohttp_server(app)
    return Bot(app, server)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOneBot]:
    fb = FakeOneBot("777", token=OB_TOKEN)
    yield fb
    await fb.close()


async def test_group_messages_stored_once(bot: Bot, fake: FakeOneBot) -> None:
    """Events over a real reverse WebSocket are stored with roles; a re-delivery is stored once."""
    await fake.connect_reverse(bot.url(WS_PATH))
    question = fake.group_message("请问几点发货？", group_id=5001, user_id=20001, message_id=1)
    answer = fake.group_message(
        "",
        group_id=5001,
        user_id=9002,
        message_id=2,
        segments=segs(
            ("reply", {"id": "1"}), ("at", {"qq": "20001"}), ("text", {"text": " 今天下午四点"})
        ),
    )
    as_cq = fake.group_message(
        "",
        group_id=5002,
        user_id=20002,
        message_id=3,
        fmt="string",
        segments=segs(("at", {"qq": "9002"}), ("text", {"text": " 好的 [谢谢]"})),
    )
    assert as_cq["message"] == "[CQ:at,qq=9002] 好的 &#91;谢谢&#93;"
    await fake.push(question, answer, as_cq, question)  # the last one is a re-delivery
    await wait_until(lambda: bot.received() >= 4)
    rows: list[Message] = []

    async def stored() -> bool:
        rows[:] = await bot.messages()
        return len(rows) == 3

    for _ in range(300):
        if await stored():
            break
        await fake_pause()
    assert [(m.message_id, m.actor_role, m.operator_id) for m in rows] == [
        ("1", "customer", None),
        ("2", "operator", "li"),
        ("3", "customer", None),
    ]
    assert rows[1].reply_to_message_id == "1"
    assert rows[1].mention_user_ids == ["20001"]
    assert rows[2].text.endswith("好的 [谢谢]")
    assert rows[2].mention_user_ids == ["9002"]
    assert all(m.account_id == "777" and m.sent_at.tzinfo is not None for m in rows)
    dup = counter(bot.app[METRICS], "sopbot_messages_duplicate_total")
    assert dup == 1


async def fake_pause() -> None:
    import asyncio

    await asyncio.sleep(0.01)


async def test_wrong_token_rejected_before_upgrade(bot: Bot, fake: FakeOneBot) -> None:
    """A wrong or missing token never gets a WebSocket."""
    headers = {**fake.reverse_headers(), "Authorization": "Bearer nope"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await fake.connect_reverse(bot.url(WS_PATH), headers=headers)
    assert info.value.status == 403
    headers.pop("Authorization")
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await fake.connect_reverse(bot.url(WS_PATH), headers=headers)
    assert info.value.status == 401


async def test_health_metrics_and_account_state(bot: Bot, fake: FakeOneBot) -> None:
    """/healthz lists the connected account; /metrics counts it; the store records it."""
    await fake.connect_reverse(bot.url(WS_PATH))
    await wait_until(
        lambda: counter(bot.app[METRICS], "sopbot_connected_accounts", platform="onebot11") == 1
    )
    async with aiohttp.ClientSession() as http:
        async with http.get(bot.url("/healthz")) as r:
            body = await r.json()
        assert r.status == 200
        assert body["database"] == "ok"
        assert body["accounts_online"]["onebot11"] == ["777"]
        async with http.get(bot.url("/metrics")) as r:
            text = await r.text()
        assert 'sopbot_connected_accounts{platform="onebot11"} 1.0' in text
        assert OB_TOKEN not in text
    for _ in range(300):
        async with bot.app[SESSIONS]() as s:
            state = (await s.exec(select(AccountState))).first()
        if state is not None:
            break
        await fake_pause()
    assert state is not None
    assert state.online


async def test_staff_private_command_answered_privately(bot: Bot, fake: FakeOneBot) -> None:
    """A staff member's private message to the bot gets a private reply; a customer's does not."""
    await fake.connect_reverse(bot.url(WS_PATH))
    await fake.push(fake.private_message("帮助", user_id=9002, message_id=11))
    await fake.push(fake.private_message("你好 在吗", user_id=20001, message_id=12))
    await wait_until(lambda: bool(fake.calls_of("send_private_msg")), limit=5)
    calls = fake.calls_of("send_private_msg")
    assert [c["params"]["user_id"] for c in calls] == [9002]
    assert "帮助" in str(calls[0]["params"]["message"])


async def test_command_answer_is_retried_and_sent_once(bot: Bot, fake: FakeOneBot) -> None:
    """The answer goes through the outbox: a refused send is retried later, and neither the
    retry nor a re-delivered command message makes a second answer."""
    fake.fail["send_private_msg"] = 1400
    await fake.connect_reverse(bot.url(WS_PATH))
    command = fake.private_message("帮助", user_id=9002, message_id=31)
    await fake.push(command)
    await wait_until(lambda: bool(fake.calls_of("send_private_msg")), limit=5)

    def sent_answers() -> list[dict[str, Any]]:
        # Only the help text: advancing the clock may let the app send other messages (digests).
        calls = fake.calls_of("send_private_msg")
        return [c for c in calls if "可用命令" in str(c["params"]["message"])]

    async def answer() -> Outbox:
        async with bot.app[SESSIONS]() as s:
            rows = (await s.exec(select(Outbox).where(Outbox.kind == REPLY_KIND))).all()
        assert len(rows) == 1
        return rows[0]

    async def settled() -> Outbox:
        # The failed attempt is recorded in its own transaction after the send returns.
        for _ in range(300):
            row = await answer()
            if row.status != "sending":
                return row
            await fake_pause()
        raise AssertionError("outbox row still sending")

    row = await settled()
    assert (row.status, row.attempts, row.recipient_id) == ("pending", 1, "li")
    assert row.payload["to"] == ["onebot11", "777", "9002"]
    del fake.fail["send_private_msg"]
    clock = bot.app[CLOCK]
    assert isinstance(clock, ManualClock)
    await clock.advance(timedelta(minutes=1))  # past the first retry's backoff (30 s)
    await bot.app[OUTBOX].run_once()
    calls = sent_answers()
    assert len(calls) == 2
    assert calls[1]["params"]["user_id"] == 9002
    assert "帮助" in str(calls[1]["params"]["message"])
    assert (await answer()).status == "sent"

    received = bot.received()
    await fake.push(command)  # a re-delivery: stored once, handled once, answered once
    await wait_until(lambda: bot.received() > received, limit=5)
    await bot.app[INTAKE].drain()
    await bot.app[OUTBOX].run_once()
    assert len(sent_answers()) == 2


async def test_status_page_escapes_customer_text(bot: Bot, fake: FakeOneBot) -> None:
    """The admin status page shows customer text as text: a <script> tag is escaped."""
    await fake.connect_reverse(bot.url(WS_PATH))
    await fake.push(fake.group_message("<script>alert(1)</script>", message_id=21))
    for _ in range(300):
        if await bot.messages():
            break
        await fake_pause()
    # unsafe=True: the cookie jar must accept the session cookie from 127.0.0.1.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(bot.url("/status"), allow_redirects=False) as r:
            assert r.status in (302, 303)  # behind the login: customer text is not public
        async with http.get(bot.url("/login")) as r:
            token = csrf_of(await r.text())
        form = {"username": "admin", "password": PASSWORD, "csrf": token, "next": "/status"}
        async with http.post(bot.url("/login"), data=form) as r:
            assert r.status == 200
        async with http.get(bot.url("/status")) as r:
            html = await r.text()
        assert r.status == 200
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>alert(1)" not in html
        async with http.get(bot.url("/status?lang=en")) as r:
            assert "Latest messages" in await r.text()


async def test_api_requires_bearer_token(bot: Bot) -> None:
    """/api/ routes answer 401 without the token, and pass through with it."""
    async with aiohttp.ClientSession() as http:
        async with http.get(bot.url("/api/v1/openapi.json")) as r:
            assert r.status == 401
        async with http.get(
            bot.url("/api/v1/openapi.json"), headers={"Authorization": "Bearer wrong"}
        ) as r:
            assert r.status == 401
        async with http.get(
            bot.url("/api/v1/does-not-exist"), headers={"Authorization": f"Bearer {API_TOKEN}"}
        ) as r:
            assert r.status == 404


@pytest.mark.parametrize("store_raw", [True, False])
async def test_raw_frame_stored_only_with_store_raw(
    db_url: str,
    tmp_path: Path,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    fake: FakeOneBot,
    store_raw: bool,
) -> None:
    """``[intake] store_raw`` reaches the gateway: the frame is kept and stored, or neither."""
    cfg = make_config(
        tmp_path,
        bot={"data_dir": str(tmp_path), "database_url": db_url},
        intake={"store_raw": store_raw},
    )
    app = create_app(cfg, clock=ManualClock(NOW))
    server = await aiohttp_server(app)
    bot = Bot(app, server)
    await fake.connect_reverse(bot.url(WS_PATH))
    frame = fake.group_message("有没有小码？", group_id=5001, user_id=20001, message_id=31)
    await fake.push(frame)
    rows: list[Message] = []
    for _ in range(300):
        rows = await bot.messages()
        if rows:
            break
        await fake_pause()
    assert [m.message_id for m in rows] == ["31"]
    assert rows[0].raw == (frame if store_raw else None)


async def test_intake_replay_tick_takes_rows_no_account_came_back_for(bot: Bot) -> None:
    """PostgreSQL: a customer's question stored by a process that died before its handlers
    committed, from an account that never came online again, is logged by the tick once it is
    older than the grace. (SQLite: one process, whose start replays everything.)"""
    app = bot.app
    await app[TICKS].stop()  # the test runs the tick
    row: dict[str, object] = {
        "platform": "onebot11",
        "account_id": "888",
        "chat_type": "group",
        "chat_id": "5001",
        "message_id": "9",
        "sender_id": "20001",
        "sender_name": "",
        "actor_role": "customer",
        "operator_id": None,
        "is_self": False,
        "text": "请问这款奶粉什么时候发货？",
        "reply_to_message_id": None,
        "mention_user_ids": [],
        "mention_all": False,
        "sent_at": NOW - timedelta(minutes=10),
        "received_at": NOW - timedelta(minutes=10),
        "recalled_at": None,
        "raw": None,
        "handled": False,
    }
    async with app[ENGINE].begin() as conn:
        await message_store.insert_messages(conn, [tuple(row[c] for c in message_store.COLUMNS)])
    tick = next(t for t in app[TICKS].ticks if t.name == "intake-replay")
    await tick.func(intake=app[INTAKE])
    async with app[ENGINE].connect() as conn:
        questions = (await conn.execute(text("SELECT count(*) FROM question"))).scalar_one()
        left = await message_store.unhandled(conn, limit=10)
    if app[ENGINE].dialect.name == "postgresql":
        assert (questions, left) == (1, [])
        assert counter(app[METRICS], "sopbot_messages_replayed_total") == 1
    else:
        assert (questions, len(left)) == (0, 1)
