"""QuestionEngine transitions: open, merge, link, follow-up, resolve, reopen, recall, dismiss."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import get_type_hints

import pytest

from sop import questions
from sop.calendar import ALWAYS_OPEN
from sop.linking import LinkMethod
from sop.policy import SlaPolicy
from sop.questions import (
    FollowupBreached,
    FollowupDone,
    MessageMerged,
    MessageRemoved,
    Question,
    QuestionAnswered,
    QuestionDismissed,
    QuestionEngine,
    QuestionOpened,
    QuestionReopened,
    QuestionResolved,
    QuestionStatus,
    QuestionWithdrawn,
    ResolvedBy,
    ResponseKind,
    ResponseLinked,
    ResponseRevoked,
)

T0 = datetime(2024, 9, 18, 2, 0, tzinfo=UTC)
G = "g1"


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def engine(policy: SlaPolicy | None = None) -> QuestionEngine:
    return QuestionEngine(
        policy or SlaPolicy(), calendar_of=lambda _c: ALWAYS_OPEN, owners_of=lambda _c: ("own",)
    )


def ask(e: QuestionEngine, msg: str, who: str, minutes: float, **kw: object) -> list[object]:
    kw.setdefault("is_question", True)
    return list(e.on_customer_message(G, msg, who, m(minutes), text=msg, **kw))  # type: ignore[arg-type]


def say(
    e: QuestionEngine, msg: str, minutes: float, who: str = "op1", **kw: object
) -> list[object]:
    return list(e.on_staff_message(G, msg, who, m(minutes), **kw))  # type: ignore[arg-type]


def q(e: QuestionEngine, qid: str = "q1") -> Question:
    found = e.get(qid)
    assert found is not None
    return found


def kinds(effects: Sequence[object]) -> list[type]:
    return [type(x) for x in effects]


def test_question_opens_with_owners_versions_and_snippet() -> None:
    """A detected question opens with frozen owners, policy and calendar versions."""
    e = engine(SlaPolicy(version=3))
    (opened,) = ask(e, "  请问怎么退款？ ", "alice", 0)
    assert isinstance(opened, QuestionOpened)
    got = opened.question
    assert (got.id, got.owner_ids, got.policy_version, got.calendar_version) == (
        "q1", ("own",), 3, ALWAYS_OPEN.version,
    )  # fmt: skip
    assert got.snippet == "请问怎么退款？"


def test_caller_assigned_id_and_duplicates() -> None:
    """The caller may name the question; reusing an id is an error; a replay is ignored."""
    e = engine()
    ask(e, "m1", "alice", 0, question_id="Q-42")
    assert e.get("Q-42") is not None
    assert ask(e, "m1", "alice", 0) == []
    with pytest.raises(ValueError, match="in use"):
        ask(e, "m9", "bob", 1, question_id="Q-42")


def test_non_questions_and_exempt_never_open() -> None:
    """Chatter and exempt phrases open nothing."""
    e = engine()
    assert ask(e, "m1", "alice", 0, is_question=False) == []
    assert ask(e, "m2", "alice", 0, is_exempt=True) == []
    assert e.questions() == []


def test_burst_chains_by_gap_and_then_a_new_question_opens() -> None:
    """Messages within burst_merge of the previous one join; a later question opens anew."""
    e = engine()
    ask(e, "m1", "alice", 0)
    assert kinds(ask(e, "m2", "alice", 2.9, is_question=False)) == [MessageMerged]
    assert kinds(ask(e, "m3", "alice", 5.8)) == [MessageMerged]
    assert q(e).message_ids == ("m1", "m2", "m3")
    assert q(e).opened_at == m(0)
    assert kinds(ask(e, "m4", "alice", 9)) == [QuestionOpened]


def test_burst_needs_same_customer_and_no_answer_yet() -> None:
    """Another customer, or an answered question, never absorbs a message."""
    e = engine()
    ask(e, "m1", "alice", 0)
    assert kinds(ask(e, "m2", "bob", 1)) == [QuestionOpened]
    say(e, "s1", 2, reply_to_msg_id="m1")
    assert kinds(ask(e, "m3", "alice", 2.5)) == [QuestionOpened]


def test_exempt_message_does_not_merge() -> None:
    """好的 inside the burst window is not part of the question."""
    e = engine()
    ask(e, "m1", "alice", 0)
    assert ask(e, "m2", "alice", 1, is_question=False, is_exempt=True) == []
    assert q(e).message_ids == ("m1",)


def test_first_response_gives_credit_and_frt() -> None:
    """The first linked human message answers; later ones are follow-ups without credit."""
    e = engine()
    ask(e, "m1", "alice", 0)
    first = say(e, "s1", 2, who="op2", reply_to_msg_id="m1")
    assert kinds(first) == [ResponseLinked, QuestionAnswered]
    linked, answered = first
    assert isinstance(linked, ResponseLinked)
    assert isinstance(answered, QuestionAnswered)
    assert (linked.kind, linked.method, linked.counts_for_sla) == (
        ResponseKind.FIRST, LinkMethod.QUOTE, True,
    )  # fmt: skip
    assert (answered.responder_id, answered.frt_calendar_s, answered.frt_business_s) == (
        "op2", 120.0, 120.0,
    )  # fmt: skip
    (later,) = say(e, "s2", 3, reply_to_msg_id="m1")
    assert isinstance(later, ResponseLinked)
    assert (later.kind, later.counts_for_sla) == (ResponseKind.FOLLOWUP, False)
    assert q(e).first_responder_id == "op2"


def test_mention_all_and_quote_of_closed_question_never_link() -> None:
    """@all answers no one; quoting a resolved question is not proximity to an open one."""
    e = engine()
    ask(e, "m1", "alice", 0)
    say(e, "s1", 1)
    e.resolve("q1", by="op1", at=m(2))
    ask(e, "m2", "bob", 10)
    assert say(e, "s2", 11, mention_all=True) == []
    assert say(e, "s3", 11, reply_to_msg_id="m1") == []
    assert q(e, "q2").status is QuestionStatus.OPEN


def test_holding_reply_then_timely_followup() -> None:
    """A holding reply answers and starts the follow-up timer; the next message closes it."""
    e = engine()
    ask(e, "m1", "alice", 0)
    effects = say(e, "s1", 1, is_holding=True)
    assert isinstance(effects[0], ResponseLinked)
    assert effects[0].kind is ResponseKind.HOLDING
    assert q(e).followup_due_at == m(16)
    (again,) = say(e, "s1b", 2, is_holding=True, reply_to_msg_id="m1")
    assert isinstance(again, ResponseLinked)
    assert again.kind is ResponseKind.HOLDING
    assert say(e, "s1c", 3, is_holding=True) == []  # an unlinked second 稍等 is noise
    assert q(e).followup_pending
    done = say(e, "s2", 10, who="op2")
    assert kinds(done) == [ResponseLinked, FollowupDone]
    assert isinstance(done[1], FollowupDone)
    assert not done[1].breached
    assert q(e).followup_done_at == m(10)


def test_followup_breach_flagged_once_at_due_time() -> None:
    """An overdue follow-up is flagged once, and a late one keeps the flag."""
    e = engine()
    ask(e, "m1", "alice", 0)
    say(e, "s1", 1, is_holding=True)
    assert e.flag_followup_breaches(m(15)) == []
    (flag,) = e.flag_followup_breaches(m(20))
    assert isinstance(flag, FollowupBreached)
    assert flag.at == m(16)
    assert e.flag_followup_breaches(m(30)) == []
    done = say(e, "s2", 40)
    assert isinstance(done[-1], FollowupDone)
    assert done[-1].breached
    assert q(e).followup_breached


def test_ack_after_holding_does_not_resolve() -> None:
    """好的 after 稍等 acknowledges the wait, not an answer."""
    e = engine()
    ask(e, "m1", "alice", 0)
    say(e, "s1", 1, is_holding=True)
    assert ask(e, "m2", "alice", 2, is_question=False, is_ack=True) == []
    assert q(e).status is QuestionStatus.ANSWERED


def test_customer_quote_of_answer_reopens_answered_question() -> None:
    """Quoting the answer with a new message restarts the clock at that message."""
    e = engine()
    ask(e, "m1", "alice", 0)
    say(e, "s1", 1)
    (reopened,) = ask(e, "m2", "alice", 30, is_question=False, reply_to_msg_id="s1")
    assert isinstance(reopened, QuestionReopened)
    assert reopened.reopen_count == 1
    got = q(e)
    assert (got.status, got.clock_start, got.first_response_at) == (
        QuestionStatus.OPEN, m(30), None,
    )  # fmt: skip
    (_, answered) = say(e, "s2", 32)
    assert isinstance(answered, QuestionAnswered)
    assert (answered.cycle, answered.frt_calendar_s) == (1, 120.0)


def test_quote_of_own_open_question_merges() -> None:
    """The asker quoting their own open question adds to it, whatever the gap."""
    e = engine()
    ask(e, "m1", "alice", 0)
    assert kinds(ask(e, "m2", "alice", 30, reply_to_msg_id="m1")) == [MessageMerged]


def test_reopen_window_limits_reopening() -> None:
    """A new question long after resolve opens a fresh question."""
    e = engine(SlaPolicy(reopen_window_s=3600))
    ask(e, "m1", "alice", 0)
    say(e, "s1", 1)
    e.resolve("q1", by="op1", at=m(2))
    assert kinds(ask(e, "m2", "alice", 63)) == [QuestionOpened]
    assert kinds(ask(e, "m3", "alice", 200, reply_to_msg_id="s1")) == [QuestionOpened]
    assert q(e).status is QuestionStatus.RESOLVED


def test_new_question_within_window_reopens_resolved() -> None:
    """The same customer asking again soon after resolve reopens the question."""
    e = engine()
    ask(e, "m1", "alice", 0)
    say(e, "s1", 1)
    ask(e, "m2", "alice", 2, is_question=False, is_ack=True)
    assert q(e).resolved_by is ResolvedBy.CUSTOMER
    assert kinds(ask(e, "m3", "alice", 60)) == [QuestionReopened]
    assert q(e).status is QuestionStatus.OPEN
    assert q(e).reopen_count == 1


def test_peer_mention_is_recorded_without_stopping_clock() -> None:
    """Another customer @-ing the asker marks peer_answered; the question stays open."""
    e = engine()
    ask(e, "m1", "alice", 0)
    (peer,) = ask(e, "m2", "carol", 1, is_question=False, mention_user_ids=("alice",))
    assert isinstance(peer, ResponseLinked)
    assert peer.kind is ResponseKind.PEER
    assert peer.method is LinkMethod.MENTION
    assert not peer.counts_for_sla
    assert q(e).peer_answered
    assert q(e).status is QuestionStatus.OPEN


def test_private_answer_links_open_questions_across_chats_and_closes_followups() -> None:
    """A 1:1 message answers the asker's open questions in every chat."""
    e = engine()
    ask(e, "m1", "alice", 0)
    e.on_customer_message("g2", "x1", "alice", m(1), is_question=True)
    effects = e.on_staff_message("dm", "p1", "op1", m(3), is_private_to="alice")
    assert [x.question.id for x in effects if isinstance(x, QuestionAnswered)] == ["q1", "q2"]
    assert q(e).link_method is LinkMethod.PRIVATE_CHAT


