"""Question ingest routing: monitored groups, roles, staff mentions, private-chat answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import ManualClock
from bot.config import AppConfig
from bot.events import ChatMessage, ChatType
from bot.intake import BatchEnd, StoredMessage
from bot.roster import Roster
from bot.store.db import session_factory
from bot.store.models import Question as QuestionRow
from handlers import questions
from sop.policy import SlaPolicy
from sop.questions import QuestionEngine, QuestionStatus
from tests.conftest import make_config

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 10, 10, 0, tzinfo=TZ).astimezone(UTC)  # Tuesday, open hours
CUSTOMER, LI, BOT = "20001", "9002", "9999"


@dataclass
class Ingest:
    cfg: AppConfig
    db: AsyncEngine
    roster: Roster
    engine: QuestionEngine
    clock: ManualClock
    n: int = 0
    dirty: set[str] = field(default_factory=set)

    async def send(
        self,
        sender: str,
        text: str,
        *,
        chat: str = "5001",
        chat_type: ChatType = ChatType.GROUP,
        minutes: float = 0,
        **kw: Any,
    ) -> str:
        """Feed one stored message to ``on_message``; returns its message id."""
        self.n += 1
        at = T0 + timedelta(minutes=minutes)
        msg = ChatMessage(
            "onebot11", "10001", chat_type, chat, f"m{self.n}", sender, text, at, at, **kw
        )
        actor = self.roster.classify(msg)
        async with session_factory(self.db)() as session:
            await questions.on_message(
                StoredMessage(msg, actor, self.n),
                session=session,
                cfg=self.cfg,
                roster=self.roster,
                question_engine=self.engine,
                sla_calendar_of=questions.build_calendar_of(self.cfg),
                sla_detector=self.cfg.detector.detector(),
                sla_dirty=self.dirty,
                clock=self.clock,
            )
            await questions.flush_batch(  # what the intake does at the end of every batch
                BatchEnd(1),
                session=session,
                question_engine=self.engine,
                sla_calendar_of=questions.build_calendar_of(self.cfg),
                sla_sent={},
                sla_dirty=self.dirty,
            )
            await session.commit()
        assert not self.dirty  # committed: nothing newer in memory than in the store
        return msg.message_id

    async def rows(self) -> list[Any]:
        async with self.db.connect() as conn:
            t = QuestionRow.__table__  # type: ignore[attr-defined]
            return list((await conn.execute(select(t).order_by(t.c.id))).all())


@pytest.fixture
def ingest(tmp_path: Path, engine: AsyncEngine) -> Ingest:
    cfg = make_config(tmp_path)
    roster = Roster.from_config(cfg)
    qe = QuestionEngine(
        SlaPolicy(),
        calendar_of=questions.build_calendar_of(cfg),
        owners_of=lambda chat: roster.owners(*chat.split(":", 1)),
    )
    return Ingest(cfg, engine, roster, qe, ManualClock(T0))


async def test_questions_open_only_in_monitored_groups(ingest: Ingest) -> None:
    """A customer question in a configured group opens one; an unknown group is ignored."""
    await ingest.send(CUSTOMER, "请问这个怎么用？")
    await ingest.send(CUSTOMER, "请问这个怎么用？", chat="7777")
    [row] = await ingest.rows()
    assert (row.chat_id, row.status, row.owner_ids) == ("5001", "open", ["li"])
    assert row.public_id == "Q1"
    assert row.settle_at is not None


async def test_staff_answers_and_bots_only_touch(ingest: Ingest) -> None:
    """A bot account's reply is a bot touch, not an answer; the operator's reply answers."""
    await ingest.send(CUSTOMER, "几点发货？")
    await ingest.send(BOT, "您好，客服稍后回复", minutes=1)
    [row] = await ingest.rows()
    assert (row.status, row.bot_touch) == ("open", True)
    await ingest.send(LI, "下午四点", minutes=2)
    [row] = await ingest.rows()
    assert (row.status, row.first_responder_id, row.link_method) == (
        "answered",
        "li",
        "proximity_single",
    )
    assert row.frt_calendar_s == 120.0


@pytest.mark.parametrize(
    ("mention", "opens"),
    [(LI, True), ("30003", False)],
)
async def test_mentioning_staff_opens_a_question(
    ingest: Ingest, mention: str, opens: bool
) -> None:
    """ "@李 看一下" opens a question only when the mention is staff on the roster."""
    await ingest.send(CUSTOMER, "看一下", mention_user_ids=(mention,))
    rows = await ingest.rows()
    assert bool(rows) is opens
    if opens:
        assert rows[0].detector_reason == "mention_staff"


async def test_staff_private_message_to_the_asker_answers(ingest: Ingest) -> None:
    """李 writing 1:1 to the asker links as private_chat; writing to the bot itself does not."""
    await ingest.send(CUSTOMER, "怎么退货？")
    await ingest.send(LI, "我的问题", chat=LI, chat_type=ChatType.PRIVATE, minutes=1)
    assert (await ingest.rows())[0].status == "open"
    await ingest.send(LI, "私聊您了", chat=CUSTOMER, chat_type=ChatType.PRIVATE, minutes=3)
    [row] = await ingest.rows()
    assert (row.status, row.link_method) == ("answered", "private_chat")
    q = ingest.engine.get("Q1")
    assert q is not None
    assert q.status is QuestionStatus.ANSWERED


async def test_customer_chatter_and_thanks_open_nothing(ingest: Ingest) -> None:
    """Exempt phrases never open a question."""
    for text in ("谢谢", "好的", "收到"):
        await ingest.send(CUSTOMER, text)
    assert await ingest.rows() == []
