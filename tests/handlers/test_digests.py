"""Daily and weekly digests: due after daily_at, once per supervisor and day, quiet hours held."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.keys import CONFIG, DISPATCHER, ENGINE
from bot.outbox import OutboxRow
from bot.store.models import Outbox
from handlers import digests
from tests.handlers.test_dashboard_support import TZ, start

_T = Outbox.__table__  # type: ignore[attr-defined]


async def _tick(d: Any) -> int:
    deps = d.app[DISPATCHER].deps
    return await digests.digest_tick(
        engine=d.app[ENGINE],
        cfg=d.app[CONFIG],
        clock=d.clock,
        sla_report=deps["sla_report"],
        digest_queries=deps["digest_queries"],
    )


async def _rows(d: Any) -> list[Any]:
    async with d.app[ENGINE].connect() as conn:
        return list((await conn.execute(select(_T).order_by(_T.c.id))).all())


async def test_daily_digest_once_per_supervisor(
    tmp_path: Path, aiohttp_client: Any, db_url: str
) -> None:
    """After 09:00 the supervisor gets one digest of yesterday; a re-run adds none."""
    d = await start(
        tmp_path,
        aiohttp_client,
        db_url,
        digest={"daily_at": "09:00", "weekly_day": "sun", "quiet_hours": ""},
    )
    await d.clock.set(datetime(2026, 3, 11, 8, 59, tzinfo=TZ).astimezone(UTC))
    assert await _tick(d) == 0
    await d.clock.set(datetime(2026, 3, 11, 9, 1, tzinfo=TZ).astimezone(UTC))
    assert await _tick(d) == 1
    assert await _tick(d) == 0
    [row] = [r for r in await _rows(d) if r.kind == "digest"]
    assert row.idempotency_key == "digest:daily:sup:2026-03-10"
    assert row.recipient_id == "sup"
    text = OutboxRow(0, "", "", "", row.payload, row.due_at, None, 0).text
    assert "2026-03-10" in text
    assert "问题 2 个" in text
    assert "首次响应达标率" in text
    assert "超时未回复" in text  # the unanswered question in 5002


async def test_quiet_hours_hold_and_weekly(
    tmp_path: Path, aiohttp_client: Any, db_url: str
) -> None:
    """A digest due in quiet hours is held to their end; the weekly one comes on its day."""
    d = await start(
        tmp_path,
        aiohttp_client,
        db_url,
        digest={"daily_at": "07:00", "weekly_day": "wed", "weekly_at": "07:30"},
        web_extra={"public_url": "https://ops.example.cn/sopbot"},
    )
    await d.clock.set(datetime(2026, 3, 11, 7, 45, tzinfo=TZ).astimezone(UTC))  # a Wednesday
    assert await _tick(d) == 2
    rows = {r.idempotency_key: r for r in await _rows(d) if r.kind == "digest"}
    assert set(rows) == {"digest:daily:sup:2026-03-10", "digest:weekly:sup:2026-03-04"}
    for r in rows.values():
        assert r.due_at == datetime(2026, 3, 11, 8, 0, tzinfo=TZ).astimezone(UTC)
        assert "https://ops.example.cn/sopbot/" in r.payload["text"]


def test_release_time_wraps_midnight(tmp_path: Path) -> None:
    """21:00-08:00 quiet hours: 22:00 moves to 08:00 next day, 12:00 stays."""
    from tests.conftest import make_config

    cfg = make_config(tmp_path)
    late = datetime(2026, 3, 10, 22, 0, tzinfo=TZ)
    assert digests.release_time(cfg, late) == datetime(2026, 3, 11, 8, 0, tzinfo=TZ)
    noon = datetime(2026, 3, 10, 12, 0, tzinfo=TZ)
    assert digests.release_time(cfg, noon) == noon