def test_private_followup_closes_holding() -> None:
    """A substantive 1:1 message after a holding reply in the group is the follow-up."""
    e = engine()
    ask(e, "m1", "alice", 0)
    say(e, "s1", 1, is_holding=True)
    effects = e.on_staff_message("dm", "p1", "op2", m(5), is_private_to="alice")
    assert kinds(effects) == [ResponseLinked, FollowupDone]


def test_unlinked_staff_message_closes_pending_followup_in_chat() -> None:
    """Any substantive staff message in the chat closes its pending follow-ups."""
    e = engine()
    ask(e, "m1", "alice", 0)
    say(e, "s1", 1, reply_to_msg_id="m1", is_holding=True)
    ask(e, "m2", "bob", 30)
    effects = say(e, "s2", 31, who="op2")
    assert {type(x) for x in effects} >= {QuestionAnswered, FollowupDone}


def test_recall_sole_message_withdraws_and_burst_message_shrinks() -> None:
    """Recalling the only message withdraws; recalling one of several removes just it."""
    e = engine()
    ask(e, "m1", "alice", 0)
    (gone,) = e.on_recall(G, "m1", m(1))
    assert isinstance(gone, QuestionWithdrawn)
    assert gone.question.status is QuestionStatus.WITHDRAWN
    assert e.questions() == []
    ask(e, "m2", "bob", 2)
    ask(e, "m3", "bob", 3)
    (removed,) = e.on_recall(G, "m2", m(4))
    assert isinstance(removed, MessageRemoved)
    assert q(e, "q2").message_ids == ("m3",)


