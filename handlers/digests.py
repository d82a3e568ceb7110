"""Daily and weekly digests to supervisors, through the outbox (one row per supervisor and day).

The ``digest`` tick runs every minute. Once the local time passes
``daily_at`` it enqueues, for each recipient that has none yet, yesterday's digest: KPIs against
the targets and against the 7 days before, answer rate @48 h of the day before, backlog now, the
top breaches, the slowest groups, guides behind on 3+3+3 and a link to the dashboard. On
``weekly_day`` after ``weekly_at`` it adds the week's summary. Keys are
``digest:daily:<operator>:<date>`` / ``digest:weekly:<operator>:<monday>``, so a restart or a
second process never sends one twice. A digest falling in quiet hours is held to their end.

Figures are scoped like the dashboard: an admin's digest covers the tenant, a supervisor's their
team. The scoped queries come from the dashboard's context as dependencies (``digest_queries``),
since handler modules do not import each other.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock
from bot.config import AppConfig
from bot.config_digest import WEEKDAYS, parse_hhmm
from bot.outbox import OutboxItem, enqueue
from bot.reports import ReportBuilder, ReportRequest
from bot.scheduler import Tick
from bot.store.models import Outbox
from bot.webauth import ADMIN, Principal, team_of
from sop import compliance
from sop.metrics import format_duration

log = logging.getLogger("sopbot.digests")
_OUTBOX = Outbox.__table__  # type: ignore[attr-defined]

TEXT = {
    "zh-CN": {
        "daily": "【每日运营简报】{d}",
        "weekly": "【每周运营汇总】{a} 至 {b}",
        "questions": "问题 {n} 个（近7日日均 {avg:.0f}）",
        "att": "首次响应达标率 严格 {s} / 宽松 {l}（目标 {t}，近7日 {w}）",
        "frt": "首次响应 中位数 {p50}，P90 {p90}",
        "a48": "48小时回复率（{d} 提问）{r}（积压率目标 ≤ {t}）",
        "backlog": "当前未回复 {n} 个：{bands}",
        "breaches": "超时未回复 Top {n}：",
        "breach": "· {g} 客户{c} 已等 {w}（负责人 {o}）",
        "slow": "回复最慢的群：",
        "group": "· {g} 中位数 {p50}（{n} 个问题）",
        "sop": "3+3+3 完成率 {r}（目标 {t}）",
        "behind": "未完成 3+3+3 的导购：{names}",
        "link": "查看看板：{url}",
        "none": "无",
    },
    "en": {
        "daily": "[Daily digest] {d}",
        "weekly": "[Weekly summary] {a} to {b}",
        "questions": "{n} questions (7-day daily average {avg:.0f})",
        "att": "First-response attainment strict {s} / lenient {l} (target {t}, 7 days {w})",
        "frt": "First response p50 {p50}, p90 {p90}",
        "a48": "Answered within 48h (asked {d}) {r} (backlog target <= {t})",
        "backlog": "Unanswered now {n}: {bands}",
        "breaches": "Top {n} breaches:",
        "breach": "- {g} customer {c} waited {w} (owners {o})",
        "slow": "Slowest groups:",
        "group": "- {g} p50 {p50} ({n} questions)",
        "sop": "3+3+3 completion {r} (target {t})",
        "behind": "Guides behind on 3+3+3: {names}",
        "link": "Dashboard: {url}",
        "none": "none",
    },
}


class DigestQueries(Protocol):
    """The dashboard's scoped queries (see ``handlers.dashboard.data``)."""

    async def sla_summary(
        self,
        engine: AsyncEngine,
        cfg: AppConfig,
        principal: Principal,
        req: ReportRequest,
        build: ReportBuilder,
    ) -> dict[str, Any]: ...

    async def breaches(
        self,
        conn: Any,
        cfg: AppConfig,
        principal: Principal,
        as_of: datetime,
        basis: str,
        limit: int = 500,
    ) -> list[Any]: ...

    async def backlog_bands(
        self, conn: Any, principal: Principal, as_of: datetime, strict: bool
    ) -> dict[str, int]: ...

    async def sop_records(
        self, conn: Any, principal: Principal, start: date, end: date
    ) -> list[compliance.TaskRecord]: ...


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f}%"


