"""The business calendar against its pre-optimisation reference: same results, same errors.

``tests/sop/reference_calendar.py`` is ``sop/calendar.py`` as it was before the fast paths. Every
call here runs on both, built from the same specs, and the two must return identical values
(datetimes by ``repr``, so the same instant in the same tzinfo with the same fold; floats bit for
bit) or raise the same exception type with the same message. Inputs are seeded sweeps and
hypothesis draws over 2024-2027 (Chinese holidays and 调休 weekends), interval edges, local
midnights, DST switches in zones that have them, aware inputs in other zones, and budgets from 0
to several weeks. A failure names the calendar, the call and its arguments.
"""

from __future__ import annotations

import io
import random
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sop import calendar as new
from tests.sop import reference_calendar as ref


@dataclass(frozen=True)
class Spec:
    """A calendar described once and built by both modules (their Interval types differ)."""

    name: str
    tz: str = "Asia/Shanghai"
    weekly: Mapping[str, str] | None = None  # None: the default office hours
    statutory: bool = True
    makeup: str | None = None
    extra_holidays: tuple[date, ...] = ()
    extra_workdays: tuple[date, ...] = ()
    overrides: Mapping[date, str] | None = None

    def build(self, mod: Any) -> Any:
        kwargs: dict[str, Any] = {
            "tz": self.tz,
            "statutory": self.statutory,
            "extra_holidays": frozenset(self.extra_holidays),
            "extra_workdays": frozenset(self.extra_workdays),
        }
        if self.weekly is not None:
            kwargs["weekly"] = mod.parse_weekly(self.weekly)
        if self.makeup is not None:
            kwargs["makeup_day_intervals"] = mod.parse_intervals(self.makeup)
        if self.overrides is not None:
            kwargs["overrides"] = {d: mod.parse_intervals(s) for d, s in self.overrides.items()}
        return mod.BusinessCalendar(**kwargs)


ALL_DAY = {"mon-sun": "00:00-24:00"}
SPECS = [
    Spec("default"),
    Spec("24/7", weekly=ALL_DAY, statutory=False),
    Spec("24/7 statutory", weekly=ALL_DAY),
    Spec("statutory off", statutory=False),
    Spec(
        "several intervals",
        weekly={
            "mon-fri": "08:00-09:15,10:00-12:00,13:30-18:00,19:00-21:30",
            "sat": "10:00-16:00",
            "sun": "20:00-24:00",
        },
        makeup="09:30-11:00,14:00-17:00",
    ),
    Spec("around midnight", weekly={"mon-sun": "00:00-02:00,22:00-24:00"}, statutory=False),
    Spec(
        "extras and overrides",
        weekly={"mon-fri": "09:00-12:00,13:30-21:00", "sat": "10:00-16:00"},
        extra_holidays=(date(2024, 5, 6), date(2025, 3, 3), date(2026, 3, 9), date(2026, 3, 10)),
        extra_workdays=(date(2024, 10, 1), date(2025, 1, 26), date(2026, 3, 8), date(2027, 1, 10)),
        overrides={
            date(2026, 3, 10): "20:00-24:00",  # beats the extra holiday
            date(2026, 3, 11): "",
            date(2025, 10, 3): "00:00-24:00",  # a National Day holiday
            date(2024, 2, 10): "11:00-11:00:01",  # one second on Spring Festival's eve
        },
    ),
    Spec("UTC", tz="UTC"),
    Spec("Berlin", tz="Europe/Berlin", weekly={"mon-sun": "00:00-03:30,08:00-18:00"}),
    Spec("Berlin 24/7", tz="Europe/Berlin", weekly=ALL_DAY, statutory=False),
    Spec(
        "New York",
        tz="America/New_York",
        weekly={"mon-fri": "01:30-02:30,09:00-17:00,23:00-24:00", "sun": "00:00-24:00"},
        statutory=False,
    ),
    Spec("Sao Paulo (DST at midnight)", tz="America/Sao_Paulo", weekly=ALL_DAY, statutory=False),
    Spec("Lord Howe (30 min DST)", tz="Australia/Lord_Howe", weekly={"mon-sun": "01:00-03:00"}),
    Spec("Apia (skipped a day)", tz="Pacific/Apia", weekly=ALL_DAY, statutory=False),
    Spec("Kolkata", tz="Asia/Kolkata", weekly={"mon-sat": "09:30-13:00,14:00-18:30"}),
]
PAIRS = [(s, s.build(new), s.build(ref)) for s in SPECS]
NEVER = Spec("never open", weekly={}, statutory=False)

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_END = datetime(2028, 1, 1, tzinfo=UTC)
# Chinese holiday periods and 调休 weekends, 2024-2026 (plus 2027, unknown to chinese_calendar).
HOLIDAY_DAYS = [
    date(2024, 2, 4), date(2024, 2, 9), date(2024, 2, 18), date(2024, 4, 7), date(2024, 5, 11),
    date(2024, 9, 29), date(2024, 10, 1), date(2024, 10, 12), date(2025, 1, 26), date(2025, 1, 28),
    date(2025, 2, 8), date(2025, 4, 27), date(2025, 9, 28), date(2025, 10, 8), date(2025, 10, 11),
    date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 16), date(2026, 2, 28), date(2026, 9, 30),
    date(2026, 10, 10), date(2027, 1, 1), date(2027, 2, 6), date(2027, 10, 1),
]  # fmt: skip
ZONES: list[tzinfo] = [
    UTC,
    ZoneInfo("UTC"),  # equal to UTC but another object: not the fast path
    ZoneInfo("Asia/Shanghai"),
    ZoneInfo("Europe/Berlin"),
    ZoneInfo("America/New_York"),
    timezone(timedelta(hours=-3, minutes=-30)),
    timezone(timedelta(hours=9)),
]
SECONDS: list[float] = [
    0, 0.0, -0.0, 1e-6, 5e-7, 1.5e-6, 2.5e-6, 0.1, 1, 59.9999995, 180, 180.0, 240, 300, 300.5,
    600, 3600, 5400, 27000, 86400, 172800, 172800.0, 604800, 14 * 86400, 21 * 86400 + 0.25,
]  # fmt: skip


