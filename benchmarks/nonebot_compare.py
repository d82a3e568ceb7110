"""Benchmark against NoneBot2 (issue 7, benchmark 1): one load generator, three bots.

    .venv/bin/python -m benchmarks.nonebot_compare [--quick]

The generator acts as a OneBot v11 implementation (NapCat-style reverse WebSocket: X-Self-ID,
Authorization: Bearer, X-Client-Role: Universal; it answers every action the bot calls) and
drives, each in a fresh process and a fresh temporary directory:

(a) ``nb-count``  NoneBot2 + nonebot-adapter-onebot, a plugin whose handler only counts messages;
(b) ``nb-sqlite`` NoneBot2 + a plugin that stores each message in SQLite;
(c) ``sopbot``    ``sopbot run`` with 200 monitored groups that have owners, so store, detect,
    link and SLA all run (default settings, SQLite).

NoneBot2 is installed with pip into its own virtualenv (``--venv``; created once, reused while
the pinned versions match). Both bots run with default settings except what a deployment sets:
access token, loopback address, log level WARNING.

Completion is observed on the wire. After the last event a staff account sends the private
message ``/count``. NoneBot2's plugin answers ``count N``; sopbot answers any staff command
(unknown ones get the help text) and its count is read from the database (read-only) when that
answer arrives. While the count is short of N the command is sent again (one at a time), so a
reply that overtook events still in flight does not count as a loss.

A step at a fixed offered rate R with N events **keeps up** when all four hold:
  * every event is counted (none lost),
  * the reply that reports all N arrives at most 1 s after the last event was sent,
  * the socket took the events at >= 95 % of R (a bot that pushes back is not keeping up),
  * the connection stayed up.
Rates rise until a step does not keep up (then ``--refine`` bisection steps narrow the gap);
the highest rate that kept up is the sustained rate. The flood sends N events as fast as the
socket takes them; its rate is N / (first send -> complete count). Peak RSS is the bot's process
tree, sampled by psutil every 50 ms from a thread. Everything is bounded: events per step, a
deadline per step, loopback only, processes killed and temp dirs removed in ``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import psutil

from benchmarks.ingest import TEXTS as INGEST_TEXTS
from benchmarks.wsload import LoadSocket, client_frame

TOKEN = "bench-token"
SELF_ID = 10000
STAFF_ID = 20001  # the supervisor who sends /count
GUIDE_IDS = tuple(range(20002, 20012))
GROUPS = 200
NONEBOT_PINS = ("nonebot2[fastapi]==2.5.0", "nonebot-adapter-onebot==2.4.6")
PLUGINS_DIR = Path(__file__).with_name("nonebot_plugins")
ROOT = Path(__file__).resolve().parent.parent
LAG_LIMIT_S = 1.0
SEND_RATE_FLOOR = 0.95

# The same customer texts as the ingest benchmark, so the two measure the same traffic.
CUSTOMER_TEXTS = INGEST_TEXTS
STAFF_TEXTS = ("您好，已为您查询，明天发货", "稍等，我查一下", "活动今晚八点开始哦")


# -- events ---------------------------------------------------------------------------------


def group_id(i: int) -> int:
    return 700000 + i


def make_events(n: int, seed: int = 42) -> list[str]:
    """N group messages in GROUPS groups: 1 in 8 from a guide (quoting), the rest customers."""
    rng = random.Random(seed)
    now = int(time.time())
    out: list[str] = []
    for i in range(n):
        g = rng.randrange(GROUPS)
        msg_id = 1000 + i
        segs: list[dict[str, Any]] = []
        if i % 8 == 3:
            user, role = GUIDE_IDS[g % len(GUIDE_IDS)], "admin"
            if i:
                segs.append({"type": "reply", "data": {"id": str(msg_id - 1)}})
            text = STAFF_TEXTS[i % len(STAFF_TEXTS)]
        else:
            user, role = 300000 + rng.randrange(5000), "member"
            if i % 17 == 0 and i:
                segs.append({"type": "reply", "data": {"id": str(msg_id - 1)}})
            if i % 11 == 0:
                segs.append({"type": "at", "data": {"qq": str(GUIDE_IDS[g % len(GUIDE_IDS)])}})
            text = CUSTOMER_TEXTS[i % len(CUSTOMER_TEXTS)]
        segs.append({"type": "text", "data": {"text": text}})
        out.append(
            orjson.dumps(
                {
                    "time": now,
                    "self_id": SELF_ID,
                    "post_type": "message",
                    "message_type": "group",
                    "sub_type": "normal",
                    "message_id": msg_id,
                    "group_id": group_id(g),
                    "user_id": user,
                    "anonymous": None,
                    "message": segs,
                    "raw_message": text,
                    "font": 0,
                    "sender": {
                        "user_id": user,
                        "nickname": f"用户{user}",
                        "card": "",
                        "role": role,
                    },
                }
            ).decode()
        )
    return out


def count_command(seq: int) -> str:
    """The staff's private ``/count``; message ids far above the group messages' ids."""
    return orjson.dumps(
        {
            "time": int(time.time()),
            "self_id": SELF_ID,
            "post_type": "message",
            "message_type": "private",
            "sub_type": "friend",
            "message_id": 900_000_000 + seq,
            "user_id": STAFF_ID,
            "message": [{"type": "text", "data": {"text": "/count"}}],
            "raw_message": "/count",
            "font": 0,
            "sender": {"user_id": STAFF_ID, "nickname": "bench", "sex": "unknown", "age": 0},
        }
    ).decode()


def lifecycle_connect() -> str:
    return orjson.dumps(
        {
            "time": int(time.time()),
            "self_id": SELF_ID,
            "post_type": "meta_event",
            "meta_event_type": "lifecycle",
            "sub_type": "connect",
        }
    ).decode()


# -- the bots ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start one bot in ``tmp`` and read its count from a ``/count`` reply."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    port: int
    count: Callable[[str], int | None]


def _minimal_env() -> dict[str, str]:
    # NoneBot reads settings from the environment before .env: start both bots from a clean one.
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def sopbot_config(tmp: Path, port: int) -> Path:
    ops = [
        f'[[operators]]\nid = "bench"\nname = "压测主管"\nrole = "supervisor"\n'
        f'onebot_user_ids = ["{STAFF_ID}"]\n'
    ]
    ops += [
        f'[[operators]]\nid = "g{k}"\nname = "导购{k}"\nrole = "guide"\n'
        f'onebot_user_ids = ["{uid}"]\nsupervisor = "bench"\nstore = "店{k % 3}"\n'
        for k, uid in enumerate(GUIDE_IDS)
    ]
    groups = [
        f'[[groups]]\nplatform = "onebot11"\nid = "{group_id(i)}"\nname = "群{i}"\n'
        f'owners = ["g{i % len(GUIDE_IDS)}"]\nmonitored = true\n'
        for i in range(GROUPS)
    ]
    cfg = tmp / "sopbot.toml"
    cfg.write_text(
        f'[bot]\ndata_dir = "{tmp / "data"}"\nlog_level = "WARNING"\n'
        f"[web]\nport = {port}\n"
        f'[gateway.onebot]\naccess_token = "{TOKEN}"\n'
        # Open around the clock, so SLA clocks and alert timers run whenever the benchmark does.
        '[calendar]\nweekly = { "mon-sun" = "00:00-24:00" }\n' + "".join(ops + groups),
        encoding="utf-8",
    )
    return cfg


def launch_sopbot(tmp: Path) -> Launch:
    port = free_port()
    cfg = sopbot_config(tmp, port)
    db = tmp / "data" / "sopbot.db"

    def count(_reply: str) -> int | None:
        if not db.exists():
            return None
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            row = con.execute("SELECT count(*) FROM message WHERE chat_type = 'group'").fetchone()
        finally:
            con.close()
        return int(row[0])

    env = {**_minimal_env(), "VIRTUAL_ENV": str(ROOT / ".venv")}
    argv = [sys.executable, "-m", "bot", "run", "--config", str(cfg)]
    return Launch(argv, ROOT, env, port, count)


def launch_nonebot(tmp: Path, python: Path, plugin: str) -> Launch:
    port = free_port()
    for name in ("nonebot_app.py", f"bench_{plugin}.py"):
        shutil.copy(PLUGINS_DIR / name, tmp / name)
    template = (PLUGINS_DIR / "env.template").read_text(encoding="utf-8")
    (tmp / ".env").write_text(
        template.format(port=port, token=TOKEN, plugin=plugin, db=tmp / "bench.db"),
        encoding="utf-8",
    )

    def count(reply: str) -> int | None:
        head, _, n = reply.partition(" ")
        return int(n) if head == "count" and n.isdigit() else None

    return Launch([str(python), "nonebot_app.py"], tmp, _minimal_env(), port, count)


def ensure_nonebot(venv: Path) -> Path:
    """The NoneBot2 virtualenv's python, creating it with pip (pinned versions) if needed."""
    python = venv / "bin" / "python"
    probe = "import nonebot, nonebot.adapters.onebot.v11, fastapi, uvicorn"
    marker = venv / "sopbot-bench-pins.txt"
    if (
        python.exists()
        and marker.exists()
        and marker.read_text(encoding="utf-8") == "\n".join(NONEBOT_PINS)
        and subprocess.run([python, "-c", probe], check=False, timeout=120).returncode == 0
    ):
        return python
    print(f"installing {' '.join(NONEBOT_PINS)} into {venv} ...", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *NONEBOT_PINS],
        check=True,
        timeout=900,
    )
    marker.write_text("\n".join(NONEBOT_PINS), encoding="utf-8")
    return python


