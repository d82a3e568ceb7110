"""Ticks: a few code-defined periodic jobs on APScheduler 3 (never one job per guide task).

Tick bodies read the injected clock, so under a simulated clock a tick every real second covers
``speed`` simulated seconds. On PostgreSQL each tick runs under a session advisory lock, so with
several processes a tick runs in one of them at a time.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("sopbot.scheduler")

TickFunc = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Tick:
    name: str
    every: float  # real seconds between runs
    func: TickFunc


def _kwargs_for(func: TickFunc, deps: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(func).parameters
    return {k: v for k, v in deps.items() if k in params}


class TickRunner:
    def __init__(self, ticks: tuple[Tick, ...], deps: dict[str, Any], engine: AsyncEngine) -> None:
        self._ticks = ticks
        self._deps = deps
        self._engine = engine
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._running: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @property
    def ticks(self) -> tuple[Tick, ...]:
        return self._ticks

    async def run_tick(self, tick: Tick) -> bool:
        """Run one tick now (tests call this directly); False if another process holds it."""
        if self._stopping:
            return False
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            return await self._run_locked(tick)
        except asyncio.CancelledError:
            if self._stopping:
                return False  # stopped mid-tick at shutdown: expected, not a job failure
            raise
        finally:
            if task is not None:
                self._running.discard(task)

    async def _run_locked(self, tick: Tick) -> bool:
        if self._engine.dialect.name == "postgresql":
            key = zlib.crc32(f"sopbot:tick:{tick.name}".encode())
            async with self._engine.connect() as conn:
                got = await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
                if not got.scalar_one():
                    return False
                try:
                    await self._call(tick)
                finally:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    await conn.commit()
            return True
        await self._call(tick)
        return True

    async def _call(self, tick: Tick) -> None:
        try:
            await tick.func(**_kwargs_for(tick.func, self._deps))
        except Exception:
            log.exception("tick %s failed", tick.name)

    def start(self) -> None:
        _quiet_skipped_runs()
        for tick in self._ticks:
            self._scheduler.add_job(
                self.run_tick,
                IntervalTrigger(seconds=tick.every),
                args=[tick],
                id=f"tick:{tick.name}",
                replace_existing=True,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                next_run_time=datetime.now(UTC),  # first run at once; APScheduler wants wall time
            )
        self._scheduler.start()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop scheduling, let running ticks finish (up to ``grace`` s), then cancel the rest.

        Waiting, not cancelling at once: a tick cancelled inside a database call leaves its
        statement to the driver's thread and its connection to be invalidated. The scheduler is
        paused first because APScheduler's own shutdown cancels every running job.
        """
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.pause()
        late: set[asyncio.Task[Any]] = set()
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=grace)
            if late:
                log.warning(
                    "%d tick(s) still running %.0fs into shutdown; cancelling", len(late), grace
                )
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)  # cancels whatever still runs
        for task in late:
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)


class _SkippedRun(logging.Filter):
    """A tick still running when its next run comes is skipped (max_instances=1, coalesced):
    expected under load, and APScheduler's warning for it would fill the log once a second."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "maximum number of running instances reached" in str(record.msg):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger("apscheduler.scheduler").isEnabledFor(logging.DEBUG)
        return True


def _quiet_skipped_runs() -> None:
    logger = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, _SkippedRun) for f in logger.filters):
        logger.addFilter(_SkippedRun())
