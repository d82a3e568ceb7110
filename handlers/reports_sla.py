"""The ``sla`` report (sla.md §7.8, §7.10): one builder for ``sopbot report sla`` and the API.

Definitions are those of ``sop.metrics`` (cohort = questions opened on the requested local dates
and by ``as_of``; E = minus dismissed, withdrawn, bot-resolved; strict view = the ``strict_*``
columns, lenient = the first response). Two ways to the same numbers:

* **Exact SQL** over the ``question`` table (``SUM(CASE ...)`` per key, raw FRT and resolution
  values for percentiles): small ranges (<= ``EXACT_LIMIT`` questions), a ``group`` filter
  (rollups are not split by group under the operator dimensions), or an ``as_of`` so far in the
  past that most facts still move after it (``MOVING_SHARE``).
* **Rollups** (``bot/store/sla_rollup.py``): the per-day sums of the range, read per dimension,
  hold every question *as of +inf*. Questions whose facts still change after ``as_of``
  (``settle_at > as_of``: unanswered and younger than 48 h, answered or resolved after as_of,
  opened after it) are copied once into a temporary table (``sla_moving``, dropped at the end);
  per dimension, one SQL pass over it adds their counters at ``as_of`` and takes out their +inf
  share (the same exact SQL at an ``as_of`` of +inf), and histogram corrections are counted per
  bucket in SQL (``sla_rollup.bucket_sql`` is ``frt_bucket`` to the bit). So any ``as_of``, past
  or present, gives the exact counts; tests check both ways agree. The rollup rows are read and
  unpacked on a second connection meanwhile, only the histograms a view shows.

Percentiles (FRT p50/p90, resolution p50) are ``PERCENTILE_CONT`` (linear interpolation at
``(n-1)·q``): exact from SQL; to the bucket when rollups contribute (1 s below 2 min, 5 s below
10 min, 30 s below 1 h, 5 min below 4 h, 30 min below 48 h). Censoring-aware: overdue unanswered
questions sort as +inf; a quantile touching one is shown as "> L", L being the same percentile
with each censored FRT replaced by its lower bound (calendar: age at as_of; business: open
business time up to as_of from the stored business-axis position of ``opened_at``, per group
calendar in SQL; from rollups rounded down to the opened hour, on the tenant calendar). The
3-minute denominator counts an unanswered question once it has waited 3 minutes in the report's
basis (business time likewise). The backlog snapshot is every eligible question opened by as_of
and unanswered at as_of, whatever its date, by calendar-age band. Owners: questions of groups
without owners count under operator "" (the team queue), as in ``sop.metrics``.

Views (``ReportRequest.view``): ``summary``, ``operators`` (credit and accountability columns),
``groups``, ``daily``; empty = all four. Filters: ``group``, ``operator``.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import itertools
import json
import math
import typing
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import (
    Column,
    String,
    and_,
    bindparam,
    case,
    cast,
    column,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    table,
    text,
    true,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ColumnElement

from bot.config import AppConfig
from bot.keys import DISPATCHER
from bot.reports import ReportRequest, ReportTable
from bot.store import sla_rollup as roll
from bot.store.questions import Q
from sop.metrics import BACKLOG_BANDS, THREE_MIN_S, format_duration

_EPS = 1e-6
ALL_VIEWS = ("summary", "operators", "groups", "daily")
_OLDEST_BAND = BACKLOG_BANDS[-1][0]


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
    elapsed: Any  # waited by as_of in the basis


def _bpos_as_of(cfg: AppConfig, as_of: datetime) -> tuple[float, Any]:
    """Business-time position of as_of on the tenant axis, and per group as a SQL CASE."""
    tz = cfg.bot.timezone
    base = roll.axis_of(cfg.calendar.calendar(tz)).position(as_of)
    whens = [
        (
            and_(Q.c.platform == platform, Q.c.chat_id == chat),
            literal(roll.axis_of(cal).position(as_of)),
        )
        for (platform, chat), cal in cfg.calendar.group_calendars(tz).items()
    ]
    return base, case(*whens, else_=literal(base)) if whens else literal(base)


def _cols(req: ReportRequest, bpos: Any, as_of: datetime | None = None) -> _Cols:
    business = req.basis == "business"
    as_of = (as_of or req.as_of).astimezone(UTC)
    strict_frt = Q.c.strict_frt_business_s if business else Q.c.strict_frt_calendar_s
    lenient_frt = Q.c.frt_business_s if business else Q.c.frt_calendar_s
    resp_at = Q.c.strict_first_response_at if req.strict else Q.c.first_response_at
    age = literal(as_of.timestamp()) - Q.c.opened_epoch
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
        age=age,
        elapsed=bpos - Q.c.opened_bepoch if business else age,
    )


def _n(cond: ColumnElement[bool]) -> Any:
    return func.sum(case((cond, 1), else_=0))


@dataclass(frozen=True, slots=True)
class _Plan:
    """Which days come from rollups and which from SQL, for one request."""

    req: ReportRequest
    c: _Cols
    variant: str
    range_days: tuple[str, ...]
    rollups: bool  # False: every question exactly in SQL
    bpos_base: float
    as_of_epoch: float
    day_starts: dict[str, tuple[float, float]]  # range day → (UNIX s, business position)
    inf: _Cols  # the same columns as of +inf (the rollups' view of every question)
    moving_n: int = 0  # questions with settle_at > cut (rollup mode corrects for them)
    # The rollups' watermark: they hold the questions with settle_at <= mark. Questions after
    # min(as_of, mark) (``cut``) are read exactly; the +inf share of those the rollups hold
    # (settle_at <= mark) is taken out.
    mark: datetime = roll.INF
    # Rollup rows read ahead on a second connection, by (dim, histograms) (see ``build``).
    ahead: asyncio.Task[dict[_ReadKey, _Read]] | None = None


_Read = list[tuple[str, str, roll.Sums]]
_ReadKey = tuple[str, tuple[str, ...]]  # (rollup dim, histograms read)


# Below this many questions in the range, every number comes exactly from SQL.
EXACT_LIMIT = 20_000
# Above this many moving questions per question of the range, plain SQL is cheaper than rollups.
MOVING_SHARE = 2.0
# The moving questions of one report, copied once into a temporary table: every correction
# query then scans a few thousand narrow-ish rows instead of probing the question table again.
_MOVING_TABLE = "sla_moving"
# The columns the correction queries read (a column missing here fails loudly in _on_moving).
_MOVING_COLUMNS = (*roll.ROW_COLUMNS, "platform", "opened_at", "settle_at")
MOVING = table(_MOVING_TABLE, *(column(n, Q.c[n].type) for n in _MOVING_COLUMNS))


def _on_moving(stmt: Any) -> Any:
    """``stmt`` with the question table (and its columns) replaced by the moving copy."""
    opts: dict[str, Any] = {}

    def swap(element: Any, **_kw: Any) -> Any:
        if element is Q:
            return MOVING
        if isinstance(element, Column) and element.table is Q:
            return MOVING.c[element.name]
        return None

    return visitors.replacement_traverse(
        typing.cast(visitors.ExternallyTraversible, stmt), opts, swap
    )


async def _copy_moving(conn: AsyncConnection, cut: datetime) -> None:
    await conn.execute(text(f"DROP TABLE IF EXISTS {_MOVING_TABLE}"))
    await conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {_MOVING_TABLE} AS "
            f"SELECT {', '.join(_MOVING_COLUMNS)} FROM question WHERE settle_at > :cut"
        ).bindparams(bindparam("cut", cut, type_=Q.c.settle_at.type))
    )


async def _drop_moving(conn: AsyncConnection) -> None:
    # PostgreSQL drops it with the transaction's rollback when the connection goes back to the
    # pool (and a DROP after a failed statement would hide the error); SQLite keeps it.
    if conn.dialect.name == "sqlite":
        await conn.execute(text(f"DROP TABLE IF EXISTS {_MOVING_TABLE}"))


async def _rows(conn: AsyncConnection, plan: _Plan, stmt: Any) -> Sequence[Any]:
    """Rows of ``stmt``; in rollup mode read from the moving copy (none: nothing moves)."""
    if not plan.rollups:
        return (await conn.execute(stmt)).all()
    if not plan.moving_n:
        return ()
    return (await conn.execute(_on_moving(stmt))).all()


# "+inf" for the rollups' view: every due time has passed, every stored fact has happened.
_INF = datetime(2999, 1, 1, tzinfo=UTC)
_INF_BPOS = 1e15


def _band(age: float) -> str:
    for label, upper in BACKLOG_BANDS:
        if age < upper:
            return label
    return _OLDEST_BAND


async def _plan(conn: AsyncConnection, cfg: AppConfig, req: ReportRequest) -> _Plan:
    bpos_base, bpos = _bpos_as_of(cfg, req.as_of)
    c = _cols(req, bpos)
    n_days = (req.end - req.start).days + 1
    days = tuple((req.start + timedelta(days=i)).isoformat() for i in range(n_days))
    variant = roll.variant_name(req.basis, req.strict)
    tz = ZoneInfo(cfg.bot.timezone)
    axis = roll.axis_of(cfg.calendar.calendar(cfg.bot.timezone))
    starts = {d: roll.day_positions(d, tz, axis) for d in days}
    inf = _cols(req, literal(_INF_BPOS), _INF)
    plan = _Plan(req, c, variant, days, False, bpos_base, c.as_of.timestamp(), starts, inf)
    if req.filters.get("group"):
        return plan
    in_range = await roll.questions_in(conn, days[0], days[-1])
    if in_range <= EXACT_LIMIT:
        return plan
    mark = await roll.watermark(conn)
    moving_n = (
        await conn.execute(select(func.count()).where(Q.c.settle_at > min(c.as_of, mark)))
    ).scalar_one()
    if moving_n > in_range * MOVING_SHARE:
        return plan  # an as_of far in the past: most facts still move, SQL is cheaper
    return dataclasses.replace(plan, rollups=True, moving_n=int(moving_n), mark=mark)


def _range(req: ReportRequest, *, indexed: bool = True) -> list[Any]:
    # ``local_date || ''`` keeps the planner on the (selective) settle_at index instead.
    day = Q.c.local_date if indexed else Q.c.local_date.concat("")
    return [day >= req.start.isoformat(), day <= req.end.isoformat()]


# --- one dimension ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Dim:
    rollup: str  # sla_rollup.dim
    by_date: bool = False  # rollup key = local date (daily view)
    key: Any = None  # SQL key expression (None: one "" row)
    owners: bool = False  # join each owner (outer: "" for none)
    answered_only: bool = False  # credit: only questions answered in the view
    backlog: bool = True
    # The rollup histograms the view shows percentiles of (others are left empty).
    hist: tuple[str, ...] = ("frt", "res", "cens")
    counters: tuple[str, ...] = ()  # the counters the view shows (empty: all)


@dataclass(slots=True)
class _Acc:
    """One key's sums: exact SQL parts as dicts, rollup parts as packed integers."""

    counts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(roll.COUNTERS, 0))
    obs: dict[float, int] = field(default_factory=lambda: defaultdict(int))
    cens: dict[float, int] = field(default_factory=lambda: defaultdict(int))
    res: dict[float, int] = field(default_factory=lambda: defaultdict(int))
    backlog: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    packed_counts: int = 0
    packed_frt: int = 0
    packed_res: int = 0
    packed_cens: int = 0  # 24 hourly slots per range day, day i shifted by i * 24 fields
    # Bucket corrections of moving questions (negative = add): their +inf share out, their
    # state at as_of in (rollups are bucketed anyway).
    sub_frt: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    sub_res: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    sub_cens: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    cens_buckets: dict[int, int] = field(default_factory=lambda: defaultdict(int))


