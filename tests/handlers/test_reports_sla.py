"""SLA report: rollups give the exact SQL numbers at any as_of; incremental rollups = rebuild."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.reports import Basis, ReportRequest
from bot.store import questions as store
from bot.store import sla_rollup
from bot.store.models import SlaRollup
from handlers import reports_sla
from sop.calendar import default_calendar
from sop.policy import SlaPolicy
from sop.questions import QuestionEngine
from tests.conftest import make_config

TZ = ZoneInfo("Asia/Shanghai")
CAL = default_calendar()
G1, G2, G3 = "onebot11:5001", "onebot11:5002", "onebot11:5003"
OWNERS = {G1: ("li",), G2: ("li", "wang"), G3: ()}


def at(d: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 3, d, hh, mm, ss, tzinfo=TZ).astimezone(UTC)


def _engine() -> QuestionEngine:
    return QuestionEngine(
        SlaPolicy(), calendar_of=lambda c: CAL, owners_of=lambda c: OWNERS.get(c, ())
    )


def _ctx(eng: QuestionEngine, now: datetime) -> store.RowContext:
    return store.RowContext(policy_of=eng.policy_for, calendar_of=lambda c: CAL, tz=TZ, now=now)


async def _scenario(db: AsyncEngine) -> QuestionEngine:
    """Three days (Tue-Thu) of answered, unanswered, dismissed, holding and resolved questions.

    FRTs sit on histogram bucket edges so rollup percentiles equal the exact ones.
    """
    eng = _engine()

    def ask(chat: str, n: int, t: datetime) -> list[Any]:
        return eng.on_customer_message(
            chat, f"m{n}", f"onebot11:c{n}", t, is_question=True, question_id=f"Q{n}"
        )

    def reply(chat: str, n: int, who: str, t: datetime, **kw: Any) -> list[Any]:
        return eng.on_staff_message(chat, f"s{n}", who, t, **kw)

    steps: list[tuple[datetime, list[Any]]] = []
    steps.append((at(10, 10, 0), ask(G1, 1, at(10, 10, 0))))
    steps.append((at(10, 10, 2), reply(G1, 1, "li", at(10, 10, 2), reply_to_msg_id="m1")))
    steps.append((at(10, 10, 1), ask(G2, 2, at(10, 10, 1))))
    steps.append((at(10, 10, 7), reply(G2, 2, "wang", at(10, 10, 7))))
    steps.append((at(10, 10, 3), ask(G1, 3, at(10, 10, 3))))
    steps.append((at(10, 10, 4), ask(G2, 4, at(10, 10, 4))))
    steps.append((at(10, 10, 8), eng.dismiss("Q4", by="li", reason="spam", at=at(10, 10, 8))))
    steps.append((at(10, 10, 10), ask(G3, 5, at(10, 10, 10))))
    steps.append(
        (
            at(10, 10, 11),
            eng.on_staff_message(
                G3, "s5", "zhao", at(10, 10, 11), reply_to_msg_id="m5", is_holding=True
            ),
        )
    )
    steps.append((at(10, 11, 0), eng.flag_followup_breaches(at(10, 11, 0))))
    steps.append((at(10, 11, 0), eng.resolve("Q1", by="li", at=at(10, 11, 0), method="command")))
    steps.append((at(11, 15, 0), ask(G1, 6, at(11, 15, 0))))
    steps.append(
        (
            at(11, 15, 1, 30),
            reply(G1, 6, "li", at(11, 15, 1, 30), reply_to_msg_id="m6"),
        )
    )
    steps.append((at(11, 15, 5), ask(G3, 7, at(11, 15, 5))))
    steps.append((at(12, 9, 30), ask(G1, 8, at(12, 9, 30))))
    steps.append(
        (
            at(12, 9, 35),
            reply(G1, 8, "wang", at(12, 9, 35), reply_to_msg_id="m8"),
        )
    )
    for now, effects in steps:
        async with db.begin() as conn:
            await store.save_effects(conn, effects, _ctx(eng, now))
    return eng


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    """Everything but censored lower bounds (rollups round them down to the opened hour)."""
    return {
        k: v
        for k, v in row.items()
        if not k.endswith("_above_s") and not (isinstance(v, str) and v.startswith(">"))
    }


BASES: tuple[Basis, ...] = ("business", "calendar")
AS_OFS = (at(10, 10, 5), at(10, 12, 0), at(12, 10, 0), at(15, 12, 0))


async def _both(
    db: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, req: ReportRequest
) -> tuple[list[Any], list[Any]]:
    cfg = make_config(tmp_path)
    exact = await reports_sla.build(db, cfg, req)
    with monkeypatch.context() as m:
        m.setattr(reports_sla, "EXACT_LIMIT", -1)
        m.setattr(reports_sla, "MOVING_SHARE", 1e9)
        rolled = await reports_sla.build(db, cfg, req)
    return exact, rolled


@pytest.mark.parametrize("basis", BASES)
async def test_rollups_match_the_exact_report_at_any_as_of(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, basis: Basis
) -> None:
    """Every view, both link views, as_of in the past and now: rollups = exact SQL."""
    await _scenario(engine)
    for as_of in AS_OFS:
        for strict in (True, False):
            req = ReportRequest(
                date(2026, 3, 10),
                date(2026, 3, 12),
                as_of,
                basis=basis,
                strict=strict,
            )
            exact, rolled = await _both(engine, tmp_path, monkeypatch, req)
            assert "rollups" in rolled[0].notes[1]
            assert "exactly in SQL" in exact[0].notes[1]
            for e, r in zip(exact, rolled, strict=True):
                assert [_comparable(x) for x in e.rows] == [_comparable(x) for x in r.rows], (
                    e.title,
                    as_of,
                    strict,
                )


async def test_owners_team_queue_and_resolution_p50(engine: AsyncEngine, tmp_path: Path) -> None:
    """Groups without owners count under operator ""; resolution p50 is reported."""
    await _scenario(engine)
    cfg = make_config(tmp_path)
    req = ReportRequest(date(2026, 3, 10), date(2026, 3, 12), at(15, 12, 0), view="operators")
    [table] = await reports_sla.build(engine, cfg, req)
    ops = {r["operator"]: r for r in table.rows}
    assert ops[""]["owned_questions"] == 2  # Q5 and Q7 in the ownerless group
    assert ops[""]["owned_backlog_now"] == 1
    assert ops["zhao"]["first_responses"] == 1
    assert ops["zhao"]["credit_followup_breach_rate"] == 1.0
    [summary] = await reports_sla.build(
        engine,
        cfg,
        ReportRequest(date(2026, 3, 10), date(2026, 3, 10), at(15, 12, 0), view="summary"),
    )
    assert summary.rows[0]["resolution_p50_s"] == 3600.0  # Q1: 10:00 → 11:00


async def _rollup_rows(db: AsyncEngine) -> dict[tuple[str, str, str, str], tuple[int, ...]]:
    t = SlaRollup.__table__  # type: ignore[attr-defined]
    async with db.connect() as conn:
        rows = (await conn.execute(select(t))).all()
    return {
        (r.local_date, r.dim, r.key, r.variant): tuple(
            sla_rollup.from_bytes(getattr(r, c)) for c in ("counts", "frt", "res", "cens")
        )
        for r in rows
    }


async def test_incremental_rollups_equal_a_rebuild_after_late_events(engine: AsyncEngine) -> None:
    """A late answer and a late dismissal move their day's rollup; a rebuild agrees."""
    eng = await _scenario(engine)
    # Days later: a staff reply to Q3 arrives (backfilled) and Q7 is dismissed.
    late = [
        eng.on_staff_message(G1, "s3", "li", at(10, 16, 0), reply_to_msg_id="m3"),
        eng.dismiss("Q7", by="li", reason="test message", at=at(14, 9, 0)),
    ]
    for effects in late:
        async with engine.begin() as conn:
            await store.save_effects(conn, effects, _ctx(eng, at(14, 9, 0)))
    incremental = await _rollup_rows(engine)
    async with engine.begin() as conn:
        days = await sla_rollup.all_days(conn)
        assert await sla_rollup.missing_days(conn) == []
        await sla_rollup.rebuild_days(
            conn, days, calendar_of=lambda c: CAL, tz=TZ, now=at(14, 9, 0)
        )
    rebuilt = await _rollup_rows(engine)
    nonzero = {k: v for k, v in incremental.items() if any(v)}
    assert nonzero == rebuilt
    day = sla_rollup.unpack_counts(rebuilt[("2026-03-11", "day", "", "business/strict")][0])
    assert day["n_dismissed"] == 1


