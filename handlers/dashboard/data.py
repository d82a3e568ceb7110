"""What the dashboard shows, read from the store with the same definitions as the reports.

Admins see the tenant: SLA figures come from the ``sla`` report builder itself (provided to
handlers as ``sla_report``), so the screen, the CLI and the API agree to the digit. A supervisor
or guide sees a slice (questions their team owned or answered): those figures come from
``sop.metrics`` over the slice's rows, the pure definitions the builder's SQL is tested against.
SOP compliance always goes through ``sop.compliance`` over ``bot.store.tasks.task_records``, as
the ``sop`` report does.

Speed on a large store: the tenant-wide backlog bands come from the rollups plus the questions
still moving (no scan of the question table); open breaches are an index range on
(status, due). ``PageCache`` lets the overview and operator pages reuse their figures briefly.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, case, cast, false, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from bot.config import AppConfig
from bot.reports import ReportBuilder, ReportRequest
from bot.store import sla_rollup as roll
from bot.store.models import Message
from bot.store.questions import E, Q, R
from bot.store.tasks import task_records
from bot.webauth import Principal
from sop import compliance
from sop.metrics import BACKLOG_BANDS, QuestionFacts, SlaSummary, by_day, summarize

M = Message.__table__  # type: ignore[attr-defined]
_ELIGIBLE = and_(Q.c.status.notin_(("dismissed", "withdrawn")), Q.c.bot_resolved == false())


def scope_clause(principal: Principal) -> ColumnElement[bool] | None:
    """Questions the principal may see: owned (frozen owners) or first-answered by the team."""
    if principal.team is None:
        return None
    team = sorted(principal.team)
    owners_text = cast(Q.c.owner_ids, String)
    conds: list[ColumnElement[bool]] = [
        Q.c.first_responder_id.in_(team),
        Q.c.strict_first_responder_id.in_(team),
    ]
    for op in team:
        # owner_ids is a JSON list of strings: match the quoted id, wildcards escaped.
        needle = json.dumps(op).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(owners_text.like(f"%{needle}%", escape="\\"))
    return or_(*conds)


def _where(stmt: Any, principal: Principal) -> Any:
    clause = scope_clause(principal)
    return stmt if clause is None else stmt.where(clause)


def visible_question(principal: Principal, row: Any) -> bool:
    return principal.sees_any(
        [row.first_responder_id, row.strict_first_responder_id, *(row.owner_ids or ())]
    )


# -- facts for sop.metrics -------------------------------------------------------------------


def to_facts(row: Any) -> QuestionFacts:
    target = float(row.frt_target_s)
    return QuestionFacts(
        question_id=row.public_id,
        chat_id=row.chat_id,
        asker_id=row.asker_id,
        opened_at=row.opened_at,
        status=row.status,
        frt_target_s=target,
        frt_due_at=row.frt_due_at or row.opened_at + timedelta(seconds=target),
        backlog_due_at=row.backlog_due_at or row.opened_at + timedelta(hours=48),
        bot_resolved=bool(row.bot_resolved),
        first_response_at=row.first_response_at,
        first_responder_id=row.first_responder_id,
        link_confidence=row.link_confidence,
        frt_business_s=row.frt_business_s,
        frt_calendar_s=row.frt_calendar_s,
        owner_ids=tuple(row.owner_ids or ()),
        resolved_at=row.resolved_at,
        resolution_business_s=row.resolution_business_s,
        resolution_calendar_s=row.resolution_calendar_s,
        holding=bool(row.holding),
        followup_breached=row.followup_breached,
        policy_version=int(row.policy_version),
        strict_first_response_at=row.strict_first_response_at,
        strict_first_responder_id=row.strict_first_responder_id,
        strict_frt_business_s=row.strict_frt_business_s,
        strict_frt_calendar_s=row.strict_frt_calendar_s,
    )


async def cohort_rows(
    conn: AsyncConnection, principal: Principal, req: ReportRequest
) -> list[Any]:
    """Questions opened on the request's local dates by as_of, in the principal's scope."""
    stmt = select(Q).where(
        Q.c.local_date >= req.start.isoformat(),
        Q.c.local_date <= req.end.isoformat(),
        Q.c.opened_at <= req.as_of,
    )
    return list((await conn.execute(_where(stmt, principal).order_by(Q.c.opened_at))).all())


def _summary_row(s: SlaSummary, backlog_now: int) -> dict[str, Any]:
    return {
        "questions": s.n_cohort,
        "answered": s.n_answered,
        "overdue_unanswered": s.n_overdue_unanswered,
        "attainment_strict": s.attainment_strict.rate,
        "attainment_lenient": s.attainment_lenient.rate,
        "answer_rate_48h": s.answer_rate_48h.rate,
        "backlog_rate_48h": s.backlog_rate_48h.rate,
        "frt_p50_s": s.frt_p50.value,
        "frt_p90_s": s.frt_p90.value,
        "frt_p50": s.frt_p50.format("en"),
        "frt_p90": s.frt_p90.format("en"),
        "backlog_now": backlog_now,
    }


# -- overview --------------------------------------------------------------------------------


# Above this many questions in the store, the tenant-wide backlog comes from the rollups.
ROLLUP_BACKLOG_MIN = 20_000


async def backlog_bands(
    conn: AsyncConnection, principal: Principal, as_of: datetime, strict: bool
) -> dict[str, int]:
    """Eligible questions unanswered at as_of (any date), by calendar-age band (in SQL).

    Tenant-wide on a large store, without scanning every question: a question settled by
    as_of (``settle_at``) and unanswered is unanswered for good and older than 48 h, so the
    rollups' ``unanswered`` (minus the moving questions' share) is the oldest band, and only
    the moving questions (``settle_at > as_of``, an index range) are banded row by row.
    """
    resp_at = Q.c.strict_first_response_at if strict else Q.c.first_response_at
    age = literal(as_of.timestamp()) - Q.c.opened_epoch
    cols, conds, lower = [], [], 0.0
    for label, upper in BACKLOG_BANDS:
        cond = age >= lower if math.isinf(upper) else and_(age >= lower, age < upper)
        conds.append(cond)
        cols.append(func.sum(case((cond, 1), else_=0)).label(label))
        lower = upper
    unanswered_now = or_(resp_at.is_(None), resp_at > as_of)
    rolled = principal.team is None and (
        await roll.questions_in(conn, "0000-00-00", "9999-99-99") > ROLLUP_BACKLOG_MIN
    )
    if not rolled:
        stmt = select(*cols).where(_ELIGIBLE, Q.c.opened_at <= as_of, unanswered_now)
        row = (await conn.execute(_where(stmt, principal))).one()
        return {label: int(row._mapping[label] or 0) for label, _ in BACKLOG_BANDS}
    # The rollups hold the questions settled by their watermark; the rest, and those still
    # moving at as_of, are read here.
    mark = await roll.watermark(conn)
    moving = Q.c.settle_at > min(as_of, mark)
    # One pass over the moving questions: their bands at as_of, and how many of them the
    # rollups count as unanswered (held by them, eligible, no response at all in the view).
    opened = Q.c.opened_epoch <= as_of.timestamp()  # not opened_at: stay on the settle_at index
    bands = [func.sum(case((and_(opened, unanswered_now, cond), 1), else_=0)) for cond in conds]
    held = and_(resp_at.is_(None), Q.c.settle_at <= mark)
    stmt = select(*bands, func.sum(case((held, 1), else_=0))).where(moving, _ELIGIBLE)
    row = (await conn.execute(stmt)).one()
    out = {label: int(row[i] or 0) for i, (label, _) in enumerate(BACKLOG_BANDS)}
    still_moving = int(row[len(BACKLOG_BANDS)] or 0)
    variant = roll.variant_name("business", strict)  # unanswered does not depend on the basis
    by_day = await roll.unanswered(conn, variant=variant, dim="day", by_date=False)
    settled = sum(by_day.values())
    out[BACKLOG_BANDS[-1][0]] += settled - still_moving
    return out


async def open_breach_count(
    conn: AsyncConnection, principal: Principal, as_of: datetime, basis: str
) -> int:
    due = Q.c.frt_due_at if basis == "business" else Q.c.frt_due_calendar_at
    stmt = select(func.count()).where(_ELIGIBLE, Q.c.status == "open", due <= as_of)
    return int((await conn.execute(_where(stmt, principal))).scalar_one())


async def sla_summary(
    engine: AsyncEngine,
    cfg: AppConfig,
    principal: Principal,
    req: ReportRequest,
    build: ReportBuilder,
) -> dict[str, Any]:
    """The period's SLA figures for the principal's scope."""
    if principal.team is None:
        [table] = await build(engine, cfg, _with_view(req, "summary"))
        return dict(table.rows[0])
    async with engine.connect() as conn:
        rows = await cohort_rows(conn, principal, req)
        bands = await backlog_bands(conn, principal, req.as_of, req.strict)
    s = summarize(
        [to_facts(r) for r in rows],
        as_of=req.as_of,
        basis=req.basis,
        strict=req.strict,
        strict_threshold=cfg.sla.strict_confidence,
    )
    return _summary_row(s, sum(bands.values()))


def _with_view(req: ReportRequest, view: str, **filters: str) -> ReportRequest:
    return ReportRequest(
        req.start, req.end, req.as_of, req.basis, req.strict, view, {**req.filters, **filters}
    )


# -- operator table --------------------------------------------------------------------------


async def operator_rows(
    engine: AsyncEngine,
    cfg: AppConfig,
    principal: Principal,
    req: ReportRequest,
    build: ReportBuilder,
) -> list[dict[str, Any]]:
    """The builder's per-operator rows the principal may see, with names."""
    [table] = await build(engine, cfg, _with_view(req, "operators"))
    names = {op.id: op.name for op in cfg.operators}
    return [
        {**row, "name": names.get(row["operator"], row["operator"])}
        for row in table.rows
        if principal.sees(row["operator"])
    ]


