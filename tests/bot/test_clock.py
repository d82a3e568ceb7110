"""Clocks: manual time wakes sleepers in order; simulated time runs faster than real time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

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
