"""Secrets and chat text never reach the logs, whatever path an event or a request takes.

The app runs with known, unique secrets in every credential field and logging set up exactly
as ``sopbot run`` does (JSON lines, DEBUG, secret mask). Customer and staff messages carrying a
unique marker go through a fake OneBot and the WeCom callback; wrong and right credentials are
presented to every kind of endpoint; a frame is rejected; the app shuts down. Both what the
JSON handler wrote and what pytest's handler saw *before* masking (it runs first, so a secret
that is only masked still fails) must hold neither a secret, a presented credential nor the
marker. A database error must not quote the row it failed on either.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.clock import ManualClock
from bot.gateway.onebot import WS_PATH
from bot.keys import INTAKE
from bot.logs import config_secrets, setup_logging
from tests.fakes.onebot import FakeOneBot, segs, wait_until
from tests.fakes.wecom import CORP_ID, CallbackSender
from tests.security.rig import (
    AES_KEY,
    API_TOKEN,
    CALLBACK_PATH,
    CALLBACK_TOKEN,
    OB_TOKEN,
    PASSWORD,
    SECRETS,
    Site,
    fake_wecom,
    security_config,
)

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai, a Tuesday
MARKER = f"MARK{secrets.token_hex(8)}"
WRONG = f"wrong-{secrets.token_hex(8)}"  # a credential somebody presented: not ours to log


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Logging as ``sopbot run`` sets it up, into a buffer; pytest's handler first in line."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    quiet = {n: logging.getLogger(n).level for n in ("aiohttp.access", "apscheduler", "aiosqlite")}
    buffer = io.StringIO()
    yield buffer
    root.handlers[:], root.level = saved
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)


def _install(buffer: io.StringIO, caplog: pytest.LogCaptureFixture, secrets_: list[str]) -> None:
    setup_logging("DEBUG", "json", secrets_)
    root = logging.getLogger()
    (json_handler,) = root.handlers
    assert isinstance(json_handler, logging.StreamHandler)
    json_handler.setStream(buffer)
    caplog.handler.setLevel(logging.DEBUG)
    root.handlers.insert(0, caplog.handler)


async def test_secrets_and_chat_text_never_logged(
    db_url: str, tmp_path: Path, captured: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    """Through messages, rejections, logins, API calls and shutdown: no secret, no marker."""
    wecom = fake_wecom()
    cfg = security_config(tmp_path, db_url, await wecom.start(), log_level="DEBUG")
    # The mask knows every configured secret (the password itself is only ever typed in).
    assert set(SECRETS) - {PASSWORD} <= set(config_secrets(cfg))
    _install(captured, caplog, config_secrets(cfg))
    server = TestServer(create_app(cfg, clock=ManualClock(NOW)))
    await server.start_server()
    site = Site(server.app, server)
    fake = FakeOneBot("777", token=OB_TOKEN, time=int(NOW.timestamp()))
    try:
        ws = site.url(WS_PATH)
        for bad in (f"{ws}?access_token={WRONG}", ws):
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await fake.connect_reverse(bad, headers={"Authorization": f"Bearer {WRONG}"})
        await fake.connect_reverse(ws)
        question = f"请问 {MARKER} 这个奶粉怎么冲？"
        await fake.push(
            fake.group_message(question, user_id=20001, message_id=1, nickname=MARKER),
            fake.group_message(
                "",
                user_id=9002,
                message_id=2,
                segments=segs(("reply", {"id": "1"}), ("text", {"text": f"{MARKER} 用温水"})),
            ),
            fake.private_message(f"在吗 {MARKER}", user_id=20002, message_id=3),
            fake.private_message(f"帮助 {MARKER}", user_id=9002, message_id=4),
            {**fake.group_message(MARKER, message_id=5), "message_type": "broadcast"},
        )
        await fake.push_raw(f'{{"post_type": "message", "text": "{MARKER}"')  # not JSON
        await wait_until(lambda: bool(fake.calls_of("send_private_msg")), limit=10)

        sender = CallbackSender(token=CALLBACK_TOKEN, aes_key=AES_KEY, corp_id=CORP_ID)
        inner = (
            "<xml><ToUserName>x</ToUserName><FromUserName>wang</FromUserName>"
            f"<CreateTime>1773122400</CreateTime><MsgType>text</MsgType>"
            f"<Content>帮助 {MARKER}</Content><MsgId>77</MsgId><AgentID>1</AgentID></xml>"
        )
        query, body = sender.post(inner)
        async with aiohttp.ClientSession() as http:
            async with http.post(site.url(f"{CALLBACK_PATH}?{query}"), data=body) as r:
                assert r.status == 200
            forged = urllib.parse.urlencode(
                {"msg_signature": WRONG, "timestamp": "1", "nonce": "2"}
            )
            async with http.post(site.url(f"{CALLBACK_PATH}?{forged}"), data=body) as r:
                assert r.status == 403
            for token in (API_TOKEN, WRONG):
                headers = {"Authorization": f"Bearer {token}"}
                async with http.get(site.url("/api/v1/questions"), headers=headers) as r:
                    assert r.status == (200 if token == API_TOKEN else 401)
            async with http.get(site.url("/metrics")) as r:
                assert MARKER not in await r.text()
        for password, status in ((WRONG, 401), (PASSWORD, 303)):
            async with site.client() as browser:
                assert await site.login(browser, "admin", password) == status
        await server.app[INTAKE].drain()
    finally:
        await fake.close()
        await server.close()  # shutdown logs count too
        await wecom.close()

    lines = captured.getvalue().splitlines()
    assert lines, "the JSON handler wrote nothing: the capture is broken"
    assert all(json.loads(line) for line in lines)
    raw = "\n".join(
        [caplog.text] + [f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    )
    assert "frame rejected" in raw  # the paths above were taken, and captured
    for needle in (*SECRETS, WRONG, MARKER):
        assert needle not in captured.getvalue(), needle
        assert needle not in raw, needle


async def test_database_errors_do_not_quote_the_failed_row(engine: AsyncEngine) -> None:
    """A failed statement's error text names the statement, never its parameters."""
    insert = text(
        "INSERT INTO account_state (platform, account_id, online, changed_at, reason) "
        "VALUES ('onebot11', :account, true, :at, :reason)"
    )
    params = {"account": "777", "at": NOW, "reason": MARKER}
    async with engine.begin() as conn:
        await conn.execute(insert, params)
    with pytest.raises(DBAPIError) as info:
        async with engine.begin() as conn:
            await conn.execute(insert, params)  # the same key again: a unique violation
    assert MARKER not in str(info.value)