# -- breaches --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Breach:
    public_id: str
    group: str
    asker_id: str
    snippet: str
    opened_at: datetime
    due_at: datetime
    waited_s: float
    owners: tuple[str, ...]
    level: str
    link_method: str


async def breaches(
    conn: AsyncConnection,
    cfg: AppConfig,
    principal: Principal,
    as_of: datetime,
    basis: str,
    limit: int = 500,
) -> list[Breach]:
    """Open questions past their first-response due time, most overdue first."""
    due = Q.c.frt_due_at if basis == "business" else Q.c.frt_due_calendar_at
    stmt = (
        select(Q)
        .where(_ELIGIBLE, Q.c.status == "open", due <= as_of)
        .order_by(due, Q.c.id)
        .limit(limit)
    )
    rows = (await conn.execute(_where(stmt, principal))).all()
    groups = {g.id: g.name or g.id for g in cfg.groups}
    cal = cfg.calendar.calendar(cfg.bot.timezone)
    out = []
    for r in rows:
        waited = (
            cal.business_seconds(r.opened_at, as_of)
            if basis == "business"
            else (as_of - r.opened_at).total_seconds()
        )
        levels = list(r.alert_levels_sent or ())
        out.append(
            Breach(
                public_id=r.public_id,
                group=groups.get(r.chat_id, r.chat_id),
                asker_id=r.asker_id,
                snippet=r.snippet,
                opened_at=r.opened_at,
                due_at=r.frt_due_at if basis == "business" else r.frt_due_calendar_at,
                waited_s=waited,
                owners=tuple(r.owner_ids or ()),
                level=levels[-1] if levels else "",
                link_method=r.link_method or "",
            )
        )
    return out


