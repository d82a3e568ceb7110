"""Per-operator SLA report over N questions (default 1,000,000 over 30 days, 500 operators,
2,000 groups) on SQLite or PostgreSQL: time of ``handlers.reports_sla.build(view="operators")``.

    .venv/bin/python -m benchmarks.sla_report --n 1000000 [--url postgresql+asyncpg://...]

Rows are synthesized straight into the ``question`` table (no engine replay); about 85 % are
answered (quote or proximity), the rest overdue or pending, a few dismissed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text

from bot.config import AppConfig
from bot.reports import ReportRequest
from bot.store.db import make_engine, upgrade
from bot.store.questions import Q
from handlers import reports_sla

TZ = ZoneInfo("Asia/Shanghai")
START = date(2026, 3, 1)


def _rows(n: int, ops: int, groups: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    t0 = datetime(2026, 3, 1, tzinfo=TZ).astimezone(UTC)
    out = []
    for i in range(n):
        opened = t0 + timedelta(seconds=rnd.uniform(0, 30 * 86400))
        g = rnd.randrange(groups)
        owners = [f"op{g % ops}", f"op{(g * 7 + 1) % ops}"]
        r = rnd.random()
        answered = r < 0.85
        frt = rnd.expovariate(1 / 240) if answered else None
        conf = 1.0 if rnd.random() < 0.7 else 0.5
        resp = opened + timedelta(seconds=frt) if frt is not None else None
        responder = f"op{rnd.randrange(ops)}" if answered else None
        strong = conf >= 0.8
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
                "local_date": opened.astimezone(TZ).date().isoformat(),
                "last_customer_msg_at": opened,
                "status": "dismissed" if r > 0.99 else ("answered" if answered else "open"),
                "owner_ids": owners,
                "frt_target_s": 300.0,
                "frt_due_at": opened + timedelta(seconds=300),
                "frt_due_calendar_at": opened + timedelta(seconds=300),
                "backlog_due_at": opened + timedelta(hours=48),
                "first_response_at": resp,
                "first_responder_id": responder,
                "link_method": "quote" if strong else "proximity_fifo",
                "link_confidence": conf if answered else None,
                "frt_business_s": frt,
                "frt_calendar_s": frt,
                "strict_first_response_at": resp if strong else None,
                "strict_first_responder_id": responder if strong else None,
                "strict_frt_business_s": frt if strong else None,
                "strict_frt_calendar_s": frt if strong else None,
                "updated_at": opened,
            }
        )
    return out


async def main(n: int, url: str, ops: int, groups: int, repeat: int) -> None:
    engine = make_engine(url)
    await upgrade(engine)
    t = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM question"))
    chunk = 20_000
    for lo in range(0, n, chunk):
        rows = _rows(min(chunk, n - lo), ops, groups, lo)
        for j, r in enumerate(rows):
            r["public_id"] = f"Q{lo + j + 1}"
        async with engine.begin() as conn:
            await conn.execute(Q.insert(), rows)
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("ANALYZE question"))
        else:
            await conn.execute(text("ANALYZE"))
    print(f"loaded {n:,} questions in {time.perf_counter() - t:.1f}s ({engine.dialect.name})")
    cfg = AppConfig()
    as_of = datetime(2026, 3, 31, 12, tzinfo=TZ)
    for view in ("operators", "groups", "daily", "summary"):
        req = ReportRequest(START, date(2026, 3, 30), as_of, view=view)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            tables = await reports_sla.build(engine, cfg, req)
            times.append(time.perf_counter() - t)
        print(
            f"{view:9s} rows={len(tables[0].rows):5d} best={min(times):.3f}s "
            f"median={sorted(times)[len(times) // 2]:.3f}s"
        )
    await engine.dispose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--operators", type=int, default=500)
    ap.add_argument("--groups", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--url", default="")
    a = ap.parse_args()
    url = a.url or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    asyncio.run(main(a.n, url, a.operators, a.groups, a.repeat))
