"""Question repository on SQLite and PostgreSQL: effects persist, reload, reports aggregate."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.reports import ReportRequest
from bot.store import questions as store
from handlers import reports_sla
from sop.calendar import default_calendar
from sop.metrics import QuestionFacts, summarize
from sop.policy import SlaPolicy
from sop.questions import QuestionEngine
from tests.conftest import make_config

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 10, 10, 0, tzinfo=TZ).astimezone(UTC)  # Tuesday 10:00 local
CAL = default_calendar()
POLICY = SlaPolicy()
G1, G2 = "onebot11:5001", "onebot11:5002"


def _engine() -> QuestionEngine:
    owners = {G1: ("li",), G2: ("li", "wang")}
    return QuestionEngine(POLICY, calendar_of=lambda c: CAL, owners_of=lambda c: owners.get(c, ()))


def _ctx(engine: QuestionEngine, now: datetime) -> store.RowContext:
    return store.RowContext(
        policy_of=engine.policy_for, calendar_of=lambda c: CAL, tz=TZ, now=now, account_id="10001"
    )


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _ask(eng: QuestionEngine, chat: str, mid: str, asker: str, t: datetime, qid: str) -> list[Any]:
    return eng.on_customer_message(chat, mid, asker, t, is_question=True, question_id=qid)


async def _scenario(db: AsyncEngine) -> QuestionEngine:
    """Q1 quoted at 2 min, Q2 (group 2) answered by proximity at 7 min, Q3 never answered,
    Q4 dismissed."""
    eng = _engine()
    steps = [
        eng.on_customer_message(
            G1, "m1", "onebot11:c1", _at(0), is_question=True, question_id="Q1"
        ),
        eng.on_staff_message(G1, "s1", "li", _at(2), reply_to_msg_id="m1"),
        eng.on_customer_message(
            G2, "m2", "onebot11:c2", _at(1), is_question=True, question_id="Q2"
        ),
        eng.on_staff_message(G2, "s2", "wang", _at(7)),
        eng.on_customer_message(
            G1, "m3", "onebot11:c3", _at(3), is_question=True, question_id="Q3"
        ),
        eng.on_customer_message(
            G2, "m4", "onebot11:c4", _at(4), is_question=True, question_id="Q4"
        ),
    ]
    async with db.begin() as conn:
        for effects in steps:
            await store.save_effects(conn, effects, _ctx(eng, _at(8)))
        await store.save_effects(
            conn, eng.dismiss("Q4", by="li", reason="spam", at=_at(8)), _ctx(eng, _at(8))
        )
        await store.mark_alerts_sent(conn, {"Q3": ["warn", "breach"]}, _at(8))
        await store.mark_alerts_sent(conn, {"Q3": ["breach"]}, _at(9))  # idempotent
    return eng


async def test_effects_round_trip_through_the_store(engine: AsyncEngine) -> None:
    """Live questions reload with their responses and sent alert levels; closed ones don't."""
    eng = await _scenario(engine)
    async with engine.connect() as conn:
        live = await store.load_live(conn, now=_at(10), reopen_window_s=POLICY.reopen_window_s)
        rows = await store.list_questions(conn, start=_at(-60), end=_at(60))
        owned = await store.list_questions(conn, start=_at(-60), operator="wang")
    by_id = {s.question.id: s for s in live}
    assert set(by_id) == {"Q1", "Q2", "Q3"}
    for qid in ("Q1", "Q2", "Q3"):
        assert by_id[qid].question == eng.get(qid)
    assert by_id["Q3"].alert_levels_sent == ("warn", "breach")
    assert [r["status"] for r in rows] == ["answered", "answered", "open", "dismissed"]
    assert rows[0]["link_method"] == "quote"
    assert rows[1]["link_method"] == "proximity_single"
    assert {r["id"] for r in owned} == {"Q2", "Q4"}
    reloaded = _engine()
    reloaded.load(s.question for s in live)
    assert reloaded.on_staff_message(G1, "s1", "li", _at(2), reply_to_msg_id="m1") == []


def _r(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 4)


def _facts(eng: QuestionEngine) -> list[QuestionFacts]:
    out = []
    for qid in ("Q1", "Q2", "Q3"):
        q = eng.get(qid)
        assert q is not None
        out.append(
            QuestionFacts(
                question_id=q.id,
                chat_id=q.chat,
                asker_id=q.asker_id,
                opened_at=q.opened_at,
                status=q.status.value,
                frt_target_s=300,
                frt_due_at=CAL.add_business(q.opened_at, 300),
                backlog_due_at=q.opened_at + timedelta(hours=48),
                first_response_at=q.first_response_at,
                first_responder_id=q.first_responder_id,
                link_confidence=q.link_confidence,
                frt_business_s=q.frt_business_s,
                frt_calendar_s=q.frt_calendar_s,
                owner_ids=q.owner_ids,
            )
        )
    return out


