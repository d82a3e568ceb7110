"""SLA alerts: one batched private message per recipient, each level once, quiet hours held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import ManualClock
from bot.config import AppConfig
from bot.roster import Roster
from bot.store import questions as store
from bot.store.models import Outbox
from bot.timers import DueTimer
from handlers import alerts, questions
from sop.policy import SlaPolicy
from sop.questions import QuestionEngine
from tests.conftest import make_config

TZ = ZoneInfo("Asia/Shanghai")
G1, G2 = "onebot11:5001", "onebot11:5002"


def at(hh: int, mm: int) -> datetime:
    return datetime(2026, 3, 10, hh, mm, tzinfo=TZ).astimezone(UTC)


async def _setup(
    cfg: AppConfig, db: AsyncEngine, asks: list[tuple[str, str, datetime]]
) -> tuple[alerts.AlertService, QuestionEngine, DueTimer]:
    """Open ``asks`` (chat, question id, when) through the store; an alert service over them."""
    roster = Roster.from_config(cfg)
    calendar_of = questions.build_calendar_of(cfg)
    policy = cfg.sla.policy()
    async with db.connect() as conn:
        stored = await store.load_live(conn, now=at(9, 0), reopen_window_s=policy.reopen_window_s)
    eng = QuestionEngine(
        SlaPolicy(),
        calendar_of=calendar_of,
        owners_of=lambda chat: roster.owners(*store.split_key(chat)),
    )
    eng.load(s.question for s in stored)
    sent = {s.question.id: set(s.alert_levels_sent) for s in stored}
    ctx = store.RowContext(policy_of=eng.policy_for, calendar_of=calendar_of, tz=TZ, now=at(9, 0))
    async with db.begin() as conn:
        for chat, qid, t in asks:
            effects = eng.on_customer_message(
                chat, f"m-{qid}", f"onebot11:c-{qid}", t, is_question=True, question_id=qid
            )
            await store.save_effects(conn, effects, ctx)
    service = alerts.AlertService(
        cfg=cfg, db=db, engine=eng, roster=roster, calendar_of=calendar_of, sent=sent
    )
    timer = DueTimer(ManualClock(at(9, 0)), service.fire)
    service.timer = timer
    for q in eng.questions():
        service.arm(q)
    return service, eng, timer


async def _outbox(db: AsyncEngine) -> list[Any]:
    t = Outbox.__table__  # type: ignore[attr-defined]
    async with db.connect() as conn:
        return list((await conn.execute(select(t).order_by(t.c.id))).all())


async def test_breaches_batch_into_one_message_per_recipient(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Two overdue questions of li's group: one private message to li, oldest first."""
    cfg = make_config(tmp_path)
    service, _, timer = await _setup(cfg, engine, [(G1, "Q2", at(10, 1)), (G1, "Q1", at(10, 0))])
    assert timer.due_at("Q1") == at(10, 4)  # warning at 80 % of 5 minutes
    await service.fire(["Q1", "Q2"], at(10, 6))
    rows = await _outbox(engine)
    assert [r.recipient_id for r in rows] == ["li"]
    text = rows[0].payload["text"]
    assert text.index("Q1") < text.index("Q2")
    assert rows[0].payload["questions"] == ["Q1", "Q2"]


async def test_each_level_is_sent_once_even_after_a_restart(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Re-firing, or a new service rebuilt from the store, sends no level twice."""
    cfg = make_config(tmp_path)
    service, _, _ = await _setup(cfg, engine, [(G1, "Q1", at(10, 0))])
    await service.fire(["Q1"], at(10, 4))
    await service.fire(["Q1"], at(10, 4))
    assert len(await _outbox(engine)) == 1
    again, _, timer = await _setup(cfg, engine, [])
    assert timer.due_at("Q1") == at(10, 5)  # warn already sent: next is the breach
    await again.fire(
        ["Q1"],
        at(
            10,
            4,
        ),
    )
    assert len(await _outbox(engine)) == 1
    await again.fire(["Q1"], at(10, 5))
    assert len(await _outbox(engine)) == 2


async def test_quiet_hours_hold_alerts_until_opening(engine: AsyncEngine, tmp_path: Path) -> None:
    """A question at 11:58 is due during the lunch break: its warning waits for 13:32."""
    cfg = make_config(tmp_path)
    service, _, timer = await _setup(cfg, engine, [(G1, "Q1", at(11, 58))])
    assert timer.due_at("Q1") == at(13, 32)
    await service.fire(["Q1"], at(12, 30))
    assert await _outbox(engine) == []


async def test_alerts_go_to_staff_never_to_groups(engine: AsyncEngine, tmp_path: Path) -> None:
    """Recipients are operator ids (owners, then the supervisor), never a group or customer."""
    cfg = make_config(tmp_path)
    service, _, _ = await _setup(cfg, engine, [(G2, "Q1", at(10, 0))])
    await service.fire(["Q1"], at(10, 5))
    await service.fire(["Q1"], at(10, 35))
    rows = await _outbox(engine)
    operators = {op.id for op in cfg.operators}
    assert {r.recipient_id for r in rows} <= operators
    assert {"li", "wang", "sup"} <= {r.recipient_id for r in rows}
    assert all(r.kind == "alert" for r in rows)
    assert timedelta(0) < rows[0].window_end - rows[0].due_at