def test_recall_first_response_moves_credit_to_next() -> None:
    """With a second response left, credit and FRT move to it."""
    e = engine()
    ask(e, "m1", "alice", 0)
    say(e, "s1", 1, who="op1")
    say(e, "s2", 3, who="op2", reply_to_msg_id="m1")
    (revoked,) = e.on_recall(G, "s1", m(4))
    assert isinstance(revoked, ResponseRevoked)
    assert not revoked.back_to_open
    assert (q(e).first_responder_id, q(e).frt_calendar_s) == ("op2", 180.0)
    assert q(e).link_method is LinkMethod.QUOTE


def test_bot_reply_touches_but_never_answers() -> None:
    """A bot reply sets bot_touch; recalling it clears it."""
    e = engine()
    ask(e, "m1", "alice", 0)
    (touch,) = e.on_bot_message(G, "b1", "bot", m(0.1))
    assert isinstance(touch, ResponseLinked)
    assert touch.kind is ResponseKind.BOT
    assert q(e).bot_touch
    assert q(e).status is QuestionStatus.OPEN
    e.on_recall(G, "b1", m(1))
    assert not q(e).bot_touch


def test_ack_without_quote_resolves_latest_answered() -> None:
    """谢谢 resolves the asker's latest answered question in that chat."""
    e = engine()
    ask(e, "m1", "alice", 0)
    say(e, "s1", 1)
    (resolved,) = ask(e, "m2", "alice", 2, is_question=False, is_ack=True)
    assert isinstance(resolved, QuestionResolved)
    assert (resolved.by, resolved.at, resolved.method) == (
        ResolvedBy.CUSTOMER,
        m(2),
        "customer_ack",
    )


