"""Question repository: persists the question engine's effects, reloads live questions on start.

Ids: the engine's question id is ``Q<row id of the opening message>`` (unique because message rows
are, and stable across restarts); it is the ``public_id`` column, the id staff type in commands
and the API returns. Rows reference questions by the internal integer ``id``.

Engine keys are platform-scoped: a chat is ``"<platform>:<chat id>"`` and an asker
``"<platform>:<user id>"``, so two platforms' numeric ids never meet. Columns hold the raw ids.

Every effect becomes an upsert of the question's row (its state *after* the change, with the
derived due times and strict-view columns the reports aggregate in SQL), one ``sla_event`` row,
and for links a ``response`` row. Replaying an effect is harmless: upserts by ``public_id`` and
``(question_id, chat, message_id)``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.memo import Memo
from bot.store import bulk, sla_rollup
from bot.store.bulk import Bulk
from bot.store.models import Question as QuestionRow
from bot.store.models import Response as ResponseRow
from bot.store.models import SlaEvent
from sop import timers
from sop.linking import LinkMethod
from sop.policy import SlaPolicy
from sop.questions import (
    Effect,
    Question,
    QuestionDismissed,
    QuestionEngine,
    QuestionOpened,
    QuestionResolved,
    QuestionWithdrawn,
    ResolvedBy,
    Response,
    ResponseLinked,
    ResponseRevoked,
)
from sop.questions import QuestionStatus as St
from sop.timers import Calendar

log = logging.getLogger("sopbot.questions.store")

Q = QuestionRow.__table__  # type: ignore[attr-defined]
R = ResponseRow.__table__  # type: ignore[attr-defined]
E = SlaEvent.__table__  # type: ignore[attr-defined]

_STAFF_KINDS = ("first", "holding", "followup")

# Written once, when the row is created; never changed by later effects.
_IMMUTABLE = ("public_id", "platform", "account_id", "chat_id", "asker_id", "open_message_id")


def chat_key(platform: str, chat_id: str) -> str:
    return f"{platform}:{chat_id}"


def user_key(platform: str, user_id: str) -> str:
    return f"{platform}:{user_id}"


def split_key(key: str) -> tuple[str, str]:
    """``"onebot11:5001"`` → ``("onebot11", "5001")``."""
    platform, _, raw = key.partition(":")
    return platform, raw


def question_id_for(message_row_id: int) -> str:
    return f"Q{message_row_id}"


def _secs(a: datetime, b: datetime) -> float:
    return max(0.0, (b - a).total_seconds())


@dataclass(frozen=True, slots=True)
class RowContext:
    """What a row needs beyond the question: its policy, calendar and the tenant zone."""

    policy_of: Callable[[Question], SlaPolicy]
    calendar_of: Callable[[str], Calendar]
    tz: ZoneInfo
    now: datetime
    account_id: str = ""
    detector_reason: str = ""
    detect_score: float = 0.0


class _Derived:
    """What a row derives from a question's opening and current clock start alone (calendar
    arithmetic, the costly part of a row), including its settle time while nothing answers it.
    """

    __slots__ = (
        "backlog_due_at",
        "bepoch",
        "cal",
        "epoch",
        "frt_due_at",
        "frt_due_calendar_at",
        "local_date",
        "open_settle",
        "policy",
        "three_min_mark",
    )

    def __init__(self, q: Question, policy: SlaPolicy, cal: Calendar, tz: ZoneInfo) -> None:
        self.policy, self.cal = policy, cal  # held: their ids key the cache
        self.bepoch = sla_rollup.axis_of(cal).position(q.opened_at)
        self.epoch = q.opened_at.timestamp()
        self.local_date = q.opened_at.astimezone(tz).date().isoformat()
        self.frt_due_at = timers.frt_due(q, policy, cal)
        self.frt_due_calendar_at = q.opened_at + timedelta(seconds=policy.frt_target_s)
        self.backlog_due_at = timers.backlog_due(q, policy, cal)
        self.three_min_mark = cal.add_business(q.opened_at, sla_rollup.THREE_MIN_S)
        # sla_rollup.settle_time of a row nothing answered or resolved: its latest threshold.
        opened = q.opened_at
        self.open_settle = max(
            opened + sla_rollup.THREE_MIN,
            self.three_min_mark,
            opened + sla_rollup.BACKLOG_SETTLE,
            self.frt_due_at,
            self.frt_due_calendar_at,
            self.backlog_due_at,
        )


# Computed once per question and cycle, reused by the upserts that follow (its answer, merges,
# resolution), which come within minutes. Keyed by the policy and calendar objects' identity;
# each entry holds both, so an id is never reused while it is cached.
_DERIVED: Memo[tuple[str, datetime, datetime, int, int], _Derived] = Memo(20_000)


def _derived(q: Question, policy: SlaPolicy, cal: Calendar, tz: ZoneInfo) -> _Derived:
    key = (q.id, q.opened_at, q.clock_start, id(policy), id(cal))
    return _DERIVED.get(key, lambda: _Derived(q, policy, cal, tz))


def question_row(
    q: Question, ctx: RowContext, detector: tuple[str, float] | None = None
) -> dict[str, Any]:
    """The full column set of ``q`` (state, derived due times, strict view).

    ``detector``: (reason, score) instead of the context's (a batch keeps the opening one).
    """
    reason, score = detector if detector is not None else (ctx.detector_reason, ctx.detect_score)
    policy = ctx.policy_of(q)
    cal = ctx.calendar_of(q.chat)
    platform, chat_id = split_key(q.chat)
    d = _derived(q, policy, cal, ctx.tz)
    start = q.clock_start
    strict = next((r for r in q.cycle_responses() if policy.is_strict(r.confidence)), None)
    if q.holding and q.followup_done_at is None and not q.followup_breached:
        breached: bool | None = None  # timer still pending
    else:
        breached = q.followup_breached if q.holding else None
    row: dict[str, Any] = {
        "public_id": q.id,
        "platform": platform,
        "account_id": ctx.account_id,
        "chat_id": chat_id,
        "asker_id": split_key(q.asker_id)[1],
        "open_message_id": q.message_ids[0] if q.message_ids else "",
        "message_ids": list(q.message_ids),
        "snippet": q.snippet[:255],
        "opened_at": q.opened_at,
        "opened_epoch": d.epoch,
        "opened_bepoch": d.bepoch,
        "local_date": d.local_date,
        "last_customer_msg_at": q.last_customer_msg_at,
        "status": q.status.value,
        "detector_reason": reason[:32],
        "detect_score": score,
        "policy_version": q.policy_version,
        "calendar_version": q.calendar_version,
        "owner_ids": list(q.owner_ids),
        "frt_target_s": policy.frt_target_s,
        "frt_due_at": d.frt_due_at,
        "frt_due_calendar_at": d.frt_due_calendar_at,
        "backlog_due_at": d.backlog_due_at,
        "first_response_at": q.first_response_at,
        "first_responder_id": q.first_responder_id,
        "first_response_message_id": q.first_response_message_id,
        "link_method": q.link_method.value if q.link_method else None,
        "link_confidence": q.link_confidence,
        "frt_business_s": q.frt_business_s,
        "frt_calendar_s": q.frt_calendar_s,
        "strict_first_response_at": strict.at if strict else None,
        "strict_first_responder_id": strict.responder_id if strict else None,
        "strict_frt_business_s": (
            cal.business_seconds(start, strict.at) if strict.at > start else 0.0
        )
        if strict
        else None,
        "strict_frt_calendar_s": _secs(start, strict.at) if strict else None,
        "holding": q.holding,
        "followup_due_at": q.followup_due_at,
        "followup_done_at": q.followup_done_at,
        "followup_breached": breached,
        "resolved_at": q.resolved_at,
        "resolved_by": q.resolved_by.value if q.resolved_by else None,
        "resolver_id": q.resolver_id,
        "resolution_method": q.resolution_method,
        "resolution_business_s": cal.business_seconds(q.opened_at, q.resolved_at)
        if q.resolved_at and q.resolved_at > q.opened_at
        else (0.0 if q.resolved_at else None),
        "resolution_calendar_s": _secs(q.opened_at, q.resolved_at) if q.resolved_at else None,
        "bot_resolved": q.resolved_by is ResolvedBy.BOT,
        "reopen_count": q.reopen_count,
        "last_reopened_at": q.last_reopened_at,
        "peer_answered": q.peer_answered,
        "bot_touch": q.bot_touch,
        "bot_message_ids": list(q.bot_message_ids),
        "dismissed_reason": q.dismissed_reason,
        "dismissed_by": q.dismissed_by,
        "dismissed_at": q.dismissed_at,
        "withdrawn_at": q.withdrawn_at,
        "updated_at": ctx.now,
    }
    if strict is None and q.first_response_at is None and q.resolved_at is None:
        row["settle_at"] = d.open_settle  # nothing answered or resolved it: as computed once
    else:
        row["settle_at"] = sla_rollup.settle_time(row, cal, three_min_mark=d.three_min_mark)
    return row


@functools.cache
def _event_type(name: str) -> str:
    """``QuestionOpened`` → ``question_opened`` (once per effect class)."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _event_meta(effect: Effect) -> tuple[str, str, dict[str, Any]]:
    """(type, actor, meta) of an effect's audit row; ids and sizes only, never customer text."""
    snake = _event_type(type(effect).__name__)
    meta: dict[str, Any] = {"status": effect.question.status.value}
    actor = ""
    if isinstance(effect, ResponseLinked):
        actor = effect.responder_id
        meta.update(
            message_id=effect.message_id,
            kind=effect.kind.value,
            method=effect.method.value,
            confidence=effect.confidence,
        )
    elif isinstance(effect, QuestionDismissed):
        actor = effect.by
        meta["reason"] = effect.reason[:200]
    elif isinstance(effect, QuestionResolved):
        actor = effect.resolver_id or effect.by.value
        meta["method"] = effect.method
    elif isinstance(effect, QuestionWithdrawn):
        meta["reason"] = effect.reason
    elif hasattr(effect, "message_id"):
        meta["message_id"] = effect.message_id
    return snake, actor, meta