def _acc(accs: dict[str, _Acc], key: str) -> _Acc:
    acc = accs.get(key)
    if acc is None:
        acc = accs[key] = _Acc()
    return acc


def _owner_source(conn: AsyncConnection) -> Any:
    fn = func.json_array_elements_text if conn.dialect.name == "postgresql" else func.json_each
    return fn(Q.c.owner_ids).table_valued("value").alias("owner")


def _source(
    conn: AsyncConnection, dim: _Dim, plan: _Plan, c: _Cols | None = None
) -> tuple[Any, Any, list[Any]]:
    """(FROM clause, key expression, extra WHERE) of a dimension's exact query."""
    extra: list[Any] = [(c or plan.c).answered] if dim.answered_only else []
    if dim.owners and plan.rollups:
        # Grouped by the owner list, spread to each owner in Python (``_keys``): half the rows
        # of a join with every owner, and no JSON table function.
        return Q, cast(Q.c.owner_ids, String), extra
    if dim.owners:
        owners = _owner_source(conn)
        return Q.outerjoin(owners, true()), func.coalesce(owners.c.value, ""), extra
    if dim.key is None:
        return Q, literal(""), extra
    # With rollups only the few moving questions are read: a GROUP BY on an indexed column
    # would tempt the planner into a full index scan instead of the settle_at index.
    return Q, dim.key.concat("") if plan.rollups else dim.key, extra


