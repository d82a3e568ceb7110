"""Shared setup of the dashboard tests: an app with logins, seeded through the real intake."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient, TestServer

from bot.app import TICKS, create_app
from bot.clock import ManualClock
from bot.events import ChatMessage, ChatType
from bot.keys import DISPATCHER, INTAKE
from bot.webauth import hash_password
from tests.conftest import make_config

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 10)  # a Tuesday, a workday
PASSWORD = "correct horse"
_HASH = hash_password(PASSWORD)
SCRIPT = "请问怎么冲奶粉？<script>alert(1)</script>"
USERS = [
    {"username": "admin", "password_hash": _HASH, "role": "admin"},
    {"username": "zhao", "password_hash": _HASH, "operator_id": "sup"},
    {"username": "li", "password_hash": _HASH, "operator_id": "li"},
    {"username": "wang", "password_hash": _HASH, "operator_id": "wang"},
]


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hh, mm, ss, tzinfo=TZ).astimezone(UTC)


def msg(mid: str, chat: str, sender: str, text: str, t: datetime, **kw: Any) -> ChatMessage:
    return ChatMessage(
        platform="onebot11",
        account_id="10001",
        chat_type=ChatType.GROUP,
        chat_id=chat,
        message_id=mid,
        sender_id=sender,
        text=text,
        sent_at=t,
        received_at=t,
        **kw,
    )


@dataclass
class Dash:
    client: TestClient[Any, Any]
    clock: ManualClock
    app: Any

    async def login(self, username: str, password: str = PASSWORD) -> int:
        page = await self.client.get("/login")
        token = csrf_of(await page.text())
        resp = await self.client.post(
            "/login",
            data={"username": username, "password": password, "csrf": token, "next": "/"},
            allow_redirects=False,
        )
        return resp.status

    async def csrf(self, path: str = "/breaches") -> str:
        return csrf_of(await (await self.client.get(path)).text())


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no csrf field"
    return m.group(1)


async def seed(app: Any, clock: ManualClock) -> None:
    """Two questions: one answered by quote in 5001, one left unanswered in 5002 (a breach)."""
    intake = app[INTAKE]
    await clock.set(at(10, 0))
    await intake.put(msg("101", "5001", "20001", SCRIPT, at(10, 0)))
    await intake.drain()
    await clock.set(at(10, 2))
    await intake.put(
        msg("102", "5001", "9002", "用40度温水冲", at(10, 2), reply_to_message_id="101")
    )
    await intake.drain()
    await clock.set(at(10, 3))
    await intake.put(msg("201", "5002", "20002", "请问今天有优惠吗？", at(10, 3)))
    await intake.drain()
    await clock.set(at(10, 40))
    # The alerts that just fell due write to the store: pages must read after them.
    await app[DISPATCHER].deps["sla_timer"].settle()
    await intake.drain()


async def start(
    tmp_path: Path,
    aiohttp_client: Any,
    db_url: str = "",
    web_extra: dict[str, Any] | None = None,
    **sections: Any,
) -> Dash:
    """The app on ``db_url`` (the conftest fixture: SQLite and PostgreSQL), seeded."""
    web = {"port": 0, "api_token": "t", "users": USERS, "session_secret": "s" * 32}
    web.update(web_extra or {})
    bot = {"data_dir": str(tmp_path / "data"), "database_url": db_url}
    cfg = make_config(
        tmp_path, web=web, bot=bot, gateway={"onebot": {"enabled": False}}, **sections
    )
    clock = ManualClock(at(9, 0))
    app = create_app(cfg, clock=clock)
    client = await aiohttp_client(TestServer(app))
    await app[TICKS].stop()
    await seed(app, clock)
    return Dash(client, clock, app)
