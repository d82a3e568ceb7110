"""Business calendar: multi-interval hours, statutory holidays, 调休 make-up days, round trips."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sop.calendar import (
    ALWAYS_OPEN,
    BusinessCalendar,
    CalendarNeverOpensError,
    Interval,
    calendar_seconds,
    default_calendar,
    parse_intervals,
    parse_weekly,
)

SH = ZoneInfo("Asia/Shanghai")
CAL = default_calendar()
# Evening cover with a Saturday shift and a per-date override, to exercise more rules.
EVENING = BusinessCalendar(
    weekly=parse_weekly({"mon-fri": "09:00-12:00,13:30-21:00", "sat": "10:00-16:00"}),
    extra_holidays=frozenset({date(2026, 3, 9)}),
    extra_workdays=frozenset({date(2027, 1, 10)}),
    overrides={date(2026, 3, 10): (Interval(time(20), time(0)),)},
)
UTC_CAL = BusinessCalendar(tz="UTC")
ALL_WEEK = {"mon-sun": "00:00-24:00"}
CALENDARS = [CAL, EVENING, UTC_CAL, ALWAYS_OPEN]


def sh(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    """Shanghai wall-clock instant."""
    return datetime(y, mo, d, h, mi, s, tzinfo=SH)


def naive(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """Naive wall-clock datetime (hypothesis bounds are naive; also the invalid input)."""
    return datetime(y, mo, d, h, mi, tzinfo=UTC).replace(tzinfo=None)


def iv(spec: str) -> tuple[Interval, ...]:
    return parse_intervals(spec)


# ------------------------------------------------------------------------------ intervals


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("09:00-12:00,13:30-21:00", ((time(9), time(12)), (time(13, 30), time(21)))),
        ("13:30-18:00, 9:00-12:00", ((time(9), time(12)), (time(13, 30), time(18)))),
        ("09:00～12:00，13:30-24:00", ((time(9), time(12)), (time(13, 30), time(0)))),
        ("00:00-24:00", ((time(0), time(0)),)),
        ("09:00-12:00,11:00-13:00", ((time(9), time(13)),)),
        ("09:00:30-09:00:45", ((time(9, 0, 30), time(9, 0, 45)),)),
        ("", ()),
        ("休息", ()),
        ("closed", ()),
    ],
)
def test_parse_intervals(spec: str, expected: tuple[tuple[time, time], ...]) -> None:
    """Interval specs parse, sort and merge; 24:00 means until midnight; closed words give ()."""
    assert tuple((i.start, i.end) for i in parse_intervals(spec)) == expected


@pytest.mark.parametrize("spec", ["9-12", "12:00-09:00", "25:00-26:00", "09:00-12:60", "x"])
def test_parse_intervals_rejects_garbage(spec: str) -> None:
    """Malformed or backwards intervals raise ValueError."""
    with pytest.raises(ValueError, match=r"interval|before|time"):
        parse_intervals(spec)


def test_interval_validation_and_str() -> None:
    """Intervals need start < end unless they run to midnight, and naive times."""
    with pytest.raises(ValueError, match="before"):
        Interval(time(12), time(9))
    with pytest.raises(ValueError, match="naive"):
        Interval(time(9, tzinfo=UTC), time(12))
    assert Interval(time(0), time(0)).until_midnight
    assert str(Interval(time(13, 30), time(0))) == "13:30-24:00"


def test_parse_weekly_ranges_and_chinese_names() -> None:
    """Weekly specs accept ranges, Chinese day names and digits; later keys win."""
    weekly = parse_weekly({"mon-fri": "09:00-18:00", "周六": "10:00-16:00", "4": "closed"})
    assert sorted(weekly) == [0, 1, 2, 3, 4, 5]
    assert weekly[4] == ()
    assert weekly[5] == iv("10:00-16:00")
    with pytest.raises(ValueError, match="weekday"):
        parse_weekly({"funday": "09:00-10:00"})


# ------------------------------------------------------------------------------ day rules


@pytest.mark.parametrize(
    ("day", "workday", "why"),
    [
        (date(2026, 3, 2), True, "ordinary Monday"),
        (date(2026, 3, 7), False, "ordinary Saturday"),
        (date(2026, 2, 14), True, "调休 make-up Saturday before Spring Festival"),
        (date(2026, 2, 16), False, "Spring Festival Monday"),
        (date(2026, 10, 1), False, "National Day"),
        (date(2026, 10, 8), True, "first workday after National Day"),
        (date(2026, 10, 10), True, "调休 make-up Saturday after National Day"),
        (date(2026, 1, 4), True, "调休 make-up Sunday"),
        (date(2027, 10, 1), True, "2027: unknown to chinese_calendar, plain weekly hours"),
        (date(2027, 10, 2), False, "2027 Saturday, plain weekly hours"),
        (date(2003, 1, 1), True, "2003: unknown year, plain weekly hours (a Wednesday)"),
    ],
)
def test_default_calendar_days(day: date, workday: bool, why: str) -> None:
    """The default calendar follows chinese_calendar where it knows the year, weekly otherwise."""
    assert CAL.is_workday(day) is workday, why


def test_makeup_day_uses_monday_hours_unless_configured() -> None:
    """A 调休 Saturday works Monday's hours by default, or makeup_day_intervals when given."""
    assert CAL.local_intervals(date(2026, 2, 14)) == CAL.local_intervals(date(2026, 2, 9))
    custom = BusinessCalendar(makeup_day_intervals=iv("10:00-15:00"))
    assert custom.local_intervals(date(2026, 2, 14)) == iv("10:00-15:00")


