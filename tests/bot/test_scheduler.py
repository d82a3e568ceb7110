"""Ticks: APScheduler's 'skipped, still running' warning is demoted (it fires every second
under load); other scheduler warnings still reach the log."""

from __future__ import annotations

import logging

import pytest

from bot.scheduler import _quiet_skipped_runs


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
