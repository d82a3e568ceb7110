"""SLA metric formulas of reference/sla.md §7.8 over question snapshots.

The input is a sequence of :class:`QuestionFacts` (one row per question, as stored or as a SQL
rollup would produce it); every function takes the report instant ``as_of``, the duration
``basis`` (``"business"`` or ``"calendar"``) and the link view ``strict``. Nothing reads the
clock. A rate whose denominator is 0 is ``None`` (shown as "—"), never 0 % or 100 %.

Definitions (P = ``[start, end)``; both ends optional):

* **as_of view.** Facts may be newer than ``as_of`` (recomputing a past report): a question
  opened after ``as_of`` is ignored; a response or resolution stamped after it has not happened.
* **Cohort** = questions with ``opened_at ∈ P`` (and ``opened_at <= as_of``).
* **E** (eligible) = cohort minus ``dismissed``, minus ``withdrawn``, minus
  bot-resolved-and-confirmed (``bot_resolved``).
* **Link view.** Lenient: the first response, whatever its link confidence. Strict: the first
  response only if ``link_confidence >= 0.8``; otherwise the first strong response given in the
  ``strict_*`` fields; otherwise the question counts as unanswered. ``link_confidence`` None is
  treated as weak.
* **FRT(q)** = ``frt_business_s`` or ``frt_calendar_s`` per basis (sla.md: business_between of
  opened_at and first_response_at; 0 for an answer given while closed to a question asked while
  closed).
* **Due.** Business basis: ``frt_due_at`` (computed by the policy with its calendar). Calendar
  basis: ``opened_at + frt_target_s``. A question is *overdue* when unanswered and due <= as_of.
* **FRT p50/p90** = ``PERCENTILE_CONT`` (linear interpolation between order statistics, position
  ``(n-1)·q``) over answered questions of E plus overdue unanswered ones, the latter as FRT = +∞
  (right-censored). If the interpolation touches a censored item the quantile is *censored*: it is
  reported as "> L" where L is the same percentile with each censored FRT replaced by its known
  lower bound, the question's elapsed time (calendar basis: as_of − opened_at; business basis:
  open time up to as_of when a calendar is given, else ``frt_target_s``, which overdue guarantees).
  Unanswered questions not yet overdue are *pending*: left out (their FRT is not known yet).
* **FRT avg** = mean FRT over answered questions of E (comparable with Chatwoot/WeCom averages).
* **FRT histogram** over the same population as the percentiles, buckets with inclusive upper
  bounds (so they add up to "≤ N min" rates): ≤1m, (1,3]m, (3,5]m, (5,15]m, (15,60]m, (1,4]h,
  (4,24]h, (24,48]h, and ">48h/none" (answered after 48 h, or overdue unanswered).
* **FRT SLA attainment** = |{q ∈ E_due : FRT(q) <= target(q)}| / |E_due| with
  E_due = {q ∈ E : answered or due <= as_of}; overdue unanswered are misses. Reported strict and
  lenient whatever ``strict`` says.
* **Answer rate @48h** = |{q ∈ E_mature : first_response_at <= backlog_due_at}| / |E_mature| with
  E_mature = {q ∈ E : answered by backlog_due_at or backlog_due_at <= as_of}. The 48 h window's
  basis is the policy's (default calendar) and is baked into ``backlog_due_at``; ``basis`` does not
  change it. **Backlog rate @48h** = (|E_mature| − answered within window) / |E_mature|.
* **Backlog snapshot** = questions of the *whole input* (not only the cohort; dismissed, withdrawn
  and bot-resolved left out) opened by as_of and unanswered at as_of, by calendar age
  (as_of − opened_at, like a wall-clock badge) in bands [0,1h), [1h,4h), [4h,24h), [24h,48h), ≥48h.
  Pass all currently open questions to get the Freshdesk-style "everything open at t".
* **Resolution rate** = |{q ∈ E : resolved_at <= as_of}| / |E| (a resolution counts even if the
  question reopened later); **resolution p50** = PERCENTILE_CONT(0.5) of resolution_{basis}_s over
  those.
* **Follow-up breach rate** = |{q ∈ E : holding, followup_breached}| / |{q ∈ E : holding,
  followup_breached is not None}| (pending follow-up timers are left out; lenient links).
* **3-minute reply rate** = |{answered, FRT <= 180 s}| / |{answered} ∪ {unanswered whose elapsed
  time >= 180 s}| (elapsed as for censoring; without a calendar, business elapsed >= 180 s is known
  only when overdue with target >= 180 s).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

from sop.calendar import BusinessCalendar

__all__ = [
    "BACKLOG_BANDS",
    "FRT_BUCKETS",
    "STRICT_CONFIDENCE",
    "BacklogSnapshot",
    "Basis",
    "CalendarSource",
    "Quantile",
    "QuestionFacts",
    "Ratio",
    "SlaSummary",
    "backlog_snapshot",
    "by_day",
    "by_group",
    "by_operator_accountable",
    "by_operator_credit",
    "format_duration",
    "group_summaries",
    "percentile_cont",
    "percentile_cont_censored",
    "summarize",
]

Basis = Literal["business", "calendar"]
Status = Literal["open", "answered", "resolved", "dismissed", "withdrawn"]
CalendarSource = BusinessCalendar | Callable[[str], BusinessCalendar]
"""A calendar, or a function chat_id -> calendar (per-group calendars)."""

KeyT = TypeVar("KeyT", str, date)

STRICT_CONFIDENCE = 0.8
THREE_MIN_S = 180.0
_EPS = 1e-6  # float slack when comparing durations with targets (microsecond timestamps)
_STATUSES = frozenset({"open", "answered", "resolved", "dismissed", "withdrawn"})

_MIN, _HOUR = 60.0, 3600.0
FRT_BUCKETS: tuple[tuple[str, float], ...] = (
    ("<1m", _MIN),
    ("1–3m", 3 * _MIN),
    ("3–5m", 5 * _MIN),
    ("5–15m", 15 * _MIN),
    ("15–60m", _HOUR),
    ("1–4h", 4 * _HOUR),
    ("4–24h", 24 * _HOUR),
    ("24–48h", 48 * _HOUR),
)
"""(label, inclusive upper bound in seconds); anything above, or unanswered, is ``NONE_BUCKET``."""
NONE_BUCKET = ">48h/none"
BACKLOG_BANDS: tuple[tuple[str, float], ...] = (
    ("0–1h", _HOUR),
    ("1–4h", 4 * _HOUR),
    ("4–24h", 24 * _HOUR),
    ("24–48h", 48 * _HOUR),
    (">48h", math.inf),
)
"""(label, exclusive upper bound of calendar age in seconds)."""


def _aware(t: datetime, name: str) -> None:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


@dataclass(frozen=True, slots=True)
class QuestionFacts:
    """Snapshot of one question, enough to compute every §7.8 metric.

    ``frt_*_s``/``first_response_at`` describe the first counted human response (lenient view);
    the ``strict_*`` fields give the first response with link confidence >= 0.8 when the first
    response itself is weaker (leave them None otherwise). ``owner_ids`` are the group owners
    frozen at ``opened_at``. ``followup_breached`` is None while the follow-up timer is pending or
    when there was no holding reply.
    """

    question_id: int | str
    chat_id: str
    asker_id: str
    opened_at: datetime
    status: Status
    frt_target_s: float
    frt_due_at: datetime
    backlog_due_at: datetime
    bot_resolved: bool = False
    first_response_at: datetime | None = None
    first_responder_id: str | None = None
    link_confidence: float | None = None
    frt_business_s: float | None = None
    frt_calendar_s: float | None = None
    owner_ids: tuple[str, ...] = ()
    resolved_at: datetime | None = None
    resolution_business_s: float | None = None
    resolution_calendar_s: float | None = None
    holding: bool = False
    followup_breached: bool | None = None
    policy_version: int = 1
    strict_first_response_at: datetime | None = None
    strict_first_responder_id: str | None = None
    strict_frt_business_s: float | None = None
    strict_frt_calendar_s: float | None = None

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ValueError(f"unknown question status {self.status!r}")
        for name in ("opened_at", "frt_due_at", "backlog_due_at"):
            _aware(getattr(self, name), name)
        for name in ("first_response_at", "resolved_at", "strict_first_response_at"):
            value = getattr(self, name)
            if value is not None:
                _aware(value, name)

    @property
    def eligible(self) -> bool:
        """In E: not dismissed, not withdrawn, not resolved by a bot with customer confirmation."""
        return self.status not in ("dismissed", "withdrawn") and not self.bot_resolved


# ------------------------------------------------------------------------------- value types


@dataclass(frozen=True, slots=True)
class Ratio:
    """``num / den`` kept as counts, so reports can show "12/15" as well as 80 %."""

    num: int
    den: int

    @property
    def rate(self) -> float | None:
        """``num / den``, or None when there is nothing to measure."""
        return self.num / self.den if self.den else None

    def __str__(self) -> str:
        return f"{self.num}/{self.den}"


@dataclass(frozen=True, slots=True)
class Quantile:
    """A percentile that may be right-censored.

    ``value`` is set when the quantile is known; when ``censored`` it is None and
    ``lower_bound`` says the true value is greater than that. ``n`` counts all items,
    ``n_censored`` the censored ones.
    """

    value: float | None
    censored: bool = False
    lower_bound: float | None = None
    n: int = 0
    n_censored: int = 0

    def format(self, lang: str = "zh-CN") -> str:
        """ "4m 10s", "> 48h", or "—" when there is no data."""
        if self.censored and self.lower_bound is not None:
            return "> " + format_duration(math.floor(self.lower_bound), lang)
        if self.value is None:
            return "—"
        return format_duration(round(self.value), lang)


@dataclass(frozen=True, slots=True)
class BacklogSnapshot:
    """Unanswered questions at ``as_of`` by calendar-age band (labels of ``BACKLOG_BANDS``)."""

    bands: tuple[tuple[str, int], ...]
    total: int


@dataclass(frozen=True, slots=True)
class SlaSummary:
    """All §7.8 metrics for one slice of questions (see the module docstring for formulas)."""

    as_of: datetime
    basis: Basis
    strict: bool
    n_cohort: int
    n_dismissed: int
    n_withdrawn: int
    n_bot_resolved: int
    n_eligible: int
    n_answered: int
    n_overdue_unanswered: int
    n_pending: int
    frt_p50: Quantile
    frt_p90: Quantile
    frt_avg_s: float | None
    frt_histogram: tuple[tuple[str, int], ...]
    attainment_strict: Ratio
    attainment_lenient: Ratio
    answer_rate_48h: Ratio
    backlog_rate_48h: Ratio
    backlog: BacklogSnapshot
    resolution: Ratio
    resolution_p50_s: float | None
    followup_breach: Ratio
    three_min: Ratio
    policy_versions: frozenset[int]

    @property
    def attainment(self) -> Ratio:
        """FRT SLA attainment in this summary's link view."""
        return self.attainment_strict if self.strict else self.attainment_lenient