def _keys(dim: _Dim, plan: _Plan, k: Any) -> list[str]:
    """The keys a result row's ``k`` counts under (an owner list: each owner, "" for none)."""
    if dim.owners and plan.rollups:
        owners = json.loads(k) if k else []
        return [str(o) for o in dict.fromkeys(owners or ())] or [""]
    return [str(k)]


def _accs(accs: dict[str, _Acc], dim: _Dim, plan: _Plan, k: Any) -> list[_Acc]:
    return [_acc(accs, key) for key in _keys(dim, plan, k)]


def _cut(plan: _Plan) -> datetime:
    """Questions settling after this are not final at as_of or not in the rollups."""
    return min(plan.c.as_of, plan.mark)


def _moving(plan: _Plan) -> Any:
    return Q.c.settle_at > _cut(plan)


def _held(plan: _Plan) -> Any:
    """The moving questions the rollups hold (their +inf share is taken out)."""
    return Q.c.settle_at <= plan.mark


def _exact_where(plan: _Plan, *, inf: bool = False) -> list[Any]:
    """The questions an exact query reads: the range by as_of; with rollups the moving ones.

    ``inf``: the moving questions' +inf share (what the rollups hold), opened by as_of or not.
    """
    where: list[Any] = [*_range(plan.req, indexed=not plan.rollups)]
    if not inf:
        # ``opened_epoch`` rather than ``opened_at``: keeps the planner off the opened_at index.
        where.append(Q.c.opened_epoch <= plan.as_of_epoch)
    if plan.rollups:
        where.append(_moving(plan))
    if plan.req.filters.get("group"):
        where.append(Q.c.chat_id == plan.req.filters["group"])
    return where


