"""Question ingest: stored messages → detector → question engine → persisted effects.

Customer messages in monitored groups go through the detector; staff messages link as answers
(group messages by quote / @ / proximity, a staff account's private message to a customer as
``private_chat``); bot accounts only mark ``bot_touch``. Recalls and customers leaving update the
questions they touch. Effects are written in the intake batch's ``session`` (one commit per
batch) and each touched question's alert timer is re-armed.

``context`` (in ``handlers.CONTEXTS``) builds the engine from config, reloads live questions from
the store and provides ``question_engine``, ``sla_calendar_of``, ``sla_sent`` (level keys already
alerted, per question), ``sla_dirty`` (questions whose effects are not committed yet: newer in
memory than in the store) and ``sla_rows`` (how rows are derived) to handlers, ticks and commands.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.config import AppConfig
from bot.dispatch import Router
from bot.events import ChatType, MemberChange, MemberChangeKind, MessageRecall
from bot.intake import BatchEnd, StoredMessage
from bot.keys import CLOCK, CONFIG, DISPATCHER, ENGINE, INTAKE, ROSTER
from bot.roster import ActorRole, Roster
from bot.scheduler import Tick
from bot.store import questions as store
from bot.store import sla_rollup
from bot.store.db import exclusive
from bot.timers import DueTimer, schedule_question
from sop.calendar import BusinessCalendar
from sop.detect import DetectorConfig, analyze, is_holding_reply
from sop.questions import Effect, QuestionEngine, QuestionOpened

log = logging.getLogger("sopbot.questions")
router = Router("questions")


def private_key(platform: str, peer_id: str) -> str:
    return f"{platform}:private:{peer_id}"


def build_calendar_of(cfg: AppConfig) -> Callable[[str], BusinessCalendar]:
    return cfg.calendar.calendar_of(cfg.bot.timezone)


def row_context(
    engine: QuestionEngine,
    calendar_of: Callable[[str], BusinessCalendar],
    cfg: AppConfig,
    now: datetime,
    **extra: Any,
) -> store.RowContext:
    return store.RowContext(
        policy_of=engine.policy_for,
        calendar_of=calendar_of,
        tz=ZoneInfo(cfg.bot.timezone),
        now=now,
        **extra,
    )


def rearm(
    effects: Sequence[Effect],
    engine: QuestionEngine,
    timer: DueTimer | None,
    calendar_of: Callable[[str], BusinessCalendar],
    sent: dict[str, set[str]],
) -> None:
    """Re-arm the alert timer of every question the effects touched."""
    if timer is None:
        return
    for q in {e.question.id: e.question for e in effects}.values():
        current = engine.get(q.id) or q
        schedule_question(
            timer,
            current,
            engine.policy_for(current),
            calendar_of(current.chat),
            sent.get(q.id, set()),
        )


def _in_scope(event: StoredMessage) -> bool:
    # Groups: everyone; private chats: only staff accounts writing to a customer.
    return event.msg.chat_type is ChatType.GROUP or event.actor.role is ActorRole.OPERATOR


@router.on(StoredMessage, _in_scope)
async def on_message(
    event: StoredMessage,
    session: AsyncSession,
    cfg: AppConfig,
    roster: Roster,
    question_engine: QuestionEngine,
    sla_calendar_of: Callable[[str], BusinessCalendar],
    sla_detector: DetectorConfig,
    sla_dirty: set[str],
    clock: Clock,
) -> None:
    msg, actor = event.msg, event.actor
    p = msg.platform
    if msg.chat_type is ChatType.GROUP and not roster.is_monitored(p, msg.chat_id):
        return  # most traffic in unmonitored groups: leave before doing any work
    engine = question_engine
    mentions = tuple(store.user_key(p, u) for u in msg.mention_user_ids)
    extra: dict[str, Any] = {"account_id": msg.account_id}
    if msg.chat_type is ChatType.PRIVATE:
        if actor.operator is None:
            return
        # A staff account writing 1:1 to a customer (the peer is the chat id); a staff member
        # writing to the bot (commands) has chat_id == their own id and is not an answer.
        if msg.chat_id == msg.sender_id or roster.by_user(p, msg.chat_id) is not None:
            return
        effects = engine.on_staff_message(
            private_key(p, msg.chat_id),
            msg.message_id,
            actor.operator.id,
            msg.sent_at,
            is_holding=is_holding_reply(msg.text, sla_detector),
            is_private_to=store.user_key(p, msg.chat_id),
        )
    else:
        chat = store.chat_key(p, msg.chat_id)
        if actor.role is ActorRole.CUSTOMER:
            staff = any(roster.by_user(p, u) is not None for u in msg.mention_user_ids)
            # One pass over the text for all three verdicts.
            seen = analyze(
                msg.text, mentions_staff=staff, media_only=msg.media_only, cfg=sla_detector
            )
            det = seen.detection
            effects = engine.on_customer_message(
                chat,
                msg.message_id,
                store.user_key(p, msg.sender_id),
                msg.sent_at,
                is_question=det.is_question,
                text=msg.text,
                is_ack=seen.is_ack,
                is_exempt=not msg.media_only and seen.is_exempt,
                reply_to_msg_id=msg.reply_to_message_id,
                mention_user_ids=mentions,
                question_id=store.question_id_for(event.row_id),
            )
            if any(isinstance(e, QuestionOpened) for e in effects):
                extra.update(detector_reason=det.reason, detect_score=det.score)
        elif actor.role is ActorRole.OPERATOR and actor.operator is not None:
            effects = engine.on_staff_message(
                chat,
                msg.message_id,
                actor.operator.id,
                msg.sent_at,
                reply_to_msg_id=msg.reply_to_message_id,
                mention_user_ids=mentions,
                mention_all=msg.mention_all,
                is_holding=is_holding_reply(msg.text, sla_detector),
            )
        else:
            bot_id = actor.operator.id if actor.operator else msg.sender_id
            effects = engine.on_bot_message(
                chat,
                msg.message_id,
                bot_id,
                msg.sent_at,
                reply_to_msg_id=msg.reply_to_message_id,
                mention_user_ids=mentions,
            )
    await _persist(effects, session, engine, sla_calendar_of, cfg, clock, extra, sla_dirty)


_TOUCHED = "sla_touched_effects"  # their questions' timers are re-armed when the batch ends


async def _persist(
    effects: Sequence[Effect],
    session: AsyncSession,
    engine: QuestionEngine,
    calendar_of: Callable[[str], BusinessCalendar],
    cfg: AppConfig,
    clock: Clock,
    extra: dict[str, Any],
    dirty: set[str],
) -> None:
    """Buffer the effects in the batch's session; ``flush_batch`` writes them all at once.

    Until the batch commits, these questions are newer in memory than in the store: they are
    in ``dirty`` so that a refresh from the store (alerts, sweeps) keeps the memory copy.
    """
    if not effects:
        return
    ctx = row_context(engine, calendar_of, cfg, clock.now(), **extra)
    store.buffer_effects(session.info, effects, ctx)
    session.info.setdefault(_TOUCHED, []).extend(effects)
    dirty.update(e.question.id for e in effects)


@router.on(BatchEnd)
async def flush_batch(
    event: BatchEnd,
    session: AsyncSession,
    question_engine: QuestionEngine,
    sla_calendar_of: Callable[[str], BusinessCalendar],
    sla_sent: dict[str, set[str]],
    sla_dirty: set[str],
    sla_timer: DueTimer | None = None,
) -> None:
    """Write the batch's buffered effects (one commit with the messages), then re-arm timers."""
    touched: list[Effect] = session.info.pop(_TOUCHED, [])
    if not touched:
        return
    ids = {e.question.id for e in touched}

    def clean(_session: object) -> None:
        sla_dirty.difference_update(ids)  # committed: the store has caught up with memory

    # A failed commit leaves them dirty: memory then stays the newer copy in this process.
    sa_event.listen(session.sync_session, "after_commit", clean, once=True)
    # A command in this batch may have flushed part of it already; write the rest.
    pending = await store.flush_pending(await session.connection(), session.info)
    log.info(
        "question effects: %d (%d written now) in a batch of %d events",
        len(touched),
        sum(len(effects) for effects, _ in pending),
        event.size,
    )
    rearm(touched, question_engine, sla_timer, sla_calendar_of, sla_sent)


