"""A day of three guides through a real OneBot socket: exact reminders, escalation, 催办, API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import OUTBOX, TICKS, create_app
from bot.clock import ManualClock
from bot.gateway.onebot import WS_PATH
from bot.keys import DISPATCHER, ENGINE, INTAKE
from bot.verification import GuideCount, VerificationKind, apply_verified
from tests.conftest import make_config
from tests.fakes.onebot import FakeOneBot, wait_until

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 10)  # a Tuesday, not a holiday
TOKEN = "test-onebot-token"
SUP, A, B, C = 9001, 9101, 9102, 9103


def at(hh: int, mm: int) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hh, mm, tzinfo=TZ).astimezone(UTC)


SOP = {
    "grace": "5m",
    "builtin_programs": False,
    "plans": [
        {
            "id": "day",
            "role": "guide",
            "steps": [
                {"name": "group_posts", "quota": 2, "source": "observed"},
                {"name": "moments", "quota": 1, "source": "api"},
            ],
            "slots": [
                {"name": "morning", "at": "09:12", "jitter_min": 10},
                {"name": "evening", "at": "19:17", "jitter_min": 10},
            ],
            "nudge": {"name": "nudge", "at": "20:47", "jitter_min": 8},
            "summary": {"name": "summary", "at": "21:13", "jitter_min": 5},
            "window_end": "22:00",
        }
    ],
    "content": [{"id": "c1", "text": "早安问候：今天新品到店", "link": "https://example.com/n"}],
}


def roster() -> list[dict[str, Any]]:
    def guide(oid: str, name: str, uid: int) -> dict[str, Any]:
        return {
            "id": oid,
            "name": name,
            "role": "guide",
            "onebot_user_ids": [str(uid)],
            "supervisor": "sup",
            "store": "徐汇店",
        }

    return [
        {"id": "sup", "name": "赵主管", "role": "supervisor", "onebot_user_ids": [str(SUP)]},
        guide("ga", "安导购", A),
        guide("gb", "贝导购", B),
        guide("gc", "陈导购", C),
    ]


@dataclass
class Day:
    app: web.Application
    clock: ManualClock
    fake: FakeOneBot
    client: TestClient[Any, Any]

    def inbox(self, uid: int) -> list[str]:
        return [
            c["params"]["message"] if isinstance(c["params"]["message"], str) else _text(c)
            for c in self.fake.calls_of("send_private_msg")
            if int(c["params"]["user_id"]) == uid
        ]

    async def run_until(self, when: datetime) -> None:
        """Advance minute by minute, running the SOP tick and the outbox like the scheduler."""
        while True:
            step = min(self.clock.now() + timedelta(minutes=1), when)
            await self.clock.set(step)
            await self.app[DISPATCHER].deps["sop"].tick()
            await self.app[OUTBOX].run_once()
            if step >= when:
                return


def _text(call: dict[str, Any]) -> str:
    return "".join(s["data"].get("text", "") for s in call["params"]["message"])


@pytest.fixture
async def day(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Day]:
    cfg = make_config(
        tmp_path,
        operators=roster(),
        groups=[
            {"platform": "onebot11", "id": "5001", "name": "会员群 1", "owners": ["ga"]},
            {"platform": "onebot11", "id": "5002", "name": "会员群 2", "owners": ["ga"]},
        ],
        sop=SOP,
        delivery={"total_per_second": 0, "per_recipient_per_minute": 0},
    )
    clock = ManualClock(at(8, 0))
    app = create_app(cfg, clock=clock)
    client = await aiohttp_client(TestServer(app))
    await app[TICKS].stop()  # the test drives the ticks on the manual clock
    fake = FakeOneBot("10001", token=TOKEN, time=int(at(8, 0).timestamp()))
    await fake.connect_reverse(client.make_url(WS_PATH))
    await wait_until(lambda: bool(app[DISPATCHER].deps["gateway"].online().get("onebot11")))
    yield Day(app, clock, fake, client)
    await fake.close()


async def test_a_day_of_three_guides(day: Day) -> None:
    """Observed posts + API, commands, and nothing: exact reminders, nudge, summary, 催办."""
    fake = day.fake
    await day.run_until(at(8, 1))  # start: today's and tomorrow's tasks materialized
    await day.run_until(at(9, 25))  # every morning slot (09:12 + < 10 min) is due
    morning = (
        "【今日SOP提醒】\n今日进度（已完成/目标）：\n"
        "· 群发 已完成 0/2，还差 2\n· 朋友圈 已完成 0/1，还差 1\n"
        "推荐内容：\n早安问候：今天新品到店\nhttps://example.com/n\n"
        "完成后回复「完成 群发」或「/done group_posts」标记。"
    )
    for uid in (A, B, C):
        assert day.inbox(uid) == [morning]
    assert day.inbox(SUP) == []

    # A posts in two monitored groups (twice in one: distinct groups count); B uses commands.
    t = int(at(10, 0).timestamp())
    await day.clock.set(at(10, 0))
    await fake.push(
        fake.group_message("早上好", group_id=5001, user_id=A, time=t),
        fake.group_message("新品到了", group_id=5001, user_id=A, time=t + 60),
        fake.group_message("欢迎来店", group_id=5002, user_id=A, time=t + 120),
        fake.private_message("完成 群发 2", user_id=B, time=t),
        fake.private_message("/done moments", user_id=B, time=t + 5),
    )
    await wait_until(lambda: len(day.inbox(B)) == 3)
    assert day.inbox(B)[1] == (
        "已记录。\n今日进度（已完成/目标）：\n· 群发 已完成 2/2 ✓\n· 朋友圈 已完成 0/1，还差 1\n"
        "完成后回复「完成 朋友圈」或「/done moments」标记。"
    )
    assert day.inbox(B)[2].startswith("已记录。\n今日进度（已完成/目标）：\n· 群发 已完成 2/2 ✓")
    # A's moment is verified through the API port (the WeCom gateway's moment results).
    await day.app[INTAKE].drain()
    matched = await apply_verified(
        day.app[ENGINE],
        [GuideCount("ga", "moments", DAY, 1, "moment-77", VerificationKind.MOMENTS)],
        at(12, 0),
    )
    assert matched == 1

    await day.run_until(at(19, 40))
    evening_c = (
        "【今日SOP提醒】\n今日进度（已完成/目标）：\n"
        "· 群发 已完成 0/2，还差 2\n· 朋友圈 已完成 0/1，还差 1\n"
        "推荐内容：\n早安问候：今天新品到店\nhttps://example.com/n\n"
        "完成后回复「完成 群发」或「/done group_posts」标记。"
    )
    assert day.inbox(C) == [morning, evening_c]
    assert len(day.inbox(A)) == 1  # done: no more reminders
    assert len(day.inbox(B)) == 3  # morning + two command answers

    await day.run_until(at(21, 0))
    nudge = (
        "【收尾提醒】今天还有任务未完成，22:00 截止：\n"
        "· 群发 已完成 0/2，还差 2\n· 朋友圈 已完成 0/1，还差 1\n"
        "完成后回复「完成 群发」或「/done group_posts」标记。"
    )
    assert day.inbox(C)[-1] == nudge
    assert len(day.inbox(A)) == 1
    assert len(day.inbox(B)) == 3

    await day.run_until(at(21, 20))
    assert day.inbox(SUP) == [
        "【今日SOP汇总】2026-03-10\n3 人中已完成 2 人。\n未完成（已完成/目标）：\n"
        "· 陈导购（徐汇店）：群发 0/2，朋友圈 0/1"
    ]

    # 催办: the supervisor urges C; C gets it through the outbox, the supervisor the progress.
    await fake.push(
        fake.private_message("催办 陈导购", user_id=SUP, time=int(at(21, 21).timestamp()))
    )
    await wait_until(lambda: len(day.inbox(SUP)) == 2)
    assert day.inbox(SUP)[1].startswith("已催办 陈导购。\n陈导购\n今日进度")
    await day.run_until(at(21, 22))
    assert day.inbox(C)[-1] == (
        "【催办】赵主管 提醒你尽快完成今天的任务：\n"
        "· 群发 已完成 0/2，还差 2\n· 朋友圈 已完成 0/1，还差 1\n"
        "完成后回复「完成 群发」或「/done group_posts」标记。"
    )
    assert len(day.inbox(C)) == 4
    assert len(day.inbox(A)) == 1

    # After the day closes, the compliance API reports it; C's tasks are missed.
    await day.run_until(at(22, 30))
    resp = await day.client.get(
        "/api/v1/sop/compliance",
        params={"from": DAY.isoformat(), "to": DAY.isoformat(), "view": "guides"},
        headers={"Authorization": "Bearer test-api-token"},
    )
    assert resp.status == 200
    rows = {r["guide"]: r for r in (await resp.json())["tables"][0]["rows"]}
    assert (rows["ga"]["on_time"], rows["gb"]["on_time"], rows["gc"]["missed"]) == (2, 2, 2)
    assert rows["gc"]["completion_rate"] == 0.0
    assert rows["ga"]["completion_rate"] == 1.0