def _effect_at(effect: Effect, now: datetime) -> datetime:
    at = getattr(effect, "at", None)
    return at if isinstance(at, datetime) else now


# What an upsert needs of a stored row it replaces (``_stored_after``, and whether the rollups
# hold it): far fewer columns to decode than the whole row.
_ALL = tuple(c.name for c in Q.columns)
_BEFORE_COLUMNS = (
    "id",
    "status",
    *_IMMUTABLE,
    "alert_levels_sent",
    "detector_reason",
    "detect_score",
    "settle_at",
)


# Every column question_row writes, in one fixed order (the upsert's column list).
_ROW_COLUMNS = tuple(c.name for c in Q.columns if c.name != "id")
_CLOSED = (St.DISMISSED.value, St.WITHDRAWN.value)


def _upsert_tail() -> str:
    """``ON CONFLICT (public_id) DO UPDATE`` for the question upsert (both dialects).

    The detector's reason and score are written by the effect that opened the question only:
    later effects carry an empty reason, which keeps the stored one. A dismissed or withdrawn
    question is closed for good: a copy of it still open in another process (several processes
    on one database) must not write it back to life (``save_batch`` leaves those rows out; the
    guard repeats it in SQL).
    """
    keep = {*_IMMUTABLE, "alert_levels_sent", "detector_reason", "detect_score"}
    sets = [f"{c} = excluded.{c}" for c in _ROW_COLUMNS if c not in keep]
    sets += [
        "detector_reason = COALESCE(NULLIF(excluded.detector_reason, ''),"
        " question.detector_reason)",
        "detect_score = CASE WHEN excluded.detector_reason <> '' THEN excluded.detect_score"
        " ELSE question.detect_score END",
    ]
    closed = ", ".join(f"'{c}'" for c in _CLOSED)
    return (
        f"ON CONFLICT (public_id) DO UPDATE SET {', '.join(sets)}"
        f" WHERE question.status NOT IN ({closed}) OR excluded.status IN ({closed})"
    )