@router.on(MessageRecall)
async def on_recall(
    event: MessageRecall,
    session: AsyncSession,
    cfg: AppConfig,
    question_engine: QuestionEngine,
    sla_calendar_of: Callable[[str], BusinessCalendar],
    sla_dirty: set[str],
    clock: Clock,
) -> None:
    if event.chat_type is ChatType.GROUP:
        chat = store.chat_key(event.platform, event.chat_id)
    else:
        chat = private_key(event.platform, event.chat_id)
    by_sender = not event.operator_id or event.operator_id == event.sender_id
    effects = question_engine.on_recall(chat, event.message_id, event.at, by_sender=by_sender)
    await _persist(effects, session, question_engine, sla_calendar_of, cfg, clock, {}, sla_dirty)


@router.on(MemberChange, lambda e: e.kind is MemberChangeKind.GROUP_LEAVE and bool(e.chat_id))
async def on_leave(
    event: MemberChange,
    session: AsyncSession,
    cfg: AppConfig,
    question_engine: QuestionEngine,
    sla_calendar_of: Callable[[str], BusinessCalendar],
    sla_dirty: set[str],
    clock: Clock,
) -> None:
    effects = question_engine.on_customer_left(
        store.chat_key(event.platform, event.chat_id or ""),
        store.user_key(event.platform, event.user_id),
        event.at,
    )
    await _persist(effects, session, question_engine, sla_calendar_of, cfg, clock, {}, sla_dirty)


