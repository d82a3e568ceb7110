"""Clicks on SOP reminder cards (WeCom template cards with 完成 / 稍后提醒).

A card is sent right after an SOP reminder (slot, nudge, 催办, snooze) with the reminder's
outbox key, so ``card_task_id(key)`` of that row names the card: the row says whose card it is,
for which local date (and slot). A click by anyone else, or on a card we cannot find (older
than the 72 h a ``response_code`` lives), changes nothing.

- **完成 (done)**: the guide reports the card's work done. Every quota step of that date still
  short of its quota gets the missing units, and every open customer task the reminder listed
  gets its one unit, as ``self`` evidence with ref ``card:<task_id>`` (so a replayed click adds
  nothing). Done after the day's window counts as late, like ``/done``.
- **稍后提醒 (snooze)**: one more reminder 30 minutes later through the outbox (kind
  ``sop_snooze``, key ``<original key>:snooze<n>``), showing the progress at click time, with
  a card of its own. Not enqueued when the day's window closes before then.

The card is then updated through its ``response_code`` to a grey label saying the outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol, runtime_checkable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.clock import Clock
from bot.config import AppConfig
from bot.delivery import CARD_KINDS
from bot.dispatch import Router
from bot.events import CardClick, card_task_id
from bot.gateway.hub import GatewayHub
from bot.outbox import OutboxItem, enqueue
from bot.roster import Roster
from bot.store import tasks as store
from bot.store.models import Outbox
from sop.reminder_text import render_slot_reminder
from sop.slots import local_date_of

log = logging.getLogger("sopbot.sop.cards")
router = Router("wecom_cards")

_OUT = Outbox.__table__  # type: ignore[attr-defined]
DONE_KEY, SNOOZE_KEY = "done", "snooze"  # the button keys of SOP cards
SNOOZE = timedelta(minutes=30)
CARD_LIFETIME = timedelta(hours=72)  # a response_code's life; older cards cannot be updated


@runtime_checkable
class CardUpdates(Protocol):
    """A gateway that can replace a clicked card's buttons by a label (WeCom)."""

    async def update_card(
        self, user_ids: Sequence[str], response_code: str, replace_name: str
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class CardRow:
    """The outbox row a card was sent with."""

    key: str
    kind: str
    text: str
    local_date: date
    window_end: datetime | None


async def find_card(
    conn: AsyncConnection, guide_id: str, task_id: str, now: datetime, tz: str
) -> CardRow | None:
    """The reminder row of ``guide_id`` whose card is ``task_id`` (sent in the last 72 h)."""
    result = await conn.execute(
        select(
            _OUT.c.idempotency_key, _OUT.c.kind, _OUT.c.payload, _OUT.c.due_at, _OUT.c.window_end
        ).where(
            _OUT.c.recipient_id == guide_id,
            _OUT.c.kind.in_(sorted(CARD_KINDS)),
            _OUT.c.due_at >= now - CARD_LIFETIME,
        )
    )
    for key, kind, payload, due_at, window_end in result:
        if card_task_id(key) != task_id:
            continue
        raw = (payload or {}).get("local_date")
        day = date.fromisoformat(raw) if raw else local_date_of(due_at, tz)
        return CardRow(key, kind, str((payload or {}).get("text", "")), day, window_end)
    return None


def _en(lang: str) -> bool:
    return lang.lower().startswith("en")


async def mark_done(
    conn: AsyncConnection, guide_id: str, card: CardRow, task_id: str, now: datetime
) -> int:
    """Self-reported completion of what the card listed; return the units recorded."""
    units = 0
    for row in await store.tasks_on(conn, card.local_date, [guide_id]):
        if row.complete:
            continue
        if row.is_customer_task and row.target_key not in card.text:
            continue  # not on this card (the customer came later)
        left = row.quota - row.done
        await store.add_evidence(
            conn, row, source="self", ref=f"card:{task_id}", count=left, at=now
        )
        units += left
    return units


def _snooze_key(key: str) -> str:
    base, _, n = key.partition(":snooze")
    return f"{base}:snooze{int(n or 0) + 1}"


async def snooze(
    conn: AsyncConnection, guide_id: str, card: CardRow, now: datetime, lang: str
) -> str:
    """Enqueue the reminder again 30 min from now; the outcome (snoozed, nothing, closed)."""
    rows = await store.tasks_on(conn, card.local_date, [guide_id])
    if not store.has_open_work(rows):
        return "nothing"
    window_end = max(r.window_end for r in rows if not r.complete)
    due = now + SNOOZE
    if due > window_end:
        return "closed"
    body = render_slot_reminder(
        store.step_progress(rows), store.open_customer_tasks(rows), lang=lang
    )
    head = "[Reminder, as you asked]" if _en(lang) else "【稍后提醒】"
    text = head + "\n" + body.split("\n", 1)[1]
    await enqueue(
        conn,
        [
            OutboxItem(
                key=_snooze_key(card.key),
                kind="sop_snooze",
                recipient_id=guide_id,
                text=text,
                due_at=due,
                window_end=window_end,
                extra={"local_date": card.local_date.isoformat()},
            )
        ],
        now,
    )
    return "snoozed"


def _label(outcome: str, lang: str) -> str:
    en = {
        "done": "Recorded as done",
        "nothing": "Already done",
        "snoozed": "Reminding you in 30 min",
        "closed": "Today's window has closed",
        "unknown": "This card has expired",
    }
    zh = {
        "done": "已记录完成",
        "nothing": "已全部完成",
        "snoozed": "30分钟后再提醒",
        "closed": "今日已截止",
        "unknown": "卡片已过期",
    }
    return (en if _en(lang) else zh)[outcome]


@router.on(CardClick, lambda e: e.event_key in (DONE_KEY, SNOOZE_KEY))
async def handle_card_click(
    event: CardClick,
    engine: AsyncEngine,
    roster: Roster,
    clock: Clock,
    cfg: AppConfig,
    gateway: GatewayHub,
) -> None:
    op = roster.by_user(event.platform, event.user_id)
    if op is None:
        log.info("card click from unknown user on %s ignored", event.platform)
        return
    now, lang = clock.now(), cfg.bot.language
    async with engine.begin() as conn:
        card = await find_card(conn, op.id, event.task_id, now, cfg.bot.timezone)
        if card is None:
            outcome = "unknown"
        elif event.event_key == DONE_KEY:
            units = await mark_done(conn, op.id, card, event.task_id, now)
            outcome = "done" if units else "nothing"
        else:
            outcome = await snooze(conn, op.id, card, now, lang)
    log.info("card %s by %s: %s", event.event_key, op.id, outcome)
    await _update(gateway, event, _label(outcome, lang))


async def _update(hub: GatewayHub, event: CardClick, label: str) -> None:
    if not event.response_code:
        return
    gateway = hub.get(event.platform)
    if isinstance(gateway, CardUpdates):
        await gateway.update_card([event.user_id], event.response_code, label)


ROUTERS = (router,)
