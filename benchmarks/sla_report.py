"""SLA report latency over N questions (default 1,000,000 over 30 days, 500 operators, 2,000
groups) on SQLite or PostgreSQL: time of ``handlers.reports_sla.build`` for every view.

    .venv/bin/python -m benchmarks.sla_report --n 1000000 [--url postgresql+asyncpg://...]
    .venv/bin/python -m benchmarks.sla_report --reuse /tmp/bench.db   # or a database URL

``--reuse`` times a store filled by an earlier run (minutes saved); indexes added to the models
since are created first (migration 0001 is pre-release and already applied there).

Rows are synthesized straight into the ``question`` table with bulk inserts (PostgreSQL:
``COPY``; SQLite: one ``executemany`` per 50,000 rows), then the per-day rollups are built with
``bot.store.sla_rollup.rebuild_days`` (the same code the app uses for repair). About 85 % of the
questions are answered (quote or proximity), the rest overdue or pending, 1 % dismissed, 5 % of
the groups have no owner, 30 % of the questions are resolved. Each view is timed ``--repeat``
times: "month" = 2026-03-01..03-30 as of 2026-03-31 12:00 (rollups, with the questions still
moving at as_of aggregated exactly), "past" = 2026-03-01..03-05 as of 2026-03-05 12:00 (an
``as_of`` in the past: every question answered after it, or unanswered and younger than 48 h, is
aggregated exactly) and "day" = the last day alone as of 2026-03-31 12:00.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import AppConfig
from bot.reports import ReportRequest
from bot.store import sla_rollup
from bot.store.db import make_engine, upgrade
from bot.store.questions import Q
from handlers import reports_sla
from sop.calendar import default_calendar

TZ = ZoneInfo("Asia/Shanghai")
START = date(2026, 3, 1)
DAYS = 30
CAL = default_calendar()
AXIS = sla_rollup.axis_of(CAL)


def _rows(lo: int, n: int, ops: int, groups: int) -> list[dict[str, Any]]:
    rnd = random.Random(lo)
    t0 = datetime(2026, 3, 1, tzinfo=TZ).astimezone(UTC)
    out = []
    for i in range(lo, lo + n):
        opened = t0 + timedelta(seconds=rnd.uniform(0, DAYS * 86400))
        g = rnd.randrange(groups)
        owners = [] if g % 20 == 7 else [f"op{g % ops}", f"op{(g * 7 + 1) % ops}"]
        r = rnd.random()
        answered = r < 0.85
        frt = round(rnd.expovariate(1 / 240), 3) if answered else None
        conf = 1.0 if rnd.random() < 0.7 else 0.5
        resp = opened + timedelta(seconds=frt) if frt is not None else None
        responder = f"op{rnd.randrange(ops)}" if answered else None
        strong = conf >= 0.8
        resolved = resp + timedelta(hours=rnd.uniform(0.1, 20)) if resp and r < 0.3 else None
        res_s = (resolved - opened).total_seconds() if resolved else None
        holding = answered and rnd.random() < 0.1
        out.append(
            {
                "public_id": f"Q{i + 1}",
                "platform": "onebot11",
                "account_id": "1",
                "chat_id": str(100000 + g),
                "asker_id": str(rnd.randrange(10**6)),
                "open_message_id": str(i),
                "message_ids": [str(i)],
                "snippet": "",
                "bot_message_ids": [],
                "alert_levels_sent": [],
                "opened_at": opened,
                "opened_epoch": opened.timestamp(),
                "opened_bepoch": AXIS.position(opened),
                "local_date": opened.astimezone(TZ).date().isoformat(),
                "last_customer_msg_at": opened,
                "status": "dismissed"
                if r > 0.99
                else ("resolved" if resolved else ("answered" if answered else "open")),
                "detector_reason": "",
                "detect_score": 0.0,
                "policy_version": 1,
                "calendar_version": 1,
                "owner_ids": owners,
                "frt_target_s": 300.0,
                "frt_due_at": opened + timedelta(seconds=300),
                "frt_due_calendar_at": opened + timedelta(seconds=300),
                "backlog_due_at": opened + timedelta(hours=48),
                "first_response_at": resp,
                "first_responder_id": responder,
                "first_response_message_id": str(i) if answered else None,
                "link_method": ("quote" if strong else "proximity_fifo") if answered else None,
                "link_confidence": conf if answered else None,
                "frt_business_s": frt,
                "frt_calendar_s": frt,
                "strict_first_response_at": resp if strong else None,
                "strict_first_responder_id": responder if strong else None,
                "strict_frt_business_s": frt if strong else None,
                "strict_frt_calendar_s": frt if strong else None,
                "holding": holding,
                "followup_breached": (rnd.random() < 0.2) if holding else None,
                "resolved_at": resolved,
                "resolved_by": "operator" if resolved else None,
                "resolution_business_s": res_s,
                "resolution_calendar_s": res_s,
                "bot_resolved": False,
                "reopen_count": 0,
                "peer_answered": False,
                "bot_touch": False,
                "updated_at": opened,
            }
        )
        out[-1]["settle_at"] = sla_rollup.settle_time(out[-1], CAL)
    return out


_COLS = [c.name for c in Q.columns if c.name != "id"]
_JSON = {"message_ids", "bot_message_ids", "alert_levels_sent", "owner_ids"}


async def _load(engine: AsyncEngine, n: int, ops: int, groups: int) -> None:
    chunk = 50_000
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM question"))
        await conn.execute(text("DELETE FROM sla_rollup"))
        await conn.execute(text("DELETE FROM sla_rollup_day"))
    for lo in range(0, n, chunk):
        rows = _rows(lo, min(chunk, n - lo), ops, groups)
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                raw = await conn.get_raw_connection()
                records = [
                    tuple(json.dumps(r.get(c)) if c in _JSON else r.get(c, None) for c in _COLS)
                    for r in rows
                ]
                await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                    "question", records=records, columns=_COLS
                )
            else:
                await conn.execute(Q.insert(), rows)
    async with engine.begin() as conn:
        await conn.execute(
            text("ANALYZE question" if engine.dialect.name != "sqlite" else "ANALYZE")
        )


async def _rebuild(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        days = await sla_rollup.all_days(conn)
    total = 0
    for day in days:
        async with engine.begin() as conn:
            total += await sla_rollup.rebuild_days(
                conn,
                [day],
                calendar_of=lambda _chat: CAL,
                tz=TZ,
                now=datetime(2026, 4, 1, tzinfo=UTC),
            )
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
    return total


async def ensure_indexes(engine: AsyncEngine) -> None:
    """Create the question / rollup indexes of the models that a reused store lacks."""
    from bot.store.models import SlaRollup

    def create(sync: Any) -> None:
        for table in (Q, SlaRollup.__table__):  # type: ignore[attr-defined]
            for index in table.indexes:
                index.create(sync, checkfirst=True)

    async with engine.begin() as conn:
        await conn.run_sync(create)
        await conn.execute(text("ANALYZE"))


def reuse_url(value: str) -> str:
    """A database URL, or the path of a SQLite file."""
    return value if "://" in value else f"sqlite+aiosqlite:///{Path(value).resolve()}"


async def _time(engine: AsyncEngine, label: str, req: ReportRequest, repeat: int) -> None:
    cfg = AppConfig()
    times = []
    tables = []
    for _ in range(repeat):
        t = time.perf_counter()
        tables = await reports_sla.build(engine, cfg, req)
        times.append(time.perf_counter() - t)
    print(
        f"  {label:9s} {req.view:9s} rows={len(tables[0].rows):5d} "
        f"best={min(times):.3f}s median={sorted(times)[len(times) // 2]:.3f}s"
        f"  [{tables[0].notes[1][:40]}]"
    )


async def main(n: int, url: str, ops: int, groups: int, repeat: int, load: bool) -> None:
    engine = make_engine(url)
    await upgrade(engine)
    name = engine.dialect.name
    if load:
        t = time.perf_counter()
        await _load(engine, n, ops, groups)
        print(f"{name}: loaded {n:,} questions in {time.perf_counter() - t:.1f}s")
        t = time.perf_counter()
        rows = await _rebuild(engine)
        print(f"{name}: rolled up {rows:,} questions in {time.perf_counter() - t:.1f}s")
    else:
        await ensure_indexes(engine)
    settled = datetime(2026, 3, 31, 12, tzinfo=TZ)
    early = datetime(2026, 3, 5, 12, tzinfo=TZ)
    for view in ("operators", "groups", "daily", "summary"):
        await _time(
            engine, "month", ReportRequest(START, date(2026, 3, 30), settled, view=view), repeat
        )
    for view in ("operators", "summary"):
        await _time(
            engine, "past", ReportRequest(START, date(2026, 3, 5), early, view=view), repeat
        )
        last = date(2026, 3, 30)
        await _time(engine, "day", ReportRequest(last, last, settled, view=view), repeat)
    await engine.dispose()


def machine() -> str:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.processor() or platform.machine()}, nproc={os.cpu_count()}, RAM={ram:.0f} GiB"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--operators", type=int, default=500)
    ap.add_argument("--groups", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--url", default="")
    ap.add_argument("--no-load", action="store_true", help="reuse the rows already in --url")
    ap.add_argument("--reuse", default="", help="a filled store: SQLite path or database URL")
    a = ap.parse_args()
    url = reuse_url(a.reuse) if a.reuse else a.url
    url = url or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    print(f"machine: {machine()}")
    asyncio.run(main(a.n, url, a.operators, a.groups, a.repeat, not (a.no_load or a.reuse)))
