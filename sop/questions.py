"""The question state machine (reference/sla.md §7.3-7.5) and its in-memory index.

``QuestionEngine`` holds the live questions of every monitored chat. Each entry point takes one
event (customer, staff or bot message, recall, command) with its time, changes the questions it
touches and returns typed effects carrying the question's new state; the runtime persists every
effect and schedules timers from ``sop.timers``. The detector's decision, the owners of a chat
and its calendar are injected, so nothing here reads text rules, the roster or the clock.

States: open → answered → resolved, plus dismissed and withdrawn (both excluded from metrics).
Reopening sets a resolved or answered question back to open and restarts its first-response
clock at the reopening message ("cycle" = reopen_count).

This runs once per message on the intake path while a chat can hold hundreds of live questions,
so the lookups the transitions make (an asker's questions in a chat, a chat's open questions,
its pending follow-ups) are kept as sorted indexes updated on every store, not rebuilt per call.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from operator import attrgetter, itemgetter
from typing import Any, TypedDict, TypeVar, Unpack

from sop.linking import (
    Candidate,
    Link,
    LinkMethod,
    OpenSpan,
    link_group_indexed,
    link_private_message,
)
from sop.policy import SlaPolicy
from sop.timers import Calendar, followup_due


class QuestionStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"
    WITHDRAWN = "withdrawn"


class ResponseKind(StrEnum):
    FIRST = "first"
    HOLDING = "holding"
    FOLLOWUP = "followup"
    PEER = "peer"
    BOT = "bot"


class ResolvedBy(StrEnum):
    OPERATOR = "operator"
    CUSTOMER = "customer"
    BOT = "bot"  # the bot answered and the customer confirmed: out of human denominators
    AUTO = "auto"


LIVE = frozenset({QuestionStatus.OPEN, QuestionStatus.ANSWERED})
SNIPPET_KEEP = 200


@dataclass(frozen=True, slots=True)
class Response:
    """A staff message linked to a question (counts for the SLA while it is not recalled)."""

    message_id: str
    chat: str  # the group, or the private chat for a 1:1 answer
    responder_id: str
    at: datetime
    holding: bool
    method: LinkMethod
    confidence: float
    cycle: int


@dataclass(frozen=True, slots=True)
class Question:
    """One customer question and everything the SLA needs about it."""

    id: str
    chat: str
    asker_id: str
    opened_at: datetime
    message_ids: tuple[str, ...]
    owner_ids: tuple[str, ...]  # frozen at open: accountability never moves with the roster
    policy_version: int
    calendar_version: int
    last_customer_msg_at: datetime
    snippet: str = ""
    status: QuestionStatus = QuestionStatus.OPEN
    first_response_at: datetime | None = None
    first_responder_id: str | None = None
    first_response_message_id: str | None = None
    link_method: LinkMethod | None = None
    link_confidence: float | None = None
    frt_business_s: float | None = None
    frt_calendar_s: float | None = None
    holding: bool = False
    followup_due_at: datetime | None = None
    followup_done_at: datetime | None = None
    followup_breached: bool = False
    resolved_at: datetime | None = None
    resolved_by: ResolvedBy | None = None
    resolver_id: str | None = None
    resolution_method: str | None = None
    reopen_count: int = 0
    last_reopened_at: datetime | None = None
    peer_answered: bool = False
    bot_touch: bool = False
    bot_message_ids: tuple[str, ...] = ()
    dismissed_reason: str | None = None
    dismissed_by: str | None = None
    dismissed_at: datetime | None = None
    withdrawn_at: datetime | None = None
    responses: tuple[Response, ...] = ()

    @property
    def clock_start(self) -> datetime:
        """Start of the current first-response clock (the reopening message after a reopen)."""
        return self.last_reopened_at or self.opened_at

    @property
    def followup_pending(self) -> bool:
        """A holding reply is waiting for its substantive follow-up."""
        return self.holding and self.followup_done_at is None

    @property
    def is_live(self) -> bool:
        return self.status in LIVE

    def cycle_responses(self) -> list[Response]:
        """Counted responses of the current cycle, oldest first."""
        return _in_cycle(self.responses, self.reopen_count)


_RESPONSE_ORDER = attrgetter("at", "message_id")


def _in_cycle(responses: tuple[Response, ...], cycle: int) -> list[Response]:
    rs = [r for r in responses if r.cycle == cycle]
    if len(rs) > 1:
        rs.sort(key=_RESPONSE_ORDER)  # stable, like sorted(): ties keep their stored order
    return rs


class _Changes(TypedDict, total=False):
    """Any subset of ``Question``'s fields (a test keeps the two in step)."""

    id: str
    chat: str
    asker_id: str
    opened_at: datetime
    message_ids: tuple[str, ...]
    owner_ids: tuple[str, ...]
    policy_version: int
    calendar_version: int
    last_customer_msg_at: datetime
    snippet: str
    status: QuestionStatus
    first_response_at: datetime | None
    first_responder_id: str | None
    first_response_message_id: str | None
    link_method: LinkMethod | None
    link_confidence: float | None
    frt_business_s: float | None
    frt_calendar_s: float | None
    holding: bool
    followup_due_at: datetime | None
    followup_done_at: datetime | None
    followup_breached: bool
    resolved_at: datetime | None
    resolved_by: ResolvedBy | None
    resolver_id: str | None
    resolution_method: str | None
    reopen_count: int
    last_reopened_at: datetime | None
    peer_answered: bool
    bot_touch: bool
    bot_message_ids: tuple[str, ...]
    dismissed_reason: str | None
    dismissed_by: str | None
    dismissed_at: datetime | None
    withdrawn_at: datetime | None
    responses: tuple[Response, ...]


