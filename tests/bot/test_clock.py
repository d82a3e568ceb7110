"""Clocks: manual time wakes sleepers in order; simulated time runs faster than real time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import cli
from bot.cli import EXIT_CONFIG, main
from bot.clock import ManualClock, SimulatedClock

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


async def test_manual_clock_wakes_sleepers_in_due_order() -> None:
    """Sleepers wake in due order and see the clock at (or past) their due time."""
    clock = ManualClock(T0)
    seen: list[tuple[str, datetime]] = []

    async def sleeper(name: str, minutes: int) -> None:
        await clock.sleep_until(T0 + timedelta(minutes=minutes))
        seen.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper(n, m)) for n, m in (("c", 30), ("a", 5), ("b", 10))]
    await asyncio.sleep(0)
    assert clock.pending == 3
    await clock.advance(timedelta(minutes=12))
    assert [n for n, _ in seen] == ["a", "b"]
    assert seen[0][1] == T0 + timedelta(minutes=5)
    await clock.set(T0 + timedelta(hours=1))
    await asyncio.gather(*tasks)
    assert [n for n, _ in seen] == ["a", "b", "c"]
    assert clock.now() == T0 + timedelta(hours=1)


async def test_manual_clock_past_due_returns_at_once() -> None:
    """Sleeping until a past instant returns immediately."""
    clock = ManualClock(T0)
    await asyncio.wait_for(clock.sleep_until(T0 - timedelta(days=1)), 1)


async def test_manual_clock_refuses_to_go_back() -> None:
    """Time never moves backwards."""
    clock = ManualClock(T0)
    with pytest.raises(ValueError, match="backwards"):
        await clock.set(T0 - timedelta(seconds=1))


def test_naive_datetimes_rejected() -> None:
    """Naive datetimes are a bug; clocks refuse them."""
    with pytest.raises(ValueError, match="naive"):
        ManualClock(datetime(2026, 1, 1))  # noqa: DTZ001


async def test_simulated_clock_runs_fast() -> None:
    """At 3600x, a simulated hour passes in about a real second (not asserted on timing)."""
    clock = SimulatedClock(T0, speed=3600)
    assert clock.now() >= T0
    target = clock.now() + timedelta(seconds=36)  # 10 ms real
    await asyncio.wait_for(clock.sleep_until(target), 5)
    assert clock.now() >= target


class FakeWall:
    """Wall (and monotonic) seconds that move only when the test says so."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_simulated_clock_with_epoch_is_a_function_of_wall_time() -> None:
    """With an epoch, simulated time = start + (wall - epoch) * speed."""
    wall = FakeWall(1_000_000.0)
    clock = SimulatedClock(T0, speed=60, epoch=999_990.0, wall_time=wall)
    assert clock.now() == T0 + timedelta(minutes=10)  # 10 real seconds at 60x
    wall.now += 2.5
    assert clock.now() == T0 + timedelta(minutes=12, seconds=30)


def test_simulated_clocks_sharing_an_epoch_agree_whenever_created() -> None:
    """Two processes (one restarted much later) read the same instant from the same values."""
    wall = FakeWall(5_000.0)
    first = SimulatedClock(T0, speed=30, epoch=4_000.0, wall_time=wall)
    wall.now = 7_345.0
    restarted = SimulatedClock(T0, speed=30, epoch=4_000.0, wall_time=wall)
    assert first.now() == restarted.now() == T0 + timedelta(seconds=3_345 * 30)


def test_simulated_clock_before_its_epoch_reads_earlier_than_start() -> None:
    """A process started before the epoch sees simulated time before ``start``."""
    wall = FakeWall(100.0)
    clock = SimulatedClock(T0, speed=10, epoch=103.0, wall_time=wall)
    assert clock.now() == T0 - timedelta(seconds=30)


def test_simulated_clock_without_epoch_counts_from_creation() -> None:
    """Without an epoch the timeline starts at creation and ignores wall time."""
    mono, wall = FakeWall(50.0), FakeWall(1e9)
    clock = SimulatedClock(T0, speed=2, monotonic=mono, wall_time=wall)
    assert clock.now() == T0
    mono.now += 4
    wall.now += 1_000
    assert clock.now() == T0 + timedelta(seconds=8)


def test_simulated_clock_rejects_bad_speed() -> None:
    """Speed must be positive."""
    with pytest.raises(ValueError, match="positive"):
        SimulatedClock(T0, speed=0, epoch=0.0)


def _run_config(tmp_path: Path) -> Path:
    path = tmp_path / "sopbot.toml"
    path.write_text(f'[bot]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--simulate-epoch", "1700000000"], "--simulate-epoch needs --simulate-from"),
        (["--speed", "60"], "--speed needs --simulate-from"),
        (["--simulate-from", "2026-03-10T10:00", "--speed", "0"], "--speed must be positive"),
        (
            ["--simulate-from", "2026-03-10T10:00", "--simulate-epoch", "nan"],
            "--simulate-epoch must be a finite unix time",
        ),
        (["--simulate-from", "yesterday"], "not an ISO 8601 time"),
    ],
)
def test_run_refuses_inconsistent_clock_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    """``sopbot run`` clock flags that do not fit together: one line, exit status 2."""
    status = main(["run", "--config", str(_run_config(tmp_path)), *flags])
    assert status == EXIT_CONFIG
    assert message in capsys.readouterr().err


def test_run_builds_the_shared_timeline_from_the_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--simulate-from/--speed/--simulate-epoch`` reach the served app's clock."""
    served: list[Any] = []
    monkeypatch.setattr(cli, "_serve", lambda cfg, clock, banner=None: served.append(clock))
    start = datetime.fromisoformat("2026-03-10T10:00:00+08:00")
    argv = ["run", "--config", str(_run_config(tmp_path)), "--simulate-from", start.isoformat()]
    before = time.time()
    assert main([*argv, "--speed", "60", "--simulate-epoch", "1700000000"]) == 0
    [clock] = served
    assert isinstance(clock, SimulatedClock)
    assert clock.speed == 60
    # The epoch lies in the past: simulated now = start + (wall - epoch) * 60, bounded by the
    # wall time read before the call and after it.
    now = clock.now()
    after = time.time()
    assert start + timedelta(seconds=(before - 1.7e9) * 60) <= now
    assert now <= start + timedelta(seconds=(after - 1.7e9) * 60)