# -- question drill-down ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuestionDetail:
    row: Any
    messages: tuple[Any, ...]
    responses: tuple[Any, ...]
    events: tuple[Any, ...]


async def question_detail(conn: AsyncConnection, public_id: str) -> QuestionDetail | None:
    row = (await conn.execute(select(Q).where(Q.c.public_id == public_id))).first()
    if row is None:
        return None
    responses = (
        await conn.execute(select(R).where(R.c.question_id == row.id).order_by(R.c.sent_at))
    ).all()
    ids = [*(row.message_ids or ()), *(r.message_id for r in responses)]
    messages = (
        await conn.execute(
            select(M)
            .where(M.c.platform == row.platform, M.c.message_id.in_(ids))
            .order_by(M.c.sent_at, M.c.id)
        )
    ).all()
    events = (
        await conn.execute(select(E).where(E.c.question_id == row.id).order_by(E.c.at, E.c.id))
    ).all()
    return QuestionDetail(row, tuple(messages), tuple(responses), tuple(events))


# -- trends ----------------------------------------------------------------------------------


async def daily(
    engine: AsyncEngine,
    cfg: AppConfig,
    principal: Principal,
    req: ReportRequest,
    build: ReportBuilder,
    rows: Sequence[Any],
) -> list[dict[str, Any]]:
    """Per local day: volume, attainment strict/lenient, FRT p50/p90."""
    if principal.team is None:
        [table] = await build(engine, cfg, _with_view(req, "daily"))
        return [dict(r) for r in table.rows]
    per_day = by_day(
        [to_facts(r) for r in rows],
        cfg.bot.timezone,
        as_of=req.as_of,
        basis=req.basis,
        strict=req.strict,
        strict_threshold=cfg.sla.strict_confidence,
    )
    return [{"date": d.isoformat(), **_summary_row(s, 0)} for d, s in sorted(per_day.items())]


