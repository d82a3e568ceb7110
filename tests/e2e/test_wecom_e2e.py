"""Mixed mode end to end: customer groups on OneBot, staff on WeCom (fake qyapi + callbacks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import MATTERBRIDGE, OUTBOX, TICKS, create_app, run_report
from bot.clock import ManualClock
from bot.events import ChatMessage, card_task_id
from bot.gateway.onebot import WS_PATH
from bot.keys import DISPATCHER, ENGINE, INTAKE
from bot.reports import ReportRequest
from bot.store import tasks as store
from bot.store.models import Customer, Outbox
from sop.slots import ReminderKind, reminder_key
from tests.conftest import make_config
from tests.fakes.matterbridge import FakeMatterbridge
from tests.fakes.onebot import FakeOneBot, wait_until
from tests.fakes.wecom import (
    AES_KEY,
    APP_SECRET,
    CALLBACK_TOKEN,
    CONTACT_SECRET,
    CORP_ID,
    Call,
    CallbackSender,
    FakeWeCom,
    Json,
    callback_xml,
)

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 10)  # a Tuesday, not a holiday
TOKEN = "test-onebot-token"
API = {"Authorization": "Bearer test-api-token"}
AGENT = 1000002
SUP, LI, CUSTOMER = 9001, 9002, 20001

SOP = {
    "grace": "5m",
    "plans": [
        {
            "id": "day",
            "role": "guide",
            "steps": [
                {"name": "moments", "quota": 2, "source": "api"},
                {"name": "group_posts", "quota": 2, "source": "api"},
                {"name": "private_chats", "quota": 3, "source": "api"},
            ],
            "slots": [{"name": "morning", "at": "10:12", "jitter_min": 0}],
            "window_end": "21:00",
        }
    ],
}


def at(hh: int, mm: int, d: date = DAY) -> datetime:
    return datetime(d.year, d.month, d.day, hh, mm, tzinfo=TZ).astimezone(UTC)


class MomentsWeCom(FakeWeCom):
    """The fake qyapi, with ``get_moment_task`` answered per ``moment_id``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.moments: dict[str, list[Json]] = {}

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["tail"] == "externalcontact/get_moment_task":
            body = await request.json()
            tasks = self.moments.get(str(body.get("moment_id")), [])
            self.calls.append(Call(request.path, {}, body))
            return web.json_response({"errcode": 0, "errmsg": "ok", "task_list": tasks})
        return await super()._api(request)


@dataclass
class Rig:
    app: web.Application
    clock: ManualClock
    onebot: FakeOneBot
    wecom: MomentsWeCom
    client: TestClient[Any, Any]
    callbacks: CallbackSender

    def texts(self, user: str) -> list[str]:
        """Text app messages WeCom delivered to ``user``."""
        return [
            b["text"]["content"]
            for b in self.wecom.delivered
            if b["msgtype"] == "text" and user in b["touser"].split("|")
        ]

    def cards(self, user: str) -> list[Json]:
        return [
            b["template_card"]
            for b in self.wecom.delivered
            if b["msgtype"] == "template_card" and user in b["touser"].split("|")
        ]

    def onebot_private(self) -> list[Any]:
        return self.onebot.calls_of("send_private_msg")

    @property
    def sop(self) -> Any:
        return self.app[DISPATCHER].deps["sop"]

    async def run_until(self, when: datetime) -> None:
        """Minute by minute: the SOP tick and the outbox, as the scheduler would run them."""
        while True:
            step = min(self.clock.now() + timedelta(minutes=1), when)
            await self.clock.set(step)
            await self.sop.tick()
            await self.app[OUTBOX].run_once()
            if step >= when:
                return

    async def callback(self, fields: dict[str, object]) -> None:
        query, body = self.callbacks.post(callback_xml(fields))
        resp = await self.client.post(f"/wecom/callback?{query}", data=body)
        assert resp.status == 200, await resp.text()

    async def click(self, user: str, key: str, card: Json, code: str) -> None:
        await self.callback(
            {
                "ToUserName": CORP_ID,
                "FromUserName": user,
                "CreateTime": int(self.clock.now().timestamp()),
                "MsgType": "event",
                "Event": "template_card_event",
                "EventKey": key,
                "TaskId": card["task_id"],
                "CardType": "button_interaction",
                "ResponseCode": code,
                "AgentID": AGENT,
            }
        )

    async def outbox(self) -> list[Any]:
        async with self.app[ENGINE].connect() as conn:
            return list((await conn.execute(select(Outbox.__table__))).all())  # type: ignore[attr-defined]

    async def tasks(self, guide: str, d: date = DAY) -> dict[str, store.TaskRow]:
        async with self.app[ENGINE].connect() as conn:
            return {r.step: r for r in await store.tasks_on(conn, d, [guide])}


