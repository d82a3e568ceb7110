"""Which question a staff or bot message answers (reference/sla.md §7.5).

Link priority, first match wins: quote (1.0) > @mention of the asker (0.95) > private chat to the
asker (0.85) > the only open question in the chat (0.8) > the oldest open question while the
newest opened within the proximity window (0.5). @all never links. The functions here only choose;
the question engine applies the links. ``link_group_indexed`` is the group rule over lookups the
engine answers from its indexes, so a message costs the same however many questions a chat holds;
``link_group_message`` is the same rule over a plain list of candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


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


@dataclass(frozen=True, slots=True)
class OpenSpan:
    """The chat's open questions whose clock started at or before the message (never empty)."""

    oldest_id: str
    newest_clock_start: datetime
    single: bool  # exactly one of them


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
    live: list[Candidate] = []
    if not mention_all and quoted_question_id is None:  # else the rule never reads them
        live = sorted((c for c in candidates if c.clock_start <= at), key=lambda c: c.clock_start)

    def open_span() -> OpenSpan | None:
        opened = [c for c in live if c.is_open]
        if not opened:
            return None
        return OpenSpan(opened[0].question_id, opened[-1].clock_start, len(opened) == 1)

    return link_group_indexed(
        at=at,
        quoted_question_id=quoted_question_id,
        mention_user_ids=mention_user_ids,
        mention_all=mention_all,
        proximity_window_s=proximity_window_s,
        asker_candidates=lambda uid: [c for c in live if c.asker_id == uid],
        open_span=open_span,
    )


def link_group_indexed(
    *,
    at: datetime,
    quoted_question_id: str | None,
    mention_user_ids: Collection[str],
    mention_all: bool,
    proximity_window_s: float,
    asker_candidates: Callable[[str], Sequence[Candidate]],
    open_span: Callable[[], OpenSpan | None],
) -> tuple[Link, ...]:
    """``link_group_message`` reading the chat through two lookups instead of a full list.

    ``asker_candidates(uid)``: that asker's live questions in the chat whose clock started at or
    before ``at``, oldest clock first. ``open_span()``: the chat's open questions in that same
    range, or None if there are none. Each is only called when the rule gets that far.
    """
    if mention_all:
        return ()
    if quoted_question_id is not None:
        return (_link(quoted_question_id, LinkMethod.QUOTE),)
    links: list[Link] = []
    for uid in dict.fromkeys(mention_user_ids):
        mine = asker_candidates(uid)
        opened = next((c for c in mine if c.is_open), None)
        if opened is not None:
            links.append(_link(opened.question_id, LinkMethod.MENTION))
        elif mine:
            # Nothing open: the mention most likely follows up the asker's latest answer.
            links.append(_link(mine[-1].question_id, LinkMethod.MENTION))
    if links:
        return tuple(links)
    span = open_span()
    if span is None:
        return ()
    if span.single:
        return (_link(span.oldest_id, LinkMethod.PROXIMITY_SINGLE),)
    if (at - span.newest_clock_start).total_seconds() <= proximity_window_s:
        return (_link(span.oldest_id, LinkMethod.PROXIMITY_FIFO),)
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