_FIELDS = tuple(f.name for f in dataclasses.fields(Question))
_FIELD_AT = {name: i for i, name in enumerate(_FIELDS)}
_field_values = attrgetter(*_FIELDS)


def _evolve(q: Question, **changes: Unpack[_Changes]) -> Question:
    """``dataclasses.replace(q, **changes)`` at about half the cost.

    ``replace`` walks the field list and passes every field by keyword on each call (slow on
    3.11); this reads all fields in one C call and passes them positionally. Same values, same
    ``__init__``.
    """
    values: list[Any] = list(_field_values(q))
    for name, value in changes.items():
        values[_FIELD_AT[name]] = value
    return Question(*values)


# What _derive recomputes: adjacent fields of Question, so it writes them as one slice.
_CREDIT_FIELDS = (
    "status",
    "first_response_at",
    "first_responder_id",
    "first_response_message_id",
    "link_method",
    "link_confidence",
    "frt_business_s",
    "frt_calendar_s",
    "holding",
    "followup_due_at",
    "followup_done_at",
    "followup_breached",
)
_CREDIT = slice(_FIELD_AT["status"], _FIELD_AT["status"] + len(_CREDIT_FIELDS))
_RESPONSES = _FIELD_AT["responses"]
if _FIELDS[_CREDIT] != _CREDIT_FIELDS:
    raise TypeError("Question's credit fields moved: update _CREDIT_FIELDS")


def _with_credit(
    q: Question, responses: tuple[Response, ...], credit: tuple[Any, ...]
) -> Question:
    """``q`` with ``responses`` and the values of ``_CREDIT_FIELDS``, in that order."""
    values: list[Any] = list(_field_values(q))
    values[_CREDIT] = credit
    values[_RESPONSES] = responses
    return Question(*values)


# --- effects -------------------------------------------------------------------------------
# Each effect carries the question's state after the change, so persisting is an upsert of
# ``effect.question`` plus an event row.


@dataclass(frozen=True, slots=True)
class QuestionOpened:
    question: Question


@dataclass(frozen=True, slots=True)
class MessageMerged:
    question: Question
    message_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class MessageRemoved:
    """A recalled customer message left a question that still has other messages."""

    question: Question
    message_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ResponseLinked:
    question: Question
    message_id: str
    responder_id: str
    at: datetime
    kind: ResponseKind
    method: LinkMethod
    confidence: float
    counts_for_sla: bool


@dataclass(frozen=True, slots=True)
class QuestionAnswered:
    """The first counted human response of a cycle: credit and FRT."""

    question: Question
    at: datetime
    responder_id: str
    frt_business_s: float
    frt_calendar_s: float
    cycle: int


@dataclass(frozen=True, slots=True)
class FollowupDone:
    question: Question
    message_id: str
    responder_id: str
    at: datetime
    breached: bool


@dataclass(frozen=True, slots=True)
class FollowupBreached:
    """The follow-up to a holding reply is overdue (flagged once, at its due time)."""

    question: Question
    at: datetime


@dataclass(frozen=True, slots=True)
class QuestionResolved:
    question: Question
    at: datetime
    by: ResolvedBy
    resolver_id: str | None
    method: str


@dataclass(frozen=True, slots=True)
class QuestionReopened:
    question: Question
    message_id: str
    at: datetime
    reopen_count: int


@dataclass(frozen=True, slots=True)
class QuestionWithdrawn:
    question: Question
    at: datetime
    reason: str  # "recall" or "left"
    message_id: str | None = None
    by_sender: bool = True


@dataclass(frozen=True, slots=True)
class QuestionDismissed:
    question: Question
    at: datetime
    by: str
    reason: str


@dataclass(frozen=True, slots=True)
class ResponseRevoked:
    """A linked staff or bot message was recalled; ``back_to_open`` if nothing answers now."""

    question: Question
    message_id: str
    at: datetime
    back_to_open: bool


Effect = (
    QuestionOpened
    | MessageMerged
    | MessageRemoved
    | ResponseLinked
    | QuestionAnswered
    | FollowupDone
    | FollowupBreached
    | QuestionResolved
    | QuestionReopened
    | QuestionWithdrawn
    | QuestionDismissed
    | ResponseRevoked
)


# _CREDIT_FIELDS after status when a cycle has no response yet.
_NO_CREDIT = (None, None, None, None, None, None, None, False, None, None, False)


def _candidate(q: Question) -> Candidate:
    return Candidate(q.id, q.asker_id, q.clock_start, q.status is QuestionStatus.OPEN)


def _secs(a: datetime, b: datetime) -> float:
    return max(0.0, (b - a).total_seconds())


# Entries of the sorted indexes: (clock_start, id), the order every lookup of the engine uses
# (ids break ties, as in a sort by that key).
_Entry = tuple[datetime, str]
_K = TypeVar("_K")
_start_of = itemgetter(0)