def recipients(cfg: AppConfig) -> list[Principal]:
    """Configured recipients, else every supervisor and admin on the roster."""
    ids = cfg.digest.recipients or tuple(
        op.id for op in cfg.operators if op.role in ("supervisor", "admin") and not op.is_bot
    )
    out = []
    for op in cfg.operators:
        if op.id not in ids:
            continue
        team = None if op.role == ADMIN else team_of(op.id, cfg.operators)
        level = ADMIN if team is None else "supervisor"
        out.append(Principal(op.id, op.name, level, op.id, team))
    return out


def release_time(cfg: AppConfig, due: datetime) -> datetime:
    """``due``, or the end of quiet hours when it falls inside them."""
    window = cfg.digest.quiet_window()
    if window is None:
        return due
    tz = ZoneInfo(cfg.bot.timezone)
    local = due.astimezone(tz)
    start, end = window
    t = local.time()
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside:
        return due
    day = local.date() + timedelta(days=1) if start > end and t >= start else local.date()
    return datetime.combine(day, end, tz).astimezone(UTC)


async def compose(
    *,
    engine: AsyncEngine,
    cfg: AppConfig,
    principal: Principal,
    start: date,
    end: date,
    as_of: datetime,
    build: ReportBuilder,
    queries: DigestQueries,
    lang: str = "zh-CN",
    weekly: bool = False,
) -> str:
    """The digest text for ``principal`` over ``start``..``end`` (local dates)."""
    t, d = TEXT["en" if lang == "en" else "zh-CN"], cfg.digest
    days = (end - start).days + 1
    req = ReportRequest(start, end, as_of)
    before = ReportRequest(start - timedelta(days=7), start - timedelta(days=1), as_of)
    a48_day = end - timedelta(days=1)
    cur = await queries.sla_summary(engine, cfg, principal, req, build)
    prev = await queries.sla_summary(engine, cfg, principal, before, build)
    a48 = await queries.sla_summary(
        engine, cfg, principal, ReportRequest(a48_day, a48_day, as_of), build
    )
    async with engine.connect() as conn:
        bands = await queries.backlog_bands(conn, principal, as_of, True)
        top = await queries.breaches(conn, cfg, principal, as_of, "business", d.top_breaches)
        records = await queries.sop_records(conn, principal, start, end)
    [groups] = await build(engine, cfg, ReportRequest(start, end, as_of, view="groups"))
    head = (
        t["weekly"].format(a=start.isoformat(), b=end.isoformat())
        if weekly
        else t["daily"].format(d=end.isoformat())
    )
    lines = [
        head,
        t["questions"].format(n=cur["questions"], avg=(prev["questions"] or 0) / 7 * days),
        t["att"].format(
            s=_pct(cur["attainment_strict"]),
            l=_pct(cur["attainment_lenient"]),
            t=_pct(d.target_attainment),
            w=_pct(prev["attainment_strict"]),
        ),
        t["frt"].format(p50=cur["frt_p50"], p90=cur["frt_p90"]),
        t["a48"].format(
            d=a48_day.isoformat(), r=_pct(a48["answer_rate_48h"]), t=_pct(d.target_backlog_rate)
        ),
        t["backlog"].format(
            n=sum(bands.values()),
            bands=", ".join(f"{k} {v}" for k, v in bands.items() if v) or t["none"],
        ),
    ]
    if top:
        lines.append(t["breaches"].format(n=len(top)))
        lines.extend(
            t["breach"].format(
                g=b.group, c=b.asker_id, w=format_duration(b.waited_s, lang), o=",".join(b.owners)
            )
            for b in top
        )
    owned = {g.id for g in cfg.groups if principal.sees_any(g.owners)}
    slow = sorted(
        (r for r in groups.rows if r.get("frt_p50_s") is not None and r["group"] in owned),
        key=lambda r: -float(r["frt_p50_s"]),
    )[: d.slowest_groups]
    if slow:
        names = {g.id: g.name or g.id for g in cfg.groups}
        lines.append(t["slow"])
        lines.extend(
            t["group"].format(
                g=names.get(r["group"], r["group"]), p50=r["frt_p50"], n=r["questions"]
            )
            for r in slow
        )
    sop = compliance.summarize(records, as_of)
    if sop.tasks:
        lines.append(
            t["sop"].format(r=_pct(sop.completion_rate.value), t=_pct(d.target_sop_completion))
        )
        per = compliance.by_guide(records, as_of)
        op_names = {o.id: o.name for o in cfg.operators}
        behind = [op_names.get(g, g) for g, s in sorted(per.items()) if s.missed or s.open]
        lines.append(t["behind"].format(names=", ".join(behind) or t["none"]))
    if cfg.web.public_url:
        lines.append(t["link"].format(url=cfg.web.public_url.rstrip("/") + "/"))
    return "\n".join(lines)


