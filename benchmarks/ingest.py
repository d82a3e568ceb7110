"""Ingest benchmark: a load generator acting as a OneBot v11 implementation pushes group message
events over a real reverse WebSocket into a real ``sopbot run`` process (SQLite), then counts rows.

    .venv/bin/python -m benchmarks.ingest [--events 200000] [--groups 200] [--rate 0] [--monitored]

Prints sustained events/s (first event sent → last row committed), receipt→commit latency
p50/p99 (from the bot's own Prometheus histogram, interpolated within buckets), the bot's peak
RSS, and whether every event was stored. ``--rate`` offers events at a fixed rate instead of as
fast as the socket takes them. Target (issue 2): >= 10,000 events/s, p99 < 100 ms, RSS < 300 MB,
zero lost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import psutil

from benchmarks.wsload import LoadSocket, client_frame

TOKEN = "bench-token"
SELF_ID = "10000"

TEXTS = (
    "请问这款奶粉几段适合八个月宝宝？",
    "今天的活动什么时候开始",
    "好的谢谢",
    "我的订单显示已发货但是物流三天没动了 订单号 2026112300123",
    "[图片]",
    "有没有小样可以试用呀",
    "哈哈哈哈 宝宝今天第一次叫妈妈了",
    "How long does shipping to Shanghai take?",
    "收到",
    "这个颜色还有M码吗？",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_events(n: int, groups: int, start_ts: int) -> list[bytes]:
    rng = random.Random(42)
    out = []
    for i in range(n):
        group = 700000 + rng.randrange(groups)
        user = 300000 + rng.randrange(5000)
        segs: list[dict[str, object]] = []
        if i % 17 == 0 and i:
            segs.append({"type": "reply", "data": {"id": str(1000 + i - 1)}})
        if i % 11 == 0:
            segs.append({"type": "at", "data": {"qq": str(300000 + rng.randrange(5000))}})
        segs.append({"type": "text", "data": {"text": TEXTS[i % len(TEXTS)]}})
        out.append(
            orjson.dumps(
                {
                    "time": start_ts + i // 1000,
                    "self_id": int(SELF_ID),
                    "post_type": "message",
                    "message_type": "group",
                    "sub_type": "normal",
                    "message_id": 1000 + i,
                    "group_id": group,
                    "user_id": user,
                    "anonymous": None,
                    "message": segs,
                    "raw_message": TEXTS[i % len(TEXTS)],
                    "font": 0,
                    "sender": {
                        "user_id": user,
                        "nickname": f"用户{user}",
                        "card": "",
                        "role": "member",
                    },
                }
            )
        )
    return out


def write_config(tmp: Path, port: int) -> Path:
    cfg = tmp / "bench.toml"
    cfg.write_text(
        f"""
