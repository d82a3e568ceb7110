"""Completion observed through the intake: distinct groups and customers, new customers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.app import TICKS, create_app
from bot.clock import ManualClock
from bot.events import ChatMessage, ChatType, MemberChange, MemberChangeKind
from bot.keys import DISPATCHER, ENGINE, INTAKE
from bot.store import tasks as store
from tests.conftest import make_config

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 10)
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=TZ).astimezone(UTC)
WANG = "9003"  # 王导购 in the test roster
_ids = iter(range(1, 10_000))


def msg(chat_type: ChatType, chat_id: str, sender: str = WANG) -> ChatMessage:
    return ChatMessage(
        platform="onebot11",
        account_id="10001",
        chat_type=chat_type,
        chat_id=chat_id,
        message_id=str(next(_ids)),
        sender_id=sender,
        text="大家好",
        sent_at=NOW,
        received_at=NOW,
    )


@pytest.fixture
async def app(tmp_path: Path, aiohttp_client: Any) -> web.Application:
    cfg = make_config(
        tmp_path,
        gateway={"onebot": {"enabled": False}},
        groups=[
            {"platform": "onebot11", "id": "5001", "owners": ["wang"]},
            {"platform": "onebot11", "id": "5002", "owners": ["li"]},
            {"platform": "onebot11", "id": "5003", "monitored": False},
        ],
    )
    application = create_app(cfg, clock=ManualClock(NOW))
    await aiohttp_client(TestServer(application))
    await application[TICKS].stop()
    await application[DISPATCHER].deps["sop"].tick()
    return application


async def feed(app: web.Application, *events: Any) -> None:
    for e in events:
        await app[INTAKE].put(e)
    await app[INTAKE].drain()


async def progress(app: web.Application) -> dict[str, int]:
    async with app[ENGINE].connect() as conn:
        return {r.step: r.done for r in await store.tasks_on(conn, DAY, ["wang"])}


async def test_group_posts_count_distinct_monitored_groups(app: web.Application) -> None:
    """Two posts in 5001 and one in 5002 count 2; the unmonitored group and customers don't."""
    g = ChatType.GROUP
    await feed(
        app,
        msg(g, "5001"),
        msg(g, "5001"),
        msg(g, "5002"),
        msg(g, "5003"),
        msg(g, "5001", sender="20001"),
    )
    assert (await progress(app))["group_posts"] == 2


async def test_private_chats_count_distinct_customers(app: web.Application) -> None:
    """Chats with two customers count 2; a command to the bot and a colleague chat don't."""
    p = ChatType.PRIVATE
    await feed(
        app,
        msg(p, "20001"),
        msg(p, "20001"),
        msg(p, "20002"),
        msg(p, WANG),  # to the bot: a command
        msg(p, "9002"),  # with 李群主, staff
    )
    assert (await progress(app))["private_chats"] == 2


async def test_contacts_become_customers_with_a_welcome(app: web.Application) -> None:
    """A friend add names the guide; a group join falls back to the group's guide owner."""
    await feed(
        app,
        MemberChange("onebot11", "10001", MemberChangeKind.FRIEND_ADD, "30001", NOW, None, WANG),
        MemberChange("onebot11", "10001", MemberChangeKind.GROUP_JOIN, "30002", NOW, "5001"),
        MemberChange("onebot11", "10001", MemberChangeKind.GROUP_JOIN, "30003", NOW, "5002"),
        MemberChange("onebot11", "10001", MemberChangeKind.GROUP_JOIN, "9002", NOW, "5001"),
    )
    async with app[ENGINE].connect() as conn:
        people = await store.customers(conn, tz=TZ)
        rows = await store.tasks_on(conn, DAY, ["wang"])
    assert [(c.id, c.guide_id) for c in people] == [("30001", "wang"), ("30002", "wang")]
    welcome = [(r.step, r.target_key) for r in rows if r.is_customer_task]
    assert welcome == [("first_contact.welcome", "30001"), ("first_contact.welcome", "30002")]
    # A second friend add of the same person neither rebinds nor duplicates.
    later = NOW + timedelta(hours=1)
    await feed(
        app,
        MemberChange("onebot11", "10001", MemberChangeKind.FRIEND_ADD, "30001", later, None, WANG),
    )
    async with app[ENGINE].connect() as conn:
        assert len(await store.customers(conn, tz=TZ)) == 2
