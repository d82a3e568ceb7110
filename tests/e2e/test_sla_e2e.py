"""Questions and SLA end to end: fake OneBot → bot → store → alerts → API and CLI report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import OUTBOX, TICKS, create_app, run_report
from bot.clock import ManualClock
from bot.config import AppConfig
from bot.gateway.onebot import WS_PATH
from bot.keys import DISPATCHER, ENGINE, INTAKE
from bot.reports import ReportRequest, render
from bot.store.models import Outbox, SlaEvent
from bot.store.models import Question as QuestionRow
from handlers import reports_sla
from tests.conftest import make_config
from tests.fakes.onebot import FakeOneBot, segs, wait_until

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 10)  # a Tuesday, not a holiday
TOKEN = "test-onebot-token"
API = {"Authorization": "Bearer test-api-token"}
SUP, LI, CUSTOMER, OTHER = 9001, 9002, 20001, 20002


def at(hh: int, mm: int, ss: int = 0, d: date = DAY) -> datetime:
    return datetime(d.year, d.month, d.day, hh, mm, ss, tzinfo=TZ).astimezone(UTC)


def ts(t: datetime) -> int:
    return int(t.timestamp())


def gm(f: FakeOneBot, text: str, uid: int, mid: int, t: datetime) -> dict[str, Any]:
    """A group message in group 5001."""
    return f.group_message(text, user_id=uid, message_id=mid, time=ts(t))


@dataclass
class Bot:
    app: web.Application
    clock: ManualClock
    fake: FakeOneBot
    client: TestClient[Any, Any]
    cfg: AppConfig

    def inbox(self, uid: int) -> list[str]:
        out = []
        for c in self.fake.calls_of("send_private_msg"):
            if int(c["params"]["user_id"]) != uid:
                continue
            m = c["params"]["message"]
            out.append(m if isinstance(m, str) else "".join(s["data"].get("text", "") for s in m))
        return out

    async def push(self, *events: dict[str, Any]) -> None:
        await self.fake.push(*events)
        stored = len(events)
        await wait_until(lambda: self.app[INTAKE]._queue.qsize() == 0 or stored == 0)
        await asyncio.sleep(0.05)
        await self.app[INTAKE].drain()

    async def outbox(self) -> list[Any]:
        async with self.app[ENGINE].connect() as conn:
            return list((await conn.execute(select(Outbox.__table__))).all())  # type: ignore[attr-defined]

    async def settle(self, when: datetime) -> None:
        """Move the clock; let fired timers finish their store writes; run the outbox."""
        await self.clock.set(when)
        for _ in range(40):
            await asyncio.sleep(0.01)
        await self.app[OUTBOX].run_once()

    async def get(self, path: str, **params: str) -> Any:
        resp = await self.client.get(path, params=params, headers=API)
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def start(tmp_path: Path, aiohttp_client: Any, now: datetime) -> Bot:
    cfg = make_config(tmp_path, delivery={"total_per_second": 0, "per_recipient_per_minute": 0})
    clock = ManualClock(now)
    app = create_app(cfg, clock=clock)
    client = await aiohttp_client(TestServer(app))
    await app[TICKS].stop()  # the test drives time; alerts run on the exact timer
    fake = FakeOneBot("10001", token=TOKEN, time=ts(now))
    await fake.connect_reverse(client.make_url(WS_PATH))
    await wait_until(lambda: bool(app[DISPATCHER].deps["gateway"].online().get("onebot11")))
    return Bot(app, clock, fake, client, cfg)


@pytest.fixture
async def bot(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Bot]:
    b = await start(tmp_path, aiohttp_client, at(9, 55))
    yield b
    await b.fake.close()


async def test_burst_quote_answer_and_api(bot: Bot) -> None:
    """A burst of three is one question; a quote answers it; API and CLI give the same numbers."""
    f = bot.fake
    await bot.clock.set(at(10, 0))
    await bot.push(
        f.group_message(
            "请问这款奶粉怎么冲？", user_id=CUSTOMER, message_id=101, time=ts(at(10, 0))
        ),
        gm(f, "在吗", CUSTOMER, 102, at(10, 0, 30)),
        gm(f, "急", CUSTOMER, 103, at(10, 1)),
    )
    await bot.clock.set(at(10, 2))
    reply = segs(("reply", {"id": "101"}), ("text", {"text": "用40度温水"}))
    await bot.push(f.group_message(user_id=LI, message_id=104, segments=reply, time=ts(at(10, 2))))

    body = await bot.get("/api/v1/questions", **{"from": "2026-03-10", "to": "2026-03-10"})
    [q] = body["questions"]
    assert (q["group_id"], q["asker_id"], q["status"]) == ("5001", str(CUSTOMER), "answered")
    assert (q["link_method"], q["link_confidence"], q["first_responder_id"]) == (
        "quote",
        1.0,
        "li",
    )
    assert q["frt_business_s"] == 120.0
    assert q["frt_calendar_s"] == 120.0
    assert q["owner_ids"] == ["li"]
    assert q["id"].startswith("Q")

    params = {"from": "2026-03-10", "to": "2026-03-10", "as_of": at(11, 0).isoformat()}
    ops = await bot.get("/api/v1/sla/operators", **params)
    [li] = ops["rows"]
    assert li["operator"] == "li"
    assert li["first_responses"] == 1
    assert li["credit_frt_p50_s"] == 120.0
    assert li["owned_attainment_strict"] == 1.0
    req = ReportRequest(DAY, DAY, at(11, 0), view="operators")
    tables = await run_report(bot.cfg, "sla", req)
    assert json.loads(json.dumps(ops["rows"])) == json.loads(render(tables, "json"))[0]["rows"]
    assert render(tables, "csv").splitlines()[1].startswith("li,1,1,2m,2m,120")
    assert "SLA per operator" in render(tables, "table")
    daily = await bot.get("/api/v1/sla/daily", **params, basis="calendar", view="lenient")
    assert daily["rows"][0]["date"] == "2026-03-10"
    assert daily["rows"][0]["answered"] == 1


async def test_api_needs_the_token(bot: Bot) -> None:
    """No token or a wrong token gets 401; the OpenAPI document lists the SLA paths."""
    for headers in ({}, {"Authorization": "Bearer nope"}):
        resp = await bot.client.get("/api/v1/questions", headers=headers)
        assert resp.status == 401
    doc = await bot.get("/api/v1/openapi.json")
    assert doc["openapi"].startswith("3.1")
    assert {"/api/v1/questions", "/api/v1/sla/operators", "/api/v1/sla/daily"} <= set(doc["paths"])


async def test_alert_ladder_once_even_after_restart(
    bot: Bot, tmp_path: Path, aiohttp_client: Any
) -> None:
    """Warn at 80% and breach to owners, escalate to the supervisor; a restart resends nothing."""
    f = bot.fake
    await bot.clock.set(at(10, 0))
    await bot.push(gm(f, "请问有货吗？", CUSTOMER, 201, at(10, 0)))
    await bot.settle(at(10, 3, 59))
    assert bot.inbox(LI) == []
    await bot.settle(at(10, 4))
    assert len(bot.inbox(LI)) == 1
    assert "即将超时" in bot.inbox(LI)[0]
    await bot.settle(at(10, 5))
    assert len(bot.inbox(LI)) == 2
    assert "已超时" in bot.inbox(LI)[1]
    assert bot.inbox(SUP) == []
    await bot.settle(at(10, 35))
    assert len(bot.inbox(SUP)) == 1
    assert "升级" in bot.inbox(SUP)[0]
    assert all(int(c["params"].get("group_id", 0)) == 0 for c in f.calls)  # never into groups
    rows = await bot.outbox()
    await bot.fake.close()
    await bot.app.shutdown()
    await bot.app.cleanup()

    again = await start(tmp_path, aiohttp_client, at(10, 36))
    try:
        await again.settle(at(10, 40))
        assert len(await again.outbox()) == len(rows)
        assert len(again.app[DISPATCHER].deps["question_engine"].questions()) == 1
        # The staff answer still links to the reloaded question.
        await again.push(
            again.fake.group_message("有的", user_id=LI, message_id=202, time=ts(at(10, 41)))
        )
        async with again.app[ENGINE].connect() as conn:
            row = (await conn.execute(select(QuestionRow.__table__))).one()  # type: ignore[attr-defined]
        assert row.status == "answered"
        assert row.link_method == "proximity_single"
        assert set(row.alert_levels_sent) == {"warn", "breach", "escalate1"}
    finally:
        await again.fake.close()


async def test_quiet_hours_hold_the_warning_to_opening(bot: Bot) -> None:
    """A question at 11:58 warns at 13:32 (lunch break is closed), not during the break."""
    f = bot.fake
    await bot.clock.set(at(11, 58))
    await bot.push(gm(f, "怎么退货？", OTHER, 301, at(11, 58)))
    await bot.settle(at(12, 30))
    assert bot.inbox(LI) == []
    await bot.settle(at(13, 32))
    assert len(bot.inbox(LI)) == 1


async def test_recall_withdraws_and_thanks_resolve(bot: Bot) -> None:
    """A recalled lone question is withdrawn; 谢谢 after an answer resolves, opening nothing."""
    f = bot.fake
    await bot.clock.set(at(10, 0))
    await bot.push(gm(f, "在哪买？", OTHER, 401, at(10, 0)))
    await bot.push(
        f.notice("group_recall", group_id=5001, user_id=OTHER, operator_id=OTHER, message_id=401)
    )
    await bot.push(gm(f, "多少钱？", CUSTOMER, 402, at(10, 1)))
    await bot.push(gm(f, "199元", LI, 403, at(10, 2)))
    await bot.push(gm(f, "谢谢", CUSTOMER, 404, at(10, 3)))
    body = await bot.get("/api/v1/questions", **{"from": "2026-03-10"})
    assert sorted(q["status"] for q in body["questions"]) == ["resolved", "withdrawn"]


async def test_commands_answer_privately(bot: Bot) -> None:
    """我的问题 lists own open questions; 已解决 resolves; the supervisor gets the SLA summary."""
    f = bot.fake
    await bot.clock.set(at(10, 0))
    await bot.push(gm(f, "请问几点发货？", CUSTOMER, 501, at(10, 0)))
    await bot.push(f.private_message("我的问题", user_id=LI, time=ts(at(10, 1))))
    await wait_until(lambda: len(bot.inbox(LI)) == 1)
    assert "Q" in bot.inbox(LI)[0]
    assert "几点发货" in bot.inbox(LI)[0]
    qid = bot.inbox(LI)[0].split("\n")[1].split(" ")[0]
    await bot.push(f.private_message(f"已解决 {qid}", user_id=LI, time=ts(at(10, 2))))
    await wait_until(lambda: len(bot.inbox(LI)) == 2)
    assert qid in bot.inbox(LI)[1]
    await bot.push(f.private_message("sla 今天", user_id=SUP, time=ts(at(10, 3))))
    await wait_until(lambda: len(bot.inbox(SUP)) == 1)
    assert bot.inbox(SUP)[0].startswith("SLA 汇总 2026-03-10：问题 1")
    assert reports_sla.ALL_VIEWS == ("summary", "operators", "groups", "daily")


async def _questions(bot: Bot, day: str = "2026-03-10") -> dict[str, dict[str, Any]]:
    body = await bot.get("/api/v1/questions", **{"from": day, "to": day})
    return {q["asker_id"]: q for q in body["questions"]}


async def test_mention_and_proximity_link_two_open_questions(bot: Bot) -> None:
    """With two open questions, "@asker" links by mention; the next plain reply by proximity."""
    f = bot.fake
    await bot.clock.set(at(10, 0))
    await bot.push(gm(f, "请问有优惠吗？", CUSTOMER, 601, at(10, 0)))
    await bot.push(gm(f, "怎么开发票？", OTHER, 602, at(10, 1)))
    mention = segs(("at", {"qq": str(OTHER)}), ("text", {"text": " 在订单页申请"}))
    await bot.push(
        f.group_message(user_id=LI, message_id=603, segments=mention, time=ts(at(10, 2)))
    )
    qs = await _questions(bot)
    assert (qs[str(OTHER)]["link_method"], qs[str(OTHER)]["status"]) == ("mention", "answered")
    assert qs[str(CUSTOMER)]["status"] == "open"
    await bot.push(gm(f, "本周有满减", LI, 604, at(10, 3)))
    qs = await _questions(bot)
    assert (qs[str(CUSTOMER)]["link_method"], qs[str(CUSTOMER)]["frt_calendar_s"]) == (
        "proximity_single",
        180.0,
    )


async def test_holding_reply_then_followup_breach_at_16_minutes(bot: Bot) -> None:
    """稍等 answers (FRT 1 min) but starts the follow-up timer; silence breaches it at 10:16."""
    f = bot.fake
    await bot.clock.set(at(10, 0))
    await bot.push(gm(f, "快递到哪了？", CUSTOMER, 701, at(10, 0)))
    reply = segs(("reply", {"id": "701"}), ("text", {"text": "稍等，我查一下"}))
    await bot.push(f.group_message(user_id=LI, message_id=702, segments=reply, time=ts(at(10, 1))))
    await bot.settle(at(10, 15, 59))
    assert not any("跟进" in m for m in bot.inbox(LI))
    await bot.settle(at(10, 16))
    assert any("跟进超时" in m for m in bot.inbox(LI))
    async with bot.app[ENGINE].connect() as conn:
        row = (await conn.execute(select(QuestionRow.__table__))).one()  # type: ignore[attr-defined]
    assert (row.holding, row.followup_breached, row.frt_business_s) == (True, True, 60.0)
    daily = await bot.get(
        "/api/v1/sla/summary", **{"from": "2026-03-10", "as_of": at(10, 30).isoformat()}
    )
    assert daily["rows"][0]["followup_breach_rate"] == 1.0


async def test_off_hours_question_on_a_makeup_workday(tmp_path: Path, aiohttp_client: Any) -> None:
    """Sat 2026-02-28 is a 调休 workday: an 08:30 question's business clock starts at 09:00."""
    makeup = date(2026, 2, 28)
    b = await start(tmp_path, aiohttp_client, at(8, 29, d=makeup))
    try:
        f = b.fake
        await b.push(gm(f, "今天上班吗？", CUSTOMER, 801, at(8, 30, d=makeup)))
        await b.clock.set(at(9, 3, d=makeup))
        await b.push(gm(f, "上班的", LI, 802, at(9, 3, d=makeup)))
        [q] = (await _questions(b, "2026-02-28")).values()
        assert (q["frt_business_s"], q["frt_calendar_s"]) == (180.0, 1980.0)
        assert q["frt_due_at"].startswith("2026-02-28T01:05:00")  # 09:05 local
        summary = await b.get(
            "/api/v1/sla/summary",
            **{"from": "2026-02-28", "as_of": at(10, 0, d=makeup).isoformat()},
        )
        assert summary["rows"][0]["attainment_strict"] == 1.0
        cal = await b.get(
            "/api/v1/sla/summary",
            **{
                "from": "2026-02-28",
                "as_of": at(10, 0, d=makeup).isoformat(),
                "basis": "calendar",
            },
        )
        assert cal["rows"][0]["attainment_strict"] == 0.0
    finally:
        await b.fake.close()