def _insert(index: dict[_K, list[_Entry]], where: _K, entry: _Entry) -> None:
    insort(index.setdefault(where, []), entry)


def _remove(index: dict[_K, list[_Entry]], where: _K, entry: _Entry) -> None:
    entries = index[where]
    i = bisect_left(entries, entry)
    if i == len(entries) or entries[i] != entry:
        raise KeyError(entry)  # the index lost track of a question: never silently
    del entries[i]
    if not entries:
        del index[where]


class QuestionEngine:
    """In-memory index of live questions and the transitions between their states."""

    def __init__(
        self,
        policy: SlaPolicy,
        *,
        calendar_of: Callable[[str], Calendar],
        owners_of: Callable[[str], tuple[str, ...]],
        older_policies: Iterable[SlaPolicy] = (),
        id_prefix: str = "q",
    ) -> None:
        self._policies: dict[int, SlaPolicy] = {p.version: p for p in older_policies}
        self._policy = policy
        self._policies[policy.version] = policy
        self._calendar_of = calendar_of
        self._owners_of = owners_of
        self._id_prefix = id_prefix
        self._counter = 0
        self._q: dict[str, Question] = {}
        # Ids per chat and per asker (dicts as ordered sets: O(1) removal).
        self._by_chat: dict[str, dict[str, None]] = {}
        self._by_asker: dict[str, dict[str, None]] = {}
        self._by_msg: dict[tuple[str, str], list[str]] = {}
        # Sorted by (clock_start, id), kept up to date by _put/_drop:
        self._of: dict[tuple[str, str], list[_Entry]] = {}  # (chat, asker): all held
        self._opened: dict[str, list[_Entry]] = {}  # chat: open questions
        self._pending: dict[str, list[_Entry]] = {}  # chat: live, follow-up pending
        # Ids by status, for the sweeps (which only ever act on these).
        self._answered: dict[str, None] = {}
        self._resolved: dict[str, None] = {}
        # Insertion rank of each id in _q, so prune can list ids in _q's order without a scan.
        self._seq: dict[str, int] = {}
        self._inserted = 0

    # --- policy and index ------------------------------------------------------------------

    @property
    def policy(self) -> SlaPolicy:
        """The policy new questions open under."""
        return self._policy

    def set_policy(self, policy: SlaPolicy) -> None:
        """Apply a new policy to questions opened from now on; open ones keep theirs."""
        known = self._policies.get(policy.version)
        if known is not None and known != policy:
            raise ValueError(f"policy v{policy.version} already exists with other values")
        self._policies[policy.version] = policy
        self._policy = policy

    def policy_for(self, question: Question) -> SlaPolicy:
        return self._policies[question.policy_version]

    def get(self, question_id: str) -> Question | None:
        return self._q.get(question_id)

    def questions(self, chat: str | None = None) -> list[Question]:
        """Questions held in memory (live, plus resolved ones still inside the reopen window)."""
        ids = self._by_chat.get(chat, {}) if chat is not None else self._q
        return sorted((self._q[i] for i in ids), key=lambda q: (q.opened_at, q.id))

    def load(self, questions: Iterable[Question]) -> None:
        """Rebuild the index from stored questions on start (live and recently resolved)."""
        batch = list(questions)
        unknown = sorted({q.policy_version for q in batch} - set(self._policies))
        if unknown:
            raise ValueError(f"no policy loaded for versions {unknown}")
        for q in batch:
            if q.is_live or q.status is QuestionStatus.RESOLVED:
                self._put(q)

    def reset(self, questions: Iterable[Question]) -> None:
        """Forget every held question and hold ``questions`` instead (a reload from the store
        after a write that failed left memory ahead of it)."""
        batch = list(questions)
        unknown = sorted({q.policy_version for q in batch} - set(self._policies))
        if unknown:
            raise ValueError(f"no policy loaded for versions {unknown}")
        for index in (
            self._q,
            self._by_chat,
            self._by_asker,
            self._by_msg,
            self._of,
            self._opened,
            self._pending,
            self._answered,
            self._resolved,
            self._seq,
        ):
            index.clear()
        self.load(batch)

    def adopt(self, question: Question) -> None:
        """Replace the held copy with ``question`` as stored (another process may have moved it).

        Several processes can share one store; a process holds a copy of every question live at
        its start, so before acting on a copy it did not write itself, it adopts the stored one.
        A question that is no longer live (or recently resolved) is forgotten.
        """
        if question.policy_version not in self._policies:
            raise ValueError(f"no policy loaded for version {question.policy_version}")
        if question.id in self._q:
            self._drop(question.id)
        if question.is_live or question.status is QuestionStatus.RESOLVED:
            self._put(question)

    def prune(self, now: datetime) -> list[str]:
        """Forget resolved questions whose reopen window has passed; returns their ids."""
        gone = [
            qid
            for qid in self._resolved
            if (q := self._q[qid]).resolved_at is not None
            and _secs(q.resolved_at, now) > self.policy_for(q).reopen_window_s
        ]
        gone.sort(key=self._seq.__getitem__)  # in the order of _q, as a scan of it would list
        for qid in gone:
            self._drop(qid)
        return gone

    def _new_id(self) -> str:
        while True:
            self._counter += 1
            qid = f"{self._id_prefix}{self._counter}"
            if qid not in self._q:
                return qid

    def _put(self, q: Question, added: Iterable[tuple[str, str]] | None = None) -> Question:
        """Store ``q`` and update every index.

        ``added`` names the message keys ``q`` gained over the held copy, when the caller knows
        them (the hot paths): every other key of a held question is already indexed, so this
        equals re-indexing them all, which ``None`` does (new questions, loads, recalls).
        """
        qid = q.id
        old = self._q.get(qid)
        if old is None:
            self._by_chat.setdefault(q.chat, {})[qid] = None
            self._by_asker.setdefault(q.asker_id, {})[qid] = None
            self._inserted += 1
            self._seq[qid] = self._inserted
            added = None
        self._q[qid] = q
        if added is None:
            keys = [(q.chat, m) for m in (*q.message_ids, *q.bot_message_ids)]
            keys += [(r.chat, r.message_id) for r in q.responses]
            added = keys
        for key in added:
            ids = self._by_msg.setdefault(key, [])
            if qid not in ids:
                ids.append(qid)
        self._reindex(old, q)
        return q

    def _reindex(self, old: Question | None, q: Question) -> None:
        """Move ``q`` in the sorted and status indexes from where ``old`` (its held copy) was."""
        status = q.status
        entry = (q.clock_start, q.id)
        pending = status in LIVE and q.followup_pending
        if old is None:
            _insert(self._of, (q.chat, q.asker_id), entry)
            if status is QuestionStatus.OPEN:
                _insert(self._opened, q.chat, entry)
            if pending:
                _insert(self._pending, q.chat, entry)
        else:
            old_entry = (old.clock_start, old.id)
            moved = old_entry != entry or old.chat != q.chat or old.asker_id != q.asker_id
            if moved:
                _remove(self._of, (old.chat, old.asker_id), old_entry)
                _insert(self._of, (q.chat, q.asker_id), entry)
            was_open = old.status is QuestionStatus.OPEN
            is_open = status is QuestionStatus.OPEN
            if was_open and (moved or not is_open):
                _remove(self._opened, old.chat, old_entry)
            if is_open and (moved or not was_open):
                _insert(self._opened, q.chat, entry)
            was_pending = old.status in LIVE and old.followup_pending
            if was_pending and (moved or not pending):
                _remove(self._pending, old.chat, old_entry)
            if pending and (moved or not was_pending):
                _insert(self._pending, q.chat, entry)
        if status is QuestionStatus.ANSWERED:
            self._answered[q.id] = None
        else:
            self._answered.pop(q.id, None)
        if status is QuestionStatus.RESOLVED:
            self._resolved[q.id] = None
        else:
            self._resolved.pop(q.id, None)

    def _drop(self, qid: str) -> None:
        q = self._q.pop(qid)
        del self._seq[qid]
        del self._by_chat[q.chat][qid]
        if not self._by_chat[q.chat]:
            del self._by_chat[q.chat]
        del self._by_asker[q.asker_id][qid]
        if not self._by_asker[q.asker_id]:
            del self._by_asker[q.asker_id]
        # Only the keys this question put in the index (not a scan of the whole index).
        keys = [(q.chat, m) for m in (*q.message_ids, *q.bot_message_ids)]
        keys += [(r.chat, r.message_id) for r in q.responses]
        for key in keys:
            ids = self._by_msg.get(key)
            if ids is not None and qid in ids:
                ids.remove(qid)
                if not ids:
                    del self._by_msg[key]
        entry = (q.clock_start, qid)
        _remove(self._of, (q.chat, q.asker_id), entry)
        if q.status is QuestionStatus.OPEN:
            _remove(self._opened, q.chat, entry)
        if q.status in LIVE and q.followup_pending:
            _remove(self._pending, q.chat, entry)
        self._answered.pop(qid, None)
        self._resolved.pop(qid, None)

    def _known(self, chat: str, msg_id: str | None) -> list[Question]:
        if msg_id is None:
            return []
        return [self._q[i] for i in self._by_msg.get((chat, msg_id), []) if i in self._q]

    def _of_asker(self, asker: str, chat: str | None, *statuses: QuestionStatus) -> list[Question]:
        """The asker's questions in ``chat`` (None: in every chat) in ``statuses``, oldest
        clock first."""
        if chat is not None:
            entries = self._of.get((chat, asker))
            if not entries:
                return []
            held = self._q
            return [q for _, qid in entries if (q := held[qid]).status in statuses]
        qs = (self._q[i] for i in self._by_asker.get(asker, {}))
        return sorted((q for q in qs if q.status in statuses), key=lambda q: (q.clock_start, q.id))

    def _link_group(
        self,
        chat: str,
        at: datetime,
        quoted: Question | None,
        mention_user_ids: Collection[str],
        statuses: Collection[QuestionStatus],
    ) -> tuple[Link, ...]:
        """Links of a group message among the chat's questions in ``statuses`` (live ones for
        staff, open ones for bots), read from the indexes (``link_group_indexed``)."""
        opened = self._opened.get(chat, [])
        held = self._q

        def asker_candidates(uid: str) -> Sequence[Candidate]:
            out: list[Candidate] = []
            for start, qid in self._of.get((chat, uid), ()):
                if start > at:
                    break  # sorted by clock start: the rest started after the message too
                q = held[qid]
                if q.status in statuses:
                    out.append(Candidate(qid, q.asker_id, start, q.status is QuestionStatus.OPEN))
            return out

        def open_span() -> OpenSpan | None:
            n = len(opened)  # open ones whose clock started by `at`: all, unless out of order
            if n and opened[-1][0] > at:
                n = bisect_right(opened, at, key=_start_of)
            if not n:
                return None
            return OpenSpan(opened[0][1], opened[n - 1][0], n == 1)

        # The window is the newest open question's (even one whose clock starts after `at`).
        newest = held[opened[-1][1]] if opened else None
        return link_group_indexed(
            at=at,
            quoted_question_id=quoted.id if quoted is not None else None,
            mention_user_ids=mention_user_ids,
            mention_all=False,
            proximity_window_s=self.policy_for(newest).proximity_window_s if newest else 0.0,
            asker_candidates=asker_candidates,
            open_span=open_span,
        )

    # --- derived state -----------------------------------------------------------------------

    def _derive(self, q: Question, responses: tuple[Response, ...] | None = None) -> Question:
        """Recompute credit, FRT and follow-up of the current cycle from its responses.

        ``responses`` replaces ``q``'s own first: one copy of the question instead of three, as
        this runs for every linked staff message.
        """
        if responses is None:
            responses = q.responses
        rs = _in_cycle(responses, q.reopen_count)
        if not rs:
            reverted = QuestionStatus.OPEN if q.status is QuestionStatus.ANSWERED else q.status
            return _with_credit(q, responses, (reverted, *_NO_CREDIT))
        first = rs[0]
        calendar = self._calendar_of(q.chat)
        policy = self.policy_for(q)
        due = followup_due(first.at, policy, calendar) if first.holding else None
        done = next((r.at for r in rs[1:] if not r.holding), None) if first.holding else None
        if done is not None and due is not None:
            breached = done > due
        else:
            # Keep a flag raised at the due time unless the due time itself moved.
            breached = q.followup_breached and q.followup_due_at == due and due is not None
        status = QuestionStatus.ANSWERED if q.status is QuestionStatus.OPEN else q.status
        start = q.clock_start
        credit = (
            status,
            first.at,
            first.responder_id,
            first.message_id,
            first.method,
            first.confidence,
            calendar.business_seconds(start, first.at) if first.at > start else 0.0,
            _secs(start, first.at),
            first.holding,
            due,
            done,
            breached,
        )
        return _with_credit(q, responses, credit)

    # --- customer messages -------------------------------------------------------------------

    def on_customer_message(
        self,
        chat: str,
        msg_id: str,
        sender_id: str,
        at: datetime,
        *,
        is_question: bool,
        text: str = "",
        is_ack: bool = False,
        is_exempt: bool = False,
        reply_to_msg_id: str | None = None,
        mention_user_ids: Collection[str] = (),
        question_id: str | None = None,
    ) -> list[Effect]:
        """A customer spoke in a group. ``is_question`` comes from the detector.

        ``is_ack`` marks an acknowledgement (谢谢/好的/解决了) and ``is_exempt`` any exempt
        phrase or sticker: neither opens, merges into or reopens a question. ``question_id``
        names a question this message opens (else the engine numbers it).
        """
        if self._by_msg.get((chat, msg_id)):
            return []  # replayed event
        quoted = self._known(chat, reply_to_msg_id)
        effects: list[Effect] = self._peer_answers(
            chat, msg_id, sender_id, at, quoted, mention_user_ids
        )
        own = next((q for q in quoted if q.asker_id == sender_id), None)
        if is_ack:
            return effects + self._acknowledge(chat, sender_id, at, own)
        if is_exempt:
            return effects
        if own is not None:
            handled = self._own_quote(own, msg_id, at)
            if handled is not None:
                return effects + handled
        burst = self._burst_target(chat, sender_id, at)
        if burst is not None:
            return [*effects, self._merge(burst, msg_id, at)]
        if not is_question:
            return effects
        recent = self._recently_resolved(chat, sender_id, at)
        if recent is not None:
            return [*effects, self._reopen(recent, msg_id, at)]
        return [*effects, self._open(chat, msg_id, sender_id, at, text, question_id)]

    def _open(
        self, chat: str, msg_id: str, sender_id: str, at: datetime, text: str, qid: str | None
    ) -> QuestionOpened:
        if qid is not None and qid in self._q:
            raise ValueError(f"question id {qid} already in use")
        calendar = self._calendar_of(chat)
        q = Question(
            id=qid or self._new_id(),
            chat=chat,
            asker_id=sender_id,
            opened_at=at,
            message_ids=(msg_id,),
            owner_ids=tuple(self._owners_of(chat)),
            policy_version=self._policy.version,
            calendar_version=calendar.version,
            last_customer_msg_at=at,
            snippet=text.strip()[:SNIPPET_KEEP],
        )
        return QuestionOpened(self._put(q))

    def _merge(self, q: Question, msg_id: str, at: datetime) -> MessageMerged:
        q = _evolve(
            q,
            message_ids=(*q.message_ids, msg_id),
            last_customer_msg_at=max(at, q.last_customer_msg_at),
        )
        return MessageMerged(self._put(q, ((q.chat, msg_id),)), msg_id, at)

    def _burst_target(self, chat: str, sender_id: str, at: datetime) -> Question | None:
        for q in reversed(self._of_asker(sender_id, chat, QuestionStatus.OPEN)):
            if 0 <= _secs(q.last_customer_msg_at, at) <= self.policy_for(q).burst_merge_s:
                return q
        return None

    def _recently_resolved(self, chat: str, sender_id: str, at: datetime) -> Question | None:
        resolved = [
            q
            for q in self._of_asker(sender_id, chat, QuestionStatus.RESOLVED)
            if q.resolved_at is not None
            and _secs(q.resolved_at, at) <= self.policy_for(q).reopen_window_s
        ]
        return max(resolved, key=lambda q: q.resolved_at or q.opened_at, default=None)

    def _own_quote(self, q: Question, msg_id: str, at: datetime) -> list[Effect] | None:
        """The asker quoted their own question or its answer; None when it changes nothing."""
        if q.status is QuestionStatus.OPEN:
            return [self._merge(q, msg_id, at)]
        if q.status is QuestionStatus.ANSWERED:
            return [self._reopen(q, msg_id, at)]
        if (
            q.status is QuestionStatus.RESOLVED
            and q.resolved_at is not None
            and _secs(q.resolved_at, at) <= self.policy_for(q).reopen_window_s
        ):
            return [self._reopen(q, msg_id, at)]
        return None

    def _reopen(self, q: Question, msg_id: str, at: datetime) -> QuestionReopened:
        q = _evolve(
            q,
            status=QuestionStatus.OPEN,
            reopen_count=q.reopen_count + 1,
            last_reopened_at=at,
            message_ids=(*q.message_ids, msg_id),
            last_customer_msg_at=at,
            resolved_at=None,
            resolved_by=None,
            resolver_id=None,
            resolution_method=None,
            bot_touch=False,
        )
        q = self._put(self._derive(q), ((q.chat, msg_id),))
        return QuestionReopened(q, msg_id, at, q.reopen_count)

    def _acknowledge(
        self, chat: str, sender_id: str, at: datetime, quoted: Question | None
    ) -> list[Effect]:
        """谢谢 after an answer resolves it; after a bot answer only, it resolves as the bot's."""

        def resolvable(q: Question) -> bool:
            if q.status is QuestionStatus.ANSWERED:
                return not q.followup_pending  # 好的 after 稍等 acknowledges the wait only
            return q.status is QuestionStatus.OPEN and q.bot_touch

        if quoted is not None:
            target = quoted if resolvable(quoted) else None
        else:
            mine = self._of_asker(sender_id, chat, QuestionStatus.OPEN, QuestionStatus.ANSWERED)
            target = next((q for q in reversed(mine) if resolvable(q)), None)
        if target is None:
            return []
        if target.status is QuestionStatus.ANSWERED:
            return [self._resolve(target, at, ResolvedBy.CUSTOMER, None, "customer_ack")]
        return [self._resolve(target, at, ResolvedBy.BOT, None, "customer_confirmed_bot")]

    def _peer_answers(
        self,
        chat: str,
        msg_id: str,
        sender_id: str,
        at: datetime,
        quoted: list[Question],
        mention_user_ids: Collection[str],
    ) -> list[Effect]:
        """Another customer answering an asker: recorded, but the SLA clock keeps running."""
        if not quoted and not mention_user_ids:
            return []  # most messages: nothing to look up
        targets: dict[str, LinkMethod] = {
            q.id: LinkMethod.QUOTE
            for q in quoted
            if q.asker_id != sender_id and q.status is QuestionStatus.OPEN
        }
        for uid in mention_user_ids:
            if uid == sender_id:
                continue
            opened = self._of_asker(uid, chat, QuestionStatus.OPEN)
            if opened:
                targets.setdefault(opened[0].id, LinkMethod.MENTION)
        effects: list[Effect] = []
        for qid, method in targets.items():
            q = self._put(_evolve(self._q[qid], peer_answered=True), ())
            confidence = 1.0 if method is LinkMethod.QUOTE else 0.95
            effects.append(
                ResponseLinked(
                    q, msg_id, sender_id, at, ResponseKind.PEER, method, confidence, False
                )
            )
        return effects

    def on_customer_left(self, chat: str, user_id: str, at: datetime) -> list[Effect]:
        """A customer left the group: their unanswered questions are withdrawn."""
        return [
            self._withdraw(q, at, "left", None, by_sender=True)
            for q in self._of_asker(user_id, chat, QuestionStatus.OPEN)
        ]

    # --- staff and bot messages ----------------------------------------------------------------

    def on_staff_message(
        self,
        chat: str,
        msg_id: str,
        operator_id: str,
        at: datetime,
        *,
        reply_to_msg_id: str | None = None,
        mention_user_ids: Collection[str] = (),
        mention_all: bool = False,
        is_holding: bool = False,
        is_private_to: str | None = None,
    ) -> list[Effect]:
        """A human operator spoke: in a group, or 1:1 to ``is_private_to`` (an asker)."""
        if self._by_msg.get((chat, msg_id)):
            return []
        if is_private_to is not None:
            live = self._of_asker(is_private_to, None, *LIVE)
            links = link_private_message([_candidate(q) for q in live], at=at)
            linked = {link.question_id for link in links}
            effects = self._apply_links(links, chat, msg_id, operator_id, at, is_holding)
            if not is_holding:
                pending = [q for q in live if q.followup_pending and q.id not in linked]
                effects += self._close_followups(pending, chat, msg_id, operator_id, at)
            return effects
        if mention_all:
            return []  # announcements to everyone answer no one in particular
        known = self._known(chat, reply_to_msg_id)
        quoted = next((q for q in known if q.is_live), None)
        if known and quoted is None:
            return []  # explicitly about a closed question: not an answer to an open one
        links = self._link_group(chat, at, quoted, mention_user_ids, LIVE)
        effects = self._apply_links(links, chat, msg_id, operator_id, at, is_holding)
        explicit = any(link.method in (LinkMethod.QUOTE, LinkMethod.MENTION) for link in links)
        if not explicit and not is_holding:
            # "The next substantive staff message in that chat by any staff closes the follow-up."
            # Linking only changed the linked questions, so the others pending now are exactly
            # those pending before it.
            linked = {link.question_id for link in links}
            pending = [self._q[i] for _, i in self._pending.get(chat, ()) if i not in linked]
            effects += self._close_followups(pending, chat, msg_id, operator_id, at)
        return effects

    def _apply_links(
        self,
        links: Iterable[Link],
        chat: str,
        msg_id: str,
        operator_id: str,
        at: datetime,
        is_holding: bool,
    ) -> list[Effect]:
        effects: list[Effect] = []
        for link in links:
            q = self._q[link.question_id]
            response = Response(
                msg_id,
                chat,
                operator_id,
                at,
                is_holding,
                link.method,
                link.confidence,
                q.reopen_count,
            )
            was_open = q.status is QuestionStatus.OPEN
            pending = q.followup_pending
            q = self._put(self._derive(q, (*q.responses, response)), ((chat, msg_id),))
            if was_open:
                kind = ResponseKind.HOLDING if is_holding else ResponseKind.FIRST
            else:
                kind = ResponseKind.HOLDING if is_holding else ResponseKind.FOLLOWUP
            effects.append(
                ResponseLinked(
                    q, msg_id, operator_id, at, kind, link.method, link.confidence, was_open
                )
            )
            if was_open and q.first_response_message_id == msg_id:
                effects.append(
                    QuestionAnswered(
                        q,
                        at,
                        operator_id,
                        q.frt_business_s or 0.0,
                        q.frt_calendar_s or 0.0,
                        q.reopen_count,
                    )
                )
            elif pending and not q.followup_pending:
                effects.append(FollowupDone(q, msg_id, operator_id, at, q.followup_breached))
        return effects

    def _close_followups(
        self, pending: list[Question], chat: str, msg_id: str, operator_id: str, at: datetime
    ) -> list[Effect]:
        due = [q for q in pending if q.first_response_at is not None and q.first_response_at < at]
        method = LinkMethod.PROXIMITY_SINGLE if len(due) == 1 else LinkMethod.PROXIMITY_FIFO
        confidence = 0.8 if len(due) == 1 else 0.5
        return self._apply_links(
            (Link(q.id, method, confidence) for q in due), chat, msg_id, operator_id, at, False
        )

    def on_bot_message(
        self,
        chat: str,
        msg_id: str,
        bot_id: str,
        at: datetime,
        *,
        reply_to_msg_id: str | None = None,
        mention_user_ids: Collection[str] = (),
    ) -> list[Effect]:
        """A bot or keyword auto-reply: marks ``bot_touch``, never answers for the SLA."""
        if self._by_msg.get((chat, msg_id)):
            return []
        known = self._known(chat, reply_to_msg_id)
        quoted = next((q for q in known if q.status is QuestionStatus.OPEN), None)
        if known and quoted is None:
            return []
        links = self._link_group(chat, at, quoted, mention_user_ids, (QuestionStatus.OPEN,))
        effects: list[Effect] = []
        for link in links:
            q = self._q[link.question_id]
            q = _evolve(q, bot_touch=True, bot_message_ids=(*q.bot_message_ids, msg_id))
            q = self._put(q, ((q.chat, msg_id),))  # bot ids are keyed by the question's chat
            effects.append(
                ResponseLinked(
                    q, msg_id, bot_id, at, ResponseKind.BOT, link.method, link.confidence, False
                )
            )
        return effects

    # --- recalls -------------------------------------------------------------------------------

    def on_recall(
        self, chat: str, msg_id: str, at: datetime, *, by_sender: bool = True
    ) -> list[Effect]:
        """A message was recalled (撤回): withdraw, shrink, or revoke a response."""
        return [
            self._recall_one(q, chat, msg_id, at, by_sender=by_sender)
            for q in self._known(chat, msg_id)
        ]

    def _recall_one(
        self, q: Question, chat: str, msg_id: str, at: datetime, *, by_sender: bool
    ) -> Effect:
        self._unindex(chat, msg_id, q.id)
        if chat == q.chat and msg_id in q.message_ids:
            if q.status is QuestionStatus.OPEN and q.message_ids == (msg_id,):
                return self._withdraw(q, at, "recall", msg_id, by_sender=by_sender)
            kept_msgs = tuple(m for m in q.message_ids if m != msg_id)
            return MessageRemoved(self._put(_evolve(q, message_ids=kept_msgs)), msg_id, at)
        if chat == q.chat and msg_id in q.bot_message_ids:
            bots = tuple(m for m in q.bot_message_ids if m != msg_id)
            q = self._put(_evolve(q, bot_message_ids=bots, bot_touch=bool(bots)))
            return ResponseRevoked(q, msg_id, at, back_to_open=False)
        was_answered = q.status is QuestionStatus.ANSWERED
        kept = tuple(r for r in q.responses if not (r.chat == chat and r.message_id == msg_id))
        q = self._put(self._derive(q, kept))
        back = was_answered and q.status is QuestionStatus.OPEN
        return ResponseRevoked(q, msg_id, at, back_to_open=back)

    def _unindex(self, chat: str, msg_id: str, qid: str) -> None:
        ids = self._by_msg.get((chat, msg_id), [])
        if qid in ids:
            ids.remove(qid)
        if not ids:
            self._by_msg.pop((chat, msg_id), None)

    def _withdraw(
        self, q: Question, at: datetime, reason: str, msg_id: str | None, *, by_sender: bool
    ) -> QuestionWithdrawn:
        q = _evolve(q, status=QuestionStatus.WITHDRAWN, withdrawn_at=at)
        self._drop(q.id)
        return QuestionWithdrawn(q, at, reason, msg_id, by_sender)

    # --- commands and sweeps -------------------------------------------------------------------

    def _live(self, question_id: str) -> Question | None:
        q = self._q.get(question_id)
        if q is None:
            raise KeyError(question_id)
        return q if q.is_live else None

    def _resolve(
        self, q: Question, at: datetime, by: ResolvedBy, resolver_id: str | None, method: str
    ) -> QuestionResolved:
        q = _evolve(
            q,
            status=QuestionStatus.RESOLVED,
            resolved_at=at,
            resolved_by=by,
            resolver_id=resolver_id,
            resolution_method=method,
        )
        return QuestionResolved(self._put(q, ()), at, by, resolver_id, method)

    def resolve(
        self, question_id: str, *, by: str, at: datetime, method: str = "manual"
    ) -> list[Effect]:
        """An operator marks a question resolved (#已解决, ✅). No-op if already closed."""
        q = self._live(question_id)
        if q is None:
            return []
        return [self._resolve(q, at, ResolvedBy.OPERATOR, by, method)]

    def dismiss(self, question_id: str, *, by: str, reason: str, at: datetime) -> list[Effect]:
        """Take a question out of the metrics, with who and why (audited). Reason required."""
        if not reason.strip():
            raise ValueError("dismissing a question needs a reason")
        q = self._live(question_id)
        if q is None:
            return []
        q = _evolve(
            q,
            status=QuestionStatus.DISMISSED,
            dismissed_reason=reason.strip(),
            dismissed_by=by,
            dismissed_at=at,
        )
        self._drop(q.id)
        return [QuestionDismissed(q, at, by, q.dismissed_reason or "")]

    def quiet_due(self, now: datetime) -> list[str]:
        """Ids of answered questions whose quiet period has ended at ``now``."""
        return [q.id for q in self._answered_questions() if self._quiet_until(q, now) is not None]

    def _quiet_until(self, q: Question, now: datetime) -> datetime | None:
        if q.status is not QuestionStatus.ANSWERED or q.followup_pending:
            return None
        last = max([q.last_customer_msg_at, *(r.at for r in q.cycle_responses())])
        due = last + timedelta(seconds=self.policy_for(q).auto_resolve_after_answer_s)
        return due if due <= now else None

    def quiet_resolve(self, now: datetime, ids: Iterable[str] | None = None) -> list[Effect]:
        """Resolve answered questions nobody spoke about for ``auto_resolve_after_answer_s``.

        ``resolved_at`` is the moment the quiet period ended, not ``now``, so a late sweep
        gives the same result as a punctual one. ``ids`` limits the sweep to those questions.
        """
        effects: list[Effect] = []
        for q in self._selected(ids):
            due = self._quiet_until(q, now)
            if due is not None:
                effects.append(self._resolve(q, due, ResolvedBy.AUTO, None, "auto_quiet"))
        return effects

    def _answered_questions(self) -> list[Question]:
        """Answered questions in the order of ``questions()``: the sweeps act on no others."""
        return sorted((self._q[i] for i in self._answered), key=lambda q: (q.opened_at, q.id))

    def _selected(self, ids: Iterable[str] | None) -> list[Question]:
        if ids is None:
            return self._answered_questions()
        picked = (self._q[i] for i in dict.fromkeys(ids) if i in self._q)
        return sorted(picked, key=lambda q: (q.opened_at, q.id))

    def flag_followup_breaches(
        self, now: datetime, ids: Iterable[str] | None = None
    ) -> list[Effect]:
        """Flag holding replies whose follow-up is overdue at ``now`` (once each); ``ids``
        limits the check to those questions."""
        effects: list[Effect] = []
        for q in self._selected(ids):
            if (
                q.status is QuestionStatus.ANSWERED
                and q.followup_pending
                and not q.followup_breached
                and q.followup_due_at is not None
                and q.followup_due_at <= now
            ):
                flagged = self._put(_evolve(q, followup_breached=True), ())
                effects.append(FollowupBreached(flagged, q.followup_due_at))
        return effects
