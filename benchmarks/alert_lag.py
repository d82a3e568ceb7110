"""Alert lag with 10,000 open questions: due time → alert handed to the gateway.

    .venv/bin/python -m benchmarks.alert_lag [--questions 10000] [--url ...] [--mode kick|tick]

What runs is the production path: ``handlers.alerts.AlertService`` on the exact ``DueTimer``
(one heap, one task), writing batched alert rows to the outbox in one transaction per firing, and
an ``OutboxDispatcher`` claiming and sending them through a fake, unthrottled gateway that only
records when each message was handed to it. Questions are opened through the engine and
``save_effects`` (rows, rollups and events, as in production) before the clock starts.

Clock: a ``SimulatedClock`` at speed 1 started *after* the setup at T0 (2026-03-10 10:00 local),
so simulated instants are real elapsed time: a due time ``T0 + d`` is ``d`` real seconds after
the start, and ``sent - due`` is real lag, including every database write. The 10,000 questions
are opened so their warnings fall evenly over 60 s (about 167 per second) and their breaches
12 s later (target 60 s, warning at 80 %), on an always-open calendar; 20,000 alert levels in
all. Lag of a (question, level) = when the message listing it reached the gateway minus that
level's due time.

Modes: ``kick`` (the alert service hands its rows to the dispatcher at once: the app does this
when it provides ``outbox_kick``), ``tick`` (the dispatcher runs only every ``--every`` seconds,
1 s by default, like the app's outbox tick).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.clock import SimulatedClock
from bot.config import AppConfig
from bot.outbox import OutboxDispatcher, OutboxRow
from bot.roster import Roster
from bot.store import questions as store
from bot.store.db import make_engine, upgrade
from bot.timers import DueTimer
from handlers import alerts
from sop.questions import QuestionEngine

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 10, 10, 0, tzinfo=TZ).astimezone(UTC)
TARGET, WARN = 60.0, 48.0
SPREAD, LEAD = 60.0, 5.0  # warnings due over [LEAD, LEAD + SPREAD] s after the start


def _config(operators: int, groups: int) -> AppConfig:
    return AppConfig.model_validate(
        {
            "operators": [
                {"id": "sup", "name": "sup", "role": "supervisor", "onebot_user_ids": ["1"]},
                *(
                    {
                        "id": f"op{i}",
                        "name": f"op{i}",
                        "role": "operator",
                        "onebot_user_ids": [str(1000 + i)],
                        "supervisor": "sup",
                    }
                    for i in range(operators)
                ),
            ],
            "groups": [
                {"platform": "onebot11", "id": str(5000 + g), "owners": [f"op{g % operators}"]}
                for g in range(groups)
            ],
            "sla": {"frt_target": f"{int(TARGET)}s", "alert_window": "1h"},
            "calendar": {"weekly": {"mon-sun": "00:00-24:00"}, "statutory": False},
        }
    )


async def main(n: int, url: str, mode: str, every: float, operators: int, groups: int) -> None:
    cfg = _config(operators, groups)
    db = make_engine(url)
    await upgrade(db)
    roster = Roster.from_config(cfg)
    calendar_of = cfg.calendar.calendar_of(cfg.bot.timezone)
    engine = QuestionEngine(
        cfg.sla.policy(),
        calendar_of=calendar_of,
        owners_of=lambda chat: roster.owners(*store.split_key(chat)),
    )
    opened: dict[str, datetime] = {}
    t = time.perf_counter()
    ctx = store.RowContext(policy_of=engine.policy_for, calendar_of=calendar_of, tz=TZ, now=T0)
    for lo in range(0, n, 1000):
        async with db.begin() as conn:
            for i in range(lo, min(n, lo + 1000)):
                qid = f"Q{i + 1}"
                at = T0 + timedelta(seconds=LEAD + SPREAD * i / n - WARN)
                opened[qid] = at
                chat = f"onebot11:{5000 + i % groups}"
                effects = engine.on_customer_message(
                    chat, f"m{i}", f"onebot11:c{i}", at, is_question=True, question_id=qid
                )
                await store.save_effects(conn, effects, ctx)
    print(f"opened {n:,} questions in {time.perf_counter() - t:.1f}s ({db.dialect.name})")

    clock = SimulatedClock(T0, speed=1.0)
    deliveries: dict[str, int] = defaultdict(int)
    lags: list[float] = []

    async def gateway(row: OutboxRow) -> None:
        now = clock.now()
        for qid in row.payload.get("questions", ()):
            level = deliveries[qid]
            deliveries[qid] += 1
            due = opened[qid] + timedelta(seconds=WARN if level == 0 else TARGET)
            lags.append((now - due).total_seconds())

    dispatcher = OutboxDispatcher(engine=db, clock=clock, sender=gateway, owner="bench")
    service = alerts.AlertService(
        cfg=cfg,
        db=db,
        engine=engine,
        roster=roster,
        calendar_of=calendar_of,
        sent={},
        on_enqueued=dispatcher.run_once if mode == "kick" else None,
    )
    timer = DueTimer(clock, service.fire, name="sla-alerts")
    service.timer = timer
    for q in engine.questions():
        service.arm(q)
    await timer.start()

    async def ticking() -> None:
        while True:
            await dispatcher.run_once()
            await asyncio.sleep(every)

    ticker = asyncio.create_task(ticking())
    end = T0 + timedelta(seconds=LEAD + SPREAD + (TARGET - WARN) + 3 + every)
    await clock.sleep_until(end)
    await timer.stop()
    ticker.cancel()
    await dispatcher.run_once()
    await db.dispose()

    lags.sort()
    expected = 2 * n
    pct = {p: lags[min(len(lags) - 1, int(p / 100 * len(lags)))] for p in (50, 99)}
    print(
        f"mode={mode} (outbox every {every:g}s) levels delivered {len(lags):,}/{expected:,}: "
        f"p50={pct[50]:.3f}s p99={pct[99]:.3f}s max={lags[-1]:.3f}s"
    )


def machine() -> str:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()[0]
    return f"{platform.machine()}, nproc={os.cpu_count()}, RAM={ram:.0f} GiB, load1={load:.1f}"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=10_000)
    ap.add_argument("--operators", type=int, default=500)
    ap.add_argument("--groups", type=int, default=2000)
    ap.add_argument("--mode", choices=["kick", "tick"], default="kick")
    ap.add_argument("--every", type=float, default=1.0, help="outbox tick interval (s)")
    ap.add_argument("--url", default="")
    a = ap.parse_args()
    url = a.url or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'alerts.db'}"
    print(f"machine: {machine()}")
    asyncio.run(main(a.questions, url, a.mode, a.every, a.operators, a.groups))