def roster() -> list[dict[str, Any]]:
    return [
        {
            "id": "sup",
            "name": "赵主管",
            "role": "supervisor",
            "onebot_user_ids": [str(SUP)],
            "wecom_user_id": "zhao_wx",
        },
        {
            "id": "li",
            "name": "李群主",
            "role": "operator",
            "onebot_user_ids": [str(LI)],
            "wecom_user_id": "li_wx",
            "supervisor": "sup",
        },
        {
            "id": "wang",
            "name": "王导购",
            "role": "guide",
            "wecom_user_id": "wang_wx",
            "supervisor": "sup",
            "store": "徐汇店",
        },
        {
            "id": "ghost",
            "name": "离职导购",
            "role": "guide",
            "wecom_user_id": "ghost_wx",
            "supervisor": "sup",
            "store": "徐汇店",
        },
    ]


@pytest.fixture
async def rig(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Rig]:
    wecom = MomentsWeCom()
    wecom.invalid_users = {"ghost_wx"}  # left the company: WeCom answers invaliduser
    url = await wecom.start()
    cfg = make_config(
        tmp_path,
        operators=roster(),
        sop=SOP,
        gateway={
            "onebot": {"access_token": TOKEN},
            "wecom": {
                "enabled": True,
                "corp_id": CORP_ID,
                "agent_id": AGENT,
                "app_secret": APP_SECRET,
                "contact_secret": CONTACT_SECRET,
                "callback_token": CALLBACK_TOKEN,
                "encoding_aes_key": AES_KEY,
                "base_url": url,
            },
        },
        delivery={"total_per_second": 0, "per_recipient_per_minute": 0, "max_attempts": 1},
    )
    clock = ManualClock(at(9, 55))
    app = create_app(cfg, clock=clock)
    client = await aiohttp_client(TestServer(app))
    await app[TICKS].stop()  # the test drives the ticks on the manual clock
    onebot = FakeOneBot("10001", token=TOKEN, time=int(at(9, 55).timestamp()))
    await onebot.connect_reverse(client.make_url(WS_PATH))
    await wait_until(lambda: bool(app[DISPATCHER].deps["gateway"].online().get("onebot11")))
    yield Rig(app, clock, onebot, wecom, client, CallbackSender())
    await onebot.close()
    await wecom.close()


