"""SOP commands called directly: /done counts and named tasks, /today, 催办, bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import ManualClock
from bot.commands import CommandContext, CommandRegistry
from bot.events import ChatMessage, ChatType
from bot.roster import Roster
from bot.store.db import session_factory
from bot.store.models import Outbox
from handlers.commands_sop import COMMANDS
from handlers.sop_plan import SopRuntime
from sop.lifecycle import Customer
from tests.conftest import make_config

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 10)
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=TZ).astimezone(UTC)
REGISTRY = CommandRegistry(COMMANDS)


@pytest.fixture
async def sop(tmp_path: Path, engine: AsyncEngine) -> SopRuntime:
    cfg = make_config(tmp_path)
    runtime = SopRuntime(cfg, Roster.from_config(cfg), engine, ManualClock(NOW))
    await runtime.tick()
    async with engine.begin() as conn:
        await runtime.materialize_customer(conn, Customer("c-77", "wang", DAY), NOW)
    return runtime


async def run(sop: SopRuntime, who: str, text: str, lang: str = "zh-CN") -> str:
    parsed = REGISTRY.parse(text)
    assert parsed is not None
    assert parsed.command is not None
    op = sop.roster.operator(who)
    assert op is not None
    msg = ChatMessage("onebot11", "1", ChatType.PRIVATE, "x", f"m-{text}", "x", text, NOW, NOW)
    async with session_factory(sop.engine)() as session:
        ctx = CommandContext(op, msg, parsed.args, lang, {"sop": sop, "session": session})
        reply = await parsed.command.func(ctx)
        await session.commit()
    return reply


async def test_done_counts_units_and_answers_progress(sop: SopRuntime) -> None:
    """完成朋友圈 2 adds two units (self); the reply shows today's progress."""
    reply = await run(sop, "wang", "完成朋友圈 2")
    assert reply.startswith("已记录。\n今日进度（已完成/目标）：\n· 朋友圈 已完成 2/3，还差 1")
    reply = await run(sop, "wang", "/done private_chats")
    assert "· 私聊 已完成 1/3，还差 2" in reply


async def test_done_named_customer_task(sop: SopRuntime) -> None:
    """完成 欢迎问候 c-77 closes the customer's welcome; it leaves the task list."""
    before = await run(sop, "wang", "今日任务")
    assert "· c-77：欢迎问候（关怀）" in before
    after = await run(sop, "wang", "完成 欢迎问候 c-77")
    assert after.startswith("已记录。")
    assert "c-77" not in after


async def test_bad_input_gets_usage(sop: SopRuntime) -> None:
    """A bad count or an unknown task answers with usage, in English when asked."""
    assert "用法" in await run(sop, "wang", "完成 朋友圈 999")
    assert "No single open task" in await run(sop, "wang", "/done dance", lang="en")


async def test_urge_queues_one_message_per_command(sop: SopRuntime) -> None:
    """催办 王导购 queues a 催办 for the guide; the supervisor sees the progress."""
    reply = await run(sop, "sup", "催办 王导购")
    assert reply.startswith("已催办 王导购。\n王导购\n今日进度")
    assert "没有找到导购" in await run(sop, "sup", "催办 nobody")
    async with sop.engine.connect() as conn:
        rows = list(await conn.execute(select(Outbox.__table__)))  # type: ignore[attr-defined]
    rows = [r for r in rows if r.kind == "sop_urge"]
    assert [r.recipient_id for r in rows] == ["wang"]
    assert rows[0].payload["text"].startswith("【催办】赵主管 提醒你尽快完成今天的任务：")


def test_urge_is_for_supervisors_only() -> None:
    """The urge command is restricted to supervisor and admin roles."""
    parsed = REGISTRY.parse("/urge wang")
    assert parsed is not None
    assert parsed.command is not None
    assert parsed.command.roles == frozenset({"supervisor", "admin"})
