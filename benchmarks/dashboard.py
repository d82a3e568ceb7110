"""Dashboard latency with N questions in the store (default 1,000,000 over 30 days): the
overview (``/``) and the operator table (``/operators``), p95 over 50 requests each, on SQLite
or PostgreSQL, served over HTTP by the dashboard's own routes with an admin login.

    .venv/bin/python -m benchmarks.dashboard --n 1000000 [--url postgresql+asyncpg://...]
    .venv/bin/python -m benchmarks.dashboard --url sqlite+aiosqlite:///big.db --no-load
    .venv/bin/python -m benchmarks.dashboard --reuse big.db        # or a database URL

The store is filled by ``benchmarks.sla_report`` (same synthetic questions, then the per-day
rollups where the schema has them). The app is the dashboard alone (no question engine: at
start-up it would reload every live question, which is not what is measured here). "Today" is
2026-03-30 12:00 local, so the overview covers one day and the operator table its default 7
days (2026-03-24..30); both on the business basis, strict view. Each page is measured twice:
"cold" with the page cache off (``handlers.dashboard.data.CACHE_SECONDS = 0``: every request
computes everything from the store) and "warm" with it on (the clock stands still, so every
request after the first is served from the cache). One unmeasured request first warms the
database's own page cache.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from benchmarks import sla_report as fill
from bot.clock import ManualClock
from bot.config import AppConfig
from bot.dispatch import Dispatcher
from bot.keys import CLOCK, CONFIG, DISPATCHER, ENGINE, ROSTER
from bot.metrics import Metrics
from bot.roster import Roster
from bot.store.db import make_engine, upgrade
from bot.webauth import hash_password
from handlers import dashboard, reports_sla
from handlers.dashboard import data
from handlers.dashboard.auth import AUTH, build_auth

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 30, 12, 0, tzinfo=TZ).astimezone(UTC)


def _app(url: str) -> web.Application:
    digest = hash_password("bench")
    cfg = AppConfig.model_validate(
        {
            "bot": {"database_url": url},
            "web": {
                "users": [{"username": "admin", "password_hash": digest, "role": "admin"}],
                "session_secret": "b" * 32,
            },
        }
    )
    app = web.Application()
    app[CONFIG], app[CLOCK] = cfg, ManualClock(NOW)
    app[ROSTER] = Roster.from_config(cfg)
    app[DISPATCHER] = Dispatcher(Metrics())
    app[DISPATCHER].provide(sla_report=reports_sla.build)
    app[AUTH] = build_auth(app)
    app.add_routes(dashboard.routes())

    async def db(app: web.Application) -> Any:
        app[ENGINE] = make_engine(url)
        yield
        await app[ENGINE].dispose()

    app.cleanup_ctx.append(db)
    return app


async def _login(client: TestClient[Any, Any]) -> None:
    page = await (await client.get("/login")).text()
    token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    resp = await client.post(
        "/login", data={"username": "admin", "password": "bench", "csrf": token}
    )
    assert resp.status == 200, resp.status


async def _measure(client: TestClient[Any, Any], path: str, n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        resp = await client.get(path)
        await resp.read()
        times.append(time.perf_counter() - t)
        assert resp.status == 200, (path, resp.status)
    times.sort()
    return {
        "p50": times[len(times) // 2],
        "p95": times[min(len(times) - 1, int(len(times) * 0.95))],
        "max": times[-1],
    }


async def main(n: int, url: str, requests: int, load: bool) -> None:
    engine = make_engine(url)
    await upgrade(engine)
    name = engine.dialect.name
    if load:
        t = time.perf_counter()
        await fill._load(engine, n, 500, 2000)
        print(f"{name}: loaded {n:,} questions in {time.perf_counter() - t:.1f}s")
        try:
            t = time.perf_counter()
            rows = await fill._rebuild(engine)
            print(f"{name}: rolled up {rows:,} questions in {time.perf_counter() - t:.1f}s")
        except Exception as exc:  # the rollup tables may not exist yet on this branch
            print(f"{name}: no rollups ({type(exc).__name__})")
    else:
        await fill.ensure_indexes(engine)
    await engine.dispose()
    client = TestClient(TestServer(_app(url)))
    await client.start_server()
    try:
        await _login(client)
        ttl = data.CACHE_SECONDS
        for mode, seconds in (("cold", 0.0), ("warm", ttl)):
            data.CACHE_SECONDS = seconds
            for path in ("/", "/operators"):
                await client.get(path)  # warm the database's caches (and the page cache) once
                r = await _measure(client, path, requests)
                verdict = "ok" if r["p95"] < 0.5 else "OVER 500 ms"
                print(
                    f"{name:10s} {mode} {path:11s} p50={r['p50'] * 1000:7.1f} ms  "
                    f"p95={r['p95'] * 1000:7.1f} ms  max={r['max'] * 1000:7.1f} ms  {verdict}"
                )
        data.CACHE_SECONDS = ttl
    finally:
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--url", default="")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--no-load", action="store_true")
    parser.add_argument("--reuse", default="", help="a filled store: SQLite path or database URL")
    args = parser.parse_args()
    url = fill.reuse_url(args.reuse) if args.reuse else args.url
    url = url or os.environ.get("SOPBOT_BENCH_URL", "")
    if not url:
        path = Path(tempfile.mkdtemp()) / "bench.db"
        url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(main(args.n, url, args.requests, not (args.no_load or args.reuse)))