async def test_mixed_mode_alerts_reminders_and_cards(rig: Rig) -> None:
    """OneBot question → SLA alert on WeCom; slot reminder text + card; 稍后提醒 then 完成."""
    await rig.run_until(at(9, 56))
    t = int(at(10, 0).timestamp())
    await rig.clock.set(at(10, 0))
    await rig.onebot.push(rig.onebot.group_message("请问有货吗？", user_id=CUSTOMER, time=t))
    await wait_until(lambda: rig.app[INTAKE]._queue.qsize() == 0)
    await asyncio.sleep(0.05)
    await rig.app[INTAKE].drain()
    await rig.clock.set(at(10, 4))
    for _ in range(40):  # the alert timer fires on the clock; let its write finish
        await asyncio.sleep(0.01)
    await rig.app[OUTBOX].run_once()
    assert len(rig.texts("li_wx")) == 1
    assert "即将超时" in rig.texts("li_wx")[0]

    # The guide's slot reminder: a WeCom text, then a card with the same idempotency key.
    await rig.run_until(at(10, 13))
    key = reminder_key("wang", DAY, "morning", ReminderKind.SLOT)
    [reminder] = rig.texts("wang_wx")
    assert reminder.startswith("【今日SOP提醒】\n今日进度（已完成/目标）：\n· 朋友圈 已完成 0/2")
    [card] = rig.cards("wang_wx")
    assert card["task_id"] == card_task_id(key)
    assert card["main_title"]["title"] == "【今日SOP提醒】"
    assert [f["keyname"] for f in card["horizontal_content_list"]] == ["朋友圈", "群发", "私聊"]
    assert [b["key"] for b in card["button_list"]] == ["done", "snooze"]
    sent = [b for b in rig.wecom.delivered if b.get("sopbot_idempotency_key") == key]
    assert len(sent) == 2
    assert rig.onebot_private() == []  # staff are reached on WeCom only

    # An invaliduser reminder is recorded as failed, not counted as sent.
    rows = {r.idempotency_key: r for r in await rig.outbox()}
    ghost = rows[reminder_key("ghost", DAY, "morning", ReminderKind.SLOT)]
    assert ghost.status == "failed"
    assert "InvalidRecipient" in ghost.last_error
    assert rows[key].status == "sent"

    # 稍后提醒: the card greys out, a snooze comes 30 min later with a card of its own.
    await rig.click("wang_wx", "snooze", card, "rc-1")
    [update] = rig.wecom.api_calls("update_template_card")
    assert update.body == {
        "userids": ["wang_wx"],
        "agentid": AGENT,
        "response_code": "rc-1",
        "button": {"replace_name": "30分钟后再提醒"},
    }
    await rig.run_until(at(10, 42))
    assert len(rig.texts("wang_wx")) == 1
    await rig.run_until(at(10, 44))
    assert rig.texts("wang_wx")[1].startswith("【稍后提醒】\n今日进度")
    snooze_card = rig.cards("wang_wx")[1]
    assert snooze_card["task_id"] == card_task_id(key + ":snooze1")

    # 完成 on the snooze card: self-reported completion of every step it listed.
    await rig.click("wang_wx", "done", snooze_card, "rc-2")
    tasks = await rig.tasks("wang")
    assert {s: (t.done, t.quota, t.status) for s, t in tasks.items()} == {
        "moments": (2, 2, "done"),
        "group_posts": (2, 2, "done"),
        "private_chats": (3, 3, "done"),
    }
    done_update = rig.wecom.api_calls("update_template_card")[1].body
    assert done_update is not None
    assert done_update["button"] == {"replace_name": "已记录完成"}
    # The same click replayed by WeCom (new nonce, same event) adds nothing.
    await rig.click("wang_wx", "done", snooze_card, "rc-2")
    assert (await rig.tasks("wang"))["moments"].done == 2


async def test_commands_and_contacts_over_callbacks(rig: Rig) -> None:
    """A guide types a command to the app; a customer added, then deleted, drives lifecycle."""
    await rig.run_until(at(9, 56))
    now = int(rig.clock.now().timestamp())
    await rig.callback(
        {
            "ToUserName": CORP_ID,
            "FromUserName": "wang_wx",
            "CreateTime": now,
            "MsgType": "text",
            "Content": "今日任务",
            "MsgId": "7001",
            "AgentID": AGENT,
        }
    )
    await wait_until(lambda: bool(rig.texts("wang_wx")))
    assert rig.texts("wang_wx")[0].startswith("今日任务：\n今日进度（已完成/目标）：")

    contact = {
        "ToUserName": CORP_ID,
        "FromUserName": "sys",
        "CreateTime": now + 1,
        "MsgType": "event",
        "Event": "change_external_contact",
        "ChangeType": "add_external_contact",
        "UserID": "wang_wx",
        "ExternalUserID": "wmCUSTOMER1",
    }
    await rig.callback(contact)
    await wait_until(lambda: rig.app[INTAKE]._queue.qsize() == 0)
    await asyncio.sleep(0.05)
    await rig.app[INTAKE].drain()
    welcome = [t for t in (await rig.tasks("wang")).values() if t.target_key == "wmCUSTOMER1"]
    assert welcome, "the new customer's day-0 touches are materialized"
    assert all(t.status == "pending" for t in welcome)

    await rig.callback({**contact, "CreateTime": now + 2, "ChangeType": "del_external_contact"})
    await wait_until(lambda: rig.app[INTAKE]._queue.qsize() == 0)
    await asyncio.sleep(0.05)
    await rig.app[INTAKE].drain()
    after = [t for t in (await rig.tasks("wang")).values() if t.target_key == "wmCUSTOMER1"]
    assert {(t.status, t.miss_reason) for t in after} == {("waived", "contact_deleted")}
    async with rig.app[ENGINE].connect() as conn:
        row = (await conn.execute(select(Customer.__table__))).one()  # type: ignore[attr-defined]
    assert (row.guide_id, row.left_at is not None) == ("wang", True)


