"""SLA chat commands (answered privately by handlers/commands.py): own questions, a group's
backlog, resolve / dismiss with a reason, the supervisors' SLA summary, and the admins' rebuild
of the per-day SLA rollups (``sla-rebuild`` / ``重建统计``).

Changes made by a command are written in the intake batch's ``session`` like any other effect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.commands import Command, CommandContext
from bot.config import AppConfig
from bot.reports import ReportRequest
from bot.store import questions as store
from bot.store import sla_rollup
from sop.alerts import format_duration, plain
from sop.questions import Effect, Question, QuestionEngine, QuestionStatus

LIST_LIMIT = 20
_T = {
    "zh-CN": {
        "none": "没有待回复的问题。",
        "mine": "你负责的待回复问题（{n}，最早的在前）：",
        "group": "群 {g} 的待回复问题（{n}）：",
        "line": "{id} · 群 {g} · 已等待 {w} · “{s}”",
        "usage_resolve": "用法：已解决 问题编号",
        "usage_dismiss": "用法：排除 问题编号 原因",
        "unknown": "找不到问题 {id}（或它已关闭）。",
        "resolved": "已将 {id} 标记为已解决。",
        "dismissed": "已排除 {id}（原因：{r}），不计入统计。",
        "rebuilt": "已重建 {d} 天的 SLA 统计（{n} 个问题）。",
        "usage_rebuild": "用法：重建统计 [开始日期 [结束日期]]（YYYY-MM-DD）",
        "sla": "SLA 汇总 {p}：问题 {q}，已回复 {a}，达标率 严格 {s} / 宽松 {l}，"
        "首响 P50 {p50} / P90 {p90}，48小时积压率 {b}，当前积压 {n}",
    },
    "en": {
        "none": "No questions waiting.",
        "mine": "Questions waiting in your groups ({n}, oldest first):",
        "group": "Questions waiting in group {g} ({n}):",
        "line": "{id} · group {g} · waited {w} · “{s}”",
        "usage_resolve": "usage: resolve QUESTION_ID",
        "usage_dismiss": "usage: dismiss QUESTION_ID REASON",
        "unknown": "No open question {id}.",
        "resolved": "{id} marked resolved.",
        "dismissed": "{id} dismissed (reason: {r}); it is left out of the metrics.",
        "rebuilt": "Rebuilt the SLA rollups of {d} day(s) ({n} questions).",
        "usage_rebuild": "usage: sla-rebuild [FROM [TO]] (YYYY-MM-DD)",
        "sla": "SLA {p}: {q} questions, {a} answered, attainment strict {s} / lenient {l}, "
        "FRT p50 {p50} / p90 {p90}, 48 h backlog rate {b}, backlog now {n}",
    },
}


def _t(ctx: CommandContext) -> dict[str, str]:
    return _T["en" if ctx.lang == "en" else "zh-CN"]


def _lines(ctx: CommandContext, qs: Sequence[Question], now: datetime) -> list[str]:
    t = _t(ctx)
    return [
        t["line"].format(
            id=q.id,
            g=store.split_key(q.chat)[1],
            w=format_duration((now - q.clock_start).total_seconds(), ctx.lang),
            s=plain(q.snippet, 30),
        )
        for q in qs[:LIST_LIMIT]
    ]


async def _mine(ctx: CommandContext) -> str:
    engine: QuestionEngine = ctx.dep("question_engine")
    now = ctx.dep("clock").now()
    qs = [
        q
        for q in engine.questions()
        if q.status is QuestionStatus.OPEN and ctx.operator.id in q.owner_ids
    ]
    if not qs:
        return _t(ctx)["none"]
    return "\n".join([_t(ctx)["mine"].format(n=len(qs)), *_lines(ctx, qs, now)])


async def _backlog(ctx: CommandContext) -> str:
    engine: QuestionEngine = ctx.dep("question_engine")
    now = ctx.dep("clock").now()
    group = ctx.args[0] if ctx.args else None
    qs = [
        q
        for q in engine.questions()
        if q.status is QuestionStatus.OPEN
        and (
            store.split_key(q.chat)[1] == group
            if group
            else ctx.operator.id in q.owner_ids or ctx.operator.role in ("supervisor", "admin")
        )
    ]
    if not qs:
        return _t(ctx)["none"]
    head = _t(ctx)["group"].format(g=group or "*", n=len(qs))
    return "\n".join([head, *_lines(ctx, qs, now)])


async def _apply(ctx: CommandContext, effects: list[Effect]) -> None:
    engine: QuestionEngine = ctx.dep("question_engine")
    cfg: AppConfig = ctx.dep("cfg")
    calendar_of: Callable[[str], Any] = ctx.dep("sla_calendar_of")
    now = ctx.dep("clock").now()
    row_ctx = store.RowContext(
        policy_of=engine.policy_for,
        calendar_of=calendar_of,
        tz=ZoneInfo(cfg.bot.timezone),
        now=now,
    )
    session = ctx.deps.get("session")
    if session is not None:
        conn = await session.connection()
        await store.flush_pending(conn, session.info)  # earlier messages of this batch first
        await store.save_effects(conn, effects, row_ctx)
    else:
        async with ctx.dep("engine").begin() as conn:
            await store.save_effects(conn, effects, row_ctx)
    timer = ctx.deps.get("sla_timer")
    if timer is not None:
        for e in effects:
            timer.cancel(e.question.id)


async def _find(ctx: CommandContext, qid: str) -> str | None:
    """The live question with this id, as the store has it now (another process may hold its
    chat and have answered it since this process loaded it)."""
    engine: QuestionEngine = ctx.dep("question_engine")
    qid = qid.strip().upper()
    keep = ctx.deps.get("sla_dirty", ())
    session = ctx.deps.get("session")
    if session is not None:
        await store.refresh(await session.connection(), engine, [qid], keep=keep)
    else:
        async with ctx.dep("engine").begin() as conn:
            await store.refresh(conn, engine, [qid], keep=keep, lock=False)
    q = engine.get(qid)
    return q.id if q is not None and q.is_live else None


async def _resolve(ctx: CommandContext) -> str:
    t = _t(ctx)
    if not ctx.args:
        return t["usage_resolve"]
    engine: QuestionEngine = ctx.dep("question_engine")
    qid = await _find(ctx, ctx.args[0])
    if qid is None:
        return t["unknown"].format(id=ctx.args[0][:20])
    effects = engine.resolve(qid, by=ctx.operator.id, at=ctx.dep("clock").now(), method="command")
    await _apply(ctx, effects)
    return t["resolved"].format(id=qid)


async def _dismiss(ctx: CommandContext) -> str:
    t = _t(ctx)
    if len(ctx.args) < 2:
        return t["usage_dismiss"]
    engine: QuestionEngine = ctx.dep("question_engine")
    qid = await _find(ctx, ctx.args[0])
    if qid is None:
        return t["unknown"].format(id=ctx.args[0][:20])
    reason = " ".join(ctx.args[1:])[:200]
    effects = engine.dismiss(qid, by=ctx.operator.id, reason=reason, at=ctx.dep("clock").now())
    await _apply(ctx, effects)
    return t["dismissed"].format(id=qid, r=reason)


_PERIODS = {
    "today": "today",
    "今天": "today",
    "今日": "today",
    "yesterday": "yesterday",
    "昨天": "yesterday",
    "昨日": "yesterday",
    "week": "week",
    "本周": "week",
    "这周": "week",
}


async def _summary(ctx: CommandContext) -> str:
    cfg: AppConfig = ctx.dep("cfg")
    now: datetime = ctx.dep("clock").now()
    today = now.astimezone(ZoneInfo(cfg.bot.timezone)).date()
    period = _PERIODS.get(ctx.args[0].lower() if ctx.args else "today", "today")
    if period == "yesterday":
        start = end = today - timedelta(days=1)
    elif period == "week":
        start, end = today - timedelta(days=today.weekday()), today
    else:
        start = end = today
    build = ctx.dep("sla_report")
    req = ReportRequest(start=start, end=end, as_of=now, view="summary")
    row = (await build(ctx.dep("engine"), cfg, req))[0].rows[0]

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{v:.0%}"

    label = f"{start.isoformat()}" if start == end else f"{start.isoformat()}..{end.isoformat()}"
    return _t(ctx)["sla"].format(
        p=label,
        q=row["questions"],
        a=row["answered"],
        s=pct(row["attainment_strict"]),
        l=pct(row["attainment_lenient"]),
        p50=row["frt_p50"],
        p90=row["frt_p90"],
        b=pct(row["backlog_rate_48h"]),
        n=row["backlog_now"],
    )


async def _rebuild(ctx: CommandContext) -> str:
    """Recompute the per-day rollups from the question rows (all days, or a date range)."""
    t = _t(ctx)
    cfg: AppConfig = ctx.dep("cfg")
    try:
        bounds = [date.fromisoformat(a).isoformat() for a in ctx.args[:2]]
    except ValueError:
        return t["usage_rebuild"]
    async with ctx.dep("engine").begin() as conn:
        days = await sla_rollup.all_days(conn)
        if bounds:
            days = [d for d in days if bounds[0] <= d <= bounds[-1]]
        n = await sla_rollup.rebuild_days(
            conn,
            days,
            calendar_of=ctx.dep("sla_calendar_of"),
            tz=ZoneInfo(cfg.bot.timezone),
            now=ctx.dep("clock").now(),
        )
    return t["rebuilt"].format(d=len(days), n=n)


COMMANDS: tuple[Command, ...] = (
    Command(("questions", "我的问题", "待回复"), "我负责的待回复问题", "my open questions", _mine),
    Command(
        ("backlog", "积压", "群积压"),
        "某个群的待回复问题",
        "a group's open questions",
        _backlog,
        usage="[group]",
    ),
    Command(
        ("resolve", "已解决", "解决"),
        "把问题标记为已解决",
        "mark a question resolved",
        _resolve,
        usage="ID",
    ),
    Command(
        ("dismiss", "排除", "忽略问题"),
        "排除误判的问题（需填写原因）",
        "dismiss a question (reason required)",
        _dismiss,
        usage="ID REASON",
    ),
    Command(
        ("sla", "服务汇总", "SLA汇总"),
        "SLA 汇总：今天 / 昨天 / 本周",
        "SLA summary: today / yesterday / week",
        _summary,
        usage="[today|yesterday|week]",
        roles=frozenset({"supervisor", "admin"}),
    ),
    Command(
        ("sla-rebuild", "重建统计"),
        "重建 SLA 日汇总（全部或日期范围）",
        "rebuild the SLA day rollups (all days or a range)",
        _rebuild,
        usage="[FROM [TO]]",
        roles=frozenset({"admin"}),
    ),
)