def test_dismiss_requires_reason_and_is_audited() -> None:
    """Dismissing records who and why and takes the question out of the index."""
    e = engine()
    ask(e, "m1", "alice", 0)
    with pytest.raises(ValueError, match="reason"):
        e.dismiss("q1", by="sup", reason="  ", at=m(1))
    (dismissed,) = e.dismiss("q1", by="sup", reason="spam", at=m(1))
    assert isinstance(dismissed, QuestionDismissed)
    assert (dismissed.question.dismissed_by, dismissed.question.dismissed_reason) == (
        "sup",
        "spam",
    )
    assert e.get("q1") is None
    with pytest.raises(KeyError):
        e.dismiss("q1", by="sup", reason="again", at=m(2))


def test_manual_resolve_is_idempotent() -> None:
    """Resolving twice changes nothing the second time."""
    e = engine()
    ask(e, "m1", "alice", 0)
    (resolved,) = e.resolve("q1", by="op1", at=m(1))
    assert isinstance(resolved, QuestionResolved)
    assert (resolved.by, resolved.resolver_id) == (ResolvedBy.OPERATOR, "op1")
    assert e.resolve("q1", by="op1", at=m(2)) == []


def test_quiet_resolve_uses_end_of_quiet_period() -> None:
    """An answer with no customer reply for 24 h resolves as of the 24 h mark."""
    e = engine()
    ask(e, "m1", "alice", 0)
    say(e, "s1", 1)
    assert e.quiet_resolve(m(1) + timedelta(hours=23)) == []
    (resolved,) = e.quiet_resolve(m(1) + timedelta(hours=30))
    assert isinstance(resolved, QuestionResolved)
    assert (resolved.by, resolved.at) == (ResolvedBy.AUTO, m(1) + timedelta(hours=24))