def _counter_cols(
    c: _Cols, gate: Any, *, frt_value: Any, prefix: str = "", only: tuple[str, ...] = ()
) -> list[Any]:
    """SUM columns of the counters (``only`` those, if given) at ``c.as_of`` where ``gate``."""
    e = and_(gate, c.eligible)

    def n(cond: Any) -> Any:
        return _n(and_(gate, cond))

    def attained(at: Any, frt: Any) -> ColumnElement[bool]:
        return and_(e, at.isnot(None), at <= c.as_of, frt <= Q.c.frt_target_s + _EPS)

    def att_den(at: Any) -> ColumnElement[bool]:
        return and_(e, or_(and_(at.isnot(None), at <= c.as_of), c.due <= c.as_of))

    within48 = and_(e, c.answered, c.resp_at <= Q.c.backlog_due_at)
    cols = {
        "n_cohort": _n(gate),
        "n_dismissed": n(Q.c.status == "dismissed"),
        "n_withdrawn": n(Q.c.status == "withdrawn"),
        "n_eligible": n(e),
        "n_answered": n(and_(e, c.answered)),
        "n_overdue": n(and_(e, not_(c.answered), c.due <= c.as_of)),
        "frt_sum": func.sum(case((and_(e, c.answered), frt_value), else_=0)),
        "att_s_num": n(attained(c.strict_at, c.strict_frt)),
        "att_s_den": n(att_den(c.strict_at)),
        "att_l_num": n(attained(c.lenient_at, c.lenient_frt)),
        "att_l_den": n(att_den(c.lenient_at)),
        "a48_num": n(within48),
        "a48_den": n(or_(within48, and_(e, Q.c.backlog_due_at <= c.as_of))),
        "resolved": n(and_(e, Q.c.resolved_at <= c.as_of)),
        "fu_num": n(and_(e, Q.c.holding == true(), Q.c.followup_breached == true())),
        "fu_den": n(and_(e, Q.c.holding == true(), Q.c.followup_breached.isnot(None))),
        "three_num": n(and_(e, c.answered, c.frt <= THREE_MIN_S + _EPS)),
        "three_den": n(and_(e, or_(c.answered, c.elapsed >= THREE_MIN_S - _EPS))),
    }
    return [expr.label(prefix + name) for name, expr in cols.items() if not only or name in only]


async def _exact_counts(
    conn: AsyncConnection, plan: _Plan, dim: _Dim, accs: dict[str, _Acc]
) -> None:
    """Counters per key at as_of.

    With rollups, one pass over the moving questions gives both their state at as_of (added)
    and their +inf share held by the rollups (subtracted, FRT sums in whole milliseconds as the
    rollups hold them).
    """
    src, key, extra = _source(conn, dim, plan)
    if not plan.rollups:
        cols = _counter_cols(plan.c, true(), frt_value=plan.c.frt, only=dim.counters)
        stmt = select(key.label("k"), *cols).select_from(src)
        stmt = stmt.where(*_exact_where(plan), *extra).group_by(key)
        for r in await _rows(conn, plan, stmt):
            for acc in _accs(accs, dim, plan, r.k):
                for name, value in r._mapping.items():
                    if name != "k" and value:
                        acc.counts[name] += float(value) if name == "frt_sum" else int(value)
        return
    inf = plan.inf
    _, _, inf_extra = _source(conn, dim, plan, inf)
    now_gate = and_(Q.c.opened_epoch <= plan.as_of_epoch, *extra)
    inf_gate = and_(_held(plan), *inf_extra)
    cols = [
        *_counter_cols(plan.c, now_gate, frt_value=plan.c.frt, prefix="now_", only=dim.counters),
        *_counter_cols(
            inf, inf_gate, frt_value=roll.ms_sql(inf.frt, conn.dialect.name), only=dim.counters
        ),
    ]
    stmt = select(key.label("k"), *cols).select_from(src)
    stmt = stmt.where(*_exact_where(plan, inf=True), *inf_extra).group_by(key)
    for r in await _rows(conn, plan, stmt):
        values = [(n, v) for n, v in r._mapping.items() if n != "k" and v]
        for acc in _accs(accs, dim, plan, r.k):
            for name, value in values:
                if name.startswith("now_"):
                    now = name.removeprefix("now_")
                    acc.counts[now] += float(value) if now == "frt_sum" else int(value)
                else:
                    acc.counts[name] -= int(value) / 1000 if name == "frt_sum" else int(value)


async def _exact_values(
    conn: AsyncConnection, plan: _Plan, dim: _Dim, accs: dict[str, _Acc]
) -> None:
    """Raw FRTs (censored ones with their lower bound) and resolution times, per key.

    With rollups (the moving questions at as_of) they are counted per bucket in SQL.
    """
    c = plan.c
    src, key, extra = _source(conn, dim, plan)
    pop = and_(c.eligible, or_(c.answered, c.due <= c.as_of))
    business = plan.req.basis == "business"
    res_col = Q.c.resolution_business_s if business else Q.c.resolution_calendar_s
    res_where = [c.eligible, Q.c.resolved_at <= c.as_of, res_col.isnot(None), *extra]
    value = case((c.answered, c.frt), else_=None)
    lower = case((c.elapsed > 0, c.elapsed), else_=0.0)
    if plan.rollups:
        d = conn.dialect.name
        for kind, v, where in (
            ("obs", roll.bucket_sql(value, d), [pop, value.isnot(None), *extra]),
            ("cens", roll.bucket_sql(lower, d), [pop, value.is_(None), *extra]),
            ("res", roll.bucket_sql(res_col, d), res_where),
        ):
            if kind != "obs" and kind not in dim.hist:
                continue  # a percentile the view does not show
            stmt = (
                select(key.label("k"), v.label("b"), func.count().label("n"))
                .select_from(src)
                .where(*_exact_where(plan), *where)
                .group_by(key, v)
            )
            for r in await _rows(conn, plan, stmt):
                b, n = int(r.b), int(r.n)
                for acc in _accs(accs, dim, plan, r.k):
                    if kind == "obs":
                        acc.sub_frt[b] -= n
                    elif kind == "cens":
                        acc.cens_buckets[b] += n
                    else:
                        acc.sub_res[b] -= n
        return
    stmt = (
        select(key.label("k"), value.label("v"), c.elapsed)
        .select_from(src)
        .where(*_exact_where(plan), pop, *extra)
    )
    for r in (await conn.execute(stmt)).all():
        acc = _acc(accs, str(r.k))
        if r.v is not None:
            acc.obs[float(r.v)] += 1
        else:
            acc.cens[max(0.0, float(r[2]))] += 1
    rstmt = (
        select(key.label("k"), res_col.label("v"))
        .select_from(src)
        .where(*_exact_where(plan), *res_where)
    )
    for r in (await conn.execute(rstmt)).all():
        _acc(accs, str(r.k)).res[float(r.v)] += 1


