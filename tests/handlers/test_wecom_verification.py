"""WeComVerification over the fake qyapi: counts per guide per day, tracking, partial failures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.events import card_task_id
from bot.gateway.base import SentMessage
from bot.gateway.hub import GatewayHub
from bot.gateway.wecom.messages import card_task_id as wecom_card_task_id
from bot.roster import Roster
from bot.store import tasks as store
from bot.verification import GuideCount, VerificationKind, apply_verified
from bot.wecom_verification import WeComVerification
from tests.conftest import make_config
from tests.fakes.wecom import FakeTime, FakeWeCom, wecom_gateway

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 10)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=TZ).astimezone(UTC)


def roster(tmp_path: Path) -> Roster:
    ops = [
        {"id": "wang", "name": "王", "role": "guide", "wecom_user_id": "wang_wx"},
        {"id": "zhou", "name": "周", "role": "guide", "wecom_user_id": "zhou_wx"},
        {"id": "qq", "name": "秦", "role": "guide", "onebot_user_ids": ["1"]},
    ]
    return Roster.from_config(make_config(tmp_path, operators=ops, groups=[]))


async def seed(engine: AsyncEngine) -> None:
    end = datetime(2026, 3, 10, 21, 0, tzinfo=TZ).astimezone(UTC)
    async with engine.begin() as conn:
        await store.materialize(
            conn,
            [
                store.NewTask(g, "s", step, DAY, 3, end)
                for g in ("wang", "zhou", "qq")
                for step in ("moments", "group_posts", "private_chats")
            ],
            NOW,
        )


async def done(engine: AsyncEngine, guide: str, step: str) -> int:
    async with engine.connect() as conn:
        task = await store.find_task(conn, guide, step, DAY)
    assert task is not None
    return task.done


async def test_moments_count_published_tasks_and_skip_failures(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Each tracked moment published counts 1; a failing moment is skipped; re-polls replace."""
    await seed(engine)
    fake = FakeWeCom()
    async with wecom_gateway(fake, FakeTime()) as (gw, _, _):
        source = WeComVerification(gw.sop, roster(tmp_path), lambda: engine)
        for mid in ("m1", "m2", "m3"):
            await source.track(VerificationKind.MOMENTS, mid, ["wang", "zhou"], DAY, NOW)
        assert await source.track(VerificationKind.MOMENTS, "m9", ["nobody"], DAY, NOW) == 0
        fake.pages["get_moment_task"] = {
            "": {
                "errcode": 0,
                "errmsg": "ok",
                "next_cursor": "P2",
                "task_list": [{"userid": "wang_wx", "publish_status": 1}],
            },
            "P2": {
                "errcode": 0,
                "errmsg": "ok",
                "task_list": [{"userid": "zhou_wx", "publish_status": 0}],
            },
        }
        fake.fail["externalcontact/get_moment_task"] = [60011]  # no permission, first call only
        counts = await source.moment_results(DAY)
        assert sorted((c.guide_id, c.ref, c.count) for c in counts) == [
            ("wang", "m2", 1),
            ("wang", "m3", 1),
            ("zhou", "m2", 0),
            ("zhou", "m3", 0),
        ]
        await apply_verified(engine, counts, NOW)
        await apply_verified(engine, counts, NOW + timedelta(minutes=15))
        assert (await done(engine, "wang", "moments"), await done(engine, "zhou", "moments")) == (
            2,
            0,
        )


async def test_group_sends_count_groups_reached_that_day(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Distinct groups sent to on the day count; sends on another day or unsent do not."""
    await seed(engine)
    fake = FakeWeCom()
    day_ts = int(NOW.timestamp())
    fake.responses["externalcontact/get_groupmsg_send_result"] = {
        "errcode": 0,
        "errmsg": "ok",
        "send_list": [
            {"chat_id": "g1", "userid": "wang_wx", "status": 1, "send_time": day_ts},
            {"chat_id": "g1", "userid": "wang_wx", "status": 1, "send_time": day_ts + 5},
            {"chat_id": "g2", "userid": "wang_wx", "status": 1, "send_time": day_ts - 86400},
            {"chat_id": "g3", "userid": "wang_wx", "status": 0},
            {"chat_id": "g4", "userid": "wang_wx", "status": 1, "send_time": day_ts + 60},
        ],
    }
    async with wecom_gateway(fake, FakeTime()) as (gw, _, _):
        source = WeComVerification(gw.sop, roster(tmp_path), lambda: engine)
        msgid = await source.push_group_send("wang", "会员日", ["g1", "g4"], DAY, NOW)
        assert await source.track(VerificationKind.GROUP_SEND, "x", ["qq"], DAY, NOW) == 1
        counts = await source.group_send_results(DAY)
    assert counts == [
        GuideCount("wang", "group_posts", DAY, 2, msgid, VerificationKind.GROUP_SEND)
    ]


async def test_behaviour_data_gives_private_chats(engine: AsyncEngine, tmp_path: Path) -> None:
    """chat_cnt of the day per guide with a WeCom id, one member per call; errors skip one."""
    await seed(engine)
    fake = FakeWeCom()
    midnight = int(datetime(2026, 3, 10, tzinfo=TZ).timestamp())
    fake.responses["externalcontact/get_user_behavior_data"] = {
        "errcode": 0,
        "errmsg": "ok",
        "behavior_data": [{"stat_time": midnight, "chat_cnt": 5, "message_cnt": 9}],
    }
    fake.fail["externalcontact/get_user_behavior_data"] = [84061]  # wang: not a contact member
    async with wecom_gateway(fake, FakeTime()) as (gw, _, _):
        source = WeComVerification(gw.sop, roster(tmp_path), lambda: engine)
        counts = await source.behaviour_data(DAY)
    assert counts == [
        GuideCount("zhou", "private_chats", DAY, 5, "day", VerificationKind.BEHAVIOUR)
    ]
    bodies = [c.body for c in fake.api_calls("get_user_behavior_data")]
    assert [b["userid"] for b in bodies if b] == [["wang_wx"], ["zhou_wx"]]


class _PlainGateway:
    """A OneBot-like gateway: its private send takes no idempotency key."""

    platform = "onebot11"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def online_accounts(self) -> list[str]:
        return ["1"]

    async def send_private_text(
        self, user_id: str, text: str, *, account_id: str | None = None
    ) -> SentMessage:
        self.sent.append((user_id, text))
        return SentMessage(self.platform, "1", "m")

    async def send_group_text(self, group_id: str, text: str, **kw: Any) -> SentMessage:
        raise NotImplementedError


async def test_hub_passes_the_key_only_to_gateways_that_take_it() -> None:
    """WeCom gets the outbox key in its payload; a OneBot-like gateway never sees it."""
    fake = FakeWeCom()
    hub = GatewayHub()
    plain = _PlainGateway()
    hub.add(plain)
    async with wecom_gateway(fake, FakeTime()) as (gw, _, _):
        hub.add(gw)
        await hub.send_private_text("wecom", "wang_wx", "hi", idempotency_key="k1")
        await hub.send_private_text("wecom", "wang_wx", "hi", idempotency_key="k1")
        await hub.send_private_text("onebot11", "42", "hi", idempotency_key="k1")
    assert [b["sopbot_idempotency_key"] for b in fake.delivered] == ["k1"]  # duplicate dropped
    assert plain.sent == [("42", "hi")]
    assert card_task_id("sop:slot:x") == wecom_card_task_id("sop:slot:x")