def test_statutory_off_uses_weekly_only() -> None:
    """statutory=False ignores state holidays and make-up days."""
    plain = BusinessCalendar(statutory=False)
    assert plain.is_workday(date(2026, 10, 1))
    assert not plain.is_workday(date(2026, 2, 14))


def test_precedence_override_then_extras_then_statutory() -> None:
    """Overrides beat extras, extras beat chinese_calendar, which beats weekly hours."""
    assert not EVENING.is_workday(date(2026, 3, 9))  # extra holiday on a Monday
    assert EVENING.local_intervals(date(2026, 3, 10)) == iv("20:00-24:00")  # override
    assert EVENING.local_intervals(date(2027, 1, 10)) == EVENING.weekly[0]  # extra Sunday
    assert EVENING.local_intervals(date(2026, 3, 14)) == iv("10:00-16:00")  # ordinary Sat
    cal = BusinessCalendar(
        extra_holidays=frozenset({date(2026, 10, 8)}),
        extra_workdays=frozenset({date(2026, 10, 2)}),
        overrides={date(2026, 10, 8): iv("10:00-11:00")},
    )
    assert cal.local_intervals(date(2026, 10, 8)) == iv("10:00-11:00")
    assert cal.local_intervals(date(2026, 10, 2)) == cal.weekly[4]  # works on a holiday
    closed = BusinessCalendar(overrides={date(2026, 3, 2): ()})
    assert not closed.is_workday(date(2026, 3, 2))


def test_2027_fallback_with_tenant_extras() -> None:
    """Outside chinese_calendar's years, extras still apply and nothing crashes."""
    cal = BusinessCalendar(
        extra_holidays=frozenset({date(2027, 10, 1)}),
        extra_workdays=frozenset({date(2027, 10, 9)}),
    )
    assert not cal.is_workday(date(2027, 10, 1))
    assert cal.local_intervals(date(2027, 10, 9)) == cal.weekly[0]  # Saturday: make-up hours
    start = sh(2026, 12, 31, 17, 0)
    end = cal.add_business(start, 2 * 3600)
    assert end == sh(2027, 1, 1, 10, 0)  # 2027-01-01 is a plain Friday here
    assert cal.business_seconds(start, end) == 2 * 3600


# ------------------------------------------------------------------------------ golden scenarios