async def _inf_values(
    conn: AsyncConnection, plan: _Plan, dim: _Dim, accs: dict[str, _Acc]
) -> None:
    """The moving questions' +inf histogram shares (what the rollups hold), per bucket in SQL."""
    c, d = plan.inf, conn.dialect.name
    src, key, extra = _source(conn, dim, plan, c)
    business = plan.req.basis == "business"
    res_col = Q.c.resolution_business_s if business else Q.c.resolution_calendar_s
    where = [*_exact_where(plan, inf=True), _held(plan), c.eligible, *extra]
    for kind, v, cond in (
        ("frt", roll.bucket_sql(c.frt, d), [c.answered, c.frt.isnot(None)]),
        ("res", roll.bucket_sql(res_col, d), [Q.c.resolved_at.isnot(None), res_col.isnot(None)]),
    ):
        if kind not in dim.hist:
            continue
        stmt = (
            select(key.label("k"), v.label("b"), func.count().label("n"))
            .select_from(src)
            .where(*where, *cond)
            .group_by(key, v)
        )
        for r in await _rows(conn, plan, stmt):
            for acc in _accs(accs, dim, plan, r.k):
                (acc.sub_frt if kind == "frt" else acc.sub_res)[int(r.b)] += int(r.n)
    if dim.answered_only or "cens" not in dim.hist:
        return  # credited questions are answered: none censored
    # Censored as of +inf: the opened hour of the day, on the rollups' (tenant) axis.
    index = {day: i for i, day in enumerate(plan.range_days)}
    pos = 1 if business else 0
    start = case(
        *((Q.c.local_date == day, literal(s[pos])) for day, s in plan.day_starts.items()),
        else_=literal(0.0),
    )
    opened = Q.c.opened_bepoch if business else Q.c.opened_epoch
    offset = opened - start
    hour = case((offset < 0, 0), else_=roll.floor_sql(offset / literal(3600.0), d))
    stmt = (
        select(key.label("k"), Q.c.local_date, hour.label("h"), func.count().label("n"))
        .select_from(src)
        .where(*where, c.resp_at.is_(None), c.due.isnot(None))
        .group_by(key, Q.c.local_date, hour)
    )
    for r in await _rows(conn, plan, stmt):
        slot = min(roll.HOURS - 1, max(0, int(r.h)))
        for acc in _accs(accs, dim, plan, r.k):
            acc.sub_cens[roll.HOURS * index[str(r.local_date)] + slot] += int(r.n)


async def _rollup_part(
    conn: AsyncConnection, plan: _Plan, dim: _Dim, accs: dict[str, _Acc]
) -> None:
    """Rollups of the range, corrected in SQL for the questions still moving at as_of."""
    index = {d: i for i, d in enumerate(plan.range_days)}
    ahead = (await plan.ahead).get((dim.rollup, dim.hist)) if plan.ahead is not None else None
    rows = ahead
    if rows is None:
        rows = await roll.read(
            conn, variant=plan.variant, dim=dim.rollup, days=plan.range_days, parts=dim.hist
        )
    for day, key, (counts, frt, res, cens) in rows:
        acc = accs.get(day if dim.by_date else key)
        if acc is None:
            acc = accs[day if dim.by_date else key] = _Acc()
        acc.packed_counts += counts
        acc.packed_frt += frt
        acc.packed_res += res
        if cens:
            acc.packed_cens += cens << (32 * roll.HOURS * index[day])
    if not plan.moving_n:
        return
    await _exact_counts(conn, plan, dim, accs)
    if dim.hist:
        await _exact_values(conn, plan, dim, accs)
        await _inf_values(conn, plan, dim, accs)


def _censored_bounds(plan: _Plan) -> list[float]:
    """Lower bound at as_of of a censored question by (range day, opened hour) slot."""
    business = plan.req.basis == "business"
    now_pos = plan.bpos_base if business else plan.as_of_epoch
    out = []
    for day in plan.range_days:
        start = plan.day_starts[day][1 if business else 0]
        # The end of the opened hour: the bound never exceeds the exact one.
        out += [max(0.0, now_pos - start - (h + 1) * 3600.0) for h in range(roll.HOURS)]
    return out