[bot]
data_dir = "{tmp / "data"}"
log_level = "WARNING"
[web]
port = {port}
[gateway.onebot]
access_token = "{TOKEN}"
""",
        encoding="utf-8",
    )
    return cfg


def _buckets(metrics_text: str, name: str) -> list[tuple[float, float, float]]:
    """(upper bound, cumulative count, total) per finite bucket of a Prometheus histogram."""
    rows = [
        (float(m.group(1)), float(m.group(2)))
        for m in re.finditer(
            rf'^{name}_bucket{{le="([0-9.e+-]+)"}} ([0-9.e+]+)$', metrics_text, re.M
        )
    ]
    total = re.search(rf"^{name}_count ([0-9.e+]+)$", metrics_text, re.M)
    n = float(total.group(1)) if total else 0.0
    return [(le, cum, n) for le, cum in sorted(rows) if n]


def histogram_quantile(metrics_text: str, name: str, q: float) -> float | None:
    """Quantile from a Prometheus histogram, linear within the bucket (as PromQL does)."""
    buckets: list[tuple[float, float]] = []
    for m in re.finditer(rf'^{name}_bucket{{le="([^"]+)"}} ([0-9.e+]+)$', metrics_text, re.M):
        le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
        buckets.append((le, float(m.group(2))))
    if not buckets or buckets[-1][1] == 0:
        return None
    buckets.sort()
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            span = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / span if span else 0)
        prev_le, prev_count = le, count
    return None


async def run(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="sopbot-bench-"))
    port = free_port()
    if args.monitored:
        # The full pipeline: the NoneBot2 comparison's monitored groups, owners and traffic
        # (1 in 8 messages from a guide quoting the one before), SLA clocks open 24/7.
        from benchmarks import nonebot_compare

        cfg = nonebot_compare.sopbot_config(tmp, port)
        frames = nonebot_compare.make_events(args.events)
    else:
        cfg = write_config(tmp, port)
        frames = [e.decode() for e in make_events(args.events, args.groups, int(time.time()))]
    db = tmp / "data" / "sopbot.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # SOPBOT_BENCH_PROFILE=FILE runs the bot under cProfile (slower; for finding hot spots).
    profile = os.environ.get("SOPBOT_BENCH_PROFILE")
    prefix = ["-m", "cProfile", "-o", profile] if profile else []
    # The bot's log goes to a file: a pipe nobody reads would fill and block the bot.
    log_path = tmp / "bot.log"
    log_file = log_path.open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 (one start-up call, not on a hot path)
        [sys.executable, *prefix, "-m", "bot", "run", "--config", str(cfg)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    ps = psutil.Process(proc.pid)
    peak_rss = 0
    stop_sampling = asyncio.Event()

    async def sample_rss() -> None:
        nonlocal peak_rss
        while not stop_sampling.is_set():
            try:
                peak_rss = max(peak_rss, ps.memory_info().rss)
            except psutil.Error:
                return
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample_rss())
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"{base}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                print("bot did not start; its log:", log_path.read_text(errors="replace")[-4000:])
                return 1
            headers = {
                "X-Self-ID": SELF_ID,
                "X-Client-Role": "Universal",
                "Authorization": f"Bearer {TOKEN}",
                "User-Agent": "OneBot/11",
            }
            ws = await LoadSocket.connect("127.0.0.1", port, "/onebot/v11/ws", headers)
            try:
                connect = {
                    "time": int(time.time()),
                    "self_id": 10000,
                    "post_type": "meta_event",
                    "meta_event_type": "lifecycle",
                    "sub_type": "connect",
                }
                await ws.send_frames([client_frame(orjson.dumps(connect))])
                wire = [client_frame(f.encode()) for f in frames]
                cpu0 = ps.cpu_times()
                t0 = time.perf_counter()
                if args.rate:
                    # Paced in 1 ms steps: each step writes the frames due by then.
                    sent = 0
                    while sent < len(wire):
                        due = min(len(wire), int((time.perf_counter() - t0) * args.rate) + 1)
                        if due > sent:
                            await ws.send_frames(wire[sent:due])
                            sent = due
                        await asyncio.sleep(0.001)
                else:
                    for start in range(0, len(wire), 200):
                        await ws.send_frames(wire[start : start + 200])
                t_sent = time.perf_counter()
                # Wait for the last row to be committed.
                stored = 0
                deadline = time.perf_counter() + 300
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
                while time.perf_counter() < deadline:
                    stored = con.execute("SELECT count(*) FROM message").fetchone()[0]
                    if stored >= args.events:
                        break
                    await asyncio.sleep(0.02)
                t_done = time.perf_counter()
                cpu1 = ps.cpu_times()
                con.close()
                async with http.get(f"{base}/metrics") as r:
                    metrics_text = await r.text()
                connected = not ws.closed
            finally:
                await ws.close()
    finally:
        stop_sampling.set()
        await sampler
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()
    p50 = histogram_quantile(metrics_text, "sopbot_intake_commit_seconds", 0.50)
    p99 = histogram_quantile(metrics_text, "sopbot_intake_commit_seconds", 0.99)
    rejected = sum(
        float(v)
        for v in re.findall(
            r"^sopbot_events_rejected_total\{[^}]*\} ([0-9.e+]+)$", metrics_text, re.M
        )
    )
    elapsed = t_done - t0
    groups = "200 monitored groups" if args.monitored else f"{args.groups} groups"
    print(f"events offered      {args.events:,} over one reverse WebSocket ({groups})")
    print(
        f"offered rate        {'max' if not args.rate else f'{args.rate:,.0f}/s'}; "
        f"sending took {t_sent - t0:.2f}s"
    )
    print(
        f"stored              {stored:,} rows ({args.events - stored:,} lost); "
        f"rejected {rejected:.0f}"
    )
    print(
        f"sustained           {stored / elapsed:,.0f} events/s (first send → last commit "
        f"{elapsed:.2f}s)"
    )
    print(
        f"receipt→commit      p50 {1000 * (p50 or 0):.1f} ms, p99 {1000 * (p99 or 0):.1f} ms "
        "(bot histogram, interpolated)"
    )
    above = [
        (le, 1 - cum / total)
        for le, cum, total in _buckets(metrics_text, "sopbot_intake_commit_seconds")
        if le in (0.1, 0.25, 0.5)
    ]
    print(
        "slower than         "
        + ", ".join(f"{le * 1000:.0f} ms: {share:.2%}" for le, share in above)
    )
    print(f"peak RSS (bot)      {peak_rss / 2**20:.0f} MB")
    # CPU the bot spent per event, all its threads: steadier than rates on a shared machine.
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    print(f"bot CPU             {1e6 * cpu / max(stored, 1):.0f} µs per event ({cpu:.2f} s)")
    print(f"connection          {'stayed up' if connected else 'CLOSED'}")
    errors = log_path.read_text(errors="replace").count('"level": "ERROR"')
    print(f"bot log             {log_path} ({errors} error lines)")
    return 0 if stored == args.events else 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--groups", type=int, default=200)
    p.add_argument("--rate", type=float, default=0.0, help="events/s offered; 0 = flood")
    p.add_argument(
        "--monitored",
        action="store_true",
        help="monitored groups with owners (store, detect, link, SLA) instead of storage only",
    )
    sys.exit(asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