def test_friday_night_question_answered_on_makeup_saturday() -> None:
    """Fri 22:00 question answered Sat 09:10 on 调休 Saturday 2026-02-14: business FRT 600 s."""
    asked, answered = sh(2026, 2, 13, 22, 0), sh(2026, 2, 14, 9, 10)
    assert chinese_calendar.is_workday(date(2026, 2, 14))
    assert CAL.business_seconds(asked, answered) == 600
    assert CAL.calendar_seconds(asked, answered) == 11 * 3600 + 600
    assert CAL.next_open(asked) == sh(2026, 2, 14, 9, 0)
    assert CAL.add_business(asked, 300) == sh(2026, 2, 14, 9, 5)


def test_off_hours_answer_to_off_hours_question_is_zero_business() -> None:
    """A reply given while closed to a question asked while closed has business FRT 0."""
    asked, answered = sh(2026, 3, 6, 22, 0), sh(2026, 3, 7, 9, 10)  # ordinary Saturday
    assert CAL.business_seconds(asked, answered) == 0
    assert calendar_seconds(asked, answered) == 11 * 3600 + 600


def test_lunch_break_gap() -> None:
    """The 12:00–13:30 lunch break is closed: clocks skip it."""
    assert CAL.is_open(sh(2026, 3, 2, 11, 59))
    assert not CAL.is_open(sh(2026, 3, 2, 12, 0))
    assert CAL.next_open(sh(2026, 3, 2, 12, 30)) == sh(2026, 3, 2, 13, 30)
    assert CAL.add_business(sh(2026, 3, 2, 11, 58), 300) == sh(2026, 3, 2, 13, 33)
    assert CAL.business_seconds(sh(2026, 3, 2, 11, 0), sh(2026, 3, 2, 14, 0)) == 5400
    assert CAL.add_business(sh(2026, 3, 2, 11, 55), 300) == sh(2026, 3, 2, 12, 0)


def test_national_day_skip() -> None:
    """A question at 17:59 on 30 Sep 2026 is due 09:04 on 8 Oct; the holiday counts zero."""
    assert CAL.add_business(sh(2026, 9, 30, 17, 59), 300) == sh(2026, 10, 8, 9, 4)
    assert CAL.business_seconds(sh(2026, 10, 1), sh(2026, 10, 8)) == 0
    assert CAL.next_open(sh(2026, 10, 3, 10, 0)) == sh(2026, 10, 8, 9, 0)


def test_spring_festival_skip() -> None:
    """Spring Festival 2026 (15–23 Feb) is skipped after the 14 Feb make-up Saturday."""
    assert CAL.add_business(sh(2026, 2, 14, 17, 55), 600) == sh(2026, 2, 24, 9, 5)
    assert CAL.business_seconds(sh(2026, 2, 14, 18, 0), sh(2026, 2, 24, 9, 0)) == 0


def test_shanghai_vs_utc_day_boundaries() -> None:
    """Local hours map to UTC per the calendar's zone; a Shanghai day starts at 16:00 UTC."""
    day = date(2026, 3, 2)
    assert CAL.intervals_on(day)[0] == (
        datetime(2026, 3, 2, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 2, 4, 0, tzinfo=UTC),
    )
    assert UTC_CAL.intervals_on(day)[0][0] == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    night = BusinessCalendar(weekly={0: iv("00:00-01:00")}, statutory=False)
    assert night.is_open(datetime(2026, 3, 1, 16, 0, tzinfo=UTC))  # Mon 00:00 in Shanghai
    assert not night.is_open(datetime(2026, 3, 1, 15, 59, 59, tzinfo=UTC))  # still Sunday
    assert ALWAYS_OPEN.intervals_on(day) == (
        (datetime(2026, 3, 1, 16, 0, tzinfo=UTC), datetime(2026, 3, 2, 16, 0, tzinfo=UTC)),
    )
    tokyo = timezone(timedelta(hours=9))
    assert CAL.is_open(datetime(2026, 3, 2, 10, 30, tzinfo=tokyo))  # 09:30 in Shanghai