async def _backlog(conn: AsyncConnection, plan: _Plan, dim: _Dim, accs: dict[str, _Acc]) -> None:
    """Unanswered eligible questions at as_of, whatever their date, by calendar-age band.

    With rollups: questions settled by as_of and unanswered are all older than 48 h (the
    rollups' ``unanswered`` minus the moving ones'); moving ones are banded exactly in SQL.
    """
    c = plan.c
    keep = set(plan.range_days) if dim.by_date else None
    src, key, _ = _source(conn, dim, plan)

    def add(k: str, label: str, n: int) -> None:
        if n and (keep is None or k in keep):
            _acc(accs, k).backlog[label] += n

    moving: list[Any] = []
    if plan.rollups:
        for k, n in (
            await roll.unanswered(conn, variant=plan.variant, dim=dim.rollup, by_date=dim.by_date)
        ).items():
            add(k, _OLDEST_BAND, n)
        moving = [_moving(plan)]
        inf = plan.inf
        stmt = (
            select(key.label("k"), func.count().label("n"))
            .select_from(src)
            .where(*moving, _held(plan), inf.eligible, inf.resp_at.is_(None))
            .group_by(key)
        )
        for r in await _rows(conn, plan, stmt):
            for k in _keys(dim, plan, r.k):
                add(k, _OLDEST_BAND, -int(r.n))
    cols: list[Any] = [key.label("k")]
    lower = 0.0
    for label, upper in BACKLOG_BANDS:
        cond = c.age >= lower if math.isinf(upper) else and_(c.age >= lower, c.age < upper)
        cols.append(_n(cond).label(label))
        lower = upper
    stmt = (
        select(*cols)
        .select_from(src)
        .where(
            *moving,
            c.eligible,
            Q.c.opened_epoch <= plan.as_of_epoch if plan.rollups else Q.c.opened_at <= c.as_of,
            or_(c.resp_at.is_(None), c.resp_at > c.as_of),
        )
        .group_by(key)
    )
    if plan.req.filters.get("group"):
        stmt = stmt.where(Q.c.chat_id == plan.req.filters["group"])
    for r in await _rows(conn, plan, stmt):
        for k in _keys(dim, plan, r.k):
            for label, _ in BACKLOG_BANDS:
                add(k, label, int(r._mapping[label] or 0))


async def _keyed(conn: AsyncConnection, plan: _Plan, dim: _Dim) -> dict[str, dict[str, Any]]:
    accs: dict[str, _Acc] = {}
    if plan.rollups:
        await _rollup_part(conn, plan, dim, accs)
    else:
        await _exact_counts(conn, plan, dim, accs)
        if dim.hist:
            await _exact_values(conn, plan, dim, accs)
    if dim.backlog:
        await _backlog(conn, plan, dim, accs)
    bounds = _censored_bounds(plan) if plan.rollups else None
    out = {k: _metrics(acc, bounds, dim.counters) for k, acc in accs.items()}
    # Keys whose rollup share was all taken out (e.g. opened after as_of) have nothing left.
    return {k: m for k, m in out.items() if m["questions"] or m["backlog_now"]}


# --- percentiles over weighted values -------------------------------------------------------


def _position(n: int, q: float) -> tuple[int, float]:
    h = (n - 1) * q
    lo = math.floor(h)
    frac = h - lo
    if frac < 1e-9:
        frac = 0.0
    elif frac > 1 - 1e-9:
        lo, frac = lo + 1, 0.0
    return lo, frac


class _Sorted:
    """A multiset of sorted values with counts, with k-th order statistics."""

    def __init__(self, values: list[float], counts: list[int]) -> None:
        self.values = values
        self.cum = list(itertools.accumulate(counts))
        self.n = self.cum[-1] if self.cum else 0

    @classmethod
    def of(cls, data: Mapping[float, int]) -> _Sorted:
        values = sorted(data)
        return cls(values, [data[v] for v in values])

    def kth(self, k: int) -> float:
        return self.values[bisect.bisect_right(self.cum, k)]

    def pct(self, q: float) -> float | None:
        if not self.n:
            return None
        lo, frac = _position(self.n, q)
        a = self.kth(lo)
        return a if not frac else a + frac * (self.kth(lo + 1) - a)


def _quantile(
    observed: _Sorted, n_cens: int, with_bounds: Callable[[], _Sorted], q: float
) -> tuple[float | None, bool]:
    """(value, censored); when censored the value is the lower bound (sop.metrics semantics)."""
    n = observed.n + n_cens
    if n == 0:
        return None, False
    lo, frac = _position(n, q)
    hi = lo + 1 if frac else lo
    if hi < observed.n:
        a = observed.kth(lo)
        return (a if not frac else a + frac * (observed.kth(hi) - a)), False
    return with_bounds().pct(q), True


def _bucketed(packed: int, raw: Mapping[float, int], sub: Mapping[int, int]) -> list[int]:
    """Histogram counts per bucket: the rollup's minus ``sub``, plus raw values bucketed."""
    counts = roll.unpack32(packed)
    counts += [0] * (roll.N_BUCKETS - len(counts))
    for i, n in sub.items():
        counts[i] -= n
    for v, n in raw.items():
        counts[roll.frt_bucket(v)] += n
    return counts


def _values(
    bucketed: bool, packed: int, raw: Mapping[float, int], sub: Mapping[int, int]
) -> _Sorted:
    """Exact values from SQL; with rollups, everything to the bucket."""
    if not bucketed:
        return _Sorted.of(raw)
    return _Sorted(list(roll.FLOORS), _bucketed(packed, raw, sub))