_UPSERT = Bulk(Q, _ROW_COLUMNS, _upsert_tail())
_INSERT_NEW = Bulk(Q, _ROW_COLUMNS, "ON CONFLICT (public_id) DO NOTHING")
_EVENTS = Bulk(E, ("question_id", "type", "at", "actor", "meta"))
_RESPONSE_COLUMNS = (
    "question_id",
    "chat",
    "message_id",
    "responder_id",
    "kind",
    "link_method",
    "confidence",
    "counts_for_sla",
    "holding",
    "cycle",
    "sent_at",
)
_RESPONSES = Bulk(R, _RESPONSE_COLUMNS, "ON CONFLICT (question_id, chat, message_id) DO NOTHING")


def _stored_after(
    row: dict[str, Any], before: dict[str, Any] | None, row_id: int
) -> dict[str, Any]:
    """What the upsert left in the store for ``row``: the rollups' "after" state.

    Mirrors ``_upsert_tail``: immutable columns and sent alert levels stay as stored; an
    empty detector reason keeps the stored reason and score.
    """
    if before is None:
        row["id"] = row_id  # a new row: stored as written (the row is not used again)
        return row
    out = dict(row, id=row_id)
    for column in (*_IMMUTABLE, "alert_levels_sent"):
        out[column] = before[column]
    if not row["detector_reason"]:
        out["detector_reason"], out["detect_score"] = (
            before["detector_reason"],
            before["detect_score"],
        )
    return out