def test_dst_switch_days_follow_real_time() -> None:
    """In a zone with DST, local days are 23 h / 25 h on switch days and hours map accordingly."""
    berlin = ZoneInfo("Europe/Berlin")
    always = BusinessCalendar(tz="Europe/Berlin", weekly=parse_weekly(ALL_WEEK), statutory=False)
    night = BusinessCalendar(
        tz="Europe/Berlin", weekly=parse_weekly({"mon-sun": "01:00-04:00"}), statutory=False
    )

    def midnight(d: date) -> datetime:
        return datetime.combine(d, time(0), berlin)

    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)
    one_day = timedelta(days=1)
    assert always.business_seconds(midnight(spring), midnight(spring + one_day)) == 23 * 3600
    assert always.business_seconds(midnight(autumn), midnight(autumn + one_day)) == 25 * 3600
    assert always.add_business(datetime(2026, 3, 29, 1, 59, 59, tzinfo=berlin), 1) == datetime(
        2026, 3, 29, 1, tzinfo=UTC
    )  # 03:00 CEST: 02:00-03:00 does not exist
    assert night.business_seconds(midnight(spring), midnight(spring + one_day)) == 2 * 3600
    assert night.business_seconds(midnight(autumn), midnight(autumn + one_day)) == 4 * 3600
    assert night.add_business(datetime(2026, 3, 29, 1, 30, tzinfo=berlin), 3600) == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC
    )
    assert night.next_open(datetime(2026, 10, 25, 5, tzinfo=berlin)) == datetime(
        2026, 10, 26, tzinfo=UTC
    )


def test_year_of_business_hours_matches_chinese_workdays() -> None:
    """All of 2026: open time = chinese_calendar workdays × 7.5 h (walks days, not seconds)."""
    workdays = chinese_calendar.get_workdays(date(2026, 1, 1), date(2026, 12, 31))
    total = CAL.business_seconds(sh(2026, 1, 1), sh(2027, 1, 1))
    assert total == len(workdays) * 7.5 * 3600
    assert CAL.add_business(sh(2026, 1, 1), total) == sh(2026, 12, 31, 18, 0)


def test_always_open_equals_calendar_time() -> None:
    """ALWAYS_OPEN counts every second, across holidays too."""
    a, b = sh(2026, 9, 30, 12), sh(2026, 10, 9, 7, 30)
    assert ALWAYS_OPEN.business_seconds(a, b) == calendar_seconds(a, b)
    assert ALWAYS_OPEN.add_business(a, 86400 * 30) == a + timedelta(days=30)


# ------------------------------------------------------------------------------ API contract


@pytest.mark.parametrize(
    "call",
    [
        CAL.is_open,
        CAL.next_open,
        lambda t: CAL.add_business(t, 1),
        lambda t: CAL.business_seconds(t, t),
        lambda t: calendar_seconds(t, t),
    ],
)
def test_naive_datetimes_raise(call: object) -> None:
    """Every instant-taking function rejects naive datetimes."""
    with pytest.raises(ValueError, match="aware"):
        call(naive(2026, 3, 2, 10))  # type: ignore[operator]


def test_bad_inputs_raise() -> None:
    """Negative budgets, bad weekdays and unknown zones are rejected."""
    with pytest.raises(ValueError, match="seconds"):
        CAL.add_business(sh(2026, 3, 2), -1)
    with pytest.raises(ValueError, match="weekday"):
        BusinessCalendar(weekly={7: iv("09:00-10:00")})
    with pytest.raises(ValueError, match="time zone"):
        BusinessCalendar(tz="Mars/Olympus")
    with pytest.raises(TypeError, match="date"):
        CAL.local_intervals(sh(2026, 3, 2))


def test_never_open_calendar_raises_instead_of_looping() -> None:
    """A calendar with no hours at all raises CalendarNeverOpensError."""
    closed = BusinessCalendar(weekly={}, statutory=False)
    with pytest.raises(CalendarNeverOpensError):
        closed.next_open(sh(2026, 3, 2))
    assert closed.business_seconds(sh(2026, 1, 1), sh(2027, 1, 1)) == 0


