"""SOP task store: materialized task instances, completion evidence, customers, compliance.

Every write is idempotent on a natural key: a task on (guide, step, local date, customer), a
piece of evidence on (task, source, ref), a customer on (platform, external id). A task's
``done`` is always recomputed as the sum of its evidence, so re-applying evidence is harmless.
Rows are mapped to ``sop`` values here (``TaskRecord``, ``StepProgress``, ``CustomerTask``).
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.config import AppConfig
from bot.reports import ReportRequest, ReportTable
from bot.store.bulk import Bulk
from bot.store.db import insert_for
from bot.store.models import Customer, TaskCompletion, TaskInstance
from sop.compliance import (
    DEFAULT_MISS_REASON,
    CompletionStats,
    Rate,
    TaskRecord,
    TaskStatus,
    by_day,
    by_guide,
    by_step,
    by_store,
    missed,
    streaks_by_guide,
)
from sop.lifecycle import Customer as CoreCustomer
from sop.lifecycle import CustomerTask, TouchKind
from sop.reminder_text import StepProgress

_TI = TaskInstance.__table__  # type: ignore[attr-defined]
_TC = TaskCompletion.__table__  # type: ignore[attr-defined]
_CU = Customer.__table__  # type: ignore[attr-defined]

SOURCES = ("observed", "api", "self")


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task to materialize (from a ``TaskSpec`` or a ``CustomerTask``)."""

    guide_id: str
    store: str
    step: str
    local_date: date
    quota: int
    window_end: datetime
    plan_id: str = ""
    plan_version: str = ""
    target_key: str = ""
    touch_kind: str = ""


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: int
    guide_id: str
    store: str
    step: str
    local_date: date
    target_key: str
    quota: int
    done: int
    status: str
    window_end: datetime
    completed_at: datetime | None
    touch_kind: str
    miss_reason: str | None

    @property
    def is_customer_task(self) -> bool:
        return bool(self.target_key)

    @property
    def complete(self) -> bool:
        return self.done >= self.quota


async def materialize(conn: AsyncConnection, tasks: Sequence[NewTask], now: datetime) -> int:
    """Insert the tasks that do not exist yet; existing rows (history) are never touched."""
    if not tasks:
        return 0
    rows = [
        {
            "guide_id": t.guide_id,
            "store": t.store,
            "step": t.step,
            "local_date": t.local_date,
            "target_key": t.target_key,
            "quota": t.quota,
            "done": 0,
            "status": TaskStatus.PENDING.value,
            "plan_id": t.plan_id[:64],
            "plan_version": t.plan_version[:255],
            "touch_kind": t.touch_kind,
            "window_end": t.window_end,
            "created_at": now,
        }
        for t in tasks
    ]
    # executemany: SQLAlchemy batches it into multi-row INSERTs ("insertmanyvalues").
    stmt = (
        insert_for(conn)(_TI)
        .on_conflict_do_nothing(index_elements=["guide_id", "step", "local_date", "target_key"])
        .returning(_TI.c.id)
    )
    result = await conn.execute(stmt, rows)
    return len(result.all())


def _row(r: Any) -> TaskRow:
    return TaskRow(
        id=int(r.id),
        guide_id=r.guide_id,
        store=r.store,
        step=r.step,
        local_date=r.local_date,
        target_key=r.target_key,
        quota=int(r.quota),
        done=int(r.done),
        status=r.status,
        window_end=r.window_end,
        completed_at=r.completed_at,
        touch_kind=r.touch_kind,
        miss_reason=r.miss_reason,
    )


async def tasks_on(
    conn: AsyncConnection, local_date: date, guide_ids: Iterable[str] | None = None
) -> list[TaskRow]:
    """The tasks of one local date (for some guides), by guide then id."""
    stmt = select(_TI).where(_TI.c.local_date == local_date)
    if guide_ids is not None:
        ids = list(dict.fromkeys(guide_ids))
        if not ids:
            return []
        stmt = stmt.where(_TI.c.guide_id.in_(ids))
    result = await conn.execute(stmt.order_by(_TI.c.guide_id, _TI.c.id))
    return [_row(r) for r in result]


async def guides_with_tasks(conn: AsyncConnection, local_date: date) -> set[str]:
    result = await conn.execute(
        select(_TI.c.guide_id).where(_TI.c.local_date == local_date).distinct()
    )
    return {r[0] for r in result}