# -- measuring ----------------------------------------------------------------------------------


class RssSampler:
    """Peak RSS of a process and its children, sampled from a thread (the event loop is busy)."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self._proc = psutil.Process(pid)
        self._every = every
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self._proc, *self._proc.children(recursive=True)]
                total = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            self._stop.wait(self._every)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak


class Peer:
    """The OneBot implementation's side of one reverse WebSocket: answers every action.

    Built on ``wsload.LoadSocket`` (frames built before the clock starts, written in bulk), so
    the generator's own Python per event stays small: on a 2-core machine aiohttp's client
    ``send_str`` (tens of microseconds an event) took a share of a core from whichever bot was
    being measured, the more the faster the bot.
    """

    def __init__(self) -> None:
        self.replies: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
        self.actions = 0
        self._next_id = 1
        self.ws: LoadSocket | None = None

    @property
    def closed(self) -> bool:
        return self.ws is None or self.ws.closed

    def on_text(self, ws: LoadSocket, payload: bytes) -> None:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(data, dict) or "action" not in data:
            return
        self.actions += 1
        action, params = data["action"], data.get("params") or {}
        if action == "send_private_msg" and str(params.get("user_id")) == str(STAFF_ID):
            self.replies.put_nowait((time.perf_counter(), message_text(params.get("message"))))
        answer = {
            "status": "ok",
            "retcode": 0,
            "data": self._answer(action, params),
            "echo": data.get("echo"),
        }
        ws.send_text(orjson.dumps(answer).decode())

    async def send(self, frames: list[bytes]) -> None:
        assert self.ws is not None
        await self.ws.send_frames(frames)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    def _answer(self, action: str, params: dict[str, Any]) -> object:
        if action == "get_msg":
            mid = int(params.get("message_id", 0))
            return {
                "time": int(time.time()),
                "message_type": "group",
                "message_id": mid,
                "real_id": mid,
                "sender": {"user_id": 300001, "nickname": "用户300001"},
                "message": [
                    {"type": "text", "data": {"text": "请问这款奶粉几段适合八个月宝宝？"}}
                ],
            }
        if action == "get_login_info":
            return {"user_id": SELF_ID, "nickname": "bench"}
        if action == "get_group_msg_history":
            return {"messages": []}
        self._next_id += 1
        return {"message_id": self._next_id}


def message_text(message: object) -> str:
    if isinstance(message, str):
        return message
    if isinstance(message, list):
        return "".join(
            str(s.get("data", {}).get("text", ""))
            for s in message
            if isinstance(s, dict) and s.get("type") == "text"
        )
    return ""


def frame(text: str) -> bytes:
    return client_frame(text.encode())


async def connect(port: int, deadline: float) -> Peer:
    headers = {
        "X-Self-ID": str(SELF_ID),
        "X-Client-Role": "Universal",
        "Authorization": f"Bearer {TOKEN}",
        "User-Agent": "OneBot/11",
    }
    last: Exception | None = None
    peer = Peer()
    while time.perf_counter() < deadline:
        try:
            peer.ws = await LoadSocket.connect(
                "127.0.0.1", port, "/onebot/v11/ws", headers, peer.on_text
            )
        except OSError as exc:  # ConnectionError included: refused while the bot starts
            last = exc
            await asyncio.sleep(0.2)
            continue
        await peer.send([frame(lifecycle_connect())])
        return peer
    raise TimeoutError(f"could not connect to 127.0.0.1:{port}: {last!r}")


@dataclass(frozen=True, slots=True)
class Step:
    bot: str
    rate: float  # 0 = flood
    events: int
    send_s: float = 0.0
    done_s: float | None = None  # first send -> reply reporting every event
    lag_s: float | None = None  # last send -> that reply
    counted: int | None = None
    peak_rss: int = 0
    stayed_up: bool = True
    reconnects: int = 0
    gen_cpu_us: float = 0.0  # the generator's CPU per event while sending
    note: str = ""

    @property
    def sent_rate(self) -> float:
        return self.events / self.send_s if self.send_s else 0.0

    @property
    def lost(self) -> int | None:
        return None if self.counted is None else self.events - self.counted

    @property
    def kept_up(self) -> bool:
        return (
            self.lost == 0
            and self.stayed_up
            and self.lag_s is not None
            and self.lag_s <= LAG_LIMIT_S
            and (self.rate == 0 or self.sent_rate >= SEND_RATE_FLOOR * self.rate)
        )


async def send_paced(peer: Peer, events: list[bytes], rate: float, limit_s: float) -> float:
    """Send at ``rate`` events/s (0 = as fast as the socket takes them); returns seconds taken."""
    t0 = time.perf_counter()
    i, n = 0, len(events)
    while i < n:
        if peer.closed or time.perf_counter() - t0 > limit_s:
            break
        due = n if not rate else min(n, int((time.perf_counter() - t0) * rate) + 1)
        if i >= due:
            await asyncio.sleep(max(0.0005, i / rate - (time.perf_counter() - t0)))
            continue
        stop = min(due, i + 200)
        try:
            await peer.send(events[i:stop])
        except ConnectionError:
            break
        i = stop
        await asyncio.sleep(0)  # let the reader answer actions and pings
    return time.perf_counter() - t0 if i == n else float("inf")


async def run_step(
    name: str,
    make_launch: Callable[[Path], Launch],
    events: list[str],
    rate: float,
    wait_s: float,
) -> Step:
    """One fresh bot process: warm up, send ``events`` at ``rate``, then ask for the count."""
    step = Step(name, rate, len(events))
    tmp = Path(tempfile.mkdtemp(prefix=f"nbcmp-{name}-"))
    proc: subprocess.Popen[bytes] | None = None
    sampler: RssSampler | None = None
    log = tmp / "bot.log"
    try:
        launch = make_launch(tmp)
        with log.open("wb") as log_file:
            proc = subprocess.Popen(  # noqa: ASYNC220 (one start-up call per step)
                launch.argv, cwd=launch.cwd, env=launch.env, stdout=log_file, stderr=log_file
            )
        sampler = RssSampler(proc.pid)
        peer = await connect(launch.port, time.perf_counter() + 90)
        seq = 0
        # Warm-up: the first command proves the bot is up and has loaded its handlers.
        seq += 1
        await peer.send([frame(count_command(seq))])
        await asyncio.wait_for(peer.replies.get(), 60)
        rate_label = f"{rate:,.0f}/s" if rate else "flood"
        print(f"  {name:<9} {rate_label:>9} {len(events):>7,} events ...", end="", flush=True)
        wire = [frame(e) for e in events]  # before the clock: a real peer's work, not ours
        cpu0, t0 = time.process_time(), time.perf_counter()
        send_limit = len(events) / rate * 3 + 60 if rate else wait_s
        send_s = await send_paced(peer, wire, rate, send_limit)
        t_last = time.perf_counter()
        gen_cpu = time.process_time() - cpu0  # includes the RSS sampler thread (small)
        step = replace(step, send_s=send_s, gen_cpu_us=gen_cpu / len(events) * 1e6)
        if send_s == float("inf"):
            step = replace(step, note="sending stopped (socket closed or send limit)")
        deadline = t_last + wait_s
        counted: int | None = None
        reconnects = 0
        stayed_up = not peer.closed
        stalled_since, last_count = t_last, -1
        while time.perf_counter() < deadline:
            if peer.closed:
                stayed_up = False
                # A real implementation reconnects (OneBot's default interval is 3 s).
                await asyncio.sleep(3)
                await peer.close()
                with contextlib.suppress(TimeoutError):
                    peer = await connect(launch.port, min(deadline, t_last + wait_s))
                    reconnects += 1
                continue
            seq += 1
            with contextlib.suppress(ConnectionError):
                await peer.send([frame(count_command(seq))])
            try:
                t_reply, text = await asyncio.wait_for(
                    peer.replies.get(), max(0.01, deadline - time.perf_counter())
                )
            except TimeoutError:
                break
            got = launch.count(text)
            if got is not None:
                counted = got
            if counted is not None and counted >= len(events):
                step = replace(step, done_s=t_reply - t0, lag_s=t_reply - t_last)
                break
            if counted != last_count:
                stalled_since, last_count = time.perf_counter(), counted if counted else 0
            elif time.perf_counter() - stalled_since > 15:
                break  # nothing moved for 15 s: the rest is lost
            await asyncio.sleep(0.2)
        stayed_up = stayed_up and not peer.closed
        step = replace(step, counted=counted, stayed_up=stayed_up, reconnects=reconnects)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(peer.close(), 5)
    except Exception as exc:
        step = replace(step, note=f"{type(exc).__name__}: {exc}"[:120])
    finally:
        if sampler is not None:
            step = replace(step, peak_rss=sampler.stop())
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)
        if step.note and log.exists():
            tail = log.read_text(encoding="utf-8", errors="replace")[-600:]
            print(f"\n  bot log tail:\n{tail}")
        shutil.rmtree(tmp, ignore_errors=True)
    print(" " + describe(step), flush=True)
    return step


def describe(s: Step) -> str:
    lag = f"lag {s.lag_s:.2f}s" if s.lag_s is not None else "no complete count"
    lost = "?" if s.lost is None else f"{s.lost:,}"
    return (
        f"sent at {s.sent_rate:,.0f}/s, {lag}, lost {lost}, RSS {s.peak_rss / 2**20:.0f} MB, "
        f"generator {s.gen_cpu_us:.0f} µs/event, "
        f"{'up' if s.stayed_up else 'CLOSED'}{f', {s.note}' if s.note else ''} → "
        f"{'kept up' if s.kept_up else 'fell behind'}"
    )


# -- the run ------------------------------------------------------------------------------------


@dataclass(slots=True)
class BotResult:
    name: str
    steps: list[Step] = field(default_factory=list)
    flood: Step | None = None

    @property
    def sustained(self) -> Step | None:
        ok = [s for s in self.steps if s.kept_up]
        return max(ok, key=lambda s: s.rate) if ok else None


async def measure(
    name: str,
    make_launch: Callable[[Path], Launch],
    rates: list[float],
    args: argparse.Namespace,
) -> BotResult:
    res = BotResult(name)

    async def step(rate: float) -> Step:
        n = max(200, min(args.max_events, round(rate * args.duration)))
        s = await run_step(name, make_launch, make_events(n), rate, args.wait)
        res.steps.append(s)
        return s

    passed, failed = 0.0, 0.0
    for rate in rates:
        if (await step(rate)).kept_up:
            passed = rate
        else:
            failed = rate
            break
    for _ in range(args.refine if failed else 0):
        mid = round((passed + failed) / 2 if passed else failed / 2)
        if mid in (passed, failed) or mid <= 0:
            break
        if (await step(mid)).kept_up:
            passed = mid
        else:
            failed = mid
    res.flood = await run_step(name, make_launch, make_events(args.flood), 0, args.flood_wait)
    return res


def table(results: list[BotResult]) -> str:
    def rate(s: Step | None) -> str:
        return f"{s.rate:,.0f}" if s else "< lowest"

    def flood(s: Step | None) -> str:
        if s is None or s.done_s is None:
            return "no complete count"
        return f"{s.events / s.done_s:,.0f}"

    def ratio(x: float | None, y: float | None) -> str:
        return f"{x / y:.1f}×" if x and y else "n/a"

    rows = [
        "| bot | sustained events/s | flood events/s | flood: lost / connection / reconnects "
        "| peak RSS at sustained | peak RSS in flood |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for r in results:
        f = r.flood
        lost = "?" if f is None or f.lost is None else f"{f.lost:,}"
        conn = "-" if f is None else ("up" if f.stayed_up else "CLOSED")
        sus = r.sustained
        rows.append(
            f"| {r.name} | {rate(sus)} | {flood(f)} | {lost} / {conn} / "
            f"{0 if f is None else f.reconnects} | "
            f"{(sus.peak_rss / 2**20 if sus else 0):.0f} MB | "
            f"{(f.peak_rss / 2**20 if f else 0):.0f} MB |"
        )
    by = {r.name: r for r in results}
    if "sopbot" in by and "nb-count" in by:
        a, c = by["nb-count"], by["sopbot"]
        fa, fc = a.flood, c.flood
        rows.append("")
        rows.append(
            "ratio (c)/(a): sustained "
            + ratio(
                c.sustained.rate if c.sustained else None,
                a.sustained.rate if a.sustained else None,
            )
            + ", flood "
            + ratio(
                fc.events / fc.done_s if fc and fc.done_s else None,
                fa.events / fa.done_s if fa and fa.done_s else None,
            )
        )
    return "\n".join(rows)


def steps_table(results: list[BotResult]) -> str:
    rows = [
        "| bot | offered | events | sent at | last send → full count | lost | conn | peak RSS | "
        "verdict |",
        "|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    rows.extend(
        f"| {s.bot} | {f'{s.rate:,.0f}/s' if s.rate else 'flood'} | {s.events:,} | "
        f"{s.sent_rate:,.0f}/s | "
        f"{f'{s.lag_s:.2f} s' if s.lag_s is not None else 'none'} | "
        f"{'?' if s.lost is None else f'{s.lost:,}'} | "
        f"{'up' if s.stayed_up else f'closed ({s.reconnects} reconnect)'} | "
        f"{s.peak_rss / 2**20:.0f} MB | "
        f"{'kept up' if s.kept_up else 'fell behind'}{f' ({s.note})' if s.note else ''} |"
        for r in results
        for s in [*r.steps, *([r.flood] if r.flood else [])]
    )
    return "\n".join(rows)


def machine() -> str:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"nproc {os.cpu_count()}, RAM {psutil.virtual_memory().total / 2**30:.1f} GiB, "
        f"CPU {cpu}, Python {platform.python_version()}, load average {load}"
    )


async def run(args: argparse.Namespace) -> int:
    rates = [float(r) for r in args.rates.split(",")]
    print("machine before:", machine(), flush=True)
    results: list[BotResult] = []
    bots = args.bots.split(",")
    python = ensure_nonebot(args.venv) if any(b.startswith("nb-") for b in bots) else None
    for name in bots:
        print(f"{name}:", flush=True)
        if name == "sopbot":
            results.append(await measure(name, launch_sopbot, rates, args))
        else:
            assert python is not None
            plugin = name.removeprefix("nb-")

            def make(tmp: Path, plugin: str = plugin, python: Path = python) -> Launch:
                return launch_nonebot(tmp, python, plugin)

            results.append(await measure(name, make, rates, args))
    print("machine after: ", machine())
    print()
    print(table(results))
    print()
    print(steps_table(results))
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small counts (about 2 minutes)")
    p.add_argument("--bots", default="nb-count,nb-sqlite,sopbot")
    p.add_argument("--rates", default="125,250,500,1000,2000,4000,8000,16000")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of events per step")
    p.add_argument("--max-events", type=int, default=100_000)
    p.add_argument("--refine", type=int, default=2, help="bisection steps after the first miss")
    p.add_argument("--flood", type=int, default=50_000, help="events in the flood")
    p.add_argument("--wait", type=float, default=30.0, help="max s from last send to full count")
    p.add_argument("--flood-wait", type=float, default=240.0)
    p.add_argument(
        "--venv",
        type=Path,
        default=Path(tempfile.gettempdir()) / "sopbot-bench-nonebot-venv",
        help="NoneBot2's virtualenv (created once, reused)",
    )
    args = p.parse_args()
    if args.quick:
        args.duration, args.refine, args.flood = 3.0, 0, 5_000
        args.rates, args.wait, args.flood_wait = "60,250,1000", 10.0, 60.0
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