async def test_a_day_verified_through_the_api(rig: Rig, tmp_path: Path) -> None:
    """Moments, group sends and next-day chat counts verified via WeCom; report source api."""
    await rig.run_until(at(10, 0))
    verification = rig.app[DISPATCHER].deps["verification"]
    verifier = rig.app[DISPATCHER].deps["sop_verifier"]
    fake = rig.wecom
    moment_ids = []
    for n in (1, 2):
        fake.responses["externalcontact/get_moment_task_result"] = {
            "errcode": 0,
            "errmsg": "ok",
            "status": 3,
            "type": "add_moment_task",
            "result": {"errcode": 0, "errmsg": "ok", "moment_id": f"mom{n}"},
        }
        moment_ids.append(
            await verification.push_moment(f"新品第{n}弹", ["wang"], DAY, rig.clock.now())
        )
    assert moment_ids == ["mom1", "mom2"]
    msgid = await verification.push_group_send(
        "wang", "本周会员日", ["wrGROUP1", "wrGROUP2"], DAY, rig.clock.now()
    )
    [template] = fake.api_calls("add_msg_template")
    assert template.body is not None
    assert (template.body["sender"], template.body["chat_id_list"]) == (
        "wang_wx",
        ["wrGROUP1", "wrGROUP2"],
    )

    await verifier.tick()  # nothing published yet: tracked, counted 0
    tasks = await rig.tasks("wang")
    assert (tasks["moments"].done, tasks["group_posts"].done) == (0, 0)

    fake.moments = {
        "mom1": [{"userid": "wang_wx", "publish_status": 1}],
        "mom2": [{"userid": "wang_wx", "publish_status": 1}],
    }
    sent_at = int(at(11, 0).timestamp())
    fake.responses["externalcontact/get_groupmsg_send_result"] = {
        "errcode": 0,
        "errmsg": "ok",
        "next_cursor": "",
        "send_list": [
            {"chat_id": g, "userid": "wang_wx", "status": 1, "send_time": sent_at}
            for g in ("wrGROUP1", "wrGROUP2")
        ],
    }
    await rig.clock.set(at(10, 10))
    await verifier.tick()  # within verify_every (15 min) of the last poll: none yet
    assert (await rig.tasks("wang"))["moments"].done == 0
    await rig.clock.set(at(11, 20))
    await verifier.tick()
    tasks = await rig.tasks("wang")
    assert {s: (t.done, t.status) for s, t in tasks.items()} == {
        "moments": (2, "done"),
        "group_posts": (2, "done"),
        "private_chats": (0, "pending"),
    }
    assert msgid == "msgGCAAAXtWyujaWJHDDGi0mAAAA"

    # Next morning at 09:30 the behaviour data of DAY arrives: 4 private chats.
    fake.responses["externalcontact/get_user_behavior_data"] = {
        "errcode": 0,
        "errmsg": "ok",
        "behavior_data": [
            {"stat_time": int(at(0, 0).timestamp()), "chat_cnt": 4, "message_cnt": 30}
        ],
    }
    await rig.run_until(at(21, 30))  # the day closes: private chats missed for now
    assert (await rig.tasks("wang"))["private_chats"].status == "missed"
    nxt = DAY + timedelta(days=1)
    await rig.clock.set(at(9, 29, nxt))
    await verifier.tick()
    assert (await rig.tasks("wang"))["private_chats"].done == 0
    await rig.clock.set(at(9, 31, nxt))
    await verifier.tick()
    chats = (await rig.tasks("wang"))["private_chats"]
    assert (chats.done, chats.status) == (4, "done")  # dated at the window end: on time
    calls = fake.api_calls("get_user_behavior_data")
    [behaviour] = [c for c in calls if c.body and c.body["userid"] == ["wang_wx"]]
    assert len(calls) == 2  # one member per call (wang, ghost): WeCom sums the userids given
    assert behaviour.body == {
        "userid": ["wang_wx"],
        "start_time": int(at(0, 0).timestamp()),
        "end_time": int(at(0, 0).timestamp()),
    }

    async with rig.app[ENGINE].connect() as conn:
        records = await store.task_records(conn, DAY, DAY, guide="wang")
    assert {r.step: r.sources for r in records} == {
        "moments": frozenset({"api"}),
        "group_posts": frozenset({"api"}),
        "private_chats": frozenset({"api"}),
    }
    resp = await rig.client.get(
        "/api/v1/sop/compliance",
        params={"from": DAY.isoformat(), "to": DAY.isoformat(), "view": "guides"},
        headers=API,
    )
    assert resp.status == 200
    rows = {r["guide"]: r for r in (await resp.json())["tables"][0]["rows"]}
    assert (rows["wang"]["on_time"], rows["wang"]["completion_rate"]) == (3, 1.0)
    request = ReportRequest(DAY, DAY, rig.clock.now(), view="guides")
    cli = await run_report(rig.app[DISPATCHER].deps["cfg"], "sop", request)
    assert [dict(r) for r in cli[0].rows] == list(rows.values())
    # The report itself says where the counts came from: every step verified through the API.
    resp = await rig.client.get(
        "/api/v1/sop/compliance",
        params={"from": DAY.isoformat(), "to": DAY.isoformat(), "view": "steps", "guide": "wang"},
        headers=API,
    )
    steps = {r["step"]: r for r in (await resp.json())["tables"][0]["rows"]}
    assert {
        k: (r["source_api"], r["source_observed"], r["source_self"]) for k, r in steps.items()
    } == {
        "moments": (1, 0, 0),
        "group_posts": (1, 0, 0),
        "private_chats": (1, 0, 0),
    }


