"""Pre-optimisation question engine, kept as the reference for differential testing.

A verbatim copy of ``sop/linking.py`` and ``sop/questions.py`` as of commit eebeb42 (before the
indexed engine), merged into one module: only the module docstrings and the import block differ
(``sop.linking`` names are defined here instead of imported). Do not optimise or "fix" it: its
job is to stay the behaviour the real engine must reproduce effect for effect
(tests/sop/test_engine_differential.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sop.policy import SlaPolicy
from sop.timers import Calendar, followup_due

# --- verbatim: sop/linking.py ----------------------------------------------------------------


class LinkMethod(StrEnum):
    MANUAL = "manual"
    QUOTE = "quote"
    MENTION = "mention"
    PRIVATE_CHAT = "private_chat"
    PROXIMITY_SINGLE = "proximity_single"
    PROXIMITY_FIFO = "proximity_fifo"


CONFIDENCE: dict[LinkMethod, float] = {
    LinkMethod.MANUAL: 1.0,
    LinkMethod.QUOTE: 1.0,
    LinkMethod.MENTION: 0.95,
    LinkMethod.PRIVATE_CHAT: 0.85,
    LinkMethod.PROXIMITY_SINGLE: 0.8,
    LinkMethod.PROXIMITY_FIFO: 0.5,
}


@dataclass(frozen=True, slots=True)
class Candidate:
    """What linking needs to know about a live (open or answered) question."""

    question_id: str
    asker_id: str
    clock_start: datetime  # opened_at, or the reopening message after a reopen
    is_open: bool  # no counted human response yet in the current cycle


@dataclass(frozen=True, slots=True)
class Link:
    question_id: str
    method: LinkMethod
    confidence: float


def _link(question_id: str, method: LinkMethod) -> Link:
    return Link(question_id, method, CONFIDENCE[method])


def link_group_message(
    candidates: Sequence[Candidate],
    *,
    at: datetime,
    quoted_question_id: str | None,
    mention_user_ids: Collection[str],
    mention_all: bool,
    proximity_window_s: float,
) -> tuple[Link, ...]:
    """Links for a message posted in a group, strongest method first.

    ``candidates`` are the chat's live questions; ``quoted_question_id`` is the question whose
    message (or response) the message quotes, already resolved by the caller. Explicit links
    (quote, mention) may target answered questions too, so the caller can record follow-ups;
    proximity only ever targets open questions.
    """
    if mention_all:
        return ()
    if quoted_question_id is not None:
        return (_link(quoted_question_id, LinkMethod.QUOTE),)
    live = sorted((c for c in candidates if c.clock_start <= at), key=lambda c: c.clock_start)
    mentioned = list(dict.fromkeys(mention_user_ids))
    links: list[Link] = []
    for uid in mentioned:
        mine = [c for c in live if c.asker_id == uid]
        opened = [c for c in mine if c.is_open]
        if opened:
            links.append(_link(opened[0].question_id, LinkMethod.MENTION))
        elif mine:
            # Nothing open: the mention most likely follows up the asker's latest answer.
            links.append(_link(mine[-1].question_id, LinkMethod.MENTION))
    if links:
        return tuple(links)
    opened = [c for c in live if c.is_open]
    if len(opened) == 1:
        return (_link(opened[0].question_id, LinkMethod.PROXIMITY_SINGLE),)
    if opened and (at - opened[-1].clock_start).total_seconds() <= proximity_window_s:
        return (_link(opened[0].question_id, LinkMethod.PROXIMITY_FIFO),)
    return ()


def link_private_message(candidates: Sequence[Candidate], *, at: datetime) -> tuple[Link, ...]:
    """Links for a 1:1 message to an asker: all that asker's questions open before it.

    ``candidates`` are the asker's live questions in every chat the engine watches. A private
    answer addresses the person, not one group thread, so each open one is linked.
    """
    return tuple(
        _link(c.question_id, LinkMethod.PRIVATE_CHAT)
        for c in sorted(candidates, key=lambda c: c.clock_start)
        if c.is_open and c.clock_start <= at
    )


# --- verbatim: sop/questions.py --------------------------------------------------------------


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
        return sorted(
            (r for r in self.responses if r.cycle == self.reopen_count),
            key=lambda r: (r.at, r.message_id),
        )


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


def _candidate(q: Question) -> Candidate:
    return Candidate(q.id, q.asker_id, q.clock_start, q.status is QuestionStatus.OPEN)


def _secs(a: datetime, b: datetime) -> float:
    return max(0.0, (b - a).total_seconds())


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
        self._by_chat: dict[str, list[str]] = {}
        self._by_asker: dict[str, list[str]] = {}
        self._by_msg: dict[tuple[str, str], list[str]] = {}

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
        ids = self._by_chat.get(chat, []) if chat is not None else list(self._q)
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
            q.id
            for q in self._q.values()
            if q.status is QuestionStatus.RESOLVED
            and q.resolved_at is not None
            and _secs(q.resolved_at, now) > self.policy_for(q).reopen_window_s
        ]
        for qid in gone:
            self._drop(qid)
        return gone

    def _new_id(self) -> str:
        while True:
            self._counter += 1
            qid = f"{self._id_prefix}{self._counter}"
            if qid not in self._q:
                return qid

    def _put(self, q: Question) -> Question:
        if q.id not in self._q:
            self._by_chat.setdefault(q.chat, []).append(q.id)
            self._by_asker.setdefault(q.asker_id, []).append(q.id)
        self._q[q.id] = q
        keys = [(q.chat, m) for m in (*q.message_ids, *q.bot_message_ids)]
        keys += [(r.chat, r.message_id) for r in q.responses]
        for key in keys:
            ids = self._by_msg.setdefault(key, [])
            if q.id not in ids:
                ids.append(q.id)
        return q

    def _drop(self, qid: str) -> None:
        q = self._q.pop(qid)
        self._by_chat[q.chat].remove(qid)
        if not self._by_chat[q.chat]:
            del self._by_chat[q.chat]
        self._by_asker[q.asker_id].remove(qid)
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

    def _known(self, chat: str, msg_id: str | None) -> list[Question]:
        if msg_id is None:
            return []
        return [self._q[i] for i in self._by_msg.get((chat, msg_id), []) if i in self._q]

    def _in_chat(self, chat: str, *statuses: QuestionStatus) -> list[Question]:
        qs = (self._q[i] for i in self._by_chat.get(chat, []))
        return sorted((q for q in qs if q.status in statuses), key=lambda q: (q.clock_start, q.id))

    def _of_asker(self, asker: str, chat: str | None, *statuses: QuestionStatus) -> list[Question]:
        qs = (self._q[i] for i in self._by_asker.get(asker, []))
        return sorted(
            (q for q in qs if q.status in statuses and (chat is None or q.chat == chat)),
            key=lambda q: (q.clock_start, q.id),
        )

    # --- derived state -----------------------------------------------------------------------

    def _derive(self, q: Question) -> Question:
        """Recompute credit, FRT and follow-up of the current cycle from its responses."""
        rs = q.cycle_responses()
        cleared = dataclasses.replace(
            q,
            first_response_at=None,
            first_responder_id=None,
            first_response_message_id=None,
            link_method=None,
            link_confidence=None,
            frt_business_s=None,
            frt_calendar_s=None,
            holding=False,
            followup_due_at=None,
            followup_done_at=None,
            followup_breached=False,
        )
        if not rs:
            reverted = QuestionStatus.OPEN if q.status is QuestionStatus.ANSWERED else q.status
            return dataclasses.replace(cleared, status=reverted)
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
        return dataclasses.replace(
            cleared,
            status=status,
            first_response_at=first.at,
            first_responder_id=first.responder_id,
            first_response_message_id=first.message_id,
            link_method=first.method,
            link_confidence=first.confidence,
            frt_business_s=calendar.business_seconds(q.clock_start, first.at)
            if first.at > q.clock_start
            else 0.0,
            frt_calendar_s=_secs(q.clock_start, first.at),
            holding=first.holding,
            followup_due_at=due,
            followup_done_at=done,
            followup_breached=breached,
        )

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
        q = dataclasses.replace(
            q,
            message_ids=(*q.message_ids, msg_id),
            last_customer_msg_at=max(at, q.last_customer_msg_at),
        )
        return MessageMerged(self._put(q), msg_id, at)

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
        q = dataclasses.replace(
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
        q = self._put(self._derive(q))
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
            q = self._put(dataclasses.replace(self._q[qid], peer_answered=True))
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
        live = self._in_chat(chat, *LIVE)
        links = link_group_message(
            [_candidate(q) for q in live],
            at=at,
            quoted_question_id=quoted.id if quoted is not None else None,
            mention_user_ids=mention_user_ids,
            mention_all=mention_all,
            proximity_window_s=self._proximity_window(live),
        )
        effects = self._apply_links(links, chat, msg_id, operator_id, at, is_holding)
        explicit = any(link.method in (LinkMethod.QUOTE, LinkMethod.MENTION) for link in links)
        if not explicit and not is_holding:
            # "The next substantive staff message in that chat by any staff closes the follow-up."
            linked = {link.question_id for link in links}
            pending = [q for q in live if q.followup_pending and q.id not in linked]
            effects += self._close_followups(pending, chat, msg_id, operator_id, at)
        return effects

    def _proximity_window(self, live: list[Question]) -> float:
        opened = [q for q in live if q.status is QuestionStatus.OPEN]
        newest = opened[-1] if opened else None
        return self.policy_for(newest).proximity_window_s if newest else 0.0

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
            q = self._put(self._derive(dataclasses.replace(q, responses=(*q.responses, response))))
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
        opened = self._in_chat(chat, QuestionStatus.OPEN)
        quoted = next((q for q in known if q.status is QuestionStatus.OPEN), None)
        if known and quoted is None:
            return []
        links = link_group_message(
            [_candidate(q) for q in opened],
            at=at,
            quoted_question_id=quoted.id if quoted is not None else None,
            mention_user_ids=mention_user_ids,
            mention_all=False,
            proximity_window_s=self._proximity_window(opened),
        )
        effects: list[Effect] = []
        for link in links:
            q = self._q[link.question_id]
            q = self._put(
                dataclasses.replace(
                    q, bot_touch=True, bot_message_ids=(*q.bot_message_ids, msg_id)
                )
            )
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
            return MessageRemoved(
                self._put(dataclasses.replace(q, message_ids=kept_msgs)), msg_id, at
            )
        if chat == q.chat and msg_id in q.bot_message_ids:
            bots = tuple(m for m in q.bot_message_ids if m != msg_id)
            q = self._put(dataclasses.replace(q, bot_message_ids=bots, bot_touch=bool(bots)))
            return ResponseRevoked(q, msg_id, at, back_to_open=False)
        was_answered = q.status is QuestionStatus.ANSWERED
        kept = tuple(r for r in q.responses if not (r.chat == chat and r.message_id == msg_id))
        q = self._put(self._derive(dataclasses.replace(q, responses=kept)))
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
        q = dataclasses.replace(q, status=QuestionStatus.WITHDRAWN, withdrawn_at=at)
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
        q = dataclasses.replace(
            q,
            status=QuestionStatus.RESOLVED,
            resolved_at=at,
            resolved_by=by,
            resolver_id=resolver_id,
            resolution_method=method,
        )
        return QuestionResolved(self._put(q), at, by, resolver_id, method)

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
        q = dataclasses.replace(
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
        return [q.id for q in self.questions() if self._quiet_until(q, now) is not None]

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

    def _selected(self, ids: Iterable[str] | None) -> list[Question]:
        if ids is None:
            return self.questions()
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
                flagged = self._put(dataclasses.replace(q, followup_breached=True))
                effects.append(FollowupBreached(flagged, q.followup_due_at))
        return effects