def test_histogram_buckets_round_down_to_documented_widths() -> None:
    """Bucket floors: 1 s < 2 min, 5 s < 10 min, 30 s < 1 h, 5 min < 4 h, 30 min < 48 h."""
    cases = [
        (0, 0),
        (119.9, 119),
        (120, 120),
        (123, 120),
        (600, 600),
        (629, 600),
        (3600, 3600),
        (3899, 3600),
        (14400, 14400),
        (16199, 14400),
        (200000, 172800),
    ]
    for seconds, floor in cases:
        assert sla_rollup.bucket_floor(sla_rollup.frt_bucket(seconds)) == floor
    assert sla_rollup.unpack_counts(sla_rollup.pack_counts({"n_cohort": 3, "frt_sum": 1.5})) == {
        **dict.fromkeys(sla_rollup.COUNTERS, 0),
        "n_cohort": 3,
        "frt_sum": 1.5,
    }


def test_business_axis_positions_subtract_to_business_seconds() -> None:
    """position(b) - position(a) equals business_seconds(a, b), across days and holidays."""
    axis = sla_rollup.axis_of(CAL)
    a = at(10, 11, 30)
    for b in (a + timedelta(hours=3), at(13, 9, 0), datetime(2026, 4, 7, 10, tzinfo=TZ)):
        assert axis.position(b) - axis.position(a) == pytest.approx(CAL.business_seconds(a, b))