async def find_task(
    conn: AsyncConnection, guide_id: str, step: str, local_date: date, target_key: str = ""
) -> TaskRow | None:
    result = await conn.execute(
        select(_TI).where(
            _TI.c.guide_id == guide_id,
            _TI.c.step == step,
            _TI.c.local_date == local_date,
            _TI.c.target_key == target_key,
        )
    )
    r = result.first()
    return None if r is None else _row(r)


async def add_evidence(
    conn: AsyncConnection,
    task: TaskRow,
    *,
    source: str,
    ref: str,
    count: int,
    at: datetime,
    replace_count: bool = False,
) -> TaskRow:
    """Record one piece of evidence for ``task`` (idempotent on source + ref); return the task.

    ``replace_count`` lets a later API result for the same ref correct the count (day-level
    figures such as behaviour data are re-fetched); otherwise the first record wins.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown completion source {source!r}")
    values = {"task_id": task.id, "source": source, "ref": ref[:255], "count": count, "at": at}
    stmt = insert_for(conn)(_TC).values(values)
    if replace_count:
        stmt = stmt.on_conflict_do_update(
            index_elements=["task_id", "source", "ref"], set_={"count": count}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=["task_id", "source", "ref"])
    await conn.execute(stmt)
    return await _recount(conn, task, at)


@dataclass(frozen=True, slots=True)
class Evidence:
    """One observed unit for a guide's day-level step (``add_observed`` writes many at once)."""

    guide_id: str
    step: str
    local_date: date
    ref: str
    at: datetime


async def add_observed(conn: AsyncConnection, items: Sequence[Evidence]) -> int:
    """Record many observed evidence units (an intake batch's) in a handful of statements.

    Same result as ``find_task`` + ``add_evidence(source="observed", count=1)`` per item, in
    order: the first record per (task, ref) wins, ``done`` is the sum of the task's evidence,
    and a task reaching its quota is completed at the item's time. Items without a task (no
    plan for that guide, step or day) are ignored. Returns how many new records were written.
    """
    if not items:
        return 0
    guides = sorted({i.guide_id for i in items})
    steps = sorted({i.step for i in items})
    days = sorted({i.local_date for i in items})
    found = await conn.execute(
        select(_TI).where(
            _TI.c.guide_id.in_(guides),
            _TI.c.step.in_(steps),
            _TI.c.local_date.in_(days),
            _TI.c.target_key == "",
        )
    )
    tasks = {(r.guide_id, r.step, r.local_date): _row(r) for r in found.all()}
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for item in items:
        task = tasks.get((item.guide_id, item.step, item.local_date))
        if task is not None:
            ref = item.ref[:255]
            rows.setdefault(
                (task.id, ref),
                {"task_id": task.id, "source": "observed", "ref": ref, "count": 1, "at": item.at},
            )
    if not rows:
        return 0
    # Most of a batch's evidence is already recorded (the same group again): insert_new skips
    # it and names the rows it did write.
    written = await _OBSERVED.insert_new(conn, list(rows.values()), ("task_id", "source", "ref"))
    if not written:
        return 0
    new = [
        _NewRecord(row["task_id"], row["at"])
        for (task_id, ref), row in rows.items()
        if (task_id, "observed", ref) in written
    ]
    touched = sorted({r.task_id for r in new})
    sums = await conn.execute(
        select(_TC.c.task_id, func.sum(_TC.c.count))
        .where(_TC.c.task_id.in_(touched))
        .group_by(_TC.c.task_id)
    )
    by_id = {t.id: t for t in tasks.values()}
    for task_id, total in sums.all():
        task = by_id[task_id]
        values: dict[str, Any] = {"done": int(total)}
        if int(total) >= task.quota and task.completed_at is None:
            at = _completing_at(task, [r.at for r in new if r.task_id == task_id], int(total))
            values.update(
                completed_at=at,
                status=(TaskStatus.LATE if at > task.window_end else TaskStatus.DONE).value,
                miss_reason=None,
            )
        await conn.execute(update(_TI).where(_TI.c.id == task_id).values(**values))
    return len(new)


@dataclass(frozen=True, slots=True)
class _NewRecord:
    task_id: int
    at: datetime


_OBSERVED = Bulk(
    _TC,
    ("task_id", "source", "ref", "count", "at"),
    "ON CONFLICT (task_id, source, ref) DO NOTHING",
)


def _completing_at(task: TaskRow, new_at: list[datetime], total: int) -> datetime:
    """When the task reached its quota: the new record that crossed it (in time order)."""
    before = total - len(new_at)
    ordered = sorted(new_at)
    return ordered[max(0, task.quota - before - 1)]


