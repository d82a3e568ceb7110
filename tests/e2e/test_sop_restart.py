"""Restart safety: a real ``sopbot run`` is SIGKILLed 20 times while dispatching one slot.

The receiving side is a fake OneBot server in this process (it survives the kills). Every run
starts its simulated clock past the previous run's leases, so interrupted rows are re-claimed.
Each of the 40 guides must receive its morning reminder exactly once after the receiver's
duplicate check (same recipient + same content within the interval, which is how WeCom's
``enable_duplicate_check`` works), nothing may be lost, and the bot itself may re-send at most
the one message that was in flight at each kill (the send→mark-sent window).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.fakes.onebot import FakeOneBot

pytestmark = pytest.mark.integration

GUIDES = 40
KILLS = 20
SPEED = 60.0
LEASE_S = 30
TOKEN = "restart-token"
START = datetime(2026, 3, 10, 9, 23, tzinfo=ZoneInfo("Asia/Shanghai"))  # all jitters passed
ROOT = Path(__file__).resolve().parents[2]


def _config(tmp: Path, ws_url: str) -> Path:
    sup = '[[operators]]\nid = "sup"\nname = "主管"\nrole = "supervisor"\n'
    ops = [sup]
    ops.extend(
        f'[[operators]]\nid = "g{i:02d}"\nname = "导购{i:02d}"\nrole = "guide"\n'
        f'onebot_user_ids = ["{8100 + i}"]\nsupervisor = "sup"\nstore = "店{i % 4}"\n'
        for i in range(GUIDES)
    )
    text = f"""
[bot]
database_url = "sqlite+aiosqlite:///{tmp / "bot.db"}"
log_level = "WARNING"

[web]
host = "127.0.0.1"
port = 0

[gateway.onebot]
mode = "forward-ws"
url = "{ws_url}"
access_token = "{TOKEN}"

[delivery]
every = 0.05
total_per_second = 0
per_recipient_per_minute = 0
lease = "{LEASE_S}s"
max_attempts = 100

[sop]
builtin_programs = false
grace = "2h"

[[sop.plans]]
id = "restart"
role = "guide"
steps = [{{ name = "moments", quota = 1 }}]
slots = [{{ name = "morning", at = "09:12", jitter_min = 10 }}]
window_end = "22:00"

{"".join(ops)}
"""
    path = tmp / "sopbot.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def _start(config: Path, sim: datetime) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "--config",
        str(config),
        "--simulate-from",
        sim.isoformat(),
        "--speed",
        str(SPEED),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def _sent(fake: FakeOneBot) -> list[tuple[int, str]]:
    out = []
    for c in fake.calls_of("send_private_msg"):
        msg = c["params"]["message"]
        text = msg if isinstance(msg, str) else "".join(s["data"].get("text", "") for s in msg)
        out.append((int(c["params"]["user_id"]), text))
    return out


async def _wait(check: object, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.002)
    return False


@pytest.mark.timeout(420)
async def test_sigkill_during_slot_dispatch_delivers_each_reminder_once(tmp_path: Path) -> None:
    """20 SIGKILLs mid-dispatch: no reminder lost, none duplicated after the duplicate check."""
    fake = FakeOneBot("10001", token=TOKEN)
    url = await fake.serve()
    config = _config(tmp_path, url)
    sim = START
    kills = 0
    try:
        for run in range(KILLS + 1):
            before = len(_sent(fake))
            proc = await _start(config, sim)
            began = time.monotonic()
            if run < KILLS:
                # Kill right after the receiver answered the (1..3)-th send of this run: the
                # bot is between "sent" and "marked sent", or a step later.
                target = before + 1 + run % 3
                await _wait(lambda t=target: len(_sent(fake)) >= t, 60)
                if run % 2:
                    await asyncio.sleep(0.001 * (run % 5))
                proc.send_signal(signal.SIGKILL)
                kills += 1
            else:
                # Generous: on a loaded machine the last run needs time to start and finish.
                await _wait(lambda: len({u for u, _ in _sent(fake)}) >= GUIDES, 180)
                await asyncio.sleep(1.0)  # anything left in flight would show up now
                proc.send_signal(signal.SIGKILL)
            await proc.wait()
            elapsed = time.monotonic() - began
            # Next run starts after this run's simulated time plus the lease.
            sim = sim + timedelta(seconds=elapsed * SPEED + LEASE_S + 1)
    finally:
        await fake.close()

    sent = _sent(fake)
    per_guide = Counter(uid for uid, _ in sent)
    deduped = Counter(uid for uid, _ in set(sent))  # WeCom-style duplicate check
    assert kills == KILLS
    assert sorted(deduped) == [8100 + i for i in range(GUIDES)]
    assert set(deduped.values()) == {1}, "a guide received two different reminders"
    raw_duplicates = sum(n - 1 for n in per_guide.values())
    assert raw_duplicates <= KILLS, "more re-sends than crashes"
    db = sqlite3.connect(tmp_path / "bot.db")
    try:
        statuses = Counter(
            s for (s,) in db.execute("SELECT status FROM outbox WHERE kind = 'sop_slot'")
        )
    finally:
        db.close()
    assert statuses == {"sent": GUIDES}