async def test_dashboard_backlog_from_rollups_equals_the_full_scan(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overview's backlog bands from rollups + moving questions = scanning every question."""
    from bot.webauth import Principal
    from handlers.dashboard import data

    await _scenario(engine)
    admin = Principal("a", "a", "admin", "", None)
    for as_of in (*AS_OFS, at(10, 10, 3), at(12, 9, 31), at(20, 0, 0)):
        for strict in (True, False):
            async with engine.connect() as conn:
                scan = await data.backlog_bands(conn, admin, as_of, strict)
                with monkeypatch.context() as m:
                    m.setattr(data, "ROLLUP_BACKLOG_MIN", -1)
                    rolled = await data.backlog_bands(conn, admin, as_of, strict)
            assert rolled == scan, (as_of, strict)
    assert sum(scan.values()) > 0


def test_buckets_in_sql_equal_buckets_in_python() -> None:
    """bucket_sql (SQLite) puts every duration in the bucket frt_bucket stores it in."""
    import sqlite3

    from sqlalchemy import column
    from sqlalchemy.dialects import sqlite

    expr = sla_rollup.bucket_sql(column("v"), "sqlite")
    sql = str(expr.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    values = [0.0, 0.4, 119.999999, 120 - 1e-6, 120.0, 599.9999995, 3600.0, 14399.9, 172800.0]
    values += [i * 0.37 for i in range(0, 600_000, 97)]
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (v REAL)")
    db.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values])
    got = [r[0] for r in db.execute(f"SELECT {sql} FROM t ORDER BY rowid")]
    assert got == [sla_rollup.frt_bucket(v) for v in values]


# --- the rollups' watermark ---------------------------------------------------------------------

# Before every question, between their answers and resolutions, and after all of them settle.
MARKS = (at(9, 0, 0), at(10, 10, 5), at(10, 12, 0), at(11, 15, 3), at(12, 10, 0), at(20, 0, 0))


async def _move(db: AsyncEngine, to: datetime, limit: int | None = None) -> int:
    async with db.begin() as conn:
        n, _ = await sla_rollup.move_watermark(
            conn, to, calendar_of=lambda c: CAL, tz=TZ, now=at(20, 0, 0), limit=limit
        )
    return n


async def _rebuilt(db: AsyncEngine) -> dict[tuple[str, str, str, str], tuple[int, ...]]:
    """The rollups a rebuild at the current watermark gives (the store is left rebuilt)."""
    async with db.begin() as conn:
        days = await sla_rollup.all_days(conn)
        await sla_rollup.rebuild_days(
            conn, days, calendar_of=lambda c: CAL, tz=TZ, now=at(20, 0, 0)
        )
    return await _rollup_rows(db)


async def test_rollups_hold_exactly_the_questions_settled_by_the_watermark(
    engine: AsyncEngine,
) -> None:
    """Moving the watermark forth and back in any order leaves what a rebuild there gives."""
    await _scenario(engine)
    for mark in (MARKS[3], MARKS[0], MARKS[5], MARKS[1], MARKS[4], MARKS[2], sla_rollup.INF):
        await _move(engine, mark)
        moved = {k: v for k, v in (await _rollup_rows(engine)).items() if any(v)}
        assert moved == await _rebuilt(engine), mark
    async with engine.connect() as conn:
        assert await sla_rollup.watermark(conn) == sla_rollup.INF
    await _move(engine, MARKS[0])
    assert not any(any(v) for v in (await _rollup_rows(engine)).values())