class SubDatetime(datetime):
    """A datetime subclass (pandas-style); takes the exact path, not the fast one."""


# ------------------------------------------------------------------------------ comparison


def plain(x: object) -> object:
    """A value both modules' results reduce to identically when they are bit-identical."""
    if isinstance(x, float):
        return ("float", x.hex())  # tells -0.0 from 0.0
    if isinstance(x, datetime):
        return (type(x).__name__, repr(x))  # zone object, fields and fold
    if isinstance(x, new.Interval | ref.Interval):
        return ("Interval", x.start, x.end)
    if isinstance(x, tuple):
        return tuple(plain(v) for v in x)
    return (type(x).__name__, x)


def outcome(call: Callable[[], object]) -> object:
    try:
        return ("ok", plain(call()))
    except Exception as exc:  # every error must match too, whatever its type
        return ("raised", type(exc).__name__, str(exc))


def same(spec: Spec, cal: Any, old: Any, method: str, *args: Any) -> None:
    got = outcome(lambda: getattr(cal, method)(*args))
    want = outcome(lambda: getattr(old, method)(*args))
    assert got == want, f"{spec.name}: {method}{args!r}"


def check_instant(spec: Spec, cal: Any, old: Any, t: Any, seconds: float, other: Any) -> None:
    same(spec, cal, old, "is_open", t)
    same(spec, cal, old, "next_open", t)
    same(spec, cal, old, "add_business", t, seconds)
    same(spec, cal, old, "business_seconds", t, other)
    same(spec, cal, old, "business_seconds", other, t)


# ------------------------------------------------------------------------------ inputs


def edges(cal: Any, days: list[date]) -> Iterator[datetime]:
    """Interval edges, local midnights and their neighbours (1 µs, 1 s) on the given dates."""
    zone = ZoneInfo(cal.tz)
    for d in days:
        points = [datetime.combine(d, time(0), zone).astimezone(UTC)]
        for s, e in cal.intervals_on(d):
            points += [s, e]
        for p in points:
            for delta in (0, 1, -1, 1_000_000, -1_000_000):
                yield p + timedelta(microseconds=delta)


