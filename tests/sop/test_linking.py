"""Link priority: quote > @mention > private chat > single proximity > FIFO proximity."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sop.linking import (
    Candidate,
    Link,
    LinkMethod,
    OpenSpan,
    link_group_indexed,
    link_group_message,
    link_private_message,
)

T0 = datetime(2024, 9, 18, 2, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


ALICE = Candidate("q1", "alice", at(0), is_open=True)
BOB = Candidate("q2", "bob", at(1), is_open=True)
ALICE_ANSWERED = Candidate("q0", "alice", at(-30), is_open=False)


def group(
    candidates: list[Candidate],
    minutes: float,
    *,
    quoted: str | None = None,
    mentions: tuple[str, ...] = (),
    mention_all: bool = False,
) -> tuple[Link, ...]:
    return link_group_message(
        candidates,
        at=at(minutes),
        quoted_question_id=quoted,
        mention_user_ids=mentions,
        mention_all=mention_all,
        proximity_window_s=600,
    )


def test_quote_beats_mention() -> None:
    """A quote wins over an @mention of another asker."""
    assert group([ALICE, BOB], 2, quoted="q2", mentions=("alice",)) == (
        Link("q2", LinkMethod.QUOTE, 1.0),
    )


def test_mention_beats_proximity() -> None:
    """@asker links that asker's question, not the oldest one."""
    assert group([ALICE, BOB], 2, mentions=("bob",)) == (Link("q2", LinkMethod.MENTION, 0.95),)


def test_mention_links_oldest_open_question_of_the_asker() -> None:
    """With two open questions from one asker, the @mention answers the older."""
    later = Candidate("q3", "alice", at(1.5), is_open=True)
    assert group([later, ALICE], 2, mentions=("alice",))[0].question_id == "q1"


def test_mention_of_asker_with_nothing_open_targets_latest_answered() -> None:
    """So the caller can record a follow-up to that asker's last question."""
    assert group([ALICE_ANSWERED, BOB], 2, mentions=("alice",)) == (
        Link("q0", LinkMethod.MENTION, 0.95),
    )


def test_mentions_of_several_askers_link_each() -> None:
    """One message @-ing two askers answers both."""
    links = group([ALICE, BOB], 2, mentions=("alice", "bob", "alice"))
    assert [link.question_id for link in links] == ["q1", "q2"]


def test_mention_of_non_asker_falls_back_to_proximity() -> None:
    """@someone without a question is not an explicit link."""
    assert group([ALICE], 2, mentions=("op2",)) == (Link("q1", LinkMethod.PROXIMITY_SINGLE, 0.8),)


def test_single_open_question_links_at_any_distance() -> None:
    """Exactly one open question: proximity_single, no window."""
    assert group([ALICE, ALICE_ANSWERED], 300) == (Link("q1", LinkMethod.PROXIMITY_SINGLE, 0.8),)


def test_fifo_within_window_links_oldest() -> None:
    """Several open: the oldest, at 0.5, while the newest opened within the window."""
    assert group([BOB, ALICE], 11) == (Link("q1", LinkMethod.PROXIMITY_FIFO, 0.5),)


def test_fifo_outside_window_links_nothing() -> None:
    """Several open and the newest is older than the window: chatter."""
    assert group([ALICE, BOB], 11.01) == ()


def test_mention_all_never_links() -> None:
    """@all is an announcement, even with a quote."""
    assert group([ALICE], 2, quoted="q1", mention_all=True) == ()


def test_question_opened_after_message_is_ignored() -> None:
    """Proximity never links a question that opened later."""
    assert group([ALICE, BOB], 0.5) == (Link("q1", LinkMethod.PROXIMITY_SINGLE, 0.8),)


def test_private_links_every_open_question_of_the_asker() -> None:
    """A 1:1 answer links all that asker's open questions opened before it."""
    other_chat = Candidate("q9", "alice", at(1), is_open=True)
    later = Candidate("q10", "alice", at(10), is_open=True)
    links = link_private_message([other_chat, ALICE, ALICE_ANSWERED, later], at=at(5))
    assert links == (
        Link("q1", LinkMethod.PRIVATE_CHAT, 0.85),
        Link("q9", LinkMethod.PRIVATE_CHAT, 0.85),
    )


def test_indexed_linking_reads_only_what_the_rule_reaches() -> None:
    """A quote needs no lookup, a mention no scan of the open questions."""
    asked: list[str] = []

    def asker(uid: str) -> list[Candidate]:
        asked.append(uid)
        return [ALICE] if uid == "alice" else []

    def no_span() -> OpenSpan | None:
        raise AssertionError("open questions read")

    def links(
        quoted: str | None, mentions: tuple[str, ...], span: Callable[[], OpenSpan | None]
    ) -> tuple[Link, ...]:
        return link_group_indexed(
            at=at(2),
            quoted_question_id=quoted,
            mention_user_ids=mentions,
            mention_all=False,
            proximity_window_s=600,
            asker_candidates=asker,
            open_span=span,
        )

    assert links("q2", ("alice",), no_span) == (Link("q2", LinkMethod.QUOTE, 1.0),)
    assert asked == []
    assert links(None, ("alice",), no_span) == (Link("q1", LinkMethod.MENTION, 0.95),)
    assert asked == ["alice"]
    fifo = OpenSpan("q1", at(1), single=False)
    assert links(None, (), lambda: fifo) == (Link("q1", LinkMethod.PROXIMITY_FIFO, 0.5),)
