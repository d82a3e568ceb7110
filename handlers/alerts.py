"""SLA alerts: the exact timer's callback turns due levels into batched private messages.

When a question's timer fires: overdue follow-ups are flagged, ``sop.timers.ready_alerts`` says
which levels are due (quiet hours already moved them to the next opening), and
``sop.alerts.build_alert_messages`` batches them into one message per staff recipient, oldest
question first. Each message goes to the outbox keyed by its recipient and the (question, level)
pairs it covers, and the levels are recorded on the questions in the same transaction, so a level
is sent at most once per question even across restarts. The due questions are first re-read from
the store under their row locks (``FOR UPDATE`` on PostgreSQL): with several processes on one
database every process holds the questions live at its start, and the store says whether one was
answered elsewhere or its level already alerted by another process. Recipients are operator
ids only; customer groups and askers are never recipients. When the app provides
``outbox_kick`` (the outbox dispatcher's ``run_once``), enqueued alerts are dispatched at once
rather than on the outbox's next tick.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import AppConfig
from bot.keys import CLOCK, CONFIG, DISPATCHER, ENGINE, INTAKE, ROSTER
from bot.outbox import OutboxItem, enqueue
from bot.roster import Roster
from bot.store import questions as store
from bot.timers import DueTimer, schedule_question
from sop.alerts import AlertMessage, build_alert_messages
from sop.alerts import Roster as AlertRoster
from sop.calendar import BusinessCalendar
from sop.questions import Question, QuestionEngine
from sop.timers import DueAlert, ready_alerts

log = logging.getLogger("sopbot.alerts")

RETRY_AFTER = timedelta(seconds=30)


def alert_roster(cfg: AppConfig, roster: Roster) -> AlertRoster:
    """Supervisors per group (its owners' supervisors), names, and the customer chats."""
    default = cfg.sla.supervisors or tuple(
        op.id for op in cfg.operators if op.role == "supervisor" and not op.is_bot
    )
    supervisors: dict[str, tuple[str, ...]] = {}
    names: dict[str, str] = {}
    for g in cfg.groups:
        key = store.chat_key(g.platform, g.id)
        names[key] = g.name or g.id
        sups = [
            op.supervisor
            for owner in g.owners
            if (op := roster.operator(owner)) is not None and op.supervisor
        ]
        if sups:
            supervisors[key] = tuple(dict.fromkeys(sups))
    return AlertRoster(
        supervisors=supervisors,
        default_supervisors=tuple(default),
        group_names=names,
        customer_chats=frozenset(names),
    )


def outbox_key(message: AlertMessage) -> str:
    """One key per recipient and covered (question, level) set: re-firing never resends."""
    covered = ",".join(sorted(f"{q}:{lvl}" for q, lvl in message.sent_levels))
    digest = hashlib.sha256(covered.encode()).hexdigest()[:24]
    return f"sla-alert:{message.recipient_id}:{digest}"


class AlertService:
    """Fires due alert levels; the timer calls :meth:`fire`."""

    def __init__(
        self,
        *,
        cfg: AppConfig,
        db: AsyncEngine,
        engine: QuestionEngine,
        roster: Roster,
        calendar_of: Callable[[str], BusinessCalendar],
        sent: dict[str, set[str]],
        dirty: Collection[str] = (),
        on_enqueued: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._cfg = cfg
        self._on_enqueued = on_enqueued
        self._db = db
        self._engine = engine
        self._roster = roster
        self._alert_roster = alert_roster(cfg, roster)
        self._calendar_of = calendar_of
        self._sent = sent
        self._dirty = dirty
        self.timer: DueTimer | None = None

    def arm(self, q: Question) -> None:
        assert self.timer is not None
        schedule_question(
            self.timer,
            q,
            self._engine.policy_for(q),
            self._calendar_of(q.chat),
            self._sent.get(q.id, set()),
        )

    async def fire(self, keys: list[str], now: datetime) -> None:
        try:
            await self._fire(keys, now)
        except Exception:
            # Keep the questions armed: the next attempt re-checks from the store's levels.
            log.exception("alert batch of %d questions failed; retrying", len(keys))
            assert self.timer is not None
            for qid in keys:
                self.timer.schedule(qid, now + RETRY_AFTER)

    async def _fire(self, keys: list[str], now: datetime) -> None:
        engine = self._engine
        async with self._db.begin() as conn:
            # The store decides, under the questions' row locks: with several processes on one
            # database, another may have answered a question or alerted a level already.
            stored = await store.refresh(conn, engine, keys, keep=self._dirty)
            for qid, s in stored.items():
                self._sent.setdefault(qid, set()).update(s.alert_levels_sent)
            flagged = engine.flag_followup_breaches(now, keys)
            due: list[DueAlert] = []
            live: dict[str, Question] = {}
            for qid in keys:
                q = engine.get(qid)
                if q is None or not q.is_live:
                    continue
                live[qid] = q
                due += ready_alerts(
                    q,
                    engine.policy_for(q),
                    self._calendar_of(q.chat),
                    now,
                    self._sent.get(qid, ()),
                )
            messages = [
                m
                for m in build_alert_messages(
                    due,
                    live,
                    self._alert_roster,
                    calendar_of=self._calendar_of,
                    now=now,
                    lang=self._cfg.bot.language,
                )
                if self._roster.operator(m.recipient_id) is not None
            ]
            levels: dict[str, set[str]] = {}
            for alert in due:
                levels.setdefault(alert.question_id, set()).add(alert.level)
            window = timedelta(seconds=self._cfg.sla.alert_window)
            items = [
                OutboxItem(
                    key=outbox_key(m),
                    kind="alert",
                    recipient_id=m.recipient_id,
                    text=m.text,
                    due_at=now,
                    window_end=now + window,
                    extra={"questions": sorted({q for q, _ in m.sent_levels})},
                )
                for m in messages
            ]
            if flagged:
                ctx = store.RowContext(
                    policy_of=engine.policy_for,
                    calendar_of=self._calendar_of,
                    tz=ZoneInfo(self._cfg.bot.timezone),
                    now=now,
                )
                await store.save_effects(conn, flagged, ctx)
            await enqueue(conn, items, now)
            await store.mark_alerts_sent(conn, {q: sorted(v) for q, v in levels.items()}, now)
        for qid, lv in levels.items():
            self._sent.setdefault(qid, set()).update(lv)
        for qid in keys:
            q = engine.get(qid)
            if q is not None:
                self.arm(q)
            else:
                self._sent.pop(qid, None)  # closed (here or in another process): forgotten
        if items:
            log.info("alerts enqueued: %d messages for %d questions", len(items), len(levels))
            if self._on_enqueued is not None:
                # Hand the rows to the outbox now instead of at its next tick (alert lag).
                try:
                    await self._on_enqueued()
                except Exception:
                    log.exception("outbox kick failed; the outbox tick sends the alerts")


async def context(app: web.Application) -> AsyncIterator[None]:
    """Start the exact alert timer, armed for every live question (rebuilt on each start)."""
    deps = app[DISPATCHER].deps
    engine: QuestionEngine = deps["question_engine"]

    async def kick() -> None:
        # Looked up when alerts fire: the outbox starts after the handler services.
        run = deps.get("outbox_kick")
        if run is not None:
            await run()

    service = AlertService(
        cfg=app[CONFIG],
        db=app[ENGINE],
        engine=engine,
        roster=app[ROSTER],
        calendar_of=deps["sla_calendar_of"],
        sent=deps["sla_sent"],
        dirty=deps["sla_dirty"],
        on_enqueued=kick,
    )
    timer = DueTimer(app[CLOCK], service.fire, name="sla-alerts")
    service.timer = timer

    def arm_all() -> None:
        for q in engine.questions():
            service.arm(q)

    async def rearm() -> None:
        # After the question engine was reloaded from the store (registered after its reload).
        timer.clear()
        arm_all()

    arm_all()
    app[INTAKE].add_resync(rearm)
    app[DISPATCHER].provide(sla_timer=timer, sla_alerts=service)
    await timer.start()
    log.info("alert timer armed for %d questions", len(timer))
    yield
    await timer.stop()