async def backlog_history(
    conn: AsyncConnection, cfg: AppConfig, principal: Principal, req: ReportRequest
) -> list[tuple[str, dict[str, int]]]:
    """Backlog by age band at the end of each local day of the period (or at as_of today)."""
    tz = ZoneInfo(cfg.bot.timezone)
    first = datetime.combine(req.start, time(0), tz).astimezone(UTC)
    resp_at = Q.c.strict_first_response_at if req.strict else Q.c.first_response_at
    stmt = select(Q.c.opened_at, resp_at.label("resp")).where(
        _ELIGIBLE, Q.c.opened_at <= req.as_of, or_(resp_at.is_(None), resp_at > first)
    )
    rows = (await conn.execute(_where(stmt, principal))).all()
    out: list[tuple[str, dict[str, int]]] = []
    day = req.start
    while day <= req.end:
        cut = min(datetime.combine(day + timedelta(days=1), time(0), tz), req.as_of)
        bands = dict.fromkeys((label for label, _ in BACKLOG_BANDS), 0)
        for opened, resp in rows:
            if opened <= cut and (resp is None or resp > cut):
                age = (cut - opened).total_seconds()
                bands[next(lbl for lbl, upper in BACKLOG_BANDS if age < upper)] += 1
        out.append((day.isoformat(), bands))
        day += timedelta(days=1)
    return out


def heatmap(
    rows: Sequence[Any], tz: str, basis: str, strict: bool
) -> list[list[tuple[int, float | None]]]:
    """7 weekdays x 24 hours of (questions, median FRT of the answered ones)."""
    zone = ZoneInfo(tz)
    cells: list[list[list[float]]] = [[[] for _ in range(24)] for _ in range(7)]
    counts = [[0] * 24 for _ in range(7)]
    for r in rows:
        local = r.opened_at.astimezone(zone)
        counts[local.weekday()][local.hour] += 1
        prefix = "strict_frt_" if strict else "frt_"
        frt = getattr(r, f"{prefix}{basis}_s")
        if frt is not None:
            cells[local.weekday()][local.hour].append(float(frt))
    return [
        [
            (counts[d][h], statistics.median(cells[d][h]) if cells[d][h] else None)
            for h in range(24)
        ]
        for d in range(7)
    ]