def test_customer_left_withdraws_open_questions() -> None:
    """Leaving the group withdraws the customer's unanswered questions."""
    e = engine()
    ask(e, "m1", "alice", 0)
    (gone,) = e.on_customer_left(G, "alice", m(1))
    assert isinstance(gone, QuestionWithdrawn)
    assert gone.reason == "left"


def test_load_rebuilds_index_and_checks_policies() -> None:
    """Stored questions are linkable after a restart; unknown policy versions are refused."""
    e = engine()
    ask(e, "m1", "alice", 0)
    stored = e.questions()
    fresh = engine()
    fresh.load(stored)
    assert kinds(say(fresh, "s1", 1, reply_to_msg_id="m1")) == [ResponseLinked, QuestionAnswered]
    assert kinds(ask(fresh, "m2", "bob", 2)) == [QuestionOpened]
    assert fresh.questions()[-1].id == "q2"
    with pytest.raises(ValueError, match="versions"):
        engine(SlaPolicy(version=5)).load(stored)


def test_prune_forgets_resolved_after_reopen_window() -> None:
    """Resolved questions stay for reopening, then leave memory."""
    e = engine(SlaPolicy(reopen_window_s=60))
    ask(e, "m1", "alice", 0)
    e.resolve("q1", by="op1", at=m(1))
    assert e.prune(m(1.5)) == []
    assert e.prune(m(3)) == ["q1"]
    assert e.questions() == []


def test_set_policy_refuses_changed_version() -> None:
    """A version number names one policy forever."""
    e = engine()
    with pytest.raises(ValueError, match="already exists"):
        e.set_policy(SlaPolicy(version=1, frt_target_s=60))


def test_adopt_replaces_a_stale_copy_and_forgets_closed_ones() -> None:
    """A copy answered elsewhere is taken as stored; a dismissed one leaves the index whole."""
    here, there = engine(), engine()
    ask(here, "m1", "alice", 0)
    ask(here, "m2", "bob", 1)
    there.load(here.questions())
    say(there, "s1", 2, reply_to_msg_id="m1")  # another process answers q1
    here.adopt(q(there, "q1"))
    assert q(here, "q1").status is QuestionStatus.ANSWERED
    assert [x.id for x in here.questions(G)] == ["q1", "q2"]
    there.dismiss("q2", by="sup", reason="spam", at=m(3))
    here.adopt(dataclasses.replace(q(here, "q2"), status=QuestionStatus.DISMISSED))
    assert here.get("q2") is None
    assert [x.id for x in here.questions(G)] == ["q1"]
    # The dismissed question's message is no longer indexed: a reply to it links nothing.
    linked = here.on_staff_message(G, "s2", "op1", m(4), reply_to_msg_id="m2")
    assert all(effect.question.id != "q2" for effect in linked)


def test_limited_sweeps_touch_only_the_named_questions() -> None:
    """``quiet_resolve`` and ``flag_followup_breaches`` with ids leave other questions alone."""
    e = engine()
    ask(e, "m1", "alice", 0)
    ask(e, "m2", "bob", 1)
    say(e, "s1", 2, reply_to_msg_id="m1")
    say(e, "s2", 2, reply_to_msg_id="m2")
    later = m(60 * 24 * 3)
    assert e.quiet_due(later) == ["q1", "q2"]
    (resolved,) = e.quiet_resolve(later, ["q2"])
    assert resolved.question.id == "q2"
    assert q(e, "q1").status is QuestionStatus.ANSWERED


def test_fast_copy_takes_every_field_and_equals_replace() -> None:
    """The engine's ``_evolve`` knows exactly Question's fields and types, as ``replace`` does."""
    fields = get_type_hints(Question)
    assert get_type_hints(questions._Changes) == {
        f.name: fields[f.name] for f in dataclasses.fields(Question)
    }
    e = engine()
    ask(e, "m1", "alice", 0)
    say(e, "s1", 1, is_holding=True)
    held = q(e)
    resolved = QuestionStatus.RESOLVED
    assert questions._evolve(held, status=resolved, resolved_at=m(2), snippet="x") == (
        dataclasses.replace(held, status=resolved, resolved_at=m(2), snippet="x")
    )
    assert questions._evolve(held) == held
