"""SLA chat commands called directly: aliases, roles, bad ids, dismiss with a reason, summary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import ManualClock
from bot.commands import CommandContext, CommandRegistry
from bot.config import AppConfig
from bot.events import ChatMessage, ChatType
from bot.roster import Roster
from bot.store import questions as store
from bot.store.models import Question as QuestionRow
from bot.store.models import SlaEvent
from handlers import commands_sla, questions, reports_sla
from sop.policy import SlaPolicy
from sop.questions import QuestionEngine
from tests.conftest import make_config

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 10, 10, 30, tzinfo=TZ).astimezone(UTC)
REGISTRY = CommandRegistry(commands_sla.COMMANDS)
G1, G2 = "onebot11:5001", "onebot11:5002"


@dataclass
class Bot:
    cfg: AppConfig
    db: AsyncEngine
    engine: QuestionEngine
    roster: Roster

    async def run(self, who: str, text: str, lang: str = "zh-CN") -> str:
        parsed = REGISTRY.parse(text)
        assert parsed is not None
        assert parsed.command is not None
        op = self.roster.operator(who)
        assert op is not None
        msg = ChatMessage("onebot11", "1", ChatType.PRIVATE, who, "c1", who, text, NOW, NOW)
        deps: dict[str, Any] = {
            "question_engine": self.engine,
            "clock": ManualClock(NOW),
            "cfg": self.cfg,
            "sla_calendar_of": questions.build_calendar_of(self.cfg),
            "engine": self.db,
            "sla_report": reports_sla.build,
        }
        return await parsed.command.func(CommandContext(op, msg, parsed.args, lang, deps))


@pytest.fixture
async def bot(tmp_path: Path, engine: AsyncEngine) -> Bot:
    """Two open questions: Q1 in li's group 5001 (10:00), Q2 in group 5002 (10:10)."""
    cfg = make_config(tmp_path)
    roster = Roster.from_config(cfg)
    calendar_of = questions.build_calendar_of(cfg)
    eng = QuestionEngine(
        SlaPolicy(),
        calendar_of=calendar_of,
        owners_of=lambda chat: roster.owners(*store.split_key(chat)),
    )
    ctx = store.RowContext(policy_of=eng.policy_for, calendar_of=calendar_of, tz=TZ, now=NOW)
    async with engine.begin() as conn:
        for chat, qid, minute in ((G1, "Q1", 0), (G2, "Q2", 10)):
            t = datetime(2026, 3, 10, 10, minute, tzinfo=TZ).astimezone(UTC)
            effects = eng.on_customer_message(
                chat,
                f"m{qid}",
                "onebot11:c1",
                t,
                is_question=True,
                text="几点发货？",
                question_id=qid,
            )
            await store.save_effects(conn, effects, ctx)
    return Bot(cfg, engine, eng, roster)


ALIASES = [
    ("questions", "我的问题", "待回复"),
    ("backlog", "积压", "群积压"),
    ("resolve", "已解决", "解决"),
    ("dismiss", "排除", "忽略问题"),
    ("sla", "服务汇总", "SLA汇总"),
    ("sla-rebuild", "重建统计"),
]


@pytest.mark.parametrize("names", ALIASES)
def test_every_command_has_english_and_chinese_names(names: tuple[str, ...]) -> None:
    """Each alias parses to the same command; the first name is English."""
    parsed = [REGISTRY.parse(n) for n in names]
    commands = {id(p.command) for p in parsed if p is not None and p.command is not None}
    assert len(commands) == 1
    assert names[0].isascii()
    assert any(not n.isascii() for n in names)


def test_roles_limit_the_summary_and_the_rebuild() -> None:
    """Operators see their own commands; the summary is for supervisors, rebuilds for admins."""
    roles = {c.names[0]: c.roles for c in commands_sla.COMMANDS}
    assert roles["sla"] == frozenset({"supervisor", "admin"})
    assert roles["sla-rebuild"] == frozenset({"admin"})
    assert all(roles[n] is None for n in ("questions", "backlog", "resolve", "dismiss"))
    assert "sla-rebuild" not in REGISTRY.help_text("zh-CN", "operator")
    assert "服务汇总" in REGISTRY.help_text("zh-CN", "supervisor")


async def test_my_questions_and_a_groups_backlog(bot: Bot) -> None:
    """我的问题 lists the owner's open questions; backlog 5002 lists that group's (en too)."""
    mine = await bot.run("li", "我的问题")
    assert mine.startswith("你负责的待回复问题（2，最早的在前）：")
    assert mine.index("Q1") < mine.index("Q2")
    assert "Q2" not in await bot.run("wang", "backlog 5001", lang="en")
    backlog = await bot.run("wang", "backlog 5002", lang="en")
    assert backlog.startswith("Questions waiting in group 5002 (1):")
    assert await bot.run("wang", "积压 9999") == "没有待回复的问题。"


async def test_bad_ids_and_missing_arguments_get_usage(bot: Bot) -> None:
    """Unknown ids are named back; missing ids or a missing reason show the usage."""
    assert await bot.run("li", "已解决") == "用法：已解决 问题编号"
    assert await bot.run("li", "resolve Q404", lang="en") == "No open question Q404."
    assert await bot.run("li", "排除 Q1") == "用法：排除 问题编号 原因"
    assert await bot.run("li", "dismiss Q1", lang="en") == "usage: dismiss QUESTION_ID REASON"
    assert (
        await bot.run("li", "重建统计 notadate")
        == "用法：重建统计 [开始日期 [结束日期]]（YYYY-MM-DD）"
    )


async def test_dismiss_with_a_reason_is_audited_and_left_out(bot: Bot, tmp_path: Path) -> None:
    """排除 Q1 广告 dismisses with an audit event; the summary leaves it out of E."""
    assert await bot.run("li", "排除 q1 广告 刷屏") == "已排除 Q1（原因：广告 刷屏），不计入统计。"
    assert await bot.run("li", "resolve Q2", lang="en") == "Q2 marked resolved."
    async with bot.db.connect() as conn:
        q = QuestionRow.__table__  # type: ignore[attr-defined]
        e = SlaEvent.__table__  # type: ignore[attr-defined]
        rows = {r.public_id: r for r in (await conn.execute(select(q))).all()}
        events = (await conn.execute(select(e).where(e.c.type == "question_dismissed"))).all()
    assert (rows["Q1"].status, rows["Q1"].dismissed_by) == ("dismissed", "li")
    assert rows["Q2"].resolution_method == "command"
    assert [(ev.actor, ev.meta["reason"]) for ev in events] == [("li", "广告 刷屏")]
    summary = await bot.run("sup", "sla 今天")
    assert summary.startswith("SLA 汇总 2026-03-10：问题 2，已回复 0")
    assert "Summary" not in summary
    rebuilt = await bot.run("sup", "sla-rebuild 2026-03-10", lang="en")
    assert rebuilt == "Rebuilt the SLA rollups of 1 day(s) (2 questions)."
