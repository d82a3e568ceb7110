"""SOP runtime: materialization, holidays, overrides, lifecycle, restart and late reminders."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import ManualClock
from bot.outbox import OutboxDispatcher, OutboxRow
from bot.roster import Roster
from bot.store import tasks as store
from bot.store.models import Outbox
from handlers import sop_plan
from handlers.sop_plan import SopRuntime
from sop.lifecycle import Customer
from tests.conftest import make_config

TZ = ZoneInfo("Asia/Shanghai")
TUE = date(2026, 3, 10)
HOLIDAY = date(2026, 10, 1)  # National Day
_OUT = Outbox.__table__  # type: ignore[attr-defined]


def local(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, hh, mm, tzinfo=TZ).astimezone(UTC)


def runtime(tmp_path: Path, engine: AsyncEngine, clock: ManualClock, **sop: Any) -> SopRuntime:
    cfg = make_config(tmp_path, sop={"builtin_programs": False, **sop})
    return SopRuntime(cfg, Roster.from_config(cfg), engine, clock)


async def outbox_rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(select(_OUT).order_by(_OUT.c.due_at)))


async def test_materializes_today_and_tomorrow_once(tmp_path: Path, engine: AsyncEngine) -> None:
    """The first tick builds 3+3+3 for today and tomorrow; a restarted runtime adds nothing."""
    clock = ManualClock(local(TUE, 7))
    sop = runtime(tmp_path, engine, clock)
    await sop.tick()
    async with engine.connect() as conn:
        today = await store.tasks_on(conn, TUE)
        tomorrow = await store.tasks_on(conn, TUE + timedelta(days=1))
    assert [(r.guide_id, r.step, r.quota) for r in today] == [
        ("wang", "moments", 3),
        ("wang", "private_chats", 3),
        ("wang", "group_posts", 3),
    ]
    assert len(tomorrow) == 3
    assert today[0].window_end == local(TUE, 22)
    again = runtime(tmp_path, engine, clock)
    assert await again.materialize(TUE) == 0


async def test_holidays_off_unless_overridden(tmp_path: Path, engine: AsyncEngine) -> None:
    """National Day has no tasks; a guide override with work_on_holidays gets them."""
    clock = ManualClock(local(HOLIDAY, 7))
    assert await runtime(tmp_path, engine, clock).materialize(HOLIDAY) == 0
    sop = runtime(
        tmp_path,
        engine,
        clock,
        overrides=[
            {
                "scope": "guide",
                "target": "wang",
                "work_on_holidays": True,
                "steps": [{"name": "moments", "quota": 5}],
                "remove_steps": ["group_posts"],
            }
        ],
    )
    assert await sop.materialize(HOLIDAY) == 2
    async with engine.connect() as conn:
        rows = await store.tasks_on(conn, HOLIDAY)
    assert {(r.step, r.quota) for r in rows} == {("moments", 5), ("private_chats", 3)}


async def test_plan_edit_applies_from_next_day(tmp_path: Path, engine: AsyncEngine) -> None:
    """Editing the plan leaves today's rows alone and changes tomorrow's new rows."""
    clock = ManualClock(local(TUE, 7))
    await runtime(tmp_path, engine, clock).materialize(TUE)
    edited = [{"id": "v2", "version": 2, "steps": [{"name": "moments", "quota": 1}]}]
    sop = runtime(tmp_path, engine, clock, plans=edited)
    await sop.materialize(TUE)
    await sop.materialize(TUE + timedelta(days=1))
    async with engine.connect() as conn:
        today = await store.tasks_on(conn, TUE)
        tomorrow = await store.tasks_on(conn, TUE + timedelta(days=1))
    assert len(today) == 3
    assert [(r.step, r.quota) for r in tomorrow] == [("moments", 1)]


async def test_paged_materialize_plans_what_one_pass_would(
    tmp_path: Path, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guides and customers planned a few at a time (pages of 2 and 3 here) make exactly the
    tasks one pass over everyone makes: every customer once, the pages' ends included."""
    monkeypatch.setattr(sop_plan, "GUIDE_PAGE", 2)
    monkeypatch.setattr(sop_plan, "CUSTOMER_PAGE", 3)
    guides = [
        {"id": f"g{n}", "name": f"导购{n}", "role": "guide", "onebot_user_ids": [str(8000 + n)]}
        for n in range(5)
    ]
    cfg = make_config(tmp_path, operators=guides, groups=[], sop={"builtin_programs": True})
    clock = ManualClock(local(TUE, 7))
    sop = SopRuntime(cfg, Roster.from_config(cfg), engine, clock)
    async with engine.begin() as conn:
        for n in range(100):
            # Added 0..99 days ago: day 0, day 15 and month marks of both programs come up.
            added = datetime.combine(TUE, datetime.min.time(), TZ) - timedelta(days=n)
            bought = added + timedelta(days=n % 7) if n % 2 else None
            guide = "nobody" if n == 7 else f"g{n % 5}"
            row = store.CustomerRow(
                "onebot11", f"c{n}", guide, added.astimezone(UTC), bought, "import"
            )
            await store.upsert_customer(conn, row)
        everyone = await store.customers(conn, tz=TZ)
    expected = {
        (t.guide_id, t.step, t.target_key)
        for t in sop.quota_tasks(TUE) + sop.customer_tasks(everyone, TUE)
    }
    assert len([t for t in expected if t[2]]) > 10  # lifecycle tasks spread over the pages

    assert await sop.materialize(TUE) == len(expected)
    async with engine.connect() as conn:
        stored = {(r.guide_id, r.step, r.target_key) for r in await store.tasks_on(conn, TUE)}
    assert stored == expected
    assert await SopRuntime(cfg, Roster.from_config(cfg), engine, clock).materialize(TUE) == 0


