"""The ``sla`` report (sla.md §7.8, §7.10): one builder for ``sopbot report sla`` and the API.

Everything is aggregated in SQL over the ``question`` table (no per-question rows are loaded), so
a 30-day report over a million questions stays fast on SQLite and PostgreSQL:

* counts, attainment, answer/backlog rate @48 h, resolution, follow-up and 3-minute rates are
  ``SUM(CASE ...)`` per key, with the same definitions as ``sop.metrics`` (cohort = questions
  opened on the requested local dates and by ``as_of``; E = minus dismissed, withdrawn and
  bot-resolved; strict view = the ``strict_*`` columns, lenient = the first response);
* FRT p50/p90 are exact ``PERCENTILE_CONT`` (linear interpolation at ``(n-1)·q``) computed with
  ``ROW_NUMBER()`` window functions, censoring-aware: overdue unanswered questions sort as +∞;
  a quantile touching one is shown as "> L", L being the same percentile with each censored FRT
  replaced by its lower bound (calendar basis: its age at as_of; business basis: the FRT target,
  which overdue guarantees);
* the 3-minute denominator on the business basis counts unanswered questions only when overdue
  with a target of at least 3 minutes (the no-calendar rule of ``sop.metrics``);
* the backlog snapshot is every eligible question opened by as_of and unanswered at as_of,
  whatever its date, by calendar age band.

Views (``ReportRequest.view``): ``summary``, ``operators`` (credit and accountability columns),
``groups``, ``daily``; empty = all four. Filters: ``group``, ``operator``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import (
    and_,
    case,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from bot.config import AppConfig
from bot.keys import DISPATCHER
from bot.reports import ReportRequest, ReportTable
from bot.store.questions import Q
from sop.metrics import BACKLOG_BANDS, THREE_MIN_S, format_duration

_EPS = 1e-6
_INF = 1e300  # censored FRT sorts above every observation
ALL_VIEWS = ("summary", "operators", "groups", "daily")


@dataclass(frozen=True, slots=True)
class _Cols:
    """Column expressions of one request (basis, view, as_of)."""

    as_of: datetime
    resp_at: Any
    responder: Any
    frt: Any
    strict_at: Any
    strict_frt: Any
    lenient_at: Any
    lenient_frt: Any
    due: Any
    eligible: ColumnElement[bool]
    answered: ColumnElement[bool]
    age: Any


def _cols(req: ReportRequest) -> _Cols:
    business = req.basis == "business"
    as_of = req.as_of.astimezone(UTC)
    strict_frt = Q.c.strict_frt_business_s if business else Q.c.strict_frt_calendar_s
    lenient_frt = Q.c.frt_business_s if business else Q.c.frt_calendar_s
    resp_at = Q.c.strict_first_response_at if req.strict else Q.c.first_response_at
    return _Cols(
        as_of=as_of,
        resp_at=resp_at,
        responder=Q.c.strict_first_responder_id if req.strict else Q.c.first_responder_id,
        frt=strict_frt if req.strict else lenient_frt,
        strict_at=Q.c.strict_first_response_at,
        strict_frt=strict_frt,
        lenient_at=Q.c.first_response_at,
        lenient_frt=lenient_frt,
        due=Q.c.frt_due_at if business else Q.c.frt_due_calendar_at,
        eligible=and_(Q.c.status.notin_(("dismissed", "withdrawn")), Q.c.bot_resolved == false()),
        answered=and_(resp_at.isnot(None), resp_at <= as_of),
        age=literal(as_of.timestamp()) - Q.c.opened_epoch,
    )


def _n(cond: ColumnElement[bool]) -> Any:
    return func.sum(case((cond, 1), else_=0))


def _cohort(req: ReportRequest, c: _Cols) -> list[ColumnElement[bool]]:
    where = [
        Q.c.local_date >= req.start.isoformat(),
        Q.c.local_date <= req.end.isoformat(),
        Q.c.opened_at <= c.as_of,
    ]
    if req.filters.get("group"):
        where.append(Q.c.chat_id == req.filters["group"])
    return where


def _owner_key(conn: AsyncConnection) -> Any:
    fn = func.json_array_elements_text if conn.dialect.name == "postgresql" else func.json_each
    return fn(Q.c.owner_ids).table_valued("value").alias("owner")


async def _aggregate(
    conn: AsyncConnection, req: ReportRequest, key: Any, *, extra: Any = None, owners: Any = None
) -> dict[str, dict[str, Any]]:
    """Per-key counts over the cohort (key None → one "" row)."""
    c = _cols(req)
    e = c.eligible
    business = req.basis == "business"

    def attained(at: Any, frt: Any) -> ColumnElement[bool]:
        return and_(e, at.isnot(None), at <= c.as_of, frt <= Q.c.frt_target_s + _EPS)

    def att_den(at: Any) -> ColumnElement[bool]:
        return and_(e, or_(and_(at.isnot(None), at <= c.as_of), c.due <= c.as_of))

    within48 = and_(e, c.answered, c.resp_at <= Q.c.backlog_due_at)
    unanswered_known = (
        and_(c.due <= c.as_of, Q.c.frt_target_s >= THREE_MIN_S)
        if business
        else c.age >= THREE_MIN_S
    )
    k = (key if key is not None else literal("")).label("k")
    cols = [
        k,
        func.count().label("n_cohort"),
        _n(Q.c.status == "dismissed").label("n_dismissed"),
        _n(Q.c.status == "withdrawn").label("n_withdrawn"),
        _n(e).label("n_eligible"),
        _n(and_(e, c.answered)).label("n_answered"),
        _n(and_(e, not_(c.answered), c.due <= c.as_of)).label("n_overdue"),
        func.sum(case((and_(e, c.answered), c.frt), else_=0.0)).label("frt_sum"),
        _n(attained(c.strict_at, c.strict_frt)).label("att_s_num"),
        _n(att_den(c.strict_at)).label("att_s_den"),
        _n(attained(c.lenient_at, c.lenient_frt)).label("att_l_num"),
        _n(att_den(c.lenient_at)).label("att_l_den"),
        _n(within48).label("a48_num"),
        _n(or_(within48, and_(e, Q.c.backlog_due_at <= c.as_of))).label("a48_den"),
        _n(and_(e, Q.c.resolved_at <= c.as_of)).label("resolved"),
        _n(and_(e, Q.c.holding == true(), Q.c.followup_breached == true())).label("fu_num"),
        _n(and_(e, Q.c.holding == true(), Q.c.followup_breached.isnot(None))).label("fu_den"),
        _n(and_(e, c.answered, c.frt <= THREE_MIN_S + _EPS)).label("three_num"),
        _n(and_(e, or_(c.answered, unanswered_known))).label("three_den"),
    ]
    stmt = select(*cols).select_from(Q)
    if owners is not None:
        stmt = stmt.join(owners, true())
    stmt = stmt.where(*_cohort(req, c))
    if extra is not None:
        stmt = stmt.where(extra)
    if key is not None:
        stmt = stmt.group_by(key)
    return {str(r.k): dict(r._mapping) for r in (await conn.execute(stmt)).all()}


async def _quantiles(
    conn: AsyncConnection, req: ReportRequest, key: Any, *, extra: Any = None, owners: Any = None
) -> dict[str, dict[str, str | float | None]]:
    """Censoring-aware FRT p50/p90 per key (exact PERCENTILE_CONT via window functions)."""
    c = _cols(req)
    business = req.basis == "business"
    lower = Q.c.frt_target_s if business else c.age
    k = key if key is not None else literal("")
    pop = and_(c.eligible, or_(c.answered, c.due <= c.as_of))

    async def order_stats(value: Any) -> dict[str, tuple[int, dict[int, float]]]:
        inner = select(k.label("k"), value.label("v")).select_from(Q)
        if owners is not None:
            inner = inner.join(owners, true())
        inner = inner.where(*_cohort(req, c), pop)
        if extra is not None:
            inner = inner.where(extra)
        sub = inner.subquery()
        ranked = select(
            sub.c.k,
            sub.c.v,
            func.row_number().over(partition_by=sub.c.k, order_by=sub.c.v).label("rn"),
            func.count().over(partition_by=sub.c.k).label("n"),
        ).subquery()
        picks = []
        # Integer arithmetic: CAST(x AS INTEGER) rounds on PostgreSQL but truncates on SQLite.
        for num, den in ((1, 2), (9, 10)):
            lo = (ranked.c.n - 1) * num // den + 1
            picks += [ranked.c.rn == lo, ranked.c.rn == lo + 1]
        stmt = select(ranked.c.k, ranked.c.v, ranked.c.rn, ranked.c.n).where(or_(*picks))
        out: dict[str, tuple[int, dict[int, float]]] = {}
        for r in (await conn.execute(stmt)).all():
            n, vals = out.get(str(r.k), (int(r.n), {}))
            vals[int(r.rn)] = float(r.v)
            out[str(r.k)] = (n, vals)
        return out

    def pct(n: int, vals: dict[int, float], q: float) -> float:
        h = (n - 1) * q
        lo = math.floor(h + 1e-9)
        frac = h - lo
        a = vals[lo + 1]
        if frac < 1e-9:
            return a
        b = vals[lo + 2]
        return _INF if b >= _INF else a + frac * (b - a)

    exact = await order_stats(case((c.answered, c.frt), else_=literal(_INF)))
    result: dict[str, dict[str, str | float | None]] = {}
    need_bound: list[tuple[str, str, float]] = []
    for key_value, (n, vals) in exact.items():
        row: dict[str, str | float | None] = {}
        for name, q in (("p50", 0.5), ("p90", 0.9)):
            v = pct(n, vals, q)
            if v >= _INF:
                need_bound.append((key_value, name, q))
                row[f"frt_{name}_s"] = None
            else:
                row[f"frt_{name}_s"] = round(v, 3)
                row[f"frt_{name}"] = format_duration(v, "en")
        result[key_value] = row
    if need_bound:
        bounds = await order_stats(case((c.answered, c.frt), else_=lower))
        for key_value, name, q in need_bound:
            n, vals = bounds[key_value]
            bound = pct(n, vals, q)
            result[key_value][f"frt_{name}_above_s"] = round(bound, 3)
            result[key_value][f"frt_{name}"] = "> " + format_duration(math.floor(bound), "en")
    return result


async def _backlog(
    conn: AsyncConnection, req: ReportRequest, key: Any, *, extra: Any = None, owners: Any = None
) -> dict[str, dict[str, int]]:
    """Unanswered eligible questions at as_of, whatever their date, by calendar-age band."""
    c = _cols(req)
    k = (key if key is not None else literal("")).label("k")
    cols: list[Any] = [k]
    lower = 0.0
    for label, upper in BACKLOG_BANDS:
        cond = c.age >= lower if math.isinf(upper) else and_(c.age >= lower, c.age < upper)
        cols.append(_n(cond).label(label))
        lower = upper
    stmt = select(*cols).select_from(Q)
    if owners is not None:
        stmt = stmt.join(owners, true())
    stmt = stmt.where(
        c.eligible,
        Q.c.opened_at <= c.as_of,
        or_(c.resp_at.is_(None), c.resp_at > c.as_of),
    )
    if req.filters.get("group"):
        stmt = stmt.where(Q.c.chat_id == req.filters["group"])
    if extra is not None:
        stmt = stmt.where(extra)
    if key is not None:
        stmt = stmt.group_by(key)
    out: dict[str, dict[str, int]] = {}
    for r in (await conn.execute(stmt)).all():
        bands = {label: int(r._mapping[label] or 0) for label, _ in BACKLOG_BANDS}
        out[str(r.k)] = bands
    return out


def _rate(num: Any, den: Any) -> float | None:
    return round(int(num) / int(den), 4) if den else None


def _metrics(agg: dict[str, Any], q: dict[str, Any], backlog: dict[str, int]) -> dict[str, Any]:
    answered = int(agg["n_answered"] or 0)
    return {
        "questions": int(agg["n_cohort"] or 0),
        "eligible": int(agg["n_eligible"] or 0),
        "dismissed": int(agg["n_dismissed"] or 0),
        "withdrawn": int(agg["n_withdrawn"] or 0),
        "answered": answered,
        "overdue_unanswered": int(agg["n_overdue"] or 0),
        "frt_p50_s": q.get("frt_p50_s"),
        "frt_p50": q.get("frt_p50", "—"),
        "frt_p90_s": q.get("frt_p90_s"),
        "frt_p90": q.get("frt_p90", "—"),
        "frt_avg_s": round(float(agg["frt_sum"] or 0) / answered, 3) if answered else None,
        "attainment_strict": _rate(agg["att_s_num"], agg["att_s_den"]),
        "attainment_lenient": _rate(agg["att_l_num"], agg["att_l_den"]),
        "answer_rate_48h": _rate(agg["a48_num"], agg["a48_den"]),
        "backlog_rate_48h": _rate(
            int(agg["a48_den"] or 0) - int(agg["a48_num"] or 0), agg["a48_den"]
        ),
        "backlog_now": sum(backlog.values()),
        "resolution_rate": _rate(agg["resolved"], agg["n_eligible"]),
        "followup_breach_rate": _rate(agg["fu_num"], agg["fu_den"]),
        "three_min_rate": _rate(agg["three_num"], agg["three_den"]),
    }


METRIC_COLUMNS = (
    "questions",
    "eligible",
    "answered",
    "overdue_unanswered",
    "frt_p50",
    "frt_p90",
    "frt_p50_s",
    "frt_p90_s",
    "frt_avg_s",
    "attainment_strict",
    "attainment_lenient",
    "answer_rate_48h",
    "backlog_rate_48h",
    "backlog_now",
    "resolution_rate",
    "followup_breach_rate",
    "three_min_rate",
    "dismissed",
    "withdrawn",
)
OPERATOR_COLUMNS = (
    "operator",
    "first_responses",
    "share_of_first_responses",
    "credit_frt_p50",
    "credit_frt_p90",
    "credit_frt_p50_s",
    "credit_frt_p90_s",
    "credit_three_min_rate",
    "credit_attainment",
    "credit_followup_breach_rate",
    "owned_questions",
    "owned_attainment_strict",
    "owned_attainment_lenient",
    "owned_answer_rate_48h",
    "owned_backlog_rate_48h",
    "owned_backlog_now",
)


async def _keyed(
    conn: AsyncConnection, req: ReportRequest, key: Any, **kw: Any
) -> dict[str, dict[str, Any]]:
    agg = await _aggregate(conn, req, key, **kw)
    qs = await _quantiles(conn, req, key, **kw)
    bl = await _backlog(conn, req, key, **kw)
    return {k: _metrics(agg.get(k, _EMPTY), qs.get(k, {}), bl.get(k, {})) for k in {*agg, *bl}}


_EMPTY: dict[str, Any] = dict.fromkeys(
    [
        "n_cohort",
        "n_dismissed",
        "n_withdrawn",
        "n_eligible",
        "n_answered",
        "n_overdue",
        "frt_sum",
        "att_s_num",
        "att_s_den",
        "att_l_num",
        "att_l_den",
        "a48_num",
        "a48_den",
        "resolved",
        "fu_num",
        "fu_den",
        "three_num",
        "three_den",
    ],
    0,
)


def _notes(req: ReportRequest) -> tuple[str, ...]:
    view = "strict (links with confidence >= 0.8)" if req.strict else "lenient (every link)"
    return (
        f"{req.start.isoformat()}..{req.end.isoformat()} (local dates), as of "
        f"{req.as_of.isoformat()}, {req.basis} time, {view}",
        "FRT percentiles: PERCENTILE_CONT (linear interpolation); unanswered overdue questions "
        "count as +inf, shown as '> lower bound'",
        "48 h answer/backlog rates over mature questions only; backlog_now = unanswered at as_of",
    )


async def build(db: AsyncEngine, cfg: AppConfig, req: ReportRequest) -> list[ReportTable]:
    """The SLA report tables for ``req`` (the CLI and the API call exactly this)."""
    views = (req.view,) if req.view else ALL_VIEWS
    unknown = [v for v in views if v not in ALL_VIEWS]
    if unknown:
        raise ValueError(f"unknown sla view {unknown[0]!r} (one of {', '.join(ALL_VIEWS)})")
    notes = _notes(req)
    tables: list[ReportTable] = []
    operator = req.filters.get("operator") or None
    async with db.connect() as conn:
        for view in views:
            if view == "summary":
                row = (await _keyed(conn, req, None)).get("", _metrics(_EMPTY, {}, {}))
                tables.append(ReportTable("SLA summary", METRIC_COLUMNS, (row,), notes))
            elif view == "groups":
                data = await _keyed(conn, req, Q.c.chat_id)
                rows = tuple({"group": g, **m} for g, m in sorted(data.items()))
                tables.append(
                    ReportTable("SLA per group", ("group", *METRIC_COLUMNS), rows, notes)
                )
            elif view == "daily":
                data = await _keyed(conn, req, Q.c.local_date)
                rows = tuple({"date": d, **m} for d, m in sorted(data.items()))
                tables.append(ReportTable("SLA per day", ("date", *METRIC_COLUMNS), rows, notes))
            else:
                rows = await _operators(conn, req, operator)
                tables.append(ReportTable("SLA per operator", OPERATOR_COLUMNS, rows, notes))
    return tables


async def _operators(
    conn: AsyncConnection, req: ReportRequest, only: str | None
) -> tuple[dict[str, Any], ...]:
    c = _cols(req)
    credit = await _keyed(conn, req, c.responder, extra=c.answered)
    owners = _owner_key(conn)
    owned = await _keyed(conn, req, owners.c.value, owners=owners)
    total = sum(m["answered"] for m in credit.values())
    rows = []
    for op in sorted({*credit, *owned} - {""}):
        if only and op != only:
            continue
        cr, ow = credit.get(op, {}), owned.get(op, {})
        rows.append(
            {
                "operator": op,
                "first_responses": cr.get("answered", 0),
                "share_of_first_responses": _rate(cr.get("answered", 0), total),
                "credit_frt_p50": cr.get("frt_p50", "—"),
                "credit_frt_p90": cr.get("frt_p90", "—"),
                "credit_frt_p50_s": cr.get("frt_p50_s"),
                "credit_frt_p90_s": cr.get("frt_p90_s"),
                "credit_three_min_rate": cr.get("three_min_rate"),
                "credit_attainment": cr.get(
                    "attainment_strict" if req.strict else "attainment_lenient"
                ),
                "credit_followup_breach_rate": cr.get("followup_breach_rate"),
                "owned_questions": ow.get("questions", 0),
                "owned_attainment_strict": ow.get("attainment_strict"),
                "owned_attainment_lenient": ow.get("attainment_lenient"),
                "owned_answer_rate_48h": ow.get("answer_rate_48h"),
                "owned_backlog_rate_48h": ow.get("backlog_rate_48h"),
                "owned_backlog_now": ow.get("backlog_now", 0),
            }
        )
    return tuple(rows)


async def context(app: web.Application) -> AsyncIterator[None]:
    """Lets commands build the report (handlers never import each other)."""
    app[DISPATCHER].provide(sla_report=build)
    yield