async def test_matterbridge_gateway_is_wired(tmp_path: Path, aiohttp_client: Any) -> None:
    """With [gateway.matterbridge] on, the app reads its stream into the intake and stops it."""
    bridge = FakeMatterbridge(token="mb-token")
    url = await bridge.start()
    cfg = make_config(
        tmp_path,
        gateway={
            "onebot": {"enabled": False},
            "matterbridge": {
                "enabled": True,
                "url": url,
                "token": "mb-token",
                "gateway": "mygateway",
            },
        },
        groups=[{"platform": "matterbridge", "id": "mygateway:mygreatchannel", "owners": ["li"]}],
    )
    app = create_app(cfg, clock=ManualClock(at(10, 0)))
    await aiohttp_client(TestServer(app))
    await app[TICKS].stop()
    seen: list[ChatMessage] = []
    real_put = app[INTAKE].put

    async def spy(event: Any) -> None:
        if isinstance(event, ChatMessage):
            seen.append(event)
        await real_put(event)

    app[INTAKE].put = spy  # type: ignore[method-assign]
    await wait_until(lambda: bool(app[MATTERBRIDGE].online_accounts()))
    bridge.push(
        {
            "text": "请问周末营业吗？",
            "channel": "mygreatchannel",
            "username": "alice",
            "userid": "U1",
            "gateway": "mygateway",
            "account": "slack.myteam",
            "protocol": "slack",
            "event": "",
            "id": "",
            "timestamp": "2026-03-10T02:00:00Z",
        }
    )
    await wait_until(lambda: bool(seen))
    assert (seen[0].platform, seen[0].chat_id) == ("matterbridge", "mygateway:mygreatchannel")
    await bridge.close()