async def save_batch(
    conn: AsyncConnection, batches: Sequence[tuple[Sequence[Effect], RowContext]]
) -> int:
    """Persist the effects of many events at once (an intake batch); returns how many.

    Each touched question is read once, upserted once with its final state, and its audit rows
    and responses are inserted in bulk, in effect order; the per-day SLA rollups move in the same
    transaction (old row out, new row in). Statement count no longer grows with the batch.
    """
    effects = [(e, ctx) for batch, ctx in batches for e in batch]
    if not effects:
        return 0
    order: list[str] = []
    final: dict[str, tuple[Question, RowContext, str, float]] = {}
    for effect, ctx in effects:
        qid = effect.question.id
        if qid not in final:
            order.append(qid)
            reason, score = ctx.detector_reason, ctx.detect_score
        else:
            _, _, reason, score = final[qid]
            if ctx.detector_reason:
                reason, score = ctx.detector_reason, ctx.detect_score
        final[qid] = (effect.question, ctx, reason, score)
    # A question opened in this batch cannot be in the store yet: its id is its opening
    # message's row id, and that message was new to the store in this very batch.
    opened = {e.question.id for e, _ in effects if isinstance(e, QuestionOpened)}
    stored = sorted(qid for qid in order if qid not in opened)  # the lock order everywhere
    before = {
        r["public_id"]: r
        for r in await bulk.read_by_values(
            conn, Q, "public_id", stored, _BEFORE_COLUMNS, lock=True
        )
    }
    # The whole old row only where the rollups hold it: its contribution comes out.
    mark = await sla_rollup.watermark(conn, lock="share")
    held = [qid for qid, row in before.items() if sla_rollup.is_held(row, mark)]
    if held:
        whole = await bulk.read_by_values(conn, Q, "public_id", sorted(held), _ALL, lock=True)
        before.update((r["public_id"], r) for r in whole)
    rows = []
    for qid in order:
        q, ctx, reason, score = final[qid]
        row = question_row(q, ctx, (reason, score))
        row["alert_levels_sent"] = []
        rows.append(row)
    ids = await _write_rows(conn, rows, before)
    after = {
        row["public_id"]: _stored_after(row, before.get(row["public_id"]), ids[row["public_id"]])
        for row in rows
        if row["public_id"] in ids
    }

    await _write_audit(conn, effects, ids)
    changes = [(before.get(qid), after[qid]) for qid in order if qid in after]
    calendar_of = effects[0][1].calendar_of
    await sla_rollup.apply_changes(
        conn, changes, calendar_of=calendar_of, tz=effects[0][1].tz, mark=mark
    )
    return len(effects)


