"""Business calendar: opening hours, Chinese statutory holidays and 调休 make-up workdays.

The SLA clocks (reference/sla.md §7.6) count only open time. A calendar is a weekly schedule with
several intervals per day (a lunch break is a gap between two intervals), plus the state holiday
schedule from the ``chinese_calendar`` package (statutory holidays closed, 调休 make-up workdays
open), plus tenant-specific extra holidays/workdays and exact per-date overrides.

All instants going in and out are timezone-aware; results are in UTC. Wall-clock hours are read in
the calendar's own time zone, so "09:00" in an Asia/Shanghai calendar is 01:00 UTC.

Precedence for a local date ``d`` (first match wins):

1. ``overrides[d]``: exactly those hours (an empty tuple closes the day);
2. ``d in extra_holidays``: closed;
3. ``d in extra_workdays``: open with make-up hours on a weekend, weekly hours on a weekday;
4. ``statutory`` and the year is known to ``chinese_calendar`` (2004–2026 in 1.11): a statutory
   holiday is closed, a 调休 make-up workday (a weekend the state declares a workday) gets the
   make-up hours; outside the known years this step is skipped (plain weekly hours, never a crash);
5. ``weekly[d.weekday()]`` (0 = Monday); missing or empty means closed.

Algorithms walk day by day over cached per-date intervals, so 48 h, 30 days or a year cost a few
hundred small steps, never one per second or minute. They run on the intake's hot path, so an
instant's local date comes from a per-UTC-day memo of where local midnight falls (zoneinfo is only
asked on days whose UTC offset changes), whole days are skipped by their precomputed totals, and
nothing is allocated per call beyond the result; tests/sop/test_calendar_differential.py holds
the results (datetimes, floats, errors) identical to the plain walk in reference_calendar.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar

__all__ = [
    "ALWAYS_OPEN",
    "BusinessCalendar",
    "CalendarNeverOpensError",
    "FrozenMap",
    "Interval",
    "calendar_seconds",
    "default_calendar",
    "parse_intervals",
    "parse_weekly",
]

_MIDNIGHT = time(0)
_ONE_DAY = timedelta(days=1)
_ONE_HOUR = timedelta(hours=1)
_ONE_US = timedelta(microseconds=1)
_ZERO = timedelta(0)
_LAST_DATE = date.max
# A calendar closed for this many consecutive days is treated as never opening (misconfigured);
# real closures (Spring Festival, a shop refit) are far shorter.
_MAX_CLOSED_DAYS = 3 * 366
# Per-calendar memo of date -> UTC intervals; cleared when it grows past this (bounded memory).
_CACHE_LIMIT = 8192
# Memo of add_business budgets (seconds -> timedelta): policies use a handful of values.
_BUDGET_LIMIT = 256
_BUDGETS: dict[float, timedelta] = {}

K = TypeVar("K")
V = TypeVar("V")

UtcSpan = tuple[datetime, datetime]
# A local date's record: (date, its UTC opening spans, their total length).
_Day = tuple[date, tuple[UtcSpan, ...], timedelta]
# A UTC day on which the zone's offset is constant: (boundary, (day before, day from boundary)),
# where boundary is the UTC instant of the one local midnight inside it (the UTC day's own start
# when there is none, and then both records are the same local date).
_UtcDay = tuple[datetime, tuple[_Day, _Day]]


class CalendarNeverOpensError(ValueError):
    """The calendar has no open time within a plausible horizon (``_MAX_CLOSED_DAYS``)."""


class FrozenMap(Mapping[K, V]):
    """Immutable, hashable mapping, so calendars stay hashable, comparable and picklable."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        self._data: dict[K, V] = dict(data)
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