async def _recount(conn: AsyncConnection, task: TaskRow, at: datetime) -> TaskRow:
    total = (
        await conn.execute(
            select(func.coalesce(func.sum(_TC.c.count), 0)).where(_TC.c.task_id == task.id)
        )
    ).scalar_one()
    done = int(total)
    values: dict[str, Any] = {"done": done}
    if done >= task.quota and task.completed_at is None:
        values["completed_at"] = at
        late = at > task.window_end
        values["status"] = (TaskStatus.LATE if late else TaskStatus.DONE).value
        values["miss_reason"] = None
    await conn.execute(update(_TI).where(_TI.c.id == task.id).values(**values))
    r = (await conn.execute(select(_TI).where(_TI.c.id == task.id))).one()
    return _row(r)


async def mark_missed(conn: AsyncConnection, now: datetime, since: date) -> int:
    """Close unfinished tasks (from ``since`` on) whose window has passed: status ``missed``."""
    overdue = (
        _TI.c.local_date >= since,
        _TI.c.window_end <= now,
        _TI.c.status.in_((TaskStatus.PENDING.value, TaskStatus.REMINDED.value)),
        _TI.c.done < _TI.c.quota,
    )
    # Runs every tick: look before writing, since on SQLite even an UPDATE of no row takes
    # the database's single write lock and makes the intake wait for it.
    if (await conn.execute(select(_TI.c.id).where(*overdue).limit(1))).first() is None:
        return 0
    stmt = (
        update(_TI).where(*overdue).values(status=TaskStatus.MISSED.value, miss_reason="not_done")
    )
    result = await conn.execute(stmt)
    return int(result.rowcount or 0)


# -- customers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerRow:
    platform: str
    external_id: str
    guide_id: str
    added_at: datetime
    last_purchase_at: datetime | None
    source: str


async def upsert_customer(
    conn: AsyncConnection,
    row: CustomerRow,
    *,
    overwrite: bool = False,
) -> bool:
    """Bind a customer to a guide; True when the row is new.

    Contact events never rebind an existing customer (the first guide keeps them); an import
    (``overwrite``) sets guide, dates and source to the file's values, so re-running it is a no-op.
    """
    values = {
        "platform": row.platform,
        "external_id": row.external_id,
        "guide_id": row.guide_id,
        "added_at": row.added_at,
        "last_purchase_at": row.last_purchase_at,
        "source": row.source,
    }
    stmt = insert_for(conn)(_CU).values(values)
    if overwrite:
        stmt = stmt.on_conflict_do_update(
            index_elements=["platform", "external_id"],
            set_={k: v for k, v in values.items() if k not in ("platform", "external_id")},
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=["platform", "external_id"])
    existed = (
        await conn.execute(
            select(_CU.c.id).where(
                _CU.c.platform == row.platform, _CU.c.external_id == row.external_id
            )
        )
    ).first()
    await conn.execute(stmt)
    return existed is None


_BOUND = (_CU.c.guide_id != "", _CU.c.left_at.is_(None))
_CUSTOMER_COLUMNS = (_CU.c.external_id, _CU.c.guide_id, _CU.c.added_at, _CU.c.last_purchase_at)


def _core_customer(r: Any, tz: Any) -> CoreCustomer:
    return CoreCustomer(
        id=r.external_id,
        guide_id=r.guide_id,
        added_on=r.added_at.astimezone(tz).date(),
        last_purchase_on=r.last_purchase_at.astimezone(tz).date() if r.last_purchase_at else None,
    )


async def customers(
    conn: AsyncConnection, guide_ids: Iterable[str] | None = None, tz: Any = None
) -> list[CoreCustomer]:
    """Customers bound to a guide, as lifecycle values (dates local to ``tz``)."""
    stmt = select(*_CUSTOMER_COLUMNS).where(*_BOUND)
    if guide_ids is not None:
        stmt = stmt.where(_CU.c.guide_id.in_(list(guide_ids)))
    return [_core_customer(r, tz) for r in await conn.execute(stmt.order_by(_CU.c.id))]


async def customer_page(
    conn: AsyncConnection, after: int, limit: int, tz: Any = None
) -> tuple[list[CoreCustomer], int]:
    """Up to ``limit`` bound customers with row ids above ``after``, in id order, and the last
    row id read (the next page's ``after``)."""
    stmt = (
        select(_CU.c.id, *_CUSTOMER_COLUMNS)
        .where(*_BOUND, _CU.c.id > after)
        .order_by(_CU.c.id)
        .limit(limit)
    )
    rows = (await conn.execute(stmt)).all()
    return [_core_customer(r, tz) for r in rows], (int(rows[-1].id) if rows else after)