def test_with_overrides_builds_group_calendar() -> None:
    """with_overrides merges overrides and extra days and replaces plain fields."""
    base = BusinessCalendar(extra_holidays=frozenset({date(2026, 3, 3)}), version=3)
    group = base.with_overrides(
        overrides={date(2026, 3, 7): iv("10:00-12:00")},
        extra_workdays={date(2026, 3, 3)},
        extra_holidays={date(2026, 3, 4)},
        version=4,
    )
    assert group.version == 4
    assert group.is_workday(date(2026, 3, 3))  # group works the base's extra holiday
    assert not group.is_workday(date(2026, 3, 4))
    assert group.local_intervals(date(2026, 3, 7)) == iv("10:00-12:00")
    assert base.is_workday(date(2026, 3, 4))  # base untouched
    with pytest.raises(TypeError, match="unknown"):
        base.with_overrides(colour="red")


def test_calendars_are_values() -> None:
    """Calendars compare by value, hash, pickle and deep-copy (mappings are frozen)."""
    assert BusinessCalendar() == default_calendar()
    assert hash(BusinessCalendar()) == hash(default_calendar())
    assert pickle.loads(pickle.dumps(EVENING)) == EVENING
    assert copy.deepcopy(EVENING) == EVENING
    assert EVENING.with_overrides(version=2) != EVENING
    with pytest.raises(TypeError):
        EVENING.weekly[0] = ()  # type: ignore[index]


def test_memos_are_not_part_of_the_value() -> None:
    """Warm per-date memos leave equality and hashing alone and survive pickling."""
    warm = default_calendar()
    start = sh(2026, 2, 13, 17, 0)
    due = warm.add_business(start, 172800)
    assert warm.business_seconds(start, due) == 172800
    assert warm == default_calendar()
    assert hash(warm) == hash(default_calendar())
    clone = pickle.loads(pickle.dumps(warm))
    assert clone.add_business(start, 172800) == due
    assert copy.deepcopy(warm).next_open(start) == warm.next_open(start)


# ------------------------------------------------------------------------------ properties

_instants = st.datetimes(
    min_value=naive(2025, 12, 20),
    max_value=naive(2027, 1, 20),
    timezones=st.just(UTC),
)
_calendars = st.sampled_from(CALENDARS)
_budgets = st.floats(min_value=0, max_value=30 * 86400, allow_nan=False, allow_infinity=False)


@settings(deadline=None, max_examples=200)
@given(cal=_calendars, start=_instants, seconds=_budgets)
def test_add_then_measure_round_trips(
    cal: BusinessCalendar, start: datetime, seconds: float
) -> None:
    """business_seconds(s, add_business(s, x)) == x whether s is open or not."""
    end = cal.add_business(start, seconds)
    assert end >= start
    assert cal.business_seconds(start, end) == pytest.approx(seconds, abs=1e-5)


@settings(deadline=None, max_examples=200)
@given(cal=_calendars, a=_instants, b=_instants, c=_instants)
def test_business_seconds_bounded_and_additive(
    cal: BusinessCalendar, a: datetime, b: datetime, c: datetime
) -> None:
    """Open time never exceeds wall time and adds up over a split point."""
    a, b, c = sorted((a, b, c))
    whole = cal.business_seconds(a, c)
    assert 0 <= whole <= calendar_seconds(a, c)
    assert whole == pytest.approx(cal.business_seconds(a, b) + cal.business_seconds(b, c))
    assert cal.business_seconds(c, a) == 0


@settings(deadline=None)
@given(cal=_calendars, t=_instants)
def test_next_open_is_open(cal: BusinessCalendar, t: datetime) -> None:
    """next_open(t) is open, not before t, t itself when open, with no open time in between."""
    nxt = cal.next_open(t)
    assert cal.is_open(nxt)
    assert nxt >= t
    assert (nxt == t) is cal.is_open(t)
    assert cal.business_seconds(t, nxt) == 0


@settings(deadline=None)
@given(
    a=st.datetimes(naive(2026, 10, 1), naive(2026, 10, 7, 23, 59), timezones=st.just(SH)),
    b=st.datetimes(naive(2026, 10, 1), naive(2026, 10, 7, 23, 59), timezones=st.just(SH)),
)
def test_no_business_time_inside_national_day(a: datetime, b: datetime) -> None:
    """Any span inside the 2026 National Day holiday has zero open time."""
    assert CAL.business_seconds(min(a, b), max(a, b)) == 0
    assert not CAL.is_open(a)