async def _write_rows(
    conn: AsyncConnection, rows: list[dict[str, Any]], before: dict[str, dict[str, Any]]
) -> dict[str, int]:
    """Insert the new questions, update the stored ones; public id → row id of those written.

    A question another process closed (dismissed, withdrawn) stays closed: its stale open copy
    here is not written back. Stored rows are locked (PostgreSQL) since ``before`` was read.
    """
    new = [r for r in rows if r["public_id"] not in before]
    ids = {
        str(k[0]): v for k, v in (await _INSERT_NEW.insert_new(conn, new, ("public_id",))).items()
    }
    stored = []
    for row in rows:
        old = before.get(row["public_id"])
        if old is None:
            continue
        if old["status"] in _CLOSED and row["status"] not in _CLOSED:
            continue
        stored.append(row)
        ids[row["public_id"]] = int(old["id"])
    if stored:
        await _UPSERT.run(conn, stored)
    if len(ids) < len(rows):
        log.warning(
            "%d question update(s) skipped: closed in the store by another process",
            len(rows) - len(ids),
        )
    return ids


async def _write_audit(
    conn: AsyncConnection, effects: Sequence[tuple[Effect, RowContext]], ids: dict[str, int]
) -> None:
    """One ``sla_event`` row per effect and the linked responses, in bulk, in effect order."""
    events: list[dict[str, Any]] = []
    responses: list[dict[str, Any]] = []
    for effect, ctx in effects:
        row_id = ids.get(effect.question.id)
        if row_id is None:
            continue
        kind, actor, meta = _event_meta(effect)
        events.append(
            {
                "question_id": row_id,
                "type": kind,
                "at": _effect_at(effect, ctx.now),
                "actor": actor,
                "meta": meta,
            }
        )
        if isinstance(effect, ResponseLinked):
            chat = next(
                (r.chat for r in effect.question.responses if r.message_id == effect.message_id),
                effect.question.chat,
            )
            responses.append(
                {
                    "question_id": row_id,
                    "chat": chat,
                    "message_id": effect.message_id,
                    "responder_id": effect.responder_id,
                    "kind": effect.kind.value,
                    "link_method": effect.method.value,
                    "confidence": effect.confidence,
                    # Staff responses of every kind are kept for reload; peer/bot never count.
                    "counts_for_sla": effect.kind.value in _STAFF_KINDS,
                    "holding": effect.kind.value == "holding",
                    "cycle": effect.question.reopen_count,
                    "sent_at": effect.at,
                }
            )
        elif isinstance(effect, ResponseRevoked):
            if responses:  # keep insert-then-revoke order within the batch
                await _insert_responses(conn, responses)
                responses = []
            await conn.execute(
                update(R)
                .where(R.c.question_id == row_id, R.c.message_id == effect.message_id)
                .where(R.c.revoked_at.is_(None))
                .values(revoked_at=effect.at)
            )
    if events:
        await _EVENTS.run(conn, events)
    if responses:
        await _insert_responses(conn, responses)


async def _insert_responses(conn: AsyncConnection, responses: list[dict[str, Any]]) -> None:
    await _RESPONSES.run(conn, responses)


async def save_effects(conn: AsyncConnection, effects: Sequence[Effect], ctx: RowContext) -> int:
    """Persist one event's effects (commands, sweeps); intake batches use ``save_batch``."""
    return await save_batch(conn, [(effects, ctx)])


# Effects buffered in an intake batch's session until the batch ends (handlers/questions.py).
PENDING_KEY = "sla_pending_effects"
Pending = list[tuple[Sequence[Effect], RowContext]]


def buffer_effects(info: dict[Any, Any], effects: Sequence[Effect], ctx: RowContext) -> None:
    """Queue effects in a session's ``info`` to be written with the batch."""
    if effects:
        info.setdefault(PENDING_KEY, []).append((effects, ctx))


async def flush_pending(conn: AsyncConnection, info: dict[Any, Any]) -> Pending:
    """Write what ``buffer_effects`` queued; returns it. Call before writing effects directly
    in the same session, so the store sees them in the order the engine produced them."""
    pending: Pending = info.pop(PENDING_KEY, [])
    if pending:
        await save_batch(conn, pending)
    return pending


# --- reload ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredQuestion:
    question: Question
    row_id: int
    alert_levels_sent: tuple[str, ...]