# ------------------------------------------------------------------------------- percentiles


def percentile_cont(values: Iterable[float], q: float) -> float | None:
    """SQL ``PERCENTILE_CONT(q)``: linear interpolation at position ``(n-1)·q``; None if empty."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    a = sorted(values)
    if not a:
        return None
    if any(math.isnan(v) for v in a):
        raise ValueError("percentile_cont: NaN in values")
    lo, frac = _position(len(a), q)
    if frac == 0.0:
        return a[lo]
    return a[lo] + frac * (a[lo + 1] - a[lo])


def _position(n: int, q: float) -> tuple[int, float]:
    h = (n - 1) * q
    lo = math.floor(h)
    frac = h - lo
    if frac < 1e-9:  # (n-1)·q that should be whole but picked up float noise
        frac = 0.0
    elif frac > 1 - 1e-9:
        lo, frac = lo + 1, 0.0
    return lo, frac


def percentile_cont_censored(
    observed: Iterable[float], censored_lower_bounds: Iterable[float], q: float
) -> Quantile:
    """``PERCENTILE_CONT`` where censored items count as +∞ (they sort above every observation).

    If the interpolation at position ``(n-1)·q`` touches a censored item the result is censored,
    with ``lower_bound`` = the same percentile over observed values plus the censored items'
    lower bounds (a valid bound: raising any item never lowers an order statistic).
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    obs = sorted(observed)
    lbs = list(censored_lower_bounds)
    n = len(obs) + len(lbs)
    if n == 0:
        return Quantile(value=None, n=0)
    lo, frac = _position(n, q)
    hi = lo + 1 if frac else lo
    if hi < len(obs):
        value = obs[lo] + frac * (obs[hi] - obs[lo]) if frac else obs[lo]
        return Quantile(value=value, n=n, n_censored=len(lbs))
    bound = percentile_cont(obs + lbs, q)
    return Quantile(value=None, censored=True, lower_bound=bound, n=n, n_censored=len(lbs))


