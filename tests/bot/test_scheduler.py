"""Ticks: APScheduler's 'skipped, still running' warning is demoted (it fires every second
under load); other scheduler warnings still reach the log; shutdown lets running ticks end."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.scheduler import Tick, TickRunner, _quiet_skipped_runs
from bot.store.db import make_engine


def test_skipped_runs_are_debug_other_warnings_stay(caplog: pytest.LogCaptureFixture) -> None:
    _quiet_skipped_runs()
    _quiet_skipped_runs()  # idempotent: one filter
    logger = logging.getLogger("apscheduler.scheduler")
    assert sum(type(f).__name__ == "_SkippedRun" for f in logger.filters) == 1
    with caplog.at_level(logging.INFO, logger="apscheduler.scheduler"):
        logger.warning(
            'Execution of job "%s" skipped: maximum number of running instances reached (%d)',
            "TickRunner.run_tick",
            1,
        )
        logger.warning("Run time of job %s was missed by %s", "x", "0:00:02")
    assert [r.getMessage() for r in caplog.records] == ["Run time of job x was missed by 0:00:02"]


async def test_stop_lets_a_running_tick_finish_and_cancels_one_past_the_grace(
    tmp_path: Path,
) -> None:
    """At shutdown a tick in the middle of its work finishes (APScheduler's own shutdown would
    cancel it mid-statement); one still running after the grace period is cancelled."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    started = {"quick": asyncio.Event(), "stuck": asyncio.Event()}
    proceed = asyncio.Event()
    ends: list[str] = []

    async def quick() -> None:
        started["quick"].set()
        await proceed.wait()
        ends.append("quick finished")

    async def stuck() -> None:
        started["stuck"].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            ends.append("stuck cancelled")
            raise

    runner = TickRunner((Tick("quick", 3600, quick), Tick("stuck", 3600, stuck)), {}, engine)
    try:
        runner.start()  # both run at once
        await started["quick"].wait()
        await started["stuck"].wait()
        stopping = asyncio.create_task(runner.stop(grace=0.2))
        for _ in range(5):
            await asyncio.sleep(0)
        assert ends == []  # stop() waits instead of cancelling
        proceed.set()
        await stopping
        assert ends == ["quick finished", "stuck cancelled"]
        assert await runner.run_tick(Tick("later", 1, quick)) is False  # stopped: no new runs
    finally:
        await engine.dispose()