def _to_question(row: Any, responses: Iterable[Response]) -> Question:
    platform = row.platform
    followup_breached = bool(row.followup_breached)
    return Question(
        id=row.public_id,
        chat=chat_key(platform, row.chat_id),
        asker_id=user_key(platform, row.asker_id),
        opened_at=row.opened_at,
        message_ids=tuple(row.message_ids or ()),
        owner_ids=tuple(row.owner_ids or ()),
        policy_version=row.policy_version,
        calendar_version=row.calendar_version,
        last_customer_msg_at=row.last_customer_msg_at,
        snippet=row.snippet,
        status=St(row.status),
        first_response_at=row.first_response_at,
        first_responder_id=row.first_responder_id,
        first_response_message_id=row.first_response_message_id,
        link_method=LinkMethod(row.link_method) if row.link_method else None,
        link_confidence=row.link_confidence,
        frt_business_s=row.frt_business_s,
        frt_calendar_s=row.frt_calendar_s,
        holding=row.holding,
        followup_due_at=row.followup_due_at,
        followup_done_at=row.followup_done_at,
        followup_breached=followup_breached,
        resolved_at=row.resolved_at,
        resolved_by=ResolvedBy(row.resolved_by) if row.resolved_by else None,
        resolver_id=row.resolver_id,
        resolution_method=row.resolution_method,
        reopen_count=row.reopen_count,
        last_reopened_at=row.last_reopened_at,
        peer_answered=row.peer_answered,
        bot_touch=row.bot_touch,
        bot_message_ids=tuple(row.bot_message_ids or ()),
        dismissed_reason=row.dismissed_reason,
        dismissed_by=row.dismissed_by,
        dismissed_at=row.dismissed_at,
        withdrawn_at=row.withdrawn_at,
        responses=tuple(responses),
    )


async def load_live(
    conn: AsyncConnection, *, now: datetime, reopen_window_s: float
) -> list[StoredQuestion]:
    """Open and answered questions, plus resolved ones still inside the reopen window."""
    horizon = now - timedelta(seconds=reopen_window_s)
    stmt = select(Q).where(
        or_(
            Q.c.status.in_((St.OPEN.value, St.ANSWERED.value)),
            and_(Q.c.status == St.RESOLVED.value, Q.c.resolved_at >= horizon),
        )
    )
    return await _stored((await conn.execute(stmt)).all(), conn)


async def load_questions(
    conn: AsyncConnection, public_ids: Collection[str], *, lock: bool = False
) -> dict[str, StoredQuestion]:
    """The stored state of these questions (any status), by public id.

    ``lock`` takes their row locks on PostgreSQL (``FOR UPDATE``) until the transaction ends, so
    two processes acting on one question (an alert level, a quiet resolution) take turns and
    the second sees what the first wrote.
    """
    ids = sorted(set(public_ids))  # one lock order everywhere: no deadlock between processes
    rows: list[Any] = []
    for start in range(0, len(ids), 500):
        stmt = select(Q).where(Q.c.public_id.in_(ids[start : start + 500]))
        stmt = stmt.order_by(Q.c.public_id)
        if lock and conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        rows += (await conn.execute(stmt)).all()
    return {s.question.id: s for s in await _stored(rows, conn)}


async def _stored(rows: Sequence[Any], conn: AsyncConnection) -> list[StoredQuestion]:
    """Rows plus their counted responses, as engine questions."""
    by_id: dict[int, list[Response]] = {}
    ids = [r.id for r in rows]
    for chunk in range(0, len(ids), 5000):
        part = ids[chunk : chunk + 5000]
        rstmt = (
            select(R)
            .where(R.c.question_id.in_(part), R.c.revoked_at.is_(None), R.c.counts_for_sla)
            .order_by(R.c.sent_at, R.c.id)
        )
        for r in (await conn.execute(rstmt)).all():
            by_id.setdefault(r.question_id, []).append(
                Response(
                    message_id=r.message_id,
                    chat=r.chat,
                    responder_id=r.responder_id,
                    at=r.sent_at,
                    holding=r.holding,
                    method=LinkMethod(r.link_method),
                    confidence=r.confidence,
                    cycle=r.cycle,
                )
            )
    return [
        StoredQuestion(
            _to_question(r, by_id.get(r.id, ())), r.id, tuple(r.alert_levels_sent or ())
        )
        for r in rows
    ]