# -- SOP compliance --------------------------------------------------------------------------


async def sop_records(
    conn: AsyncConnection, principal: Principal, start: date, end: date
) -> list[compliance.TaskRecord]:
    guide = principal.operator_id if principal.team == frozenset({principal.operator_id}) else None
    records = await task_records(conn, start, end, guide=guide)
    return [r for r in records if principal.sees(r.guide_id)]


STAT_COLUMNS = (
    "tasks",
    "on_time",
    "late",
    "missed",
    "open",
    "completion_rate",
    "on_time_rate",
    "unit_rate",
)


def stats_row(s: compliance.CompletionStats) -> dict[str, Any]:
    return {
        "tasks": s.tasks,
        "on_time": s.on_time,
        "late": s.late,
        "missed": s.missed,
        "open": s.open,
        "completion_rate": s.completion_rate.value,
        "on_time_rate": s.on_time_rate.value,
        "unit_rate": s.unit_rate.value,
    }


def sop_tables(
    cfg: AppConfig, records: Sequence[compliance.TaskRecord], end: date, as_of: datetime
) -> dict[str, list[dict[str, Any]]]:
    names = {op.id: op.name for op in cfg.operators}
    stores = {r.guide_id: r.store for r in records}
    workday = cfg.calendar.calendar(cfg.bot.timezone).is_workday
    streaks = compliance.streaks_by_guide(records, workday, end, as_of)
    return {
        "guides": [
            {
                "guide": g,
                "name": names.get(g, g),
                "store": stores.get(g, ""),
                **stats_row(s),
                "streak": streaks[g].current,
                "best_streak": streaks[g].best,
            }
            for g, s in sorted(compliance.by_guide(records, as_of).items())
        ],
        "stores": [
            {"store": k, **stats_row(s)}
            for k, s in sorted(compliance.by_store(records, as_of).items())
        ],
        "days": [
            {"date": k.isoformat(), **stats_row(s)}
            for k, s in sorted(compliance.by_day(records, as_of).items())
        ],
    }


# -- short-lived page data cache -------------------------------------------------------------

# How long computed page figures may be reused (per scope, page and period) when nothing
# visible was written meanwhile. 0 turns the cache off.
CACHE_SECONDS = 30.0
_CACHE_ENTRIES = 256


async def store_version(conn: AsyncConnection) -> tuple[int, int, int]:
    """Changes whenever a question is opened, answered or audited (three primary-key maxima).

    Writes that touch none of them (e.g. a recalled response, a follow-up flag) are caught
    by ``CACHE_SECONDS`` instead: cached figures are never older than that.
    """
    stmt = select(
        select(func.max(Q.c.id)).scalar_subquery(),
        select(func.max(R.c.id)).scalar_subquery(),
        select(func.max(E.c.id)).scalar_subquery(),
    )
    row = (await conn.execute(stmt)).one()
    return (int(row[0] or 0), int(row[1] or 0), int(row[2] or 0))


class PageCache:
    """Computed page figures keyed by (page, scope, period, store version, as_of // TTL)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], Any] = {}

    def key(self, *parts: Any, as_of: datetime) -> tuple[Any, ...] | None:
        if CACHE_SECONDS <= 0:
            return None
        return (*parts, math.floor(as_of.timestamp() / CACHE_SECONDS))

    def get(self, key: tuple[Any, ...] | None) -> Any:
        return None if key is None else self._entries.get(key)

    def put(self, key: tuple[Any, ...] | None, value: Any) -> None:
        if key is None:
            return
        if len(self._entries) >= _CACHE_ENTRIES:
            self._entries.clear()  # old time buckets are dead anyway
        self._entries[key] = value

    def clear(self) -> None:
        self._entries.clear()
