"""In-process pipeline cost: OneBot frames → parse → intake → store → handlers, no sockets.

    .venv/bin/python -m benchmarks.pipeline [--events 50000] [--storage-only] [--postgres URL]

Builds the real app (``create_app``) on the NoneBot comparison's configuration (200 monitored
groups with owners, calendar open around the clock), starts it as ``sopbot run`` would (store,
intake, handler services; no web server, no ticks), then decodes and parses every frame with the
OneBot gateway's own functions and puts it into the intake as fast as the queue takes it. Prints
wall time and CPU per event (the bot's own work, without WebSocket framing or a load generator
sharing the cores), and the rows written. For finding hot spots, run it under a profiler:
``py-spy record -o out.svg -- .venv/bin/python -m benchmarks.pipeline``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from aiohttp import web
from sqlalchemy import text

from benchmarks import nonebot_compare
from bot.app import create_app
from bot.config import load_config
from bot.eventloop import new_event_loop
from bot.gateway.onebot.parse import decode_frame, parse_event
from bot.keys import CLOCK, ENGINE, INTAKE


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sopbot-pipeline-"))
    cfg_path = nonebot_compare.sopbot_config(tmp, 0)
    if args.storage_only:
        cfg_path.write_text(
            cfg_path.read_text(encoding="utf-8").replace("monitored = true", "monitored = false"),
            encoding="utf-8",
        )
    cfg = load_config(cfg_path)
    if args.postgres:
        cfg = cfg.model_copy(
            update={"bot": cfg.bot.model_copy(update={"database_url": args.postgres})}
        )
    frames = nonebot_compare.make_events(args.events)
    app = create_app(cfg)
    # No ticks (they compete with the intake and are measured elsewhere), no gateway sockets.
    for ctx in [c for c in app.cleanup_ctx if c.__name__ in ("_scheduler", "_gateways")]:
        app.cleanup_ctx.remove(ctx)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        intake, clock = app[INTAKE], app[CLOCK]
        cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        main0 = time.thread_time()
        for data in frames:
            parsed = parse_event(
                decode_frame(data, 1 << 20),
                received_at=clock.now(),
                account_id=None,
                keep_raw=cfg.intake.store_raw,  # as the gateway does
            )
            await intake.put(parsed)  # type: ignore[arg-type]
        await intake.drain()
        wall = time.perf_counter() - t0
        main_cpu = time.thread_time() - main0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        async with app[ENGINE].connect() as conn:
            counts = {
                t: (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()
                for t in ("message", "question", "sla_event", "response", "sla_rollup")
            }
    finally:
        await runner.cleanup()
    n = len(frames)
    print(f"events              {n:,} ({'storage only' if args.storage_only else 'monitored'})")
    print(f"wall                {wall:.2f}s = {n / wall:,.0f} events/s")
    print(f"CPU                 {cpu / n * 1e6:.0f} µs per event (all threads)")
    print(f"event loop thread   {main_cpu / n * 1e6:.0f} µs per event (the bottleneck)")
    print("rows                " + ", ".join(f"{t} {c:,}" for t, c in counts.items()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS            {peak:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--storage-only", action="store_true", help="groups not monitored")
    ap.add_argument("--postgres", default="", help="a PostgreSQL URL instead of SQLite")
    # The loop `sopbot run` takes by default ([bot] event_loop = "auto").
    loop, kind = new_event_loop("auto")
    print(f"event loop          {kind}")
    try:
        loop.run_until_complete(run(ap.parse_args()))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