async def refresh(
    conn: AsyncConnection,
    engine: QuestionEngine,
    public_ids: Collection[str],
    *,
    keep: Collection[str] = (),
    lock: bool = True,
) -> dict[str, StoredQuestion]:
    """Bring the engine's copies of these questions up to date with the store; return them.

    With several processes on one database a process's copy can be stale (another process
    answered, resolved or dismissed the question since). ``keep``: ids whose in-memory copy is
    newer than the store (effects not yet committed by this process), left as they are.
    Questions the store does not have yet (opened in this process, not committed) stay too.
    """
    stored = await load_questions(conn, public_ids, lock=lock)
    for qid, s in stored.items():
        if qid in keep:
            continue
        held = engine.get(qid)
        if held is None or held != s.question:
            engine.adopt(s.question)
    return stored


async def mark_alerts_sent(
    conn: AsyncConnection, sent: dict[str, Iterable[str]], now: datetime
) -> None:
    """Add level keys to each question's ``alert_levels_sent`` (and an ``alert`` event)."""
    if not sent:
        return
    rows = (
        await conn.execute(
            select(Q.c.id, Q.c.public_id, Q.c.alert_levels_sent).where(
                Q.c.public_id.in_(list(sent))
            )
        )
    ).all()
    for row in rows:
        have = list(row.alert_levels_sent or [])
        new = [lvl for lvl in dict.fromkeys(sent[row.public_id]) if lvl not in have]
        if not new:
            continue
        await conn.execute(
            update(Q).where(Q.c.id == row.id).values(alert_levels_sent=[*have, *new])
        )
        await conn.execute(
            E.insert().values(
                question_id=row.id, type="alert", at=now, actor="", meta={"levels": new}
            )
        )


# --- queries --------------------------------------------------------------------------------

QUESTION_FIELDS = (
    "id",
    "group_id",
    "platform",
    "asker_id",
    "opened_at",
    "status",
    "first_response_at",
    "first_responder_id",
    "link_method",
    "link_confidence",
    "owner_ids",
    "frt_business_s",
    "frt_calendar_s",
    "frt_due_at",
    "resolved_at",
    "reopen_count",
    "policy_version",
)


def _public(row: Any) -> dict[str, Any]:
    return {
        "id": row.public_id,
        "group_id": row.chat_id,
        "platform": row.platform,
        "asker_id": row.asker_id,
        "opened_at": row.opened_at,
        "status": row.status,
        "first_response_at": row.first_response_at,
        "first_responder_id": row.first_responder_id,
        "link_method": row.link_method,
        "link_confidence": row.link_confidence,
        "owner_ids": list(row.owner_ids or ()),
        "frt_business_s": row.frt_business_s,
        "frt_calendar_s": row.frt_calendar_s,
        "frt_due_at": row.frt_due_at,
        "resolved_at": row.resolved_at,
        "reopen_count": row.reopen_count,
        "policy_version": row.policy_version,
    }


async def list_questions(
    conn: AsyncConnection,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    group: str | None = None,
    operator: str | None = None,
    status: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """One row per question opened in ``[start, end)``; ``operator`` = responder or owner."""
    stmt = select(Q)
    if start is not None:
        stmt = stmt.where(Q.c.opened_at >= start)
    if end is not None:
        stmt = stmt.where(Q.c.opened_at < end)
    if group:
        stmt = stmt.where(Q.c.chat_id == group)
    if status:
        stmt = stmt.where(Q.c.status.in_(status.split(",")))
    if operator:
        fn = func.json_array_elements_text if conn.dialect.name == "postgresql" else func.json_each
        owners = fn(Q.c.owner_ids).table_valued("value").alias("owner")
        owned = select(literal(1)).select_from(owners).where(owners.c.value == operator)
        stmt = stmt.where(or_(Q.c.first_responder_id == operator, owned.exists()))
    stmt = stmt.order_by(Q.c.opened_at, Q.c.id).limit(limit).offset(offset)
    return [_public(row) for row in (await conn.execute(stmt)).all()]


async def get_question(conn: AsyncConnection, public_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(Q).where(Q.c.public_id == public_id))).first()
    return _public(row) if row is not None else None
