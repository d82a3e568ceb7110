"""SOP engine at Kuaiyu scale: 10,000 guides on SQLite and PostgreSQL.

Run from the repo root: ``python -m benchmarks.sop_materialize [--guides N] [--pg URL]``
(PostgreSQL also from ``SOPBOT_TEST_POSTGRES_URL``). For each backend, on a fresh database:

1. materialize one day of 3+3+3 tasks (9 units in 3 task rows per guide; the issue's "90,000
   task instances" counts 9 per guide, i.e. 30,000 rows with quotas 3/3/3 — both figures printed);
2. enqueue one slot: the SOP tick renders 10,000 slot reminders (progress + content) into the
   outbox at the end of the slot's jitter window;
3. dispatch that slot through an unthrottled fake gateway (no rate limit, sends are no-ops).
Peak RSS of the process is printed at the end (the targets: < 10 s, >= 1,000/s, < 300 MB).

``--customers N`` binds N customers to every guide (contact added over the last two years, 60 %
with a purchase in the last 200 days) and turns the built-in lifecycle programs on, so step 1
also plans their touchpoints; it then prints the longest the event loop went without a turn
while materializing (what the intake would wait) and the peak RSS after it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.clock import ManualClock
from bot.config import AppConfig
from bot.outbox import OutboxDispatcher, OutboxRow
from bot.roster import Roster
from bot.store.bulk import Bulk
from bot.store.db import make_engine, upgrade
from bot.store.models import Customer
from handlers.sop_plan import SopRuntime

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 10)


def config(guides: int, url: str, programs: bool = False) -> AppConfig:
    ops: list[dict[str, Any]] = [
        {"id": f"sup{s}", "name": f"主管{s}", "role": "supervisor"} for s in range(guides // 100)
    ]
    ops += [
        {
            "id": f"g{i:05d}",
            "name": f"导购{i}",
            "role": "guide",
            "onebot_user_ids": [str(1_000_000 + i)],
            "supervisor": f"sup{i // 100}",
            "store": f"店{i // 10}",
        }
        for i in range(guides)
    ]
    content = [{"id": f"c{i}", "text": f"今日推荐 {i}"} for i in range(30)]
    return AppConfig.model_validate(
        {
            "bot": {"database_url": url},
            "operators": ops,
            "sop": {"builtin_programs": programs, "content": content},
        }
    )


async def add_customers(engine: Any, guides: int, per_guide: int) -> int:
    """``per_guide`` customers for every guide, in bulk; returns how many."""
    rng = random.Random(7)
    now = datetime(2026, 3, 10, 0, 0, tzinfo=UTC)
    bulk = Bulk(
        Customer.__table__,  # type: ignore[attr-defined]
        ("platform", "external_id", "guide_id", "added_at", "last_purchase_at", "source"),
    )
    total = guides * per_guide
    for start in range(0, total, 50_000):
        rows = [
            (
                "onebot11",
                f"c{n}",
                f"g{n % guides:05d}",
                now - timedelta(seconds=rng.randrange(730 * 86_400)),
                now - timedelta(seconds=rng.randrange(200 * 86_400))
                if rng.random() < 0.6
                else None,
                "import",
            )
            for n in range(start, min(start + 50_000, total))
        ]
        async with engine.begin() as conn:
            await bulk.run(conn, rows)
    return total


class LoopWatch:
    """The longest the event loop went without running a 5 ms sleeper."""

    def __init__(self) -> None:
        self.worst = 0.0

    async def run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - t - 0.005)


async def run(guides: int, url: str, label: str, per_guide: int = 0) -> None:
    engine = make_engine(url)
    await upgrade(engine)
    cfg = config(guides, url, programs=per_guide > 0)
    clock = ManualClock(datetime(2026, 3, 10, 7, 0, tzinfo=TZ).astimezone(UTC))
    sop = SopRuntime(cfg, Roster.from_config(cfg), engine, clock)
    if per_guide:
        t0 = time.perf_counter()
        n = await add_customers(engine, guides, per_guide)
        print(f"[{label}] {n:,} customers loaded in {time.perf_counter() - t0:.1f} s")

    watch = LoopWatch()
    watcher = asyncio.create_task(watch.run())
    t0 = time.perf_counter()
    rows = await sop.materialize(DAY)
    t_mat = time.perf_counter() - t0
    watcher.cancel()
    units = sum(s.quota for s in sop.plans[0].steps) * guides
    print(
        f"[{label}] materialize {DAY}: {rows:,} task rows ({units:,} task units"
        f"{' + lifecycle touchpoints' if per_guide else ''}) in {t_mat:.2f} s; "
        f"longest event-loop stall {watch.worst * 1000:,.0f} ms"
    )
    if per_guide:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"[{label}] peak RSS after materialize: {rss:.0f} MB")
    sop._materialized.add(DAY)  # tomorrow is not part of the measurement
    sop._materialized.add(DAY.replace(day=11))

    await clock.set(datetime(2026, 3, 10, 9, 22, 30, tzinfo=TZ).astimezone(UTC))
    watch = LoopWatch()
    watcher = asyncio.create_task(watch.run())
    t0 = time.perf_counter()
    queued = await sop.tick()
    t_enq = time.perf_counter() - t0
    watcher.cancel()
    print(
        f"[{label}] enqueue morning slot: {queued:,} reminders in {t_enq:.2f} s "
        f"({queued / t_enq:,.0f}/s); longest event-loop stall {watch.worst * 1000:,.0f} ms"
    )

    sent = 0

    async def fake_gateway(row: OutboxRow) -> None:
        nonlocal sent
        sent += 1

    dispatcher = OutboxDispatcher(engine=engine, clock=clock, sender=fake_gateway, owner="bench")
    t0 = time.perf_counter()
    stats = await dispatcher.run_once()
    t_disp = time.perf_counter() - t0
    print(
        f"[{label}] dispatch: {stats.sent:,} sent in {t_disp:.2f} s "
        f"({stats.sent / t_disp:,.0f}/s); "
        f"enqueue+dispatch {queued / (t_enq + t_disp):,.0f}/s"
    )
    assert sent == stats.sent == queued == guides
    await engine.dispose()


async def _pg_database(base: str) -> str:
    import asyncpg

    name = f"sopbot_bench_{os.getpid()}"
    admin = base.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return base.rsplit("/", 1)[0] + f"/{name}"


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--guides", type=int, default=10_000)
    p.add_argument("--pg", default=os.environ.get("SOPBOT_TEST_POSTGRES_URL", ""))
    p.add_argument("--customers", type=int, default=0, help="customers per guide (lifecycle)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await run(args.guides, url, "sqlite", args.customers)
    if args.pg:
        await run(args.guides, await _pg_database(args.pg), "postgresql", args.customers)
    else:
        print("[postgresql] skipped: pass --pg URL or set SOPBOT_TEST_POSTGRES_URL")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {rss:.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