def format_duration(seconds: float, lang: str = "zh-CN") -> str:
    """Compact duration: "45s", "4m 10s", "48h", "2h 5m", "5d 3h" (zh-CN: "4分10秒", "48小时")."""
    s = max(0, int(seconds))
    zh = lang.lower().startswith("zh")
    d_u, h_u, m_u, s_u = ("天", "小时", "分", "秒") if zh else ("d", "h", "m", "s")
    sep = "" if zh else " "
    if s < 60:
        parts = [(s, s_u)]
    elif s < 3600:
        parts = [(s // 60, m_u), (s % 60, s_u)]
    elif s < 100 * 3600:  # up to 99 h stay in hours: "48h" reads better than "2d 0h"
        parts = [(s // 3600, h_u), (s % 3600 // 60, m_u)]
    else:
        parts = [(s // 86400, d_u), (s % 86400 // 3600, h_u)]
    shown = [parts[0]] + [p for p in parts[1:] if p[0]]
    return sep.join(f"{v}{u}" for v, u in shown)


# ------------------------------------------------------------------------ per-question views


@dataclass(frozen=True, slots=True)
class _Response:
    at: datetime
    responder_id: str | None
    frt_s: float


@dataclass(frozen=True, slots=True)
class _Ctx:
    as_of: datetime
    basis: Basis
    calendar: CalendarSource | None
    threshold: float

    def calendar_for(self, q: QuestionFacts) -> BusinessCalendar | None:
        if self.calendar is None or isinstance(self.calendar, BusinessCalendar):
            return self.calendar
        return self.calendar(q.chat_id)

    def response(self, q: QuestionFacts, *, strict: bool) -> _Response | None:
        """The first counted response in the given link view, if it happened by as_of."""
        if not strict or (q.link_confidence or 0.0) >= self.threshold:
            at, who = q.first_response_at, q.first_responder_id
            frt_b, frt_c = q.frt_business_s, q.frt_calendar_s
        else:
            at, who = q.strict_first_response_at, q.strict_first_responder_id
            frt_b, frt_c = q.strict_frt_business_s, q.strict_frt_calendar_s
        if at is None or at > self.as_of:
            return None
        frt = frt_b if self.basis == "business" else frt_c
        if frt is None:
            frt = self.elapsed_until(q, at)
            if frt is None:
                raise ValueError(
                    f"question {q.question_id}: frt_business_s missing and no calendar given"
                )
        return _Response(at=at, responder_id=who, frt_s=frt)

    def elapsed_until(self, q: QuestionFacts, until: datetime) -> float | None:
        """Time from opened_at to ``until`` in the basis; None if business and no calendar."""
        if self.basis == "calendar":
            return max(0.0, (until - q.opened_at).total_seconds())
        cal = self.calendar_for(q)
        return None if cal is None else cal.business_seconds(q.opened_at, until)

    def elapsed(self, q: QuestionFacts) -> float | None:
        """Time the question has waited by as_of in the basis; None if not computable."""
        return self.elapsed_until(q, self.as_of)

    def due(self, q: QuestionFacts) -> datetime:
        if self.basis == "business":
            return q.frt_due_at
        return q.opened_at + timedelta(seconds=q.frt_target_s)

    def overdue(self, q: QuestionFacts) -> bool:
        return self.due(q) <= self.as_of


# ------------------------------------------------------------------------------- formulas


def _bucket(frt: float) -> str:
    for label, upper in FRT_BUCKETS:
        if frt <= upper + _EPS:
            return label
    return NONE_BUCKET


def _attainment(eligible: Sequence[QuestionFacts], ctx: _Ctx, *, strict: bool) -> Ratio:
    num = den = 0
    for q in eligible:
        r = ctx.response(q, strict=strict)
        if r is not None:
            den += 1
            num += r.frt_s <= q.frt_target_s + _EPS
        elif ctx.overdue(q):
            den += 1
    return Ratio(num, den)


def backlog_snapshot(
    facts: Iterable[QuestionFacts],
    *,
    as_of: datetime,
    strict: bool = True,
    strict_threshold: float = STRICT_CONFIDENCE,
) -> BacklogSnapshot:
    """Eligible questions opened by ``as_of`` and unanswered at ``as_of``, by calendar age."""
    _aware(as_of, "as_of")
    ctx = _Ctx(as_of=as_of, basis="calendar", calendar=None, threshold=strict_threshold)
    counts = dict.fromkeys((label for label, _ in BACKLOG_BANDS), 0)
    for q in facts:
        if not q.eligible or q.opened_at > as_of or ctx.response(q, strict=strict) is not None:
            continue
        age = (as_of - q.opened_at).total_seconds()
        label = next(lbl for lbl, upper in BACKLOG_BANDS if age < upper)
        counts[label] += 1
    return BacklogSnapshot(bands=tuple(counts.items()), total=sum(counts.values()))


def summarize(
    facts: Iterable[QuestionFacts],
    *,
    as_of: datetime,
    basis: Basis = "business",
    strict: bool = True,
    start: datetime | None = None,
    end: datetime | None = None,
    calendar: CalendarSource | None = None,
    strict_threshold: float = STRICT_CONFIDENCE,
) -> SlaSummary:
    """Compute every §7.8 metric for ``facts`` (cohort ``opened_at ∈ [start, end)``) at ``as_of``.

    ``calendar`` is optional: it only sharpens business-basis elapsed times of unanswered
    questions (censoring bounds, 3-minute denominators) and fills a missing ``frt_business_s``.
    """
    _aware(as_of, "as_of")
    for bound, name in ((start, "start"), (end, "end")):
        if bound is not None:
            _aware(bound, name)
    ctx = _Ctx(as_of=as_of, basis=basis, calendar=calendar, threshold=strict_threshold)
    known = [q for q in facts if q.opened_at <= as_of]
    cohort = [
        q
        for q in known
        if (start is None or q.opened_at >= start) and (end is None or q.opened_at < end)
    ]
    eligible = [q for q in cohort if q.eligible]

    observed: list[float] = []
    censored: list[float] = []
    histogram = dict.fromkeys([*(label for label, _ in FRT_BUCKETS), NONE_BUCKET], 0)
    n_pending = 0
    answered_48 = mature = 0
    three_num = three_den = 0
    for q in eligible:
        r = ctx.response(q, strict=strict)
        elapsed = None if r is not None else ctx.elapsed(q)
        if r is not None:
            observed.append(r.frt_s)
            histogram[_bucket(r.frt_s)] += 1
            three_den += 1
            three_num += r.frt_s <= THREE_MIN_S + _EPS
        elif ctx.overdue(q):
            # Overdue guarantees elapsed >= target even when business elapsed is unknown.
            censored.append(elapsed if elapsed is not None else q.frt_target_s)
            histogram[NONE_BUCKET] += 1
        else:
            n_pending += 1
        if r is None and (
            (elapsed is not None and elapsed >= THREE_MIN_S)
            or (elapsed is None and ctx.overdue(q) and q.frt_target_s >= THREE_MIN_S)
        ):
            three_den += 1
        if r is not None and r.at <= q.backlog_due_at:
            answered_48 += 1
            mature += 1
        elif q.backlog_due_at <= as_of:
            mature += 1

    resolved = [q for q in eligible if q.resolved_at is not None and q.resolved_at <= as_of]
    resolution_times = [t for q in resolved if (t := _resolution_seconds(q, ctx)) is not None]
    holding = [q for q in eligible if q.holding and q.followup_breached is not None]

    return SlaSummary(
        as_of=as_of,
        basis=basis,
        strict=strict,
        n_cohort=len(cohort),
        n_dismissed=sum(q.status == "dismissed" for q in cohort),
        n_withdrawn=sum(q.status == "withdrawn" for q in cohort),
        n_bot_resolved=sum(
            q.bot_resolved and q.status not in ("dismissed", "withdrawn") for q in cohort
        ),
        n_eligible=len(eligible),
        n_answered=len(observed),
        n_overdue_unanswered=len(censored),
        n_pending=n_pending,
        frt_p50=percentile_cont_censored(observed, censored, 0.5),
        frt_p90=percentile_cont_censored(observed, censored, 0.9),
        frt_avg_s=sum(observed) / len(observed) if observed else None,
        frt_histogram=tuple(histogram.items()),
        attainment_strict=_attainment(eligible, ctx, strict=True),
        attainment_lenient=_attainment(eligible, ctx, strict=False),
        answer_rate_48h=Ratio(answered_48, mature),
        backlog_rate_48h=Ratio(mature - answered_48, mature),
        backlog=backlog_snapshot(
            known, as_of=as_of, strict=strict, strict_threshold=strict_threshold
        ),
        resolution=Ratio(len(resolved), len(eligible)),
        resolution_p50_s=percentile_cont(resolution_times, 0.5),
        followup_breach=Ratio(sum(bool(q.followup_breached) for q in holding), len(holding)),
        three_min=Ratio(three_num, three_den),
        policy_versions=frozenset(q.policy_version for q in eligible),
    )


def _resolution_seconds(q: QuestionFacts, ctx: _Ctx) -> float | None:
    value = q.resolution_business_s if ctx.basis == "business" else q.resolution_calendar_s
    if value is None and q.resolved_at is not None:
        value = ctx.elapsed_until(q, q.resolved_at)
    return value


# ------------------------------------------------------------------------------- grouping


def group_summaries(
    facts: Iterable[QuestionFacts],
    keys: Callable[[QuestionFacts], Iterable[KeyT]],
    *,
    as_of: datetime,
    basis: Basis = "business",
    strict: bool = True,
    start: datetime | None = None,
    end: datetime | None = None,
    calendar: CalendarSource | None = None,
    strict_threshold: float = STRICT_CONFIDENCE,
) -> dict[KeyT, SlaSummary]:
    """Summaries per key; ``keys(q)`` lists the buckets ``q`` belongs to (none, one or several)."""
    groups: defaultdict[KeyT, list[QuestionFacts]] = defaultdict(list)
    for q in facts:
        for key in keys(q):
            groups[key].append(q)
    return {
        key: summarize(
            groups[key],
            as_of=as_of,
            basis=basis,
            strict=strict,
            start=start,
            end=end,
            calendar=calendar,
            strict_threshold=strict_threshold,
        )
        for key in sorted(groups)
    }


def by_group(
    facts: Iterable[QuestionFacts],
    *,
    as_of: datetime,
    basis: Basis = "business",
    strict: bool = True,
    start: datetime | None = None,
    end: datetime | None = None,
    calendar: CalendarSource | None = None,
    strict_threshold: float = STRICT_CONFIDENCE,
) -> dict[str, SlaSummary]:
    """Per group (``chat_id``): every metric of the group's questions."""
    return group_summaries(
        facts,
        lambda q: (q.chat_id,),
        as_of=as_of,
        basis=basis,
        strict=strict,
        start=start,
        end=end,
        calendar=calendar,
        strict_threshold=strict_threshold,
    )


def by_operator_credit(
    facts: Iterable[QuestionFacts],
    *,
    as_of: datetime,
    basis: Basis = "business",
    strict: bool = True,
    start: datetime | None = None,
    end: datetime | None = None,
    calendar: CalendarSource | None = None,
    strict_threshold: float = STRICT_CONFIDENCE,
) -> dict[str, SlaSummary]:
    """Per first responder (credit role): the questions each operator answered first.

    The responder is taken in the same link view (strict or lenient) and as of ``as_of``;
    unanswered questions belong to nobody here (see :func:`by_operator_accountable`). An
    operator's share of first responses is ``n_answered`` over the sum across operators.
    """
    _aware(as_of, "as_of")
    ctx = _Ctx(as_of=as_of, basis=basis, calendar=calendar, threshold=strict_threshold)

    def responder(q: QuestionFacts) -> tuple[str, ...]:
        r = ctx.response(q, strict=strict)
        return (r.responder_id,) if r is not None and r.responder_id is not None else ()

    return group_summaries(
        facts,
        responder,
        as_of=as_of,
        basis=basis,
        strict=strict,
        start=start,
        end=end,
        calendar=calendar,
        strict_threshold=strict_threshold,
    )


def by_operator_accountable(
    facts: Iterable[QuestionFacts],
    *,
    as_of: datetime,
    basis: Basis = "business",
    strict: bool = True,
    start: datetime | None = None,
    end: datetime | None = None,
    calendar: CalendarSource | None = None,
    strict_threshold: float = STRICT_CONFIDENCE,
) -> dict[str, SlaSummary]:
    """Per owner (accountability role): each question counts for every owner frozen at open.

    Questions of groups with no owner go to the ``""`` bucket (the supervisor's team queue).
    """
    return group_summaries(
        facts,
        lambda q: q.owner_ids or ("",),
        as_of=as_of,
        basis=basis,
        strict=strict,
        start=start,
        end=end,
        calendar=calendar,
        strict_threshold=strict_threshold,
    )


def by_day(
    facts: Iterable[QuestionFacts],
    tz: str = "Asia/Shanghai",
    *,
    as_of: datetime,
    basis: Basis = "business",
    strict: bool = True,
    start: datetime | None = None,
    end: datetime | None = None,
    calendar: CalendarSource | None = None,
    strict_threshold: float = STRICT_CONFIDENCE,
) -> dict[date, SlaSummary]:
    """Per local date of ``opened_at`` in the tenant time zone ``tz`` (a day starts at local 00:00,
    i.e. 16:00 UTC the day before for Asia/Shanghai)."""
    zone = ZoneInfo(tz)
    return group_summaries(
        facts,
        lambda q: (q.opened_at.astimezone(zone).date(),),
        as_of=as_of,
        basis=basis,
        strict=strict,
        start=start,
        end=end,
        calendar=calendar,
        strict_threshold=strict_threshold,
    )