def dst_days(tz: str) -> list[date]:
    """Local dates on which ``tz``'s UTC offset changes, 2024-2027 (and their neighbours)."""
    zone = ZoneInfo(tz)
    out: list[date] = []
    t = _EPOCH
    prev = t.astimezone(zone).utcoffset()
    while t < _END:
        t += timedelta(hours=1)
        off = t.astimezone(zone).utcoffset()
        if off != prev:
            d = t.astimezone(zone).date()
            out += [d - timedelta(days=1), d, d + timedelta(days=1)]
        prev = off
    return out


def in_zone(rng: random.Random, u: datetime) -> datetime:
    """``u`` in a random zone (the same instant), sometimes as a datetime subclass."""
    t = u.astimezone(rng.choice(ZONES))
    if rng.random() < 0.05:
        t = SubDatetime.combine(t.date(), t.timetz())  # timetz() keeps the zone and fold
    return t


def random_instant(rng: random.Random, lo: datetime = _EPOCH, hi: datetime = _END) -> datetime:
    span = int((hi - lo) / timedelta(microseconds=1))
    us = rng.randrange(span)
    if rng.random() < 0.5:
        us -= us % 1_000_000  # whole seconds, like message timestamps
    return lo + timedelta(microseconds=us)


def random_seconds(rng: random.Random) -> float:
    r = rng.random()
    if r < 0.4:
        return rng.choice(SECONDS)
    if r < 0.7:
        return float(rng.randrange(0, 4 * 7 * 86400))
    return rng.uniform(0, 4 * 7 * 86400)


# ------------------------------------------------------------------------------ sweeps


@pytest.mark.parametrize(("spec", "cal", "old"), PAIRS, ids=[s.name for s in SPECS])
def test_day_level_matches(spec: Spec, cal: Any, old: Any) -> None:
    """local_intervals and intervals_on agree on every date of 2024-2027."""
    d = date(2023, 12, 25)
    while d < date(2028, 1, 8):
        same(spec, cal, old, "local_intervals", d)
        same(spec, cal, old, "intervals_on", d)
        same(spec, cal, old, "is_workday", d)
        d += timedelta(days=1)


@pytest.mark.parametrize(("spec", "cal", "old"), PAIRS, ids=[s.name for s in SPECS])
def test_random_sweep_matches(spec: Spec, cal: Any, old: Any) -> None:
    """Random instants over 2024-2027 in random zones, random budgets and second instants."""
    rng = random.Random(f"sweep {spec.name}")
    for _ in range(1500):
        u = random_instant(rng)
        # The other end of a span: mostly minutes to two days away, sometimes anywhere.
        if rng.random() < 0.8:
            other = u + timedelta(seconds=rng.choice((0, 1, 59, 300, 3600, 9 * 3600, 172800)))
        else:
            other = random_instant(rng)
        check_instant(spec, cal, old, in_zone(rng, u), random_seconds(rng), in_zone(rng, other))


@pytest.mark.parametrize(("spec", "cal", "old"), PAIRS, ids=[s.name for s in SPECS])
def test_edges_holidays_and_dst_match(spec: Spec, cal: Any, old: Any) -> None:
    """Exactly on (and 1 µs / 1 s around) interval edges and midnights on holiday and DST days."""
    rng = random.Random(f"edges {spec.name}")
    days = HOLIDAY_DAYS + dst_days(spec.tz) + [date(2026, 3, 2), date(2026, 3, 7)]
    days += list((spec.overrides or {}).keys()) + list(spec.extra_holidays + spec.extra_workdays)
    points = list(edges(old, days))
    for u in points:
        seconds = rng.choice(SECONDS)
        other = rng.choice(points) if rng.random() < 0.5 else u + timedelta(seconds=seconds)
        check_instant(spec, cal, old, in_zone(rng, u), seconds, other)


def test_fresh_calendars_match_on_one_stream() -> None:
    """Cold caches, and one calendar walked far enough (1985-2065) to clear its memos."""
    rng = random.Random("fresh")
    for spec in SPECS:
        cal, old = spec.build(new), spec.build(ref)
        for _ in range(200):
            u = random_instant(rng)
            check_instant(spec, cal, old, u, random_seconds(rng), random_instant(rng))
    # Shanghai kept DST in 1986-1991; 80 years of days overflow the 8192-entry memos.
    for spec in (SPECS[0], SPECS[8]):
        cal, old = spec.build(new), spec.build(ref)
        lo, hi = datetime(1985, 1, 1, tzinfo=UTC), datetime(2065, 1, 1, tzinfo=UTC)
        seen: set[int] = set()
        for _ in range(12000):
            u = random_instant(rng, lo, hi)
            seen.add(u.toordinal())
            other = u + timedelta(seconds=rng.choice((0, 600, 86400, 4 * 86400)))
            check_instant(spec, cal, old, u, rng.choice(SECONDS), other)
        assert len(seen) > new._CACHE_LIMIT  # the memos were cleared on the way