# -- mapping to sop values -------------------------------------------------------------------


def step_progress(rows: Iterable[TaskRow]) -> list[StepProgress]:
    return [StepProgress(r.step, r.done, r.quota) for r in rows if not r.is_customer_task]


def open_customer_tasks(rows: Iterable[TaskRow]) -> list[CustomerTask]:
    out = []
    for r in rows:
        if not r.is_customer_task or r.complete:
            continue
        program, _, step = r.step.partition(".")
        out.append(
            CustomerTask(
                customer_id=r.target_key,
                guide_id=r.guide_id,
                program=program,
                step=step or program,
                kind=TouchKind(r.touch_kind or TouchKind.CARE.value),
                due_date=r.local_date,
                key=str(r.id),
            )
        )
    return out


def has_open_work(rows: Iterable[TaskRow]) -> bool:
    return any(not r.complete for r in rows)


async def task_records(
    conn: AsyncConnection,
    start: date,
    end: date,
    *,
    store: str | None = None,
    guide: str | None = None,
) -> list[TaskRecord]:
    """Stored tasks of ``start``..``end`` (inclusive) as compliance records, with sources."""
    cond = [_TI.c.local_date >= start, _TI.c.local_date <= end]
    if store:
        cond.append(_TI.c.store == store)
    if guide:
        cond.append(_TI.c.guide_id == guide)
    rows = (await conn.execute(select(_TI).where(and_(*cond)).order_by(_TI.c.id))).all()
    sources: dict[int, set[str]] = {}
    if rows:
        ids = select(_TI.c.id).where(and_(*cond))
        found = await conn.execute(
            select(_TC.c.task_id, _TC.c.source).where(_TC.c.task_id.in_(ids)).distinct()
        )
        for task_id, source in found:
            sources.setdefault(int(task_id), set()).add(source)
    return [
        TaskRecord(
            guide_id=r.guide_id,
            store=r.store,
            step=r.step,
            local_date=r.local_date,
            quota=int(r.quota),
            done=int(r.done),
            completed_at=r.completed_at,
            window_end=r.window_end,
            status=TaskStatus(r.status),
            miss_reason=r.miss_reason,
            sources=frozenset(sources.get(int(r.id), ())),
        )
        for r in rows
    ]


# -- compliance report (shared by `sopbot report sop` and the API) ---------------------------


def _rate(rate: Rate) -> float | None:
    value = rate.value
    return None if value is None else round(value, 4)


def _stats_row(stats: CompletionStats) -> dict[str, Any]:
    return {
        "tasks": stats.tasks,
        "on_time": stats.on_time,
        "late": stats.late,
        "missed": stats.missed,
        "open": stats.open,
        "completion_rate": _rate(stats.completion_rate),
        "on_time_rate": _rate(stats.on_time_rate),
        "unit_rate": _rate(stats.unit_rate),
    }


_SOURCES = ("observed", "api", "self")

_STAT_COLS = (
    "tasks",
    "on_time",
    "late",
    "missed",
    "open",
    "completion_rate",
    "on_time_rate",
    "unit_rate",
)