async def test_a_bounded_fold_stops_on_a_settle_time_and_ends_where_one_pass_does(
    engine: AsyncEngine,
) -> None:
    await _scenario(engine)
    await _move(engine, MARKS[0])
    passes, moved = 0, 0
    while True:
        async with engine.connect() as conn:
            if await sla_rollup.watermark(conn) >= MARKS[5]:
                break
        moved += await _move(engine, MARKS[5], limit=2)
        passes += 1
    assert moved == 8  # every question once
    assert passes >= 4
    stepwise = await _rollup_rows(engine)
    await _move(engine, MARKS[0])
    await _move(engine, MARKS[5])
    assert await _rollup_rows(engine) == stepwise


@pytest.mark.parametrize("mark", MARKS)
async def test_reports_from_rollups_match_the_exact_report_at_any_watermark(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mark: datetime
) -> None:
    """Rollups cut at any watermark (before, between, after as_of) + the rest in SQL = exact."""
    from bot.webauth import Principal
    from handlers.dashboard import data

    await _scenario(engine)
    await _move(engine, mark)
    admin = Principal("a", "a", "admin", "", None)
    for as_of in AS_OFS:
        for strict in (True, False):
            for basis in BASES:
                req = ReportRequest(
                    date(2026, 3, 10), date(2026, 3, 12), as_of, basis=basis, strict=strict
                )
                exact, rolled = await _both(engine, tmp_path, monkeypatch, req)
                assert "rollups" in rolled[0].notes[1]
                for e, r in zip(exact, rolled, strict=True):
                    assert [_comparable(x) for x in e.rows] == [_comparable(x) for x in r.rows], (
                        e.title,
                        as_of,
                        strict,
                        basis,
                    )
            async with engine.connect() as conn:
                scan = await data.backlog_bands(conn, admin, as_of, strict)
                with monkeypatch.context() as m:
                    m.setattr(data, "ROLLUP_BACKLOG_MIN", -1)
                    assert await data.backlog_bands(conn, admin, as_of, strict) == scan


async def _scenario_rollups(db: AsyncEngine) -> dict[tuple[str, str, str, str], tuple[int, ...]]:
    """The scenario's rollups with everything folded, in a fresh in-memory store."""
    from bot.store.db import make_engine, upgrade

    fresh = make_engine("sqlite+aiosqlite:///:memory:")
    try:
        await upgrade(fresh)
        await _scenario(fresh)
        return await _rollup_rows(fresh)
    finally:
        await fresh.dispose()


async def test_late_events_on_folded_questions_move_the_rollups(engine: AsyncEngine) -> None:
    """A dismissal and a late answer after their questions were folded: rollups = rebuild."""
    eng = await _scenario(engine)
    await _move(engine, at(14, 0, 0))  # everything of days 10-12 has settled by then
    late = [
        eng.dismiss("Q7", by="li", reason="duplicate", at=at(14, 9, 0)),
        eng.on_staff_message(G1, "s3", "li", at(14, 9, 5), reply_to_msg_id="m3"),
    ]
    for effects in late:
        async with engine.begin() as conn:
            await store.save_effects(conn, effects, _ctx(eng, at(14, 9, 5)))
    incremental = {k: v for k, v in (await _rollup_rows(engine)).items() if any(v)}
    assert incremental == await _rebuilt(engine)
    before = await _scenario_rollups(engine)
    day = sla_rollup.unpack_counts(incremental[("2026-03-11", "day", "", "business/strict")][0])
    assert day["n_dismissed"] == 1  # Q7
    tue = ("2026-03-10", "day", "", "business/lenient")

    def tuesday(rows: dict[tuple[str, str, str, str], tuple[int, ...]]) -> dict[str, float]:
        return sla_rollup.unpack_counts(rows[tue][0])

    # Answered after the watermark, Q3 settles again later: out of the rollups until folded.
    assert tuesday(incremental)["n_cohort"] == tuesday(before)["n_cohort"] - 1
    await _move(engine, at(15, 0, 0))
    folded = await _rollup_rows(engine)
    assert tuesday(folded)["n_cohort"] == tuesday(before)["n_cohort"]
    assert tuesday(folded)["n_answered"] == tuesday(before)["n_answered"] + 1


async def test_the_fold_tick_folds_what_settled_and_nothing_else(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    from bot.clock import ManualClock
    from handlers import questions as question_handlers

    await _scenario(engine)
    await _move(engine, MARKS[0])
    cfg = make_config(tmp_path)
    clock = ManualClock(at(10, 12, 0))
    n = await question_handlers.fold_rollups(engine, cfg, clock, lambda c: CAL)
    async with engine.connect() as conn:
        assert await sla_rollup.watermark(conn) == at(10, 12, 0)
        assert await sla_rollup.settling(conn, MARKS[0], at(10, 12, 0)) is True
    assert 0 < n < 8
    assert await question_handlers.fold_rollups(engine, cfg, clock, lambda c: CAL) == 0