def test_sao_paulo_and_apia_oddities_match() -> None:
    """A DST gap at midnight (Sao Paulo 2018) and a skipped date (Apia, 30 Dec 2011)."""
    rng = random.Random("oddities")
    for spec, cal, old in PAIRS:
        if spec.tz not in ("America/Sao_Paulo", "Pacific/Apia"):
            continue
        days = [date(2018, 11, d) for d in range(2, 7)] + [date(2019, 2, d) for d in (15, 16, 17)]
        days += [date(2011, 12, d) for d in range(28, 32)] + [date(2012, 1, 1)]
        points = list(edges(old, days))
        for u in points:
            other = rng.choice(points)
            check_instant(spec, cal, old, u, rng.choice(SECONDS), other)


def _tzif(offsets_s: list[int], transitions: list[tuple[datetime, int]]) -> bytes:
    """A minimal TZif v1 zone: local time types (UTC offsets) and (instant, type) transitions."""
    abbrs = b"".join(b"T%d\x00" % i for i in range(len(offsets_s)))
    header = b"TZif" + b"\x00" * 16
    header += struct.pack(">6l", 0, 0, 0, len(transitions), len(offsets_s), len(abbrs))
    body = b"".join(struct.pack(">l", int(t.timestamp())) for t, _ in transitions)
    body += bytes(i for _, i in transitions)
    body += b"".join(struct.pack(">lbb", off, 0, 3 * i) for i, off in enumerate(offsets_s))
    return header + body + abbrs


def test_offset_excursion_inside_one_utc_day_matches() -> None:
    """Two offset changes within one UTC day that cancel out still give zoneinfo's dates.

    No tzdata zone has transitions less than days apart, so this zone is made up: +05:00, with
    +14:00 from 10:00 to 12:00 UTC on 4 March 2026 (local dates go d, d+1, d, d+1 that day). The
    UTC day's ends share one offset; only the hourly offset samples mark it irregular.
    """
    data = _tzif(
        [5 * 3600, 14 * 3600],
        [(datetime(2026, 3, 4, 10, tzinfo=UTC), 1), (datetime(2026, 3, 4, 12, tzinfo=UTC), 0)],
    )
    zone = ZoneInfo.from_file(io.BytesIO(data), key="Test/Excursion")
    spec = Spec("excursion", tz="UTC", weekly={"mon-sun": "00:00-02:00,18:00-20:00"})
    cal, old = spec.build(new), spec.build(ref)
    for c in (cal, old):
        object.__setattr__(c, "_zone", zone)  # the calendars only read tz through _zone
    t0 = datetime(2026, 3, 3, 12, tzinfo=UTC)
    points = [t0 + timedelta(minutes=10 * i) for i in range(6 * 48)]
    points += list(edges(old, [date(2026, 3, d) for d in range(3, 7)]))
    rng = random.Random("excursion")
    for u in points:
        check_instant(spec, cal, old, u, rng.choice(SECONDS), rng.choice(points))