def _rate(num: Any, den: Any) -> float | None:
    return round(int(num) / int(den), 4) if den else None


def _metrics(
    acc: _Acc, bounds: list[float] | None = None, only: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One key's row; ``bounds`` (rollup mode) = censored lower bounds per range-day hour.

    ``only``: the counters computed (others read 0, never half-corrected rollup sums).
    """
    bucketed = bounds is not None
    k = dict(acc.counts)
    rolled = roll.unpack_counts(acc.packed_counts) if acc.packed_counts else {}
    for name, amount in rolled.items():
        k[name] += amount
    if only:
        k = {name: v if name in only else 0 for name, v in k.items()}
    observed = _values(bucketed, acc.packed_frt, acc.obs, acc.sub_frt)
    n_cens = int(k["n_overdue"])  # every overdue unanswered question is censored
    answered = int(k["n_answered"])

    def with_bounds() -> _Sorted:
        if not bucketed:
            merged = dict(acc.obs)
            for v, n in acc.cens.items():
                merged[v] = merged.get(v, 0) + n
            return _Sorted.of(merged)
        counts = _bucketed(acc.packed_frt, acc.obs, acc.sub_frt)
        for v, n in acc.cens.items():
            counts[roll.frt_bucket(v)] += n
        for b, n in acc.cens_buckets.items():
            counts[b] += n
        slots = roll.unpack32(acc.packed_cens)
        for i, n in acc.sub_cens.items():
            slots[i] -= n
        for i in itertools.compress(range(len(slots)), slots):
            counts[roll.frt_bucket((bounds or [])[i])] += slots[i]
        return _Sorted(list(roll.FLOORS), counts)

    out: dict[str, Any] = {
        "questions": int(k["n_cohort"]),
        "eligible": int(k["n_eligible"]),
        "dismissed": int(k["n_dismissed"]),
        "withdrawn": int(k["n_withdrawn"]),
        "answered": answered,
        "overdue_unanswered": int(k["n_overdue"]),
        "frt_avg_s": round(float(k["frt_sum"]) / answered, 3) if answered else None,
        "attainment_strict": _rate(k["att_s_num"], k["att_s_den"]),
        "attainment_lenient": _rate(k["att_l_num"], k["att_l_den"]),
        "answer_rate_48h": _rate(k["a48_num"], k["a48_den"]),
        "backlog_rate_48h": _rate(int(k["a48_den"]) - int(k["a48_num"]), k["a48_den"]),
        "backlog_now": sum(acc.backlog.values()),
        "resolution_rate": _rate(k["resolved"], k["n_eligible"]),
        "followup_breach_rate": _rate(k["fu_num"], k["fu_den"]),
        "three_min_rate": _rate(k["three_num"], k["three_den"]),
    }
    for name, q in (("p50", 0.5), ("p90", 0.9)):
        value, censored = _quantile(observed, n_cens, with_bounds, q)
        out[f"frt_{name}_s"] = None if censored or value is None else round(value, 3)
        if value is None:
            out[f"frt_{name}"] = "—"
        elif censored:
            out[f"frt_{name}_above_s"] = round(value, 3)
            out[f"frt_{name}"] = "> " + format_duration(math.floor(value), "en")
        else:
            out[f"frt_{name}"] = format_duration(value, "en")
    res = _values(bucketed, acc.packed_res, acc.res, acc.sub_res).pct(0.5)
    out["resolution_p50_s"] = None if res is None else round(res, 3)
    out["resolution_p50"] = "—" if res is None else format_duration(res, "en")
    return out


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
    "resolution_p50",
    "resolution_p50_s",
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


def _notes(plan: _Plan) -> tuple[str, ...]:
    req = plan.req
    view = "strict (links with confidence >= 0.8)" if req.strict else "lenient (every link)"
    if plan.rollups:
        source = (
            f"per-day rollups, with {plan.moving_n} question(s) still moving at as_of "
            "or settled after the rollups' watermark recomputed exactly"
        )
    else:
        source = "every question aggregated exactly in SQL"
    notes = [
        f"{req.start.isoformat()}..{req.end.isoformat()} (local dates), as of "
        f"{req.as_of.isoformat()}, {req.basis} time, {view}",
        f"sources: {source}",
        "FRT / resolution percentiles: PERCENTILE_CONT (linear interpolation); exact from SQL, "
        "to the bucket from rollups (1 s < 10 min, 10 s < 1 h, 1 min < 48 h); overdue "
        "unanswered questions count as +inf, shown as '> lower bound'",
        "48 h answer/backlog rates over mature questions only; backlog_now = unanswered at "
        "as_of, any date; operator '' = groups without owners (team queue)",
    ]
    if req.basis == "business":
        notes.append(
            "business-time lower bounds and 3-minute marks of unanswered questions use each "
            "group's calendar in SQL; from rollups, censored bounds use the tenant calendar"
        )
    return tuple(notes)


_SUMMARY = _Dim("day")
_DAILY = _Dim("day", by_date=True, key=Q.c.local_date)
_GROUPS = _Dim("group", key=Q.c.chat_id)
_CREDIT_COUNTERS = (
    "n_cohort",
    "n_answered",
    "n_overdue",
    "three_num",
    "three_den",
    "att_s_num",
    "att_s_den",
    "att_l_num",
    "att_l_den",
    "fu_num",
    "fu_den",
)
# The operator table shows no owned percentile and only these owned counters.
_OWNERS = _Dim(
    "owner",
    owners=True,
    hist=(),
    counters=(
        "n_cohort",
        "att_s_num",
        "att_s_den",
        "att_l_num",
        "att_l_den",
        "a48_num",
        "a48_den",
    ),
)


async def build(db: AsyncEngine, cfg: AppConfig, req: ReportRequest) -> list[ReportTable]:
    """The SLA report tables for ``req`` (the CLI and the API call exactly this)."""
    views = (req.view,) if req.view else ALL_VIEWS
    unknown = [v for v in views if v not in ALL_VIEWS]
    if unknown:
        raise ValueError(f"unknown sla view {unknown[0]!r} (one of {', '.join(ALL_VIEWS)})")
    operator = req.filters.get("operator") or None
    for _ in range(_ATTEMPTS - 1):
        tables, plan = await _build_once(db, cfg, req, views, operator)
        if not plan.rollups:
            return tables
        # A fold moves the watermark and the rollups together; if one committed while this
        # report read them (on two connections), the halves may disagree: read again.
        async with db.connect() as conn:
            if await roll.watermark(conn) == plan.mark:
                return tables
    tables, _ = await _build_once(db, cfg, req, views, operator, rollups=False)
    return tables


_ATTEMPTS = 3  # the last one exact in SQL: it cannot race a fold


async def _build_once(
    db: AsyncEngine,
    cfg: AppConfig,
    req: ReportRequest,
    views: Sequence[str],
    operator: str | None,
    *,
    rollups: bool = True,
) -> tuple[list[ReportTable], _Plan]:
    tables: list[ReportTable] = []
    async with db.connect() as conn:
        plan = await _plan(conn, cfg, req)
        if not rollups:
            plan = dataclasses.replace(plan, rollups=False, moving_n=0)
        notes = _notes(plan)
        if plan.rollups:
            # Reading and unpacking the rollups (Python) overlaps the moving questions' SQL.
            wanted = sorted({(d.rollup, d.hist) for v in views for d in _view_dims(plan, v)})
            plan = dataclasses.replace(plan, ahead=asyncio.ensure_future(_read(db, plan, wanted)))
        try:
            if plan.rollups and plan.moving_n:
                await _copy_moving(conn, _cut(plan))
            await _views(conn, plan, views, notes, operator, tables)
        finally:
            if plan.ahead is not None:
                plan.ahead.cancel()
                await asyncio.gather(plan.ahead, return_exceptions=True)
            if plan.rollups and plan.moving_n:
                await _drop_moving(conn)
    return tables, plan


async def _read(db: AsyncEngine, plan: _Plan, wanted: Sequence[_ReadKey]) -> dict[_ReadKey, _Read]:
    out = {}
    async with db.connect() as conn:
        for dim, parts in wanted:
            out[(dim, parts)] = await roll.read(
                conn, variant=plan.variant, dim=dim, days=plan.range_days, parts=parts
            )
    return out


def _view_dims(plan: _Plan, view: str) -> tuple[_Dim, ...]:
    if view == "summary":
        return (_SUMMARY,)
    if view == "groups":
        return (_GROUPS,)
    if view == "daily":
        return (_DAILY,)
    return (_credit_dim(plan), _OWNERS)


def _credit_dim(plan: _Plan) -> _Dim:
    # Credited questions are answered (nothing censored); no resolution percentile is shown.
    return _Dim(
        "credit",
        key=plan.c.responder,
        answered_only=True,
        backlog=False,
        hist=("frt",),
        counters=_CREDIT_COUNTERS,
    )


async def _views(
    conn: AsyncConnection,
    plan: _Plan,
    views: Sequence[str],
    notes: tuple[str, ...],
    operator: str | None,
    tables: list[ReportTable],
) -> None:
    """Append the requested views' tables to ``tables``."""
    for view in views:
        if view == "summary":
            row = (await _keyed(conn, plan, _SUMMARY)).get("") or _metrics(_Acc())
            tables.append(ReportTable("SLA summary", METRIC_COLUMNS, (row,), notes))
        elif view == "groups":
            data = await _keyed(conn, plan, _GROUPS)
            rows = tuple({"group": g, **m} for g, m in sorted(data.items()))
            tables.append(ReportTable("SLA per group", ("group", *METRIC_COLUMNS), rows, notes))
        elif view == "daily":
            data = await _keyed(conn, plan, _DAILY)
            rows = tuple({"date": d, **m} for d, m in sorted(data.items()))
            tables.append(ReportTable("SLA per day", ("date", *METRIC_COLUMNS), rows, notes))
        else:
            rows = await _operators(conn, plan, operator)
            tables.append(ReportTable("SLA per operator", OPERATOR_COLUMNS, rows, notes))


async def _operators(
    conn: AsyncConnection, plan: _Plan, only: str | None
) -> tuple[dict[str, Any], ...]:
    credit = await _keyed(conn, plan, _credit_dim(plan))
    owned = await _keyed(conn, plan, _OWNERS)
    total = sum(m["answered"] for m in credit.values())
    rows = []
    for op in sorted({*credit, *owned}):
        if only is not None and op != only:
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
                    "attainment_strict" if plan.req.strict else "attainment_lenient"
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