async def test_new_day_refreshes_planner_statistics_on_postgresql(
    tmp_path: Path, engine: AsyncEngine
) -> None:
    """PostgreSQL: materializing a day analyzes the task table, so the reminders' reads of
    that day are planned with it in the statistics (not a scan of the whole day per page)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("planner statistics are PostgreSQL's")
    # pg_stats is the catalog itself (transactional), not the cumulative activity statistics.
    stats = text(
        "SELECT most_common_vals::text FROM pg_stats"
        " WHERE tablename = 'task_instance' AND attname = 'local_date'"
    )
    async with engine.connect() as conn:
        assert (await conn.execute(stats)).first() is None
    clock = ManualClock(local(TUE, 7))
    assert await runtime(tmp_path, engine, clock).materialize(TUE) == 3
    async with engine.connect() as conn:
        row = (await conn.execute(stats)).first()
    assert row is not None
    assert TUE.isoformat() in str(row[0])


async def test_lifecycle_tasks_land_in_slot_reminder(tmp_path: Path, engine: AsyncEngine) -> None:
    """A customer's welcome (day 0) appears as a named task in the guide's slot reminder."""
    clock = ManualClock(local(TUE, 8))
    sop = runtime(
        tmp_path,
        engine,
        clock,
        builtin_programs=True,
        plans=[
            {
                "id": "p",
                "steps": [{"name": "moments", "quota": 1}],
                "slots": [{"name": "m", "at": "09:12", "jitter_min": 10}],
            }
        ],
    )
    async with engine.begin() as conn:
        await sop.materialize_customer(conn, Customer("cust-1", "wang", TUE), clock.now())
    await clock.set(local(TUE, 9, 25))
    await sop.tick()
    (row,) = await outbox_rows(engine)
    assert row.recipient_id == "wang"
    assert "客户任务：\n· cust-1：欢迎问候（关怀）" in row.payload["text"]


async def test_restart_late_and_missed_reminders(tmp_path: Path, engine: AsyncEngine) -> None:
    """Down over a slot: sent late (补发) inside its window, missed after; never twice."""
    clock = ManualClock(local(TUE, 7))
    sop = runtime(tmp_path, engine, clock)
    await sop.tick()
    # Down 07:00-14:40: the morning window closed at the afternoon slot; that one is 23+ min late.
    await clock.set(local(TUE, 14, 40))
    restarted = runtime(tmp_path, engine, clock)
    assert await restarted.tick() == 2
    assert await runtime(tmp_path, engine, clock).tick() == 0  # another restart: no repeat
    sent: list[OutboxRow] = []

    async def send(row: OutboxRow) -> None:
        sent.append(row)

    stats = await OutboxDispatcher(engine=engine, clock=clock, sender=send, owner="t").run_once()
    assert (stats.missed, stats.sent) == (1, 1)
    assert sent[0].text.startswith("【今日SOP提醒】（补发）")
    rows = await outbox_rows(engine)
    assert [(r.payload["local_date"], r.status) for r in rows] == [
        ("2026-03-10", "missed"),
        ("2026-03-10", "sent"),
    ]


async def test_missed_tasks_after_window(tmp_path: Path, engine: AsyncEngine) -> None:
    """After window_end the unfinished tasks are marked missed by the tick."""
    clock = ManualClock(local(TUE, 7))
    sop = runtime(tmp_path, engine, clock)
    await sop.tick()
    await clock.set(local(TUE, 22, 1))
    await sop.tick()
    async with engine.connect() as conn:
        rows = await store.tasks_on(conn, TUE)
    assert {r.status for r in rows} == {"missed"}