async def test_dismiss_with_reason_is_audited_and_out_of_denominators(bot: Bot) -> None:
    """排除 Q.. 原因 dismisses privately; the audit keeps who and why; E drops the question."""
    f = bot.fake
    await bot.clock.set(at(10, 0))
    await bot.push(gm(f, "加微信领红包？", OTHER, 901, at(10, 0)))
    await bot.push(gm(f, "请问几点发货？", CUSTOMER, 902, at(10, 1)))
    qs = await _questions(bot)
    qid = qs[str(OTHER)]["id"]
    await bot.push(f.private_message(f"排除 {qid}", user_id=LI, time=ts(at(10, 2))))
    await wait_until(lambda: len(bot.inbox(LI)) == 1)
    assert bot.inbox(LI)[0].startswith("用法：排除")
    await bot.push(f.private_message(f"排除 {qid} 广告", user_id=LI, time=ts(at(10, 3))))
    await wait_until(lambda: len(bot.inbox(LI)) == 2)
    assert bot.inbox(LI)[1] == f"已排除 {qid}（原因：广告），不计入统计。"
    async with bot.app[ENGINE].connect() as conn:
        ev = (
            await conn.execute(
                select(SlaEvent.__table__).where(  # type: ignore[attr-defined]
                    SlaEvent.__table__.c.type == "question_dismissed"  # type: ignore[attr-defined]
                )
            )
        ).one()
    assert (ev.actor, ev.meta["reason"]) == ("li", "广告")
    summary = await bot.get(
        "/api/v1/sla/summary", **{"from": "2026-03-10", "as_of": at(10, 30).isoformat()}
    )
    row = summary["rows"][0]
    assert (row["questions"], row["dismissed"], row["eligible"]) == (2, 1, 1)
    assert row["attainment_strict"] == 0.0  # only the real, unanswered question counts
    assert (await _questions(bot))[str(OTHER)]["status"] == "dismissed"