async def test_sql_report_matches_the_pure_metrics(engine: AsyncEngine, tmp_path: Path) -> None:
    """The SQL-aggregated summary equals sop.metrics.summarize on the same questions."""
    eng = await _scenario(engine)
    cfg = make_config(tmp_path)
    as_of = _at(30)
    for strict in (True, False):
        req = ReportRequest(date(2026, 3, 10), date(2026, 3, 10), as_of, strict=strict)
        tables = await reports_sla.build(engine, cfg, req)
        row = tables[0].rows[0]
        pure = summarize(_facts(eng), as_of=as_of, strict=strict)
        assert row["eligible"] == pure.n_eligible == 3
        assert row["dismissed"] == 1
        assert row["answered"] == pure.n_answered
        assert row["attainment_strict"] == _r(pure.attainment_strict.rate)
        assert row["attainment_lenient"] == _r(pure.attainment_lenient.rate)
        assert row["frt_p50_s"] == pure.frt_p50.value
        assert (row["frt_p90_s"] is None) == pure.frt_p90.censored
        assert row["backlog_now"] == pure.backlog.total
        assert row["three_min_rate"] == _r(pure.three_min.rate)
    ops = {r["operator"]: r for r in tables[1].rows}
    assert ops["li"]["first_responses"] == 1
    assert ops["wang"]["first_responses"] == 1
    assert ops["li"]["owned_questions"] == 4
    assert ops["wang"]["owned_questions"] == 2
    assert ops["li"]["owned_backlog_now"] == 1
    groups = {r["group"]: r for r in tables[2].rows}
    assert groups["5001"]["questions"] == 2
    assert groups["5002"]["dismissed"] == 1


async def test_one_batch_writes_many_questions(engine: AsyncEngine) -> None:
    """An intake batch that opens and answers several questions writes them all in one go."""
    eng = _engine()
    batch = [
        (_ask(eng, G1, "m1", "onebot11:c1", _at(0), "Q1"), _ctx(eng, _at(1))),
        (_ask(eng, G2, "m2", "onebot11:c2", _at(0), "Q2"), _ctx(eng, _at(1))),
        (_ask(eng, G2, "m3", "onebot11:c3", _at(0), "Q3"), _ctx(eng, _at(1))),
        (eng.on_staff_message(G1, "s1", "li", _at(1), reply_to_msg_id="m1"), _ctx(eng, _at(1))),
    ]
    async with engine.begin() as conn:
        assert await store.save_batch(conn, batch) == 5
    async with engine.begin() as conn:
        # A second batch touching rows that exist (the upsert's update path, several rows).
        more = [
            (
                eng.on_staff_message(G2, "s2", "wang", _at(2), reply_to_msg_id="m2"),
                _ctx(eng, _at(2)),
            ),
            (
                eng.on_staff_message(G2, "s3", "wang", _at(2), reply_to_msg_id="m3"),
                _ctx(eng, _at(2)),
            ),
        ]
        await store.save_batch(conn, more)
    async with engine.connect() as conn:
        stored = await store.load_questions(conn, ["Q1", "Q2", "Q3"])
    assert {qid: s.question.first_responder_id for qid, s in stored.items()} == {
        "Q1": "li",
        "Q2": "wang",
        "Q3": "wang",
    }


def test_rows_carry_the_settle_time_and_due_times_computed_from_scratch() -> None:
    """The per-question caches of question_row give what the calendar functions give."""
    import random

    from bot.store import sla_rollup
    from sop import timers

    rng = random.Random(7)
    eng = _engine()
    for i in range(300):
        t = T0 + timedelta(minutes=rng.randrange(0, 60 * 24 * 9))  # nights, weekends included
        chat = G1 if i % 2 else G2
        [opened] = _ask(eng, chat, f"m{i}", f"onebot11:c{i}", t, f"Q{i}")
        q = opened.question
        for step in range(3):  # unanswered, then answered (quote), then resolved
            row = store.question_row(q, _ctx(eng, t))
            assert row["settle_at"] == sla_rollup.settle_time(row, CAL), (i, step)
            assert row["frt_due_at"] == timers.frt_due(q, POLICY, CAL)
            assert row["backlog_due_at"] == timers.backlog_due(q, POLICY, CAL)
            assert row["local_date"] == q.opened_at.astimezone(TZ).date().isoformat()
            if step == 0:
                effects = eng.on_staff_message(
                    chat, f"s{i}", "li", t + timedelta(minutes=rng.randrange(1, 3000)),
                    reply_to_msg_id=f"m{i}",
                )  # fmt: skip
            elif step == 1:
                effects = eng.resolve(q.id, by="li", at=t + timedelta(days=3), method="command")
            else:
                break
            q = effects[-1].question