async def sweep(
    engine: AsyncEngine,
    cfg: AppConfig,
    clock: Clock,
    question_engine: QuestionEngine,
    sla_calendar_of: Callable[[str], BusinessCalendar],
    sla_sent: dict[str, set[str]],
    sla_dirty: set[str],
    sla_timer: DueTimer | None = None,
) -> int:
    """Quiet-period resolutions and pruning of closed questions (not alerts: those are exact).

    The candidates are re-read from the store under their row locks first: with several
    processes, another one may have moved them since this process loaded them.
    """
    now = clock.now()
    effects: list[Effect] = []
    candidates = question_engine.quiet_due(now)
    if candidates:
        async with engine.begin() as conn:
            await store.refresh(conn, question_engine, candidates, keep=sla_dirty)
            effects = question_engine.quiet_resolve(now, candidates)
            if effects:
                ctx = row_context(question_engine, sla_calendar_of, cfg, now)
                await store.save_effects(conn, effects, ctx)
        rearm(effects, question_engine, sla_timer, sla_calendar_of, sla_sent)
    for qid in question_engine.prune(now):
        sla_sent.pop(qid, None)
    return len(effects)


# Questions folded into the rollups per pass at most: a pass holds SQLite's write lock.
FOLD_LIMIT = 5_000


async def fold_rollups(
    engine: AsyncEngine,
    cfg: AppConfig,
    clock: Clock,
    sla_calendar_of: Callable[[str], BusinessCalendar],
) -> int:
    """Fold the questions that settled since the last pass into the per-day rollups.

    Off the intake path: a batch only writes question rows; once a question's facts stop
    depending on as_of (``settle_at``), it joins the rollups here, once. Reports read the rest
    from the question rows, so the figures are the same whenever this runs.
    """
    now = clock.now()
    async with engine.connect() as conn:
        mark = await sla_rollup.watermark(conn)
        if mark >= now or not await sla_rollup.settling(conn, mark, now):
            return 0  # nothing settled: no write (SQLite's lock stays with the intake)
    async with engine.begin() as conn:
        n, _ = await sla_rollup.move_watermark(
            conn,
            now,
            calendar_of=sla_calendar_of,
            tz=ZoneInfo(cfg.bot.timezone),
            now=now,
            limit=FOLD_LIMIT,
        )
    if n:
        log.info("folded %d settled question(s) into the rollups", n)
    return n


TICKS: tuple[Tick, ...] = (
    Tick("sla-sweep", 60.0, sweep),
    Tick("sla-rollup-fold", 30.0, fold_rollups),
)


async def context(app: web.Application) -> AsyncIterator[None]:
    """Build the engine and reload live questions from the store (a restart loses nothing)."""
    cfg, clock, roster = app[CONFIG], app[CLOCK], app[ROSTER]
    calendar_of = build_calendar_of(cfg)
    policy = cfg.sla.policy()
    async with app[ENGINE].connect() as conn:
        stored = await store.load_live(
            conn, now=clock.now(), reopen_window_s=policy.reopen_window_s
        )
    versions = {s.question.policy_version for s in stored}

    def owners_of(chat: str) -> tuple[str, ...]:
        return roster.owners(*store.split_key(chat))

    engine = QuestionEngine(
        policy,
        calendar_of=calendar_of,
        owners_of=owners_of,
        # Versions no longer in config run on today's values under their own number (their
        # stored due times stay as computed when they opened).
        older_policies=[
            dataclasses.replace(policy, version=v) for v in versions - {policy.version}
        ],
    )
    engine.load(s.question for s in stored)
    async with exclusive(app[ENGINE], "sla-rollup-rebuild"), app[ENGINE].begin() as conn:
        # Days with questions but no rollup (first start after an upgrade, bulk imports).
        missing = await sla_rollup.missing_days(conn)
        if missing:
            await sla_rollup.rebuild_days(
                conn,
                missing,
                calendar_of=calendar_of,
                tz=ZoneInfo(cfg.bot.timezone),
                now=clock.now(),
            )
            log.info("rolled up %d day(s) of questions", len(missing))
        # A store from before the watermark (or a clock set back): take the questions that
        # settle after now out of the rollups, so the intake does not have to keep them in.
        now = clock.now()
        if await sla_rollup.watermark(conn) > now:
            n, _ = await sla_rollup.move_watermark(
                conn, now, calendar_of=calendar_of, tz=ZoneInfo(cfg.bot.timezone), now=now
            )
            log.info("rollup watermark moved back to now (%d question(s) still settling)", n)
    sent = {s.question.id: set(s.alert_levels_sent) for s in stored}
    dirty: set[str] = set()

    async def reload() -> None:
        """The intake's handler transaction failed: memory is ahead of the store; re-read it."""
        async with app[ENGINE].connect() as conn:
            fresh = await store.load_live(
                conn, now=clock.now(), reopen_window_s=policy.reopen_window_s
            )
        engine.reset(s.question for s in fresh)
        sent.clear()
        sent.update({s.question.id: set(s.alert_levels_sent) for s in fresh})
        dirty.clear()
        log.info("question engine reloaded %d live questions", len(fresh))

    app[INTAKE].add_resync(reload)
    app[DISPATCHER].provide(
        question_engine=engine,
        sla_calendar_of=calendar_of,
        sla_detector=cfg.detector.detector(),
        sla_sent=sent,
        sla_dirty=dirty,
        sla_timer=None,
    )
    log.info("question engine loaded %d live questions", len(stored))
    yield