async def compliance_tables(
    engine: AsyncEngine, cfg: AppConfig, request: ReportRequest
) -> list[ReportTable]:
    """Completion per guide / store / day / step, on-time vs late, streaks, misses with reason.

    ``request.view`` picks one table (guides, stores, days, steps, missed); empty = all.
    """
    tz = cfg.bot.timezone
    calendar = cfg.calendar.calendar(tz)
    async with engine.connect() as conn:
        records = await task_records(
            conn,
            request.start,
            request.end,
            store=request.filters.get("store"),
            guide=request.filters.get("guide"),
        )
    now = request.as_of
    names = {op.id: op.name for op in cfg.operators}
    stores = {r.guide_id: r.store for r in records}
    streaks = streaks_by_guide(records, calendar.is_workday, request.end, now)
    notes = (
        f"{request.start.isoformat()}..{request.end.isoformat()} ({tz}), as of {now.isoformat()}",
        "rates: completion = complete/required tasks; on_time = on-time/complete; "
        "unit = units done/required (2 of 3 moments counts 2/3)",
    )
    guides = ReportTable(
        "SOP completion by guide",
        ("guide", "name", "store", *_STAT_COLS, "streak", "best_streak"),
        tuple(
            {
                "guide": g,
                "name": names.get(g, g),
                "store": stores.get(g, ""),
                **_stats_row(s),
                "streak": streaks[g].current,
                "best_streak": streaks[g].best,
            }
            for g, s in sorted(by_guide(records, now).items())
        ),
        notes,
    )
    store_t = ReportTable(
        "SOP completion by store",
        ("store", *_STAT_COLS),
        tuple({"store": k, **_stats_row(s)} for k, s in sorted(by_store(records, now).items())),
        notes,
    )
    days = ReportTable(
        "SOP completion by day",
        ("date", *_STAT_COLS),
        tuple({"date": k, **_stats_row(s)} for k, s in sorted(by_day(records, now).items())),
        notes,
    )
    # Where the counts came from: tasks of each step with evidence from each source.
    by_source: dict[str, dict[str, int]] = {}
    for r in records:
        counts = by_source.setdefault(r.step, dict.fromkeys(_SOURCES, 0))
        for source in r.sources:
            if source in counts:
                counts[source] += 1
    steps = ReportTable(
        "SOP completion by step",
        ("step", *_STAT_COLS, *(f"source_{src}" for src in _SOURCES)),
        tuple(
            {
                "step": k,
                **_stats_row(s),
                **{f"source_{src}": n for src, n in by_source.get(k, {}).items()},
            }
            for k, s in sorted(by_step(records, now).items())
        ),
        (
            *notes,
            "source_X: tasks with evidence from X (observed messages, WeCom api, self-report)",
        ),
    )
    miss = ReportTable(
        "SOP missed tasks",
        ("date", "guide", "store", "step", "done", "quota", "reason"),
        tuple(
            {
                "date": r.local_date,
                "guide": r.guide_id,
                "store": r.store,
                "step": r.step,
                "done": r.done,
                "quota": r.quota,
                "reason": r.miss_reason or DEFAULT_MISS_REASON,
            }
            for r in missed(records, now)
        ),
        notes,
    )
    tables = {"guides": guides, "stores": store_t, "days": days, "steps": steps, "missed": miss}
    if request.view:
        if request.view not in tables:
            raise ValueError(f"unknown sop view {request.view!r} (use {', '.join(tables)})")
        return [tables[request.view]]
    return list(tables.values())


# -- customer import (``sopbot import-customers``) ------------------------------------------

CSV_COLUMNS = ("guide", "customer_id", "added_date", "last_purchase")


class CsvError(ValueError):
    """A problem with the import file, naming the row (1 = header)."""


def read_customers_csv(
    path: Path, guides: Collection[str], platform: str, tz: str
) -> list[CustomerRow]:
    """Parse and check the whole file first, so a bad row imports nothing."""
    zone = ZoneInfo(tz)
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise CsvError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or ()]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise CsvError(f"{path}: row 1: missing column(s) {', '.join(missing)}")
        rows: dict[str, CustomerRow] = {}
        for line, raw in enumerate(reader, start=2):
            rec = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            where = f"{path}: row {line}"
            guide, cid = rec["guide"], rec["customer_id"]
            if guide not in guides:
                raise CsvError(f"{where}: guide {guide!r} is not a guide in the config")
            if not cid:
                raise CsvError(f"{where}: customer_id is empty")
            try:
                added = date.fromisoformat(rec["added_date"])
                last = date.fromisoformat(rec["last_purchase"]) if rec["last_purchase"] else None
            except ValueError:
                raise CsvError(f"{where}: dates must be YYYY-MM-DD") from None
            if cid in rows and rows[cid].guide_id != guide:
                raise CsvError(f"{where}: customer {cid!r} is listed for two guides")
            rows[cid] = CustomerRow(
                platform=platform,
                external_id=cid,
                guide_id=guide,
                added_at=datetime.combine(added, time(0), zone).astimezone(UTC),
                last_purchase_at=(
                    datetime.combine(last, time(0), zone).astimezone(UTC) if last else None
                ),
                source="import",
            )
    return list(rows.values())


async def import_customers(cfg: AppConfig, path: Path, platform: str) -> tuple[int, int]:
    """Import the file; return (new customers, rows). Re-running it changes nothing."""
    from bot.store.db import make_engine, upgrade

    plan_roles = {p.role for p in cfg.sop.core_plans()}
    guides = {op.id for op in cfg.operators if op.role in plan_roles and not op.is_bot}
    rows = read_customers_csv(path, guides, platform, cfg.bot.timezone)
    engine = make_engine(cfg.bot.resolved_database_url())
    try:
        await upgrade(engine)
        new = 0
        async with engine.begin() as conn:
            for row in rows:
                new += await upsert_customer(conn, row, overwrite=True)
    finally:
        await engine.dispose()
    return new, len(rows)