def test_errors_match() -> None:
    """Naive and non-datetime instants, bad budgets, range ends and a never-open calendar."""
    cal, old = NEVER.build(new), NEVER.build(ref)
    t = datetime(2026, 3, 2, 10, tzinfo=UTC)
    same(NEVER, cal, old, "next_open", t)
    same(NEVER, cal, old, "add_business", t, 0)
    same(NEVER, cal, old, "add_business", datetime(9990, 1, 1, tzinfo=UTC), 0)
    same(NEVER, cal, old, "is_open", t)
    same(NEVER, cal, old, "business_seconds", t, t + timedelta(days=400))
    naive = datetime(2026, 3, 2, 10)  # noqa: DTZ001  # the invalid input under test
    bad_instants: list[Any] = [naive, date(2026, 3, 2), time(10, tzinfo=UTC), "2026-03-02", None]
    budgets: list[Any] = [
        -1, -1e-9, float("nan"), float("inf"), -float("inf"), 1e300, 10**20,
        True, Decimal(300), Fraction(1, 3), "300", None,
    ]  # fmt: skip
    # The ends of the datetime range (pairs within one end: a span across 9998 years walks
    # every day in both).
    extremes = [
        [datetime.min.replace(tzinfo=UTC), datetime(1, 1, 1, 20, tzinfo=UTC)],
        [
            datetime.max.replace(tzinfo=UTC),
            datetime(9999, 12, 31, 10, tzinfo=UTC),
            datetime(9999, 12, 30, 10, tzinfo=UTC),
            datetime(9999, 12, 31, 15, 59, tzinfo=UTC),
            datetime(9999, 12, 31, 16, 0, tzinfo=UTC),
        ],
    ]
    for spec, cal, old in PAIRS:
        for bad in bad_instants:
            for method in ("is_open", "next_open"):
                same(spec, cal, old, method, bad)
            same(spec, cal, old, "add_business", bad, 300)
            same(spec, cal, old, "business_seconds", bad, t)
            same(spec, cal, old, "business_seconds", t, bad)
            same(spec, cal, old, "local_intervals", bad)
            same(spec, cal, old, "intervals_on", bad)
        for seconds in budgets:
            same(spec, cal, old, "add_business", t, seconds)
            same(spec, cal, old, "add_business", naive, seconds)
        for end in extremes:
            for x in end:
                for y in end:
                    check_instant(spec, cal, old, x, 300, y)
                same(spec, cal, old, "add_business", x, 30 * 86400)
        same(spec, cal, old, "local_intervals", datetime(2026, 3, 2, tzinfo=UTC))
        for d in (date.min, date.max, date(9999, 12, 30)):
            same(spec, cal, old, "intervals_on", d)


# ------------------------------------------------------------------------------ hypothesis

_calendar_index = st.integers(min_value=0, max_value=len(PAIRS) - 1)
_utc_instants = st.datetimes(
    min_value=datetime(2024, 1, 1),  # noqa: DTZ001  # hypothesis bounds are naive
    max_value=datetime(2027, 12, 31, 23, 59, 59),  # noqa: DTZ001
    timezones=st.just(UTC),
)
_zones = st.sampled_from(ZONES)
_seconds = st.one_of(
    st.sampled_from(SECONDS),
    st.integers(min_value=0, max_value=5 * 7 * 86400),
    st.floats(min_value=0, max_value=5 * 7 * 86400, allow_nan=False, allow_infinity=False),
)


@st.composite
def _instants(draw: st.DrawFn, index: int) -> datetime:
    """A random instant, or one near an interval edge / midnight of a random nearby date."""
    spec, _, old = PAIRS[index]
    u = draw(_utc_instants)
    if draw(st.booleans()):
        d = u.astimezone(ZoneInfo(spec.tz)).date() + timedelta(days=draw(st.integers(-1, 1)))
        if draw(st.booleans()):
            d = draw(st.sampled_from(HOLIDAY_DAYS))
        points = list(edges(old, [d]))
        u = draw(st.sampled_from(points))
    return u.astimezone(draw(_zones))


@settings(deadline=None, max_examples=400)
@given(data=st.data(), index=_calendar_index, seconds=_seconds)
def test_hypothesis_instants_match(data: st.DataObject, index: int, seconds: float) -> None:
    """is_open, next_open, add_business and business_seconds on drawn instants and budgets."""
    spec, cal, old = PAIRS[index]
    t = data.draw(_instants(index))
    other = data.draw(_instants(index))
    check_instant(spec, cal, old, t, seconds, other)
    # Chained like the alert ladder: due times measured back, and from the due time on.
    due = old.add_business(t, seconds)
    same(spec, cal, old, "business_seconds", t, due)
    same(spec, cal, old, "add_business", due, seconds)


@settings(deadline=None, max_examples=200)
@given(index=_calendar_index, d=st.dates(date(2023, 12, 1), date(2028, 1, 31)))
def test_hypothesis_days_match(index: int, d: date) -> None:
    """local_intervals and intervals_on on drawn dates."""
    spec, cal, old = PAIRS[index]
    same(spec, cal, old, "local_intervals", d)
    same(spec, cal, old, "intervals_on", d)
