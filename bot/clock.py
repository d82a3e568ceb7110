"""Injected clocks. Runtime code never calls ``datetime.now()``: it asks a Clock.

- ``SystemClock``: wall time.
- ``SimulatedClock``: starts at a chosen instant and runs ``speed`` times faster than real time
  (``sopbot run --simulate-from ISO --speed N``); the scheduler, SLA timers and reports follow it.
  With an ``epoch`` (``--simulate-epoch``: the unix time at which simulated time was ``start``)
  it is a function of wall time, so several processes, and a process restarted later, share one
  simulated timeline.
- ``ManualClock``: moves only when a test (or a replay) calls ``advance``/``set``; sleepers wake
  as soon as their due time is reached, so tests never sleep to wait for a schedule.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return once ``now() >= when`` (immediately if already past)."""
        ...

    @property
    def speed(self) -> float:
        """Simulated seconds per real second (1 for wall time)."""
        ...


def _require_aware(when: datetime) -> None:
    if when.tzinfo is None:
        raise ValueError("naive datetime given to a clock; use aware UTC datetimes")


class SystemClock:
    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        _require_aware(when)
        # Re-check after each sleep: the wall clock can jump (NTP) while we wait.
        while (delay := (when - self.now()).total_seconds()) > 0:
            await asyncio.sleep(min(delay, 60.0))


class SimulatedClock:
    """Simulated time running ``speed`` times faster than real time from ``start``.

    Without ``epoch``: ``start + (monotonic seconds since creation) * speed``, one process's own
    timeline. With ``epoch`` (unix seconds at which simulated time equals ``start``):
    ``start + (wall_time() - epoch) * speed``, the same instant in every process that was given
    the same three values, whenever it started (before ``epoch`` it reads earlier than ``start``).
    ``wall_time`` and ``monotonic`` are injectable for tests.
    """

    def __init__(
        self,
        start: datetime,
        speed: float = 1.0,
        *,
        epoch: float | None = None,
        wall_time: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        _require_aware(start)
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start = start.astimezone(UTC)
        self._speed = float(speed)
        if epoch is None:
            self._elapsed = self._since(monotonic, monotonic())
        else:
            self._elapsed = self._since(wall_time, float(epoch))

    @staticmethod
    def _since(source: Callable[[], float], t0: float) -> Callable[[], float]:
        return lambda: source() - t0

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed() * self._speed)

    async def sleep_until(self, when: datetime) -> None:
        _require_aware(when)
        while (delay := (when - self.now()).total_seconds()) > 0:
            await asyncio.sleep(min(delay / self._speed, 60.0))


class ManualClock:
    """A clock that only moves when told to; for tests and deterministic replays."""

    speed = 1.0

    def __init__(self, start: datetime) -> None:
        _require_aware(start)
        self._now = start.astimezone(UTC)
        self._waiters: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        _require_aware(when)
        if when <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (when, next(self._seq), fut))
        await fut

    async def set(self, when: datetime) -> None:
        """Jump to ``when`` (never backwards) and let every due sleeper run."""
        _require_aware(when)
        if when < self._now:
            raise ValueError("ManualClock cannot go backwards")
        # Wake sleepers in due order, moving time to each due point, so that a sleeper woken at
        # 10:00 that schedules work for 10:05 is still served before a later jump target.
        while self._waiters and self._waiters[0][0] <= when:
            due, _, fut = heapq.heappop(self._waiters)
            self._now = max(self._now, due)
            if not fut.done():
                fut.set_result(None)
            for _ in range(5):
                await asyncio.sleep(0)
        self._now = when
        for _ in range(5):
            await asyncio.sleep(0)

    async def advance(self, delta: timedelta | float) -> None:
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        await self.set(self._now + timedelta(seconds=seconds))

    @property
    def pending(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())
