"""Several processes on one database: each SLA level is alerted once, and never for a question
another process has answered; a stale copy never writes a closed question back to life."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import questions as store
from bot.store.models import Question as QuestionRow
from handlers import questions
from sop.questions import QuestionStatus
from tests.conftest import make_config
from tests.handlers.test_alerts import G1, TZ, _outbox, _setup, at


async def _status(db: AsyncEngine, qid: str) -> str:
    t = QuestionRow.__table__  # type: ignore[attr-defined]
    async with db.connect() as conn:
        return str((await conn.execute(select(t.c.status).where(t.c.public_id == qid))).scalar())


async def _together(db: AsyncEngine, *fires: Coroutine[Any, Any, None]) -> None:
    """At the same moment on PostgreSQL (row locks serialize them); one after the other on
    SQLite, whose reads before a transaction's first write take no lock (several processes
    are a PostgreSQL deployment)."""
    if db.dialect.name == "postgresql":
        await asyncio.gather(*fires)
    else:
        for fire in fires:
            await fire


async def test_two_processes_fire_the_same_level_once(engine: AsyncEngine, tmp_path: Path) -> None:
    """Both processes hold Q1 and fire its warning (batched differently): one alert covers it."""
    cfg = make_config(tmp_path)
    first, _, _ = await _setup(cfg, engine, [(G1, "Q1", at(10, 0)), (G1, "Q2", at(10, 0))])
    second, _, _ = await _setup(cfg, engine, [])  # started later: loaded Q1, Q2 from the store
    await _together(engine, first.fire(["Q1", "Q2"], at(10, 4)), second.fire(["Q1"], at(10, 4)))
    await second.fire(["Q1", "Q2"], at(10, 4))
    covered = [q for r in await _outbox(engine) for q in r.payload["questions"]]
    assert sorted(covered) == ["Q1", "Q2"]  # each question's warning in exactly one message
    async with engine.connect() as conn:
        stored = await store.load_questions(conn, ["Q1", "Q2"])
    assert [len(s.alert_levels_sent) for s in stored.values()] == [1, 1]
    # The breach a minute later: again each question once, whichever process fires first.
    await _together(engine, second.fire(["Q2", "Q1"], at(10, 5)), first.fire(["Q1"], at(10, 5)))
    covered = [q for r in await _outbox(engine) for q in r.payload["questions"]]
    assert sorted(covered) == ["Q1", "Q1", "Q2", "Q2"]


async def test_no_alert_for_a_question_answered_in_another_process(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Process A answers Q1; process B's copy is stale; B's timer fires: no alert, copy updated."""
    cfg = make_config(tmp_path)
    _, eng_a, _ = await _setup(cfg, engine, [(G1, "Q1", at(10, 0))])
    b, eng_b, timer_b = await _setup(cfg, engine, [])
    effects = eng_a.on_staff_message(G1, "s1", "li", at(10, 2), reply_to_msg_id="m-Q1")
    assert effects
    ctx = store.RowContext(
        policy_of=eng_a.policy_for,
        calendar_of=questions.build_calendar_of(cfg),
        tz=TZ,
        now=at(10, 2),
    )
    async with engine.begin() as conn:
        await store.save_effects(conn, effects, ctx)
    held = eng_b.get("Q1")
    assert held is not None
    assert held.status is QuestionStatus.OPEN  # stale before the fire
    await b.fire(["Q1"], at(10, 4))
    await b.fire(["Q1"], at(10, 5))
    assert await _outbox(engine) == []
    fresh = eng_b.get("Q1")
    assert fresh is not None
    assert fresh.status is QuestionStatus.ANSWERED
    assert fresh.first_responder_id == "li"
    assert timer_b.due_at("Q1") != at(10, 5)  # no first-response level left to arm


async def test_a_stale_copy_does_not_reopen_a_dismissed_question(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A dismisses Q1; B (stale, still open) links an answer and writes: it stays dismissed."""
    cfg = make_config(tmp_path)
    _, eng_a, _ = await _setup(cfg, engine, [(G1, "Q1", at(10, 0))])
    _, eng_b, _ = await _setup(cfg, engine, [])
    ctx = store.RowContext(
        policy_of=eng_a.policy_for,
        calendar_of=questions.build_calendar_of(cfg),
        tz=TZ,
        now=at(10, 2),
    )
    async with engine.begin() as conn:
        dismissed = eng_a.dismiss("Q1", by="sup", reason="广告", at=at(10, 1))
        await store.save_effects(conn, dismissed, ctx)
    stale = eng_b.on_staff_message(G1, "s1", "li", at(10, 2), reply_to_msg_id="m-Q1")
    assert stale  # B still believes Q1 is open
    async with engine.begin() as conn:
        await store.save_effects(conn, stale, ctx)
    assert await _status(engine, "Q1") == "dismissed"
    async with engine.begin() as conn:
        await store.refresh(conn, eng_b, ["Q1"])
    assert eng_b.get("Q1") is None  # B adopts the closed state and forgets the question