@dataclass(frozen=True, slots=True)
class Interval:
    """Local wall-clock opening interval within one day, ``[start, end)``.

    ``end == time(0)`` means "until midnight" (24:00), so ``Interval(time(0), time(0))`` is the
    whole day. Otherwise ``start < end`` is required. Times must be naive (wall clock in the
    calendar's zone).
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("Interval times are local wall-clock times and must be naive")
        if not self.until_midnight and self.start >= self.end:
            raise ValueError(f"Interval start {self.start} must be before end {self.end}")

    @property
    def until_midnight(self) -> bool:
        """True when the interval runs to the end of the day (written ``24:00``)."""
        return self.end == _MIDNIGHT

    def __str__(self) -> str:
        end = "24:00" if self.until_midnight else _fmt_time(self.end)
        return f"{_fmt_time(self.start)}-{end}"


WHOLE_DAY = Interval(_MIDNIGHT, _MIDNIGHT)


def _fmt_time(t: time) -> str:
    return t.strftime("%H:%M:%S") if t.second or t.microsecond else t.strftime("%H:%M")


def _normalize_intervals(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """Sort and merge overlapping/touching intervals (union semantics)."""
    items = sorted(intervals, key=lambda iv: iv.start)
    merged: list[Interval] = []
    for iv in items:
        if not isinstance(iv, Interval):
            raise TypeError(f"expected Interval, got {type(iv).__name__}")
        if merged:
            last = merged[-1]
            if last.until_midnight:
                continue  # already covers the rest of the day
            if iv.start <= last.end:
                end = iv.end if iv.until_midnight or iv.end > last.end else last.end
                merged[-1] = Interval(last.start, end)
                continue
        merged.append(iv)
    return tuple(merged)


def _require_aware(t: datetime, name: str = "datetime") -> datetime:
    if not isinstance(t, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(t).__name__}")
    tz = t.tzinfo
    # ZoneInfo and timezone always have an offset: skip the utcoffset() call for them.
    if tz is None or (
        tz.__class__ is not ZoneInfo and tz.__class__ is not timezone and t.utcoffset() is None
    ):
        raise ValueError(f"{name} must be timezone-aware, got naive {t.isoformat()}")
    return t.astimezone(UTC)


def _budget(seconds: float) -> timedelta:
    """``timedelta(seconds=seconds)`` after validation, memoised for the few policy budgets."""
    exact = seconds.__class__ is float or seconds.__class__ is int
    if exact:
        # Keyed by value: an int and a float that compare equal give the same timedelta. Other
        # numeric types (Decimal, Fraction) compare equal too but timedelta treats them apart.
        cached = _BUDGETS.get(seconds)
        if cached is not None:
            return cached
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be finite and >= 0, got {seconds!r}")
    budget = timedelta(seconds=seconds)
    if exact:
        if len(_BUDGETS) >= _BUDGET_LIMIT:
            _BUDGETS.clear()
        _BUDGETS[seconds] = budget
    return budget


def calendar_seconds(a: datetime, b: datetime) -> float:
    """Wall-clock seconds in ``[a, b)``; 0 if ``b <= a``. Both must be aware."""
    ua, ub = _require_aware(a, "a"), _require_aware(b, "b")
    return max(0.0, (ub - ua).total_seconds())


_OFFICE_HOURS = (Interval(time(9), time(12)), Interval(time(13, 30), time(18)))


def _default_weekly() -> FrozenMap[int, tuple[Interval, ...]]:
    return FrozenMap(dict.fromkeys(range(5), _OFFICE_HOURS))


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Weekly multi-interval hours + statutory holidays/调休 + extras + per-date overrides.

    ``weekly`` defaults to the :func:`default_calendar` hours (Mon–Fri 09:00–12:00 and
    13:30–18:00). ``makeup_day_intervals`` are the hours of a make-up workday that falls on a
    weekend; ``None`` means Monday's hours (or the first weekday that has hours). ``version`` is
    stored with each question so recomputation can tell which calendar was in force.
    Mappings and sets are frozen on construction, so instances are hashable and safe to share.
    """

    tz: str = "Asia/Shanghai"
    weekly: Mapping[int, tuple[Interval, ...]] = field(default_factory=_default_weekly)
    statutory: bool = True
    makeup_day_intervals: tuple[Interval, ...] | None = None
    extra_holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()
    overrides: Mapping[date, tuple[Interval, ...]] = field(default_factory=FrozenMap)
    version: int = 1
    _zone: ZoneInfo = field(init=False, repr=False, compare=False, hash=False)
    # Memos (not part of the value): local date -> record, UTC day ordinal -> its local dates,
    # and the UTC days left to zoneinfo (offset changes within them).
    _cache: dict[date, _Day] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _utc_days: dict[int, _UtcDay] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _irregular: set[int] = field(
        default_factory=set, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.tz!r}") from exc
        object.__setattr__(self, "_zone", zone)
        weekly: dict[int, tuple[Interval, ...]] = {}
        for day, ivs in self.weekly.items():
            if day not in range(7):
                raise ValueError(f"weekly keys are weekdays 0 (Monday)..6 (Sunday), got {day!r}")
            weekly[day] = _normalize_intervals(ivs)
        object.__setattr__(self, "weekly", FrozenMap(weekly))
        overrides: dict[date, tuple[Interval, ...]] = {}
        for d, ivs in self.overrides.items():
            if isinstance(d, datetime) or not isinstance(d, date):
                raise TypeError(f"override keys must be dates, got {d!r}")
            overrides[d] = _normalize_intervals(ivs)
        object.__setattr__(self, "overrides", FrozenMap(overrides))
        if self.makeup_day_intervals is not None:
            object.__setattr__(
                self, "makeup_day_intervals", _normalize_intervals(self.makeup_day_intervals)
            )
        object.__setattr__(self, "extra_holidays", frozenset(self.extra_holidays))
        object.__setattr__(self, "extra_workdays", frozenset(self.extra_workdays))

    # ----------------------------------------------------------------------------- day level

    def local_intervals(self, d: date) -> tuple[Interval, ...]:
        """Wall-clock opening intervals of local date ``d`` after applying the precedence rules."""
        if isinstance(d, datetime):
            raise TypeError("local_intervals takes a date, not a datetime")
        if d in self.overrides:
            return self.overrides[d]
        if d in self.extra_holidays:
            return ()
        if d in self.extra_workdays:
            return self._workday_hours(d)
        if self.statutory:
            try:
                on_holiday, name = chinese_calendar.get_holiday_detail(d)
            except NotImplementedError:
                pass  # year unknown to the package: plain weekly hours
            else:
                if on_holiday and name is not None:
                    return ()  # statutory holiday (a named rest day)
                if not on_holiday and d.weekday() >= 5:
                    return self._makeup_hours()  # 调休 weekend declared a workday
        return self.weekly.get(d.weekday(), ())

    def _makeup_hours(self) -> tuple[Interval, ...]:
        if self.makeup_day_intervals is not None:
            return self.makeup_day_intervals
        for day in range(5):
            ivs = self.weekly.get(day, ())
            if ivs:
                return ivs
        return ()

    def _workday_hours(self, d: date) -> tuple[Interval, ...]:
        weekday_hours = self.weekly.get(d.weekday(), ()) if d.weekday() < 5 else ()
        return weekday_hours or self._makeup_hours()

    def is_workday(self, d: date) -> bool:
        """True when local date ``d`` has any opening hours."""
        return bool(self.local_intervals(d))

    def intervals_on(self, d: date) -> tuple[UtcSpan, ...]:
        """Opening intervals of local date ``d`` as sorted, non-overlapping aware UTC spans."""
        day = self._cache.get(d)
        return (day if day is not None else self._build_day(d))[1]

    def _day(self, d: date) -> _Day:
        day = self._cache.get(d)
        return day if day is not None else self._build_day(d)

    def _build_day(self, d: date) -> _Day:
        zone = self._zone
        spans: list[UtcSpan] = []
        for iv in self.local_intervals(d):
            start = datetime.combine(d, iv.start, tzinfo=zone).astimezone(UTC)
            end_local = (
                datetime.combine(d + _ONE_DAY, _MIDNIGHT, tzinfo=zone)
                if iv.until_midnight
                else datetime.combine(d, iv.end, tzinfo=zone)
            )
            end = end_local.astimezone(UTC)
            if end <= start:
                continue  # swallowed by a DST jump; cannot happen in Asia/Shanghai
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
            else:
                spans.append((start, end))
        total = _ZERO
        for s, e in spans:
            total += e - s
        day = (d, tuple(spans), total)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[d] = day
        return day

    def _local_day(self, u: datetime) -> _Day:
        """Record of the local date of UTC instant ``u``: ``u.astimezone(tz).date()``'s day.

        The hot methods inline the lookup in ``_utc_days``; this is its miss path.
        """
        o = u.toordinal()
        if o not in self._irregular:
            entry = self._utc_days.get(o)
            if entry is None:
                entry = self._build_utc_day(o)
            if entry is not None:
                return entry[1][u >= entry[0]]
        return self._day(u.astimezone(self._zone).date())

    def _build_utc_day(self, o: int) -> _UtcDay | None:
        """Cache UTC day ``o``'s local dates, or mark it irregular (None) for zoneinfo to map.

        Regular means the zone's offset is the same at both ends and every whole hour of the day
        (so local dates advance at most once, at one boundary) and zoneinfo agrees on the dates
        either side of it. Offset switch days and days at the ends of the datetime range are
        irregular. (tzdata's closest transitions are days apart; a pair under an hour apart that
        cancelled out would slip through the hourly samples.)
        """
        if len(self._utc_days) >= _CACHE_LIMIT:
            self._utc_days.clear()
        if len(self._irregular) >= _CACHE_LIMIT:
            self._irregular.clear()
        try:
            entry = self._regular_utc_day(o)
        except Exception:  # e.g. OverflowError: the exact path raises it if a caller gets there
            entry = None
        if entry is None:
            self._irregular.add(o)
        else:
            self._utc_days[o] = entry
        return entry

    def _regular_utc_day(self, o: int) -> _UtcDay | None:
        zone = self._zone
        start = datetime.combine(date.fromordinal(o), _MIDNIGHT, tzinfo=UTC)
        end = start + _ONE_DAY
        last = end - _ONE_US
        off = start.astimezone(zone).utcoffset()
        if off is None or last.astimezone(zone).utcoffset() != off:
            return None
        for h in range(1, 24):
            if (start + h * _ONE_HOUR).astimezone(zone).utcoffset() != off:
                return None
        before = (start + off).date()
        boundary = datetime.combine(before + _ONE_DAY, _MIDNIGHT, tzinfo=UTC) - off
        if boundary < end:
            after = before + _ONE_DAY
        else:
            boundary, after = start, before
        # Cross-check with zoneinfo itself, on both sides of the boundary.
        if (
            start.astimezone(zone).date() != before
            or last.astimezone(zone).date() != after
            or boundary.astimezone(zone).date() != after
            or (boundary > start and (boundary - _ONE_US).astimezone(zone).date() != before)
        ):
            return None
        return (boundary, (self._day(before), self._day(after)))

    # ---------------------------------------------------------------------------- instant level
    #
    # Each method below inlines the UTC-day lookup of _local_day and walks the same spans in the
    # same order as the reference algorithm (tests/sop/reference_calendar.py), so results are
    # identical; the shortcuts only skip work that cannot change them.

    def is_open(self, t: datetime) -> bool:
        """True when instant ``t`` lies in an opening interval (quiet hours = not open)."""
        u = t if t.__class__ is datetime and t.tzinfo is UTC else _require_aware(t, "t")
        entry = self._utc_days.get(u.toordinal())
        day = self._local_day(u) if entry is None else entry[1][u >= entry[0]]
        for s, e in day[1]:  # noqa: SIM110  # any() over a generator costs more than the test
            if s <= u < e:
                return True
        return False

    def _never_opens(self, u: datetime) -> CalendarNeverOpensError:
        return CalendarNeverOpensError(
            f"calendar (tz={self.tz}, version={self.version}) has no open hours "
            f"within {_MAX_CLOSED_DAYS} days after {u.isoformat()}"
        )

    def next_open(self, t: datetime) -> datetime:
        """First open instant at or after ``t`` (``t`` itself, in UTC, when already open)."""
        u = t if t.__class__ is datetime and t.tzinfo is UTC else _require_aware(t, "t")
        entry = self._utc_days.get(u.toordinal())
        day = self._local_day(u) if entry is None else entry[1][u >= entry[0]]
        d = day[0]
        closed = 0
        cache = self._cache
        while True:
            for s, e in day[1]:
                if e > u:
                    return u if u > s else s  # max(s, u), which returns s on a tie
            closed += 1
            if closed > _MAX_CLOSED_DAYS:
                raise self._never_opens(u)
            d += _ONE_DAY
            day = cache.get(d) or self._build_day(d)  # records are never empty

    def add_business(self, start: datetime, seconds: float) -> datetime:
        """Instant after ``seconds`` of open time counted from ``start`` (a due time).

        Chatwoot ``Sla::BusinessHoursService`` extended to several intervals per day and to
        holidays: a start in closed time moves to the next opening; each interval's open seconds
        are used up in turn. ``seconds == 0`` gives ``next_open(start)``; a budget that ends
        exactly at a closing time returns that closing time.
        """
        u = (
            start
            if start.__class__ is datetime and start.tzinfo is UTC
            else _require_aware(start, "start")
        )
        cls = seconds.__class__
        remaining = _BUDGETS.get(seconds) if cls is float or cls is int else None
        if remaining is None:
            remaining = _budget(seconds)
        entry = self._utc_days.get(u.toordinal())
        day = self._local_day(u) if entry is None else entry[1][u >= entry[0]]
        d = day[0]
        closed = 0
        cache = self._cache
        while True:
            spans = day[1]
            if spans and remaining > day[2] and spans[0][0] >= u:
                # The whole day lies after u and the budget outlasts it: the span-by-span walk
                # would subtract each span (exact timedelta arithmetic) and return nowhere.
                remaining -= day[2]
                closed = 0
            else:
                found = False
                for s, e in spans:
                    if e > u:
                        found = True
                        lo = u if u > s else s
                        available = e - lo
                        if remaining <= available:
                            return lo + remaining
                        remaining -= available
                closed = 0 if found else closed + 1
                if closed > _MAX_CLOSED_DAYS:
                    raise self._never_opens(u)
            d += _ONE_DAY
            day = cache.get(d) or self._build_day(d)  # records are never empty

    def business_seconds(self, a: datetime, b: datetime) -> float:
        """Open seconds in ``[a, b)``; 0 if ``b <= a``. Inverse of :meth:`add_business`."""
        ua = a if a.__class__ is datetime and a.tzinfo is UTC else _require_aware(a, "a")
        ub = b if b.__class__ is datetime and b.tzinfo is UTC else _require_aware(b, "b")
        if ub <= ua:
            return 0.0
        utc_days = self._utc_days
        entry = utc_days.get(ua.toordinal())
        day = self._local_day(ua) if entry is None else entry[1][ua >= entry[0]]
        entry = utc_days.get(ub.toordinal())
        last_day = self._local_day(ub) if entry is None else entry[1][ub >= entry[0]]
        total = _ZERO
        if day is last_day and day[0] != _LAST_DATE:
            # One local date (the common FRT case). Not date.max: the reference's walk raises
            # OverflowError stepping past it, and so does the loop below.
            for s, e in day[1]:
                lo = ua if ua > s else s
                hi = ub if ub < e else e
                if hi > lo:
                    total += hi - lo
            return total.total_seconds()
        d, last = day[0], last_day[0]
        cache = self._cache
        while d <= last:
            spans = day[1]
            if spans and spans[0][0] >= ua and spans[-1][1] <= ub:
                total += day[2]  # the whole day lies inside [a, b)
            else:
                for s, e in spans:
                    lo = ua if ua > s else s
                    hi = ub if ub < e else e
                    if hi > lo:
                        total += hi - lo
            d += _ONE_DAY
            if d <= last:
                day = cache.get(d) or self._build_day(d)
        return total.total_seconds()

    def calendar_seconds(self, a: datetime, b: datetime) -> float:
        """Wall-clock seconds in ``[a, b)`` (same as the module function; for symmetry)."""
        return calendar_seconds(a, b)

    # --------------------------------------------------------------------------- derivation

    def with_overrides(self, **changes: object) -> BusinessCalendar:
        """A per-group calendar built on this one.

        ``overrides`` are merged (new dates win); ``extra_holidays``/``extra_workdays`` are added
        to the base sets (a date added to one is removed from the other); any other field
        (``tz``, ``weekly``, ``statutory``, ``makeup_day_intervals``, ``version``) is replaced.
        Use :func:`dataclasses.replace` to replace the merged fields wholesale.
        """
        allowed = {
            "tz",
            "weekly",
            "statutory",
            "makeup_day_intervals",
            "extra_holidays",
            "extra_workdays",
            "overrides",
            "version",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise TypeError(f"unknown calendar field(s): {', '.join(sorted(unknown))}")
        new_holidays = frozenset(_as_dates(changes.pop("extra_holidays", ())))
        new_workdays = frozenset(_as_dates(changes.pop("extra_workdays", ())))
        holidays = (self.extra_holidays - new_workdays) | new_holidays
        workdays = (self.extra_workdays - new_holidays) | new_workdays
        overrides: dict[date, tuple[Interval, ...]] = dict(self.overrides)
        extra_overrides = changes.pop("overrides", {})
        if not isinstance(extra_overrides, Mapping):
            raise TypeError("overrides must be a mapping of date -> intervals")
        overrides.update(extra_overrides)
        return replace(
            self,
            extra_holidays=holidays,
            extra_workdays=workdays,
            overrides=FrozenMap(overrides),
            **changes,  # type: ignore[arg-type]  # field names checked above; types in __post_init__
        )


def _as_dates(value: object) -> Iterator[date]:
    if not isinstance(value, Iterable):
        raise TypeError("extra_holidays/extra_workdays must be iterables of dates")
    for d in value:
        if isinstance(d, datetime) or not isinstance(d, date):
            raise TypeError(f"expected a date, got {d!r}")
        yield d


# ------------------------------------------------------------------------------- parsing

_RANGE_RE = re.compile(
    r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*[-–—~～至到]\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$"
)
_CLOSED_WORDS = {"", "closed", "off", "-", "休息", "关闭", "不营业"}


def _hms(h: str, m: str, s: str | None, *, allow_24: bool, piece: str) -> time:
    hh, mm, ss = int(h), int(m), int(s or 0)
    if allow_24 and hh == 24 and mm == 0 and ss == 0:
        return _MIDNIGHT
    if not (0 <= hh <= 23 and 0 <= mm <= 59 and 0 <= ss <= 59):
        raise ValueError(f"bad time in interval {piece!r}")
    return time(hh, mm, ss)


def parse_intervals(spec: str) -> tuple[Interval, ...]:
    """Parse ``"09:00-12:00,13:30-21:00"`` into sorted, merged intervals.

    Separators: ``,`` ``;`` ``，`` ``；`` ``、``; dashes ``-`` ``–`` ``~`` ``～`` ``至``. An end
    of ``24:00`` (or ``00:00``) means until midnight. ``""``, ``closed``, ``off``, ``休息``
    give ``()``.
    """
    if spec.strip().lower() in _CLOSED_WORDS:
        return ()
    out: list[Interval] = []
    for piece in re.split(r"[,;，；、]", spec):
        if not piece.strip():
            continue
        m = _RANGE_RE.match(piece)
        if m is None:
            raise ValueError(f"cannot parse interval {piece.strip()!r} (expected HH:MM-HH:MM)")
        start = _hms(m[1], m[2], m[3], allow_24=False, piece=piece.strip())
        end = _hms(m[4], m[5], m[6], allow_24=True, piece=piece.strip())
        out.append(Interval(start, end))
    return _normalize_intervals(out)


_DAY_NAMES = {
    "mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6,
    "周一": 0, "周二": 1, "周三": 2, "周四": 3, "周五": 4, "周六": 5, "周日": 6, "周天": 6,
}  # fmt: skip


def _day_index(name: str) -> int:
    key = name.strip().lower()
    if key.isdigit() and 0 <= int(key) <= 6:
        return int(key)
    key = key[:3] if key.isascii() else key
    if key not in _DAY_NAMES:
        raise ValueError(f"unknown weekday {name!r} (use mon..sun, 周一..周日 or 0..6)")
    return _DAY_NAMES[key]


def parse_weekly(spec: Mapping[str, str]) -> dict[int, tuple[Interval, ...]]:
    """Parse ``{"mon-fri": "09:00-12:00,13:30-18:00", "sat": "10:00-16:00"}`` into ``weekly``.

    Keys are single days or ranges (``mon-fri``, ``周一-周五``, ``0-4``); later keys win.
    """
    weekly: dict[int, tuple[Interval, ...]] = {}
    for key, value in spec.items():
        first, sep, last = key.partition("-")
        lo = _day_index(first)
        hi = _day_index(last) if sep else lo
        if hi < lo:
            raise ValueError(f"weekday range {key!r} runs backwards")
        ivs = parse_intervals(value)
        for day in range(lo, hi + 1):
            weekly[day] = ivs
    return weekly


# ------------------------------------------------------------------------------- defaults


def default_calendar(tz: str = "Asia/Shanghai") -> BusinessCalendar:
    """Office hours: Mon–Fri 09:00–12:00 and 13:30–18:00 with a lunch break, weekends closed.

    Statutory holidays are closed and 调休 make-up weekends work Monday's hours, matching how
    most brand community teams staff groups. Tenants with evening or weekend cover configure their
    own weekly hours (e.g. ``parse_weekly({"mon-sun": "09:00-12:00,13:30-21:00"})``).
    """
    return BusinessCalendar(tz=tz, weekly=_default_weekly(), statutory=True)


ALWAYS_OPEN = BusinessCalendar(
    weekly=FrozenMap(dict.fromkeys(range(7), (WHOLE_DAY,))), statutory=False
)
"""24/7 calendar, used for calendar-time clocks and when ``business_hours_only`` is off."""
