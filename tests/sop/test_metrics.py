"""SLA metric formulas (sla.md §7.8): percentiles, censoring, attainment, maturity, grouping."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sop.calendar import ALWAYS_OPEN, default_calendar
from sop.metrics import (
    NONE_BUCKET,
    Quantile,
    QuestionFacts,
    Ratio,
    Status,
    backlog_snapshot,
    by_day,
    by_group,
    by_operator_accountable,
    by_operator_credit,
    format_duration,
    percentile_cont,
    percentile_cont_censored,
    summarize,
)

SH = ZoneInfo("Asia/Shanghai")
AS_OF = datetime(2026, 3, 10, 12, 0, tzinfo=SH)
H = 3600.0


def q(
    qid: str,
    *,
    age_h: float = 72.0,
    frt_s: float | None = None,
    conf: float = 1.0,
    status: Status | None = None,
    target_s: float = 300.0,
    **kw: object,
) -> QuestionFacts:
    """A question opened ``age_h`` before AS_OF on a 24/7 clock, answered after ``frt_s``."""
    opened = AS_OF - timedelta(hours=age_h)
    answered = frt_s is not None
    fields: dict[str, object] = {
        "question_id": qid,
        "chat_id": "g1",
        "asker_id": "c1",
        "opened_at": opened,
        "status": status or ("answered" if answered else "open"),
        "frt_target_s": target_s,
        "frt_due_at": opened + timedelta(seconds=target_s),
        "backlog_due_at": opened + timedelta(hours=48),
        "owner_ids": ("own1",),
    }
    if answered:
        assert frt_s is not None
        fields |= {
            "first_response_at": opened + timedelta(seconds=frt_s),
            "first_responder_id": "op1",
            "link_confidence": conf,
            "frt_business_s": frt_s,
            "frt_calendar_s": frt_s,
        }
    fields |= kw
    return QuestionFacts(**fields)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ percentiles


@pytest.mark.parametrize(
    ("values", "qq", "expected"),
    [
        ([], 0.5, None),
        ([5.0], 0.9, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
        ([4.0, 1.0, 3.0, 2.0], 0.0, 1.0),
        ([4.0, 1.0, 3.0, 2.0], 1.0, 4.0),
        ([float(i) for i in range(1, 11)], 0.9, 9.1),
        ([float(i) for i in range(1, 12)], 0.9, 10.0),
        ([10.0, 20.0], 0.25, 12.5),
    ],
)
def test_percentile_cont(values: list[float], qq: float, expected: float | None) -> None:
    """PERCENTILE_CONT: linear interpolation at (n-1)·q over sorted values."""
    got = percentile_cont(values, qq)
    assert got == (None if expected is None else pytest.approx(expected))


def test_percentile_cont_rejects_bad_quantile() -> None:
    """Quantiles outside [0, 1] raise."""
    with pytest.raises(ValueError, match="quantile"):
        percentile_cont([1.0], 1.5)


@pytest.mark.parametrize(
    ("observed", "censored", "qq", "value", "lower_bound"),
    [
        ([1.0, 2.0, 3.0], [], 0.5, 2.0, None),
        ([1.0, 2.0, 3.0], [100.0], 0.5, 2.5, None),  # interpolates between observed only
        ([1.0, 2.0, 3.0], [100.0], 1.0, None, 100.0),  # lands on the censored item
        ([1.0, 2.0], [100.0, 200.0], 0.5, None, 51.0),  # touches a censored item
        ([], [50.0], 0.5, None, 50.0),
        ([], [], 0.5, None, None),
    ],
)
def test_percentile_cont_censored(
    observed: list[float],
    censored: list[float],
    qq: float,
    value: float | None,
    lower_bound: float | None,
) -> None:
    """Censored items sort as +inf; touching one makes the result a lower bound."""
    got = percentile_cont_censored(observed, censored, qq)
    assert got.value == (None if value is None else pytest.approx(value))
    assert got.censored is (lower_bound is not None)
    assert got.lower_bound == (None if lower_bound is None else pytest.approx(lower_bound))
    assert got.n == len(observed) + len(censored)


@pytest.mark.parametrize(
    ("seconds", "en", "zh"),
    [
        (0, "0s", "0秒"),
        (45, "45s", "45秒"),
        (250, "4m 10s", "4分10秒"),
        (300, "5m", "5分"),
        (48 * 3600, "48h", "48小时"),
        (2 * 3600 + 300, "2h 5m", "2小时5分"),
        (5 * 86400 + 3 * 3600, "5d 3h", "5天3小时"),
    ],
)
def test_format_duration(seconds: float, en: str, zh: str) -> None:
    """Durations are compact in English and Chinese."""
    assert format_duration(seconds, "en") == en
    assert format_duration(seconds) == zh


def test_quantile_format() -> None:
    """Censored quantiles print "> bound" (rounded down); missing ones print a dash."""
    assert Quantile(value=None, censored=True, lower_bound=172800.9).format("en") == "> 48h"
    assert Quantile(value=None).format() == "—"
    assert Quantile(value=249.6).format("en") == "4m 10s"


# ------------------------------------------------------------------------------ golden scenarios


def test_p90_with_15_percent_unanswered_is_censored_beyond_48h() -> None:
    """17 answered in 1..17 min + 3 unanswered for 48 h: p50 known, p90 "> 48h"."""
    facts = [q(f"a{i}", age_h=60, frt_s=60.0 * i) for i in range(1, 18)]
    facts += [q(f"u{i}", age_h=48) for i in range(3)]
    for basis in ("calendar", "business"):
        s = summarize(facts, as_of=AS_OF, basis=basis, calendar=ALWAYS_OPEN)
        assert s.frt_p50.value == pytest.approx(630.0)  # between the 10th and 11th answer
        assert not s.frt_p50.censored
        assert s.frt_p90.censored
        assert s.frt_p90.value is None
        assert s.frt_p90.format("en") == "> 48h"
        assert s.frt_p90.n_censored == 3
        assert s.n_overdue_unanswered == 3
        assert s.frt_avg_s == pytest.approx(540.0)  # answered only


def test_censoring_without_calendar_falls_back_to_target_bound() -> None:
    """Business basis without a calendar bounds unanswered FRT by the target (still censored)."""
    facts = [q("a", frt_s=60.0), q("u", age_h=1)]
    s = summarize(facts, as_of=AS_OF, basis="business")
    assert s.frt_p90.censored
    assert s.frt_p90.lower_bound == pytest.approx(60 + 0.9 * 240)


def test_48h_maturity_excludes_young_questions_from_backlog_rate() -> None:
    """Only mature questions (answered in 48 h or older than 48 h) enter answer/backlog rates."""
    facts = [
        q("young-open", age_h=10),  # not mature: excluded
        q("young-answered", age_h=10, frt_s=H),  # answered within 48 h: mature hit
        q("old-open", age_h=50),  # mature miss
        q("old-answered", age_h=50, frt_s=30 * H),  # mature hit
        q("old-late", age_h=60, frt_s=49 * H),  # answered after 48 h: mature miss
    ]
    s = summarize(facts, as_of=AS_OF)
    assert s.answer_rate_48h == Ratio(2, 4)
    assert s.backlog_rate_48h == Ratio(2, 4)
    assert s.backlog_rate_48h.rate == 0.5
    assert s.n_answered == 3  # a late answer still counts as answered


def test_strict_vs_lenient_attainment() -> None:
    """Strict attainment ignores links below 0.8 unless a strong later response is given."""
    strong_later = AS_OF - timedelta(hours=72) + timedelta(minutes=4)
    facts = [
        q("quote-fast", frt_s=120.0, conf=1.0),  # met in both
        q("fifo-fast", frt_s=120.0, conf=0.5),  # lenient met; strict unanswered + overdue
        q("slow", frt_s=600.0, conf=0.95),  # missed in both
        q("pending", age_h=0.02),  # 72 s old, not yet due: in neither
        q("overdue", age_h=1),  # missed in both
        q(
            "fifo-then-quote",
            frt_s=60.0,
            conf=0.5,
            strict_first_response_at=strong_later,
            strict_first_responder_id="op2",
            strict_frt_business_s=240.0,
            strict_frt_calendar_s=240.0,
        ),
    ]
    s = summarize(facts, as_of=AS_OF, strict=True)
    assert s.attainment_lenient == Ratio(3, 5)
    assert s.attainment_strict == Ratio(2, 5)
    assert s.attainment == s.attainment_strict
    assert summarize(facts, as_of=AS_OF, strict=False).attainment == Ratio(3, 5)
    assert s.n_answered == 3  # fifo-fast drops out in the strict view
    assert summarize(facts, as_of=AS_OF, strict=False).n_answered == 4
    assert s.n_pending == 1


def test_excluded_statuses_leave_every_denominator() -> None:
    """Dismissed, withdrawn and bot-resolved-confirmed questions are not in E."""
    base = [q("a", frt_s=60.0), q("b", age_h=50)]
    noise = [
        q("d", age_h=50, status="dismissed"),
        q("w", age_h=50, status="withdrawn"),
        q("bot", age_h=50, frt_s=10.0, status="resolved", bot_resolved=True),
    ]
    clean, noisy = summarize(base, as_of=AS_OF), summarize(base + noise, as_of=AS_OF)
    for field in ("attainment_strict", "answer_rate_48h", "three_min", "resolution", "backlog"):
        assert getattr(noisy, field) == getattr(clean, field), field
    assert noisy.frt_p90 == clean.frt_p90
    assert (noisy.n_cohort, noisy.n_eligible) == (5, 2)
    assert (noisy.n_dismissed, noisy.n_withdrawn, noisy.n_bot_resolved) == (1, 1, 1)


def test_business_vs_calendar_basis_on_makeup_saturday() -> None:
    """Fri 22:00 question answered Sat 09:03 on a 调休 day: met in business, missed in calendar."""
    cal = default_calendar()
    opened = datetime(2026, 2, 13, 22, 0, tzinfo=SH)
    answered = datetime(2026, 2, 14, 9, 3, tzinfo=SH)
    fact = QuestionFacts(
        question_id=1,
        chat_id="g1",
        asker_id="c1",
        opened_at=opened,
        status="answered",
        frt_target_s=300,
        frt_due_at=cal.add_business(opened, 300),
        backlog_due_at=opened + timedelta(hours=48),
        first_response_at=answered,
        first_responder_id="op1",
        link_confidence=1.0,
        frt_business_s=cal.business_seconds(opened, answered),
        frt_calendar_s=cal.calendar_seconds(opened, answered),
    )
    as_of = datetime(2026, 2, 16, tzinfo=SH)
    business = summarize([fact], as_of=as_of, basis="business")
    calendar = summarize([fact], as_of=as_of, basis="calendar")
    assert business.frt_p50.value == 180.0
    assert calendar.frt_p50.value == 11 * H + 180
    assert business.attainment == Ratio(1, 1)
    assert calendar.attainment == Ratio(0, 1)
    assert business.three_min == Ratio(1, 1)
    assert calendar.three_min == Ratio(0, 1)
    assert dict(business.frt_histogram)["1–3m"] == 1
    assert dict(calendar.frt_histogram)["4–24h"] == 1
    # Missing business FRT is filled in from the calendar when one is given.
    bare = replace(fact, frt_business_s=None)
    assert summarize([bare], as_of=as_of, calendar=cal).frt_p50.value == 180.0
    with pytest.raises(ValueError, match="calendar"):
        summarize([bare], as_of=as_of)


def test_unanswered_overdue_in_business_time_only() -> None:
    """Calendar-basis due is opened+target; business-basis due is the stored frt_due_at."""
    cal = default_calendar()
    opened = datetime(2026, 3, 6, 22, 0, tzinfo=SH)  # Friday night
    fact = QuestionFacts(
        question_id=2,
        chat_id="g1",
        asker_id="c1",
        opened_at=opened,
        status="open",
        frt_target_s=300,
        frt_due_at=cal.add_business(opened, 300),  # Monday 09:05
        backlog_due_at=opened + timedelta(hours=48),
    )
    saturday = datetime(2026, 3, 7, 10, 0, tzinfo=SH)
    assert summarize([fact], as_of=saturday, basis="business").attainment == Ratio(0, 0)
    assert summarize([fact], as_of=saturday, basis="business").attainment.rate is None
    assert summarize([fact], as_of=saturday, basis="calendar").attainment == Ratio(0, 1)


def test_day_boundaries_in_shanghai_around_16_utc() -> None:
    """by_day splits at local midnight: 15:59:59 UTC and 16:00 UTC fall on different days."""
    before = datetime(2026, 3, 8, 15, 59, 59, tzinfo=UTC)  # 23:59:59 on 8 Mar in Shanghai
    after = datetime(2026, 3, 8, 16, 0, 0, tzinfo=UTC)  # 00:00 on 9 Mar in Shanghai
    facts = [
        replace(
            q(f"q{i}", frt_s=60.0),
            opened_at=t,
            first_response_at=t + timedelta(minutes=1),
            frt_due_at=t + timedelta(minutes=5),
            backlog_due_at=t + timedelta(hours=48),
        )
        for i, t in enumerate((before, after))
    ]
    local = by_day(facts, as_of=AS_OF)
    assert {k: v.n_cohort for k, v in local.items()} == {date(2026, 3, 8): 1, date(2026, 3, 9): 1}
    assert {k: v.n_cohort for k, v in by_day(facts, "UTC", as_of=AS_OF).items()} == {
        date(2026, 3, 8): 2
    }
    start = datetime(2026, 3, 9, tzinfo=SH)
    assert summarize(facts, as_of=AS_OF, start=start).n_cohort == 1  # [start, end)
    assert summarize(facts, as_of=AS_OF, end=start).n_cohort == 1


# ------------------------------------------------------------------------------ other formulas


def test_frt_histogram_buckets_have_inclusive_upper_bounds() -> None:
    """Bucket edges are inclusive above, so "≤ 3 min" = first two buckets."""
    frts = [0.0, 60.0, 61.0, 180.0, 300.0, 301.0, H, 48 * H, 49 * H]
    facts = [q(f"a{i}", age_h=100, frt_s=f) for i, f in enumerate(frts)]
    facts.append(q("none", age_h=1))
    hist = dict(summarize(facts, as_of=AS_OF).frt_histogram)
    assert hist == {
        "<1m": 2,
        "1–3m": 2,
        "3–5m": 1,
        "5–15m": 1,
        "15–60m": 1,
        "1–4h": 0,
        "4–24h": 0,
        "24–48h": 1,
        NONE_BUCKET: 2,
    }


def test_backlog_snapshot_bands_cover_all_open_questions() -> None:
    """Backlog counts unanswered eligible questions by calendar age, ignoring the cohort filter."""
    facts = [
        q("30m", age_h=0.5),
        q("1h", age_h=1),
        q("5h", age_h=5),
        q("30h", age_h=30),
        q("48h", age_h=48),
        q("100h", age_h=100),
        q("answered", age_h=5, frt_s=60.0),
        q("dismissed", age_h=5, status="dismissed"),
        q("future", age_h=-1),
    ]
    snap = backlog_snapshot(facts, as_of=AS_OF)
    assert dict(snap.bands) == {"0–1h": 1, "1–4h": 1, "4–24h": 1, "24–48h": 1, ">48h": 2}
    assert snap.total == 6
    s = summarize(facts, as_of=AS_OF, start=AS_OF)  # empty cohort, snapshot unaffected
    assert s.n_cohort == 0
    assert s.backlog == snap


def test_as_of_hides_later_responses_and_resolutions() -> None:
    """A response or resolution stamped after as_of has not happened yet in that report."""
    fact = q("a", age_h=1, frt_s=1800.0, status="resolved")
    fact = replace(fact, resolved_at=fact.opened_at + timedelta(hours=2))
    s = summarize([fact], as_of=AS_OF)  # answered 30 min after opening, report at 60 min
    assert s.n_answered == 1
    assert s.resolution == Ratio(0, 1)
    early = summarize([fact], as_of=AS_OF - timedelta(minutes=45))
    assert early.n_answered == 0
    assert early.backlog.total == 1
    assert early.attainment == Ratio(0, 1)  # 15 min old, overdue, unanswered


def test_resolution_rate_and_time() -> None:
    """Resolution rate over E; p50 of resolution time; a reopened question keeps its resolution."""
    facts = []
    for i, hours in enumerate((1.0, 3.0, 5.0)):
        base = q(f"r{i}", frt_s=60.0, status="resolved")
        facts.append(
            replace(
                base,
                resolved_at=base.opened_at + timedelta(hours=hours),
                resolution_business_s=hours * H / 2,
                resolution_calendar_s=hours * H,
            )
        )
    facts[2] = replace(facts[2], status="open")  # reopened later
    facts.append(q("open", frt_s=60.0))
    s = summarize(facts, as_of=AS_OF)
    assert s.resolution == Ratio(3, 4)
    assert s.resolution_p50_s == 1.5 * H
    assert summarize(facts, as_of=AS_OF, basis="calendar").resolution_p50_s == 3 * H


def test_followup_breach_rate_counts_decided_holding_replies() -> None:
    """Follow-up breach rate = breached holding replies / decided holding replies."""
    facts = [
        q("h1", frt_s=60.0, holding=True, followup_breached=True),
        q("h2", frt_s=60.0, holding=True, followup_breached=False),
        q("h3", frt_s=60.0, holding=True, followup_breached=None),  # timer still running
        q("plain", frt_s=60.0),
    ]
    assert summarize(facts, as_of=AS_OF).followup_breach == Ratio(1, 2)


def test_three_minute_rate_waits_for_unanswered_to_reach_three_minutes() -> None:
    """Unanswered questions enter the 3-min denominator once they have waited 180 s."""
    facts = [q("fast", frt_s=170.0), q("slow", frt_s=200.0), q("young", age_h=0.02)]
    facts.append(q("old", age_h=0.1))
    s = summarize(facts, as_of=AS_OF, basis="calendar")
    assert s.three_min == Ratio(1, 3)


def test_empty_input_gives_none_rates() -> None:
    """With nothing to measure every rate is None, never 0 or 100 %."""
    s = summarize([], as_of=AS_OF)
    for ratio in (s.attainment, s.answer_rate_48h, s.backlog_rate_48h, s.resolution):
        assert ratio == Ratio(0, 0)
        assert ratio.rate is None
    assert s.frt_p50.format() == "—"
    assert s.frt_avg_s is None
    assert str(Ratio(12, 15)) == "12/15"


def test_policy_versions_reported() -> None:
    """The summary lists the policy versions of the questions it covers."""
    facts = [q("a", frt_s=1.0, policy_version=1), q("b", frt_s=1.0, policy_version=2)]
    assert summarize(facts, as_of=AS_OF).policy_versions == frozenset({1, 2})


# ------------------------------------------------------------------------------ grouping


def test_by_operator_credit_uses_responder_in_view() -> None:
    """Credit goes to the first responder; the strict view credits the strong responder."""
    facts = [
        q("a", frt_s=60.0),
        q("b", frt_s=60.0, first_responder_id="op2"),
        q(
            "c",
            frt_s=30.0,
            conf=0.5,
            strict_first_response_at=AS_OF - timedelta(hours=71),
            strict_first_responder_id="op3",
            strict_frt_business_s=H,
            strict_frt_calendar_s=H,
        ),
        q("unanswered", age_h=1),
    ]
    strict = by_operator_credit(facts, as_of=AS_OF, strict=True)
    lenient = by_operator_credit(facts, as_of=AS_OF, strict=False)
    assert {k: v.n_answered for k, v in strict.items()} == {"op1": 1, "op2": 1, "op3": 1}
    assert {k: v.n_answered for k, v in lenient.items()} == {"op1": 2, "op2": 1}
    assert strict["op3"].attainment == Ratio(0, 1)


def test_by_operator_accountable_charges_every_frozen_owner() -> None:
    """Each owner frozen at open is accountable; unowned questions go to the "" bucket."""
    facts = [
        q("a", age_h=50, owner_ids=("own1", "own2")),
        q("b", frt_s=60.0, owner_ids=("own2",)),
        q("c", age_h=50, owner_ids=()),
    ]
    out = by_operator_accountable(facts, as_of=AS_OF)
    assert list(out) == ["", "own1", "own2"]
    assert out["own2"].backlog_rate_48h == Ratio(1, 2)
    assert out["own1"].backlog.total == 1
    assert out[""].n_eligible == 1


def test_by_group_splits_by_chat() -> None:
    """by_group keys summaries by chat_id."""
    facts = [q("a", frt_s=60.0), q("b", frt_s=60.0, chat_id="g2"), q("c", frt_s=1.0)]
    out = by_group(facts, as_of=AS_OF)
    assert {k: v.n_eligible for k, v in out.items()} == {"g1": 2, "g2": 1}


def test_question_facts_validation() -> None:
    """Facts need aware datetimes and a known status."""
    with pytest.raises(ValueError, match="aware"):
        q("naive", opened_at=AS_OF.replace(tzinfo=None))
    with pytest.raises(ValueError, match="status"):
        q("bad", status="closed")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aware"):
        summarize([], as_of=AS_OF.replace(tzinfo=None))
    assert math.isclose(q("ok", frt_s=1.0).frt_target_s, 300)
