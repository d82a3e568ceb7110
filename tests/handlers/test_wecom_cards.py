"""Card clicks: 完成 records what the card listed, 稍后提醒 enqueues a snooze; cards updated."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import ManualClock
from bot.delivery import card_layout
from bot.dispatch import Dispatcher
from bot.events import CardClick, card_task_id
from bot.gateway.base import SentMessage
from bot.gateway.hub import GatewayHub
from bot.outbox import OutboxItem, enqueue
from bot.roster import Roster
from bot.store import tasks as store
from bot.store.models import Outbox
from handlers import wecom_cards
from tests.conftest import make_config

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 10)
END = datetime(2026, 3, 10, 21, 0, tzinfo=TZ).astimezone(UTC)
KEY = "sop:slot:wang:2026-03-10:morning"
TEXT = (
    "【今日SOP提醒】\n今日进度（已完成/目标）：\n· 朋友圈 已完成 1/3，还差 2\n"
    "客户任务：\n· c1：欢迎问候（关怀）"
)
_OUT = Outbox.__table__  # type: ignore[attr-defined]


class CardGateway:
    platform = "wecom"

    def __init__(self) -> None:
        self.updates: list[tuple[list[str], str, str]] = []

    def online_accounts(self) -> list[str]:
        return ["corp"]

    async def send_private_text(self, user_id: str, text: str, **kw: Any) -> SentMessage:
        return SentMessage("wecom", "corp", "m")

    async def send_group_text(self, group_id: str, text: str, **kw: Any) -> SentMessage:
        raise NotImplementedError

    async def update_card(
        self, user_ids: Sequence[str], response_code: str, replace_name: str
    ) -> None:
        self.updates.append((list(user_ids), response_code, replace_name))


async def rig(
    engine: AsyncEngine, tmp_path: Path, now: datetime
) -> tuple[Dispatcher, CardGateway]:
    ops = [{"id": "wang", "name": "王", "role": "guide", "wecom_user_id": "wang_wx"}]
    cfg = make_config(tmp_path, operators=ops, groups=[])
    hub, gw = GatewayHub(), CardGateway()
    hub.add(gw)
    dispatcher = Dispatcher(
        cfg=cfg, clock=ManualClock(now), roster=Roster.from_config(cfg), gateway=hub, engine=engine
    )
    dispatcher.include(wecom_cards.router)
    async with engine.begin() as conn:
        await store.materialize(
            conn,
            [
                store.NewTask("wang", "s", "moments", DAY, 3, END),
                store.NewTask("wang", "s", "welcome", DAY, 1, END, target_key="c1"),
                store.NewTask("wang", "s", "welcome", DAY, 1, END, target_key="c2"),
            ],
            now,
        )
        task = await store.find_task(conn, "wang", "moments", DAY)
        assert task is not None
        await store.add_evidence(conn, task, source="observed", ref="g", count=1, at=now)
        await enqueue(
            conn,
            [OutboxItem(KEY, "sop_slot", "wang", TEXT, now, END, {"local_date": DAY.isoformat()})],
            now,
        )
    return dispatcher, gw


def click(key: str, task_id: str, user: str = "wang_wx", code: str = "rc") -> CardClick:
    return CardClick("wecom", "corp", user, key, task_id, code, "button_interaction", END)


async def test_done_records_what_the_card_listed(engine: AsyncEngine, tmp_path: Path) -> None:
    """The missing units of quota steps and the listed customer's touch; c2 was not listed."""
    now = datetime(2026, 3, 10, 11, 0, tzinfo=TZ).astimezone(UTC)
    dispatcher, gw = await rig(engine, tmp_path, now)
    assert await dispatcher.feed(click("done", card_task_id(KEY))) == 1
    await dispatcher.feed(click("done", card_task_id(KEY)))  # a replay adds nothing
    async with engine.connect() as conn:
        rows = {(r.step, r.target_key): r for r in await store.tasks_on(conn, DAY, ["wang"])}
    assert {k: r.done for k, r in rows.items()} == {
        ("moments", ""): 3,
        ("welcome", "c1"): 1,
        ("welcome", "c2"): 0,
    }
    assert gw.updates[0] == (["wang_wx"], "rc", "已记录完成")


async def test_snooze_enqueues_once_within_the_window(engine: AsyncEngine, tmp_path: Path) -> None:
    """A snooze row 30 min later with its own key; after the window closes, none."""
    now = datetime(2026, 3, 10, 11, 0, tzinfo=TZ).astimezone(UTC)
    dispatcher, gw = await rig(engine, tmp_path, now)
    await dispatcher.feed(click("snooze", card_task_id(KEY)))
    async with engine.connect() as conn:
        rows = (await conn.execute(select(_OUT).where(_OUT.c.kind == "sop_snooze"))).all()
    [row] = rows
    assert row.idempotency_key == KEY + ":snooze1"
    assert row.due_at == now + timedelta(minutes=30)
    assert row.payload["text"].startswith("【稍后提醒】\n今日进度")
    await dispatcher.feed(click("snooze", card_task_id(KEY + ":snooze1")))
    async with engine.connect() as conn:
        keys = {r[0] for r in await conn.execute(select(_OUT.c.idempotency_key))}
    assert KEY + ":snooze2" in keys
    assert [u[2] for u in gw.updates] == ["30分钟后再提醒", "30分钟后再提醒"]


async def test_late_unknown_and_foreign_clicks(engine: AsyncEngine, tmp_path: Path) -> None:
    """Snooze past the window, an unknown card and a stranger's click change nothing."""
    late = datetime(2026, 3, 10, 20, 45, tzinfo=TZ).astimezone(UTC)
    dispatcher, gw = await rig(engine, tmp_path, late)
    await dispatcher.feed(click("snooze", card_task_id(KEY)))
    await dispatcher.feed(click("done", "sop-unknown"))
    await dispatcher.feed(click("done", card_task_id(KEY), user="stranger"))
    assert [u[2] for u in gw.updates] == ["今日已截止", "卡片已过期"]
    async with engine.connect() as conn:
        assert len((await conn.execute(select(_OUT))).all()) == 1
        moments = await store.find_task(conn, "wang", "moments", DAY)
    assert moments is not None
    assert moments.done == 1


def test_card_layout_from_reminder_text() -> None:
    """Title = first line; one field per bullet line (zh and en); a short hint."""
    title, desc, fields = card_layout(TEXT)
    assert title == "【今日SOP提醒】"
    assert fields == [("朋友圈", "已完成 1/3，还差 2"), ("c1", "欢迎问候（关怀）")]
    assert len(desc.encode()) <= 132
    en = "[SOP reminder]\n· Moments: 1 of 3 done, 2 to go\n· Group posts: 3 of 3 done ✓"
    _, desc_en, fields_en = card_layout(en, "en")
    assert fields_en == [("Moments", "1 of 3 done, 2 to go"), ("Group posts", "3 of 3 done ✓")]
    assert len(desc_en.encode()) <= 132