async def _existing(engine: AsyncEngine, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(_OUTBOX.c.idempotency_key).where(_OUTBOX.c.idempotency_key.in_(keys))
        )
        return {str(r[0]) for r in rows}


async def digest_tick(
    engine: AsyncEngine,
    cfg: AppConfig,
    clock: Clock,
    sla_report: ReportBuilder,
    digest_queries: DigestQueries,
) -> int:
    """Enqueue the digests that are due and not yet in the outbox; returns how many."""
    if not cfg.digest.enabled:
        return 0
    tz = ZoneInfo(cfg.bot.timezone)
    now = clock.now()
    local = now.astimezone(tz)
    today = local.date()
    plan: list[tuple[str, date, date, datetime, bool]] = []
    daily_at = datetime.combine(today, parse_hhmm(cfg.digest.daily_at), tz)
    if local >= daily_at:
        y = today - timedelta(days=1)
        plan.append(("daily", y, y, daily_at, False))
    weekday = WEEKDAYS.index(cfg.digest.weekly_day)
    weekly_at = datetime.combine(today, parse_hhmm(cfg.digest.weekly_at), tz)
    if local.weekday() == weekday and local >= weekly_at:
        plan.append(
            ("weekly", today - timedelta(days=7), today - timedelta(days=1), weekly_at, True)
        )
    people = recipients(cfg)
    wanted = {
        f"digest:{kind}:{p.operator_id}:{start.isoformat()}": (p, kind, start, end, at, weekly)
        for kind, start, end, at, weekly in plan
        for p in people
    }
    done = await _existing(engine, list(wanted))
    items = []
    for key, (p, kind, start, end, at, weekly) in wanted.items():
        if key in done:
            continue
        text = await compose(
            engine=engine,
            cfg=cfg,
            principal=p,
            start=start,
            end=end,
            as_of=now,
            build=sla_report,
            queries=digest_queries,
            lang=cfg.bot.language,
            weekly=weekly,
        )
        due = release_time(cfg, max(at.astimezone(UTC), now))
        items.append(
            OutboxItem(
                key=key,
                kind="digest",
                recipient_id=p.operator_id,
                text=text,
                due_at=due,
                window_end=due + timedelta(seconds=cfg.digest.window),
            )
        )
        log.info("digest %s for %s queued, due %s", kind, p.operator_id, due.isoformat())
    if items:
        async with engine.begin() as conn:
            await enqueue(conn, items, now)
    return len(items)


TICKS: tuple[Tick, ...] = (Tick("digest", 60.0, digest_tick),)
