"""Per-day SLA rollups: what makes a 30-day report over a million questions answer in < 1 s.

Table ``sla_rollup`` holds, per local day × dimension × key × variant, the sums the ``sla``
report needs (counters of every rate's numerator and denominator, an FRT histogram, a
resolution-time histogram, and the opened minute of every censored question). Dimensions: ``day``
(key ""), ``group`` (chat id), ``credit`` (first responder in the variant's link view) and
``owner`` (each owner frozen at open; "" = the team queue of groups without owners). Variants:
``business/strict``, ``business/lenient``, ``calendar/strict``, ``calendar/lenient``.

**What a rollup row means.** Each question contributes its facts *as of +inf*: every stored
response and resolution has happened and every due time has passed. ``question.settle_at``
(``settle_time``) is the instant from which a question's contribution no longer depends on
``as_of``: its responses and resolution, and for a view without a response every threshold an
unanswered question crosses (3 minutes in both bases, both FRT due times, the 48 h due time and
48 h of age, so it sits in the ">48h" backlog band). The rollups hold exactly the questions with
``settle_at`` at or before the **watermark** (``sla_rollup_state``, a little behind the clock);
a report at ``as_of`` reads them and adds, from the question rows, every question settling after
``min(as_of, watermark)``, taking out the +inf share of those the rollups hold
(``handlers/reports_sla.py``), so reports as of any past instant stay exact.
``sla_rollup_day`` counts each day's questions (to choose between rollups and plain SQL) and
keeps the day's latest ``settle_at``.

**Kept off the intake path.** A question usually changes while it is young and settles long
after (48 h for an unanswered one), so an intake batch writes question rows only: the
``sla-rollup-fold`` tick (``move_watermark``) adds the questions that settled since its last
pass, each once, and moves the watermark past them in the same transaction. A change to a
question the rollups already hold (a message backfilled hours late, a recall, a dismissal, a
late answer) goes through ``apply_changes`` in the writer's transaction: the old contribution is
subtracted if the rollups held it, the new one added if it is still settled by the watermark
(read-modify-write under ``FOR UPDATE`` on PostgreSQL; the watermark row is read ``FOR SHARE``
there, so a batch and a fold never disagree on it). ``settled_at`` only grows.
``rebuild_days`` recomputes days from the question rows (repair, rows written outside
``save_effects``, e.g. bulk loads) and ``missing_days`` finds days with questions but no rollup.

**Packed sums.** Each row's sums are Python integers made of fixed-width unsigned fields
(``counts``: 64-bit counters, ``frt``/``res``: 32-bit histogram bins, ``cens``: 32-bit counts per
opened hour of the day), stored little-endian and zlib-compressed. Adding rows is adding
integers (C speed), which is what lets a report merge tens of thousands of rows in
milliseconds. Every field of a stored row is a sum of non-negative contributions, so
subtracting a contribution that was added never borrows across fields. ``frt_sum`` is in ms.

**FRT / resolution histogram** (bucket = lower edge; the precision of p50/p90 from rollups):
1 s wide below 2 min, 5 s below 10 min, 30 s below 1 h, 5 min below 4 h, 30 min below 48 h, and
one bucket for 48 h and more. Percentiles interpolate between bucket lower edges
(``PERCENTILE_CONT`` on the bucketed values), so a rollup percentile is at most one bucket width
below the exact one. Censored questions (overdue, unanswered) count as +inf; their lower bound at
``as_of`` uses the end of the hour they opened in (never above the exact bound): calendar
``as_of - opened``, business ``position(as_of) - position(opened)`` on the tenant calendar's
business-time axis (groups with their own calendar are approximated on the tenant axis here).
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Integer,
    case,
    cast,
    delete,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from bot.store import bulk
from bot.store.bulk import Bulk
from bot.store.models import Question as QuestionRow
from bot.store.models import SlaRollup, SlaRollupDay, SlaRollupState
from sop.timers import Calendar

Q = QuestionRow.__table__  # type: ignore[attr-defined]
ROLL = SlaRollup.__table__  # type: ignore[attr-defined]
DAY = SlaRollupDay.__table__  # type: ignore[attr-defined]
STATE = SlaRollupState.__table__  # type: ignore[attr-defined]
# The watermark of a store whose rollups hold every question (the "+inf" of the reports).
INF = datetime(2999, 1, 1, tzinfo=UTC)

VARIANTS: tuple[tuple[str, bool], ...] = (
    ("business", True),
    ("business", False),
    ("calendar", True),
    ("calendar", False),
)
DIMS = ("day", "group", "credit", "owner")
COUNTERS = (
    "n_cohort",
    "n_dismissed",
    "n_withdrawn",
    "n_eligible",
    "n_answered",
    "n_overdue",
    "frt_sum",
    "att_s_num",
    "att_s_den",
    "att_l_num",
    "att_l_den",
    "a48_num",
    "a48_den",
    "resolved",
    "fu_num",
    "fu_den",
    "three_num",
    "three_den",
    "unanswered",
)
_UNANSWERED = COUNTERS.index("unanswered")
THREE_MIN_S = 180.0
THREE_MIN = timedelta(seconds=THREE_MIN_S)
BACKLOG_SETTLE = timedelta(hours=48)
_EPS = 1e-6

# The question columns a contribution reads.
ROW_COLUMNS = (
    "local_date",
    "chat_id",
    "owner_ids",
    "status",
    "bot_resolved",
    "first_response_at",
    "first_responder_id",
    "frt_business_s",
    "frt_calendar_s",
    "strict_first_response_at",
    "strict_first_responder_id",
    "strict_frt_business_s",
    "strict_frt_calendar_s",
    "frt_target_s",
    "frt_due_at",
    "frt_due_calendar_at",
    "backlog_due_at",
    "resolved_at",
    "resolution_business_s",
    "resolution_calendar_s",
    "holding",
    "followup_breached",
    "opened_epoch",
    "opened_bepoch",
)

ChatCalendar = Callable[[str], Calendar]


def variant_name(basis: str, strict: bool) -> str:
    return f"{basis}/{'strict' if strict else 'lenient'}"


# --- histogram buckets ----------------------------------------------------------------------

_EDGES = ((120.0, 1.0), (600.0, 5.0), (3600.0, 30.0), (14400.0, 300.0), (172800.0, 1800.0))


def frt_bucket(seconds: float) -> int:
    """Bucket index of a duration (see the module docstring for widths).

    ``floor((s - lower) / width)``: the same IEEE operations as ``bucket_sql``, so a bucket
    computed in SQL always equals the one the rollup stored.
    """
    s = max(0.0, seconds + _EPS)
    base, lower = 0, 0.0
    for upper, width in _EDGES:
        if s < upper:
            return base + math.floor((s - lower) / width)
        base += int((upper - lower) // width)
        lower = upper
    return base  # 48 h and more


def floor_sql(x: Any, dialect: str) -> Any:
    """``floor(x)`` as an integer for ``x >= 0`` (SQLite's CAST truncates, PostgreSQL's rounds)."""
    return cast(func.floor(x), Integer) if dialect == "postgresql" else cast(x, Integer)


def bucket_sql(seconds: Any, dialect: str) -> ColumnElement[Any]:
    """``frt_bucket`` in SQL (NULL in, NULL out)."""
    s = seconds + literal(_EPS)
    whens: list[Any] = []
    base, lower = 0, 0.0
    for upper, width in _EDGES:
        whens.append((s < upper, base + floor_sql((s - literal(lower)) / literal(width), dialect)))
        base += int((upper - lower) // width)
        lower = upper
    return case((s < 0, 0), *whens, else_=base)


def ms(seconds: float) -> int:
    """Milliseconds as the rollups store them (half up; ``ms_sql`` rounds the same way)."""
    return math.floor(seconds * 1000 + 0.5)


def ms_sql(seconds: Any, dialect: str) -> Any:
    return floor_sql(seconds * literal(1000.0) + literal(0.5), dialect)


def _floors() -> tuple[float, ...]:
    out: list[float] = []
    lower = 0.0
    for upper, width in _EDGES:
        out += [lower + i * width for i in range(int((upper - lower) // width))]
        lower = upper
    out.append(lower)
    return tuple(out)


def bucket_floor(index: int) -> float:
    """Lower edge (seconds) of bucket ``index``."""
    return FLOORS[index]


FLOORS = _floors()
N_BUCKETS = len(FLOORS)
HOURS = 24  # censored slots per day
_M32 = (1 << 32) - 1
_M64 = (1 << 64) - 1


_SHIFT = {name: 64 * i for i, name in enumerate(COUNTERS)}


def pack_counts(values: Mapping[str, float]) -> int:
    """Counters as one integer of 64-bit fields (``frt_sum`` in milliseconds)."""
    out = 0
    for name, v in values.items():
        if v:
            out += (ms(v) if name == "frt_sum" else int(v)) << _SHIFT[name]
    return out


def unpack_counts(packed: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for i, name in enumerate(COUNTERS):
        v = (packed >> (64 * i)) & _M64
        out[name] = v / 1000 if name == "frt_sum" else v
    return out


def unpack32(packed: int) -> list[int]:
    """The 32-bit fields of ``packed``, lowest first."""
    if packed <= 0:
        return []
    raw = packed.to_bytes((packed.bit_length() + 31) // 32 * 4, "little")
    return memoryview(raw).cast("I").tolist()


def to_bytes(packed: int) -> bytes:
    """zlib of the little-endian bytes (dense histograms are mostly zeros)."""
    if packed < 0:
        raise ValueError("rollup sums went negative: rebuild the day")
    if not packed:
        return b""
    return zlib.compress(packed.to_bytes((packed.bit_length() + 7) // 8, "little"), 1)


def from_bytes(raw: bytes | None) -> int:
    return int.from_bytes(zlib.decompress(raw), "little") if raw else 0


# --- business-time axis ---------------------------------------------------------------------

_EPOCH_DAY = date(2024, 1, 1)


class BusinessAxis:
    """``position(t)``: open seconds of ``calendar`` from a fixed epoch to ``t``.

    ``business_seconds(a, b) == position(b) - position(a)``, so SQL can subtract stored
    positions. Day totals are cached; a position costs one day's intervals.
    """

    def __init__(self, calendar: Calendar, tz: str = "Asia/Shanghai") -> None:
        self._cal = calendar
        self._zone = ZoneInfo(str(getattr(calendar, "tz", tz)))
        self._cum: dict[date, float] = {_EPOCH_DAY: 0.0}
        self._days: dict[date, tuple[datetime, float]] = {}
        self._lo = self._hi = _EPOCH_DAY

    def _midnight(self, d: date) -> datetime:
        return datetime.combine(d, time(0), self._zone)

    def _open(self, d: date) -> float:
        return self._cal.business_seconds(self._midnight(d), self._midnight(d + timedelta(days=1)))

    def _day_start(self, d: date) -> float:
        while d > self._hi:
            self._cum[self._hi + timedelta(days=1)] = self._cum[self._hi] + self._open(self._hi)
            self._hi += timedelta(days=1)
        while d < self._lo:
            prev = self._lo - timedelta(days=1)
            self._cum[prev] = self._cum[self._lo] - self._open(prev)
            self._lo = prev
        return self._cum[d]

    def position(self, t: datetime) -> float:
        d = t.astimezone(self._zone).date()
        day = self._days.get(d)
        if day is None:
            # The day's midnight in UTC (what the calendar computes fastest from) and its start.
            day = self._days[d] = (self._midnight(d).astimezone(UTC), self._day_start(d))
        return day[1] + self._cal.business_seconds(day[0], t)


_AXES: dict[Any, BusinessAxis] = {}


# By the calendar object's identity first: hashing a calendar (all its fields) on every row
# cost more than the position itself. Each entry holds its calendar, so an id is never reused.
_AXIS_BY_ID: dict[int, tuple[Calendar, BusinessAxis]] = {}


def axis_of(calendar: Calendar) -> BusinessAxis:
    """The (cached) business axis of ``calendar`` (equal calendars share one)."""
    hit = _AXIS_BY_ID.get(id(calendar))
    if hit is not None and hit[0] is calendar:
        return hit[1]
    axis = _axis_of(calendar)
    if len(_AXIS_BY_ID) > 64:
        _AXIS_BY_ID.clear()
    _AXIS_BY_ID[id(calendar)] = (calendar, axis)
    return axis


def _axis_of(calendar: Calendar) -> BusinessAxis:
    key: Any = calendar
    try:
        hash(calendar)
    except TypeError:
        key = id(calendar)
    axis = _AXES.get(key)
    if axis is None:
        if len(_AXES) > 64:
            _AXES.clear()
        axis = _AXES[key] = BusinessAxis(calendar)
    return axis


def tenant_axis(calendar: Calendar, tz: ZoneInfo) -> BusinessAxis:
    """The axis hour slots are measured on (the row's own calendar; documented approximation)."""
    return axis_of(calendar)


# --- one question's contribution ------------------------------------------------------------

# (counts, frt histogram, resolution histogram, censored by opened hour), each a packed int.
Sums = tuple[int, int, int, int]
ZERO: Sums = (0, 0, 0, 0)


def _add(a: Sums, b: Sums, sign: int = 1) -> Sums:
    return (a[0] + sign * b[0], a[1] + sign * b[1], a[2] + sign * b[2], a[3] + sign * b[3])


def _rates(
    row: Mapping[str, Any], k: dict[str, float], *, suffix: str, due: Any, resp_at: Any
) -> None:
    """Attainment (strict and lenient) and 48 h answer counters of an eligible question."""
    g = row.get
    target = float(g("frt_target_s") or 0.0)
    backlog_due = g("backlog_due_at")
    answered = resp_at is not None
    s_at, s_frt = g("strict_first_response_at"), g(f"strict_frt_{suffix}")
    l_at, l_frt = g("first_response_at"), g(f"frt_{suffix}")
    k["att_s_num"] = int(s_at is not None and s_frt is not None and s_frt <= target + _EPS)
    k["att_s_den"] = int(s_at is not None or due is not None)
    k["att_l_num"] = int(l_at is not None and l_frt is not None and l_frt <= target + _EPS)
    k["att_l_den"] = int(l_at is not None or due is not None)
    within48 = answered and backlog_due is not None and resp_at <= backlog_due
    k["a48_num"] = int(within48)
    k["a48_den"] = int(within48 or backlog_due is not None)


# Unpacked contribution: (counters, FRT bucket, resolution bucket, censored slot) or -1's.
Raw = tuple[dict[str, float], int, int, int]


def _pack(raw: Raw) -> Sums:
    k, f, r, x = raw
    return (
        pack_counts(k),
        1 << (32 * f) if f >= 0 else 0,
        1 << (32 * r) if r >= 0 else 0,
        1 << (32 * x) if x >= 0 else 0,
    )


def _contribution(
    row: Mapping[str, Any], basis: str, strict: bool, day_pos: float
) -> tuple[Sums, str | None]:
    raw, responder = _raw_contribution(row, basis, strict, day_pos)
    return _pack(raw), responder


def _raw_contribution(
    row: Mapping[str, Any], basis: str, strict: bool, day_pos: float
) -> tuple[Raw, str | None]:
    """(sums as of +inf, credited responder) of one question row in one variant.

    ``day_pos``: the business-axis position of the row's local midnight (business slots).
    """
    business = basis == "business"
    g = row.get
    status = g("status")
    e = status not in ("dismissed", "withdrawn") and not g("bot_resolved")
    pre = "strict_" if strict else ""
    resp_at = g(f"{pre}first_response_at")
    responder = g(f"{pre}first_responder_id")
    suffix = "business_s" if business else "calendar_s"
    frt = g(f"{pre}frt_{suffix}")
    due = g("frt_due_at") if business else g("frt_due_calendar_at")
    answered = resp_at is not None
    k: dict[str, float] = {
        "n_cohort": 1,
        "n_dismissed": int(status == "dismissed"),
        "n_withdrawn": int(status == "withdrawn"),
    }
    if not e:
        return (k, -1, -1, -1), None
    f = r = x = -1
    k["n_eligible"] = 1
    _rates(row, k, suffix=suffix, due=due, resp_at=resp_at)
    if g("resolved_at") is not None:
        k["resolved"] = 1
        res = g(f"resolution_{suffix}")
        if res is not None:
            r = frt_bucket(float(res))
    if g("holding") and g("followup_breached") is not None:
        k["fu_den"] = 1
        k["fu_num"] = int(bool(g("followup_breached")))
    # As of +inf an unanswered question has waited >= 3 minutes in either basis.
    k["three_den"] = 1
    if answered:
        k["n_answered"] = 1
        if frt is not None:
            k["frt_sum"] = float(frt)
            k["three_num"] = int(frt <= THREE_MIN_S + _EPS)
            f = frt_bucket(float(frt))
    else:
        k["unanswered"] = 1
        if due is not None:
            k["n_overdue"] = 1
            if business:
                offset = float(g("opened_bepoch") or 0.0) - day_pos
            else:
                offset = float(g("opened_epoch") or 0.0) - day_pos
            slot = min(HOURS - 1, max(0, math.floor(offset / 3600.0)))
            x = slot
    return (k, f, r, x), responder if answered else None


def day_positions(day: str, tz: ZoneInfo, axis: BusinessAxis) -> tuple[float, float]:
    """(UNIX seconds, business position) of local midnight starting ``day``."""
    midnight = datetime.combine(date.fromisoformat(day), time(0), tz)
    return midnight.timestamp(), axis.position(midnight)


def dim_keys(row: Mapping[str, Any], dim: str, responder: str | None) -> list[str]:
    """The keys ``row`` counts under in ``dim`` (``day`` rows are keyed by their date alone)."""
    if dim == "day":
        return [""]
    if dim == "group":
        return [str(row.get("chat_id"))]
    if dim == "credit":
        return [responder] if responder is not None else []
    return list(dict.fromkeys(row.get("owner_ids") or ())) or [""]


def raw_contributions(
    row: Mapping[str, Any], positions: tuple[float, float]
) -> list[tuple[tuple[str, str, str], Raw]]:
    """(dim, key, variant) and the unpacked sums of one question row."""
    out = []
    for basis, strict in VARIANTS:
        v = variant_name(basis, strict)
        pos = positions[1] if basis == "business" else positions[0]
        raw, responder = _raw_contribution(row, basis, strict, pos)
        for dim in DIMS:
            out += [((dim, key, v), raw) for key in dim_keys(row, dim, responder)]
    return out


class _Builder:
    """Sums of many raw contributions for one rollup row (fast path of ``rebuild_days``)."""

    __slots__ = ("cens", "counts", "frt", "res")

    def __init__(self) -> None:
        self.counts: dict[str, float] = defaultdict(float)
        self.frt: dict[int, int] = defaultdict(int)
        self.res: dict[int, int] = defaultdict(int)
        self.cens: dict[int, int] = defaultdict(int)

    def add(self, raw: Raw) -> None:
        k, f, r, x = raw
        for name, v in k.items():
            self.counts[name] += v
        if f >= 0:
            self.frt[f] += 1
        if r >= 0:
            self.res[r] += 1
        if x >= 0:
            self.cens[x] += 1

    def sums(self) -> Sums:
        def packed(h: dict[int, int]) -> int:
            return sum(n << (32 * i) for i, n in h.items())

        return pack_counts(self.counts), packed(self.frt), packed(self.res), packed(self.cens)


def contributions(
    row: Mapping[str, Any], positions: tuple[float, float]
) -> dict[tuple[str, str, str], Sums]:
    """(dim, key, variant) → sums of one question row (``positions``: of its local midnight)."""
    out: dict[tuple[str, str, str], Sums] = {}
    owners = list(row.get("owner_ids") or ()) or [""]
    for basis, strict in VARIANTS:
        v = variant_name(basis, strict)
        pos = positions[1] if basis == "business" else positions[0]
        data, responder = _contribution(row, basis, strict, pos)
        out[("day", "", v)] = data
        out[("group", str(row.get("chat_id")), v)] = data
        if responder is not None:
            out[("credit", str(responder), v)] = data
        for owner in dict.fromkeys(owners):
            out[("owner", str(owner), v)] = data
    return out


def settle_time(
    row: Mapping[str, Any], calendar: Calendar, *, three_min_mark: datetime | None = None
) -> datetime | None:
    """From when ``row``'s metrics stop depending on ``as_of`` (its contribution is final).

    The latest of: opened, each view's first response, and for a view without one every
    threshold an unanswered question crosses (3 minutes in both bases, both FRT due times, the
    48 h backlog due time, 48 h of age for the backlog band); a 48 h due time passed before a late
    answer; the resolution.
    """
    opened = row.get("opened_at")
    if opened is None:
        return None
    times: list[datetime] = [opened]
    marks: list[datetime] = []
    backlog_due = row.get("backlog_due_at")
    for prefix in ("", "strict_"):
        resp = row.get(f"{prefix}first_response_at")
        if resp is None:
            if not marks:  # only a view without a response waits for the thresholds
                marks = [
                    opened + THREE_MIN,
                    three_min_mark or calendar.add_business(opened, THREE_MIN_S),
                    opened + BACKLOG_SETTLE,
                    *(
                        t
                        for t in (row.get("frt_due_at"), row.get("frt_due_calendar_at"))
                        if t is not None
                    ),
                ]
            times += marks
            if backlog_due is not None:
                times.append(backlog_due)
        else:
            times.append(resp)
            if backlog_due is not None and resp > backlog_due:
                times.append(backlog_due)
    if row.get("resolved_at") is not None:
        times.append(row["resolved_at"])
    latest: datetime = max(times)
    return latest


def day_end(d: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(d + timedelta(days=1), time(0), tz).astimezone(UTC)


# --- writes ---------------------------------------------------------------------------------


def _day_tail(latest: str) -> str:
    return (
        "ON CONFLICT (local_date) DO UPDATE SET"
        f" settled_at = {latest}(sla_rollup_day.settled_at, excluded.settled_at),"
        " questions = sla_rollup_day.questions + excluded.questions"
    )


_BUMP_DAYS = Bulk(
    DAY,
    ("local_date", "settled_at", "questions"),
    {"sqlite": _day_tail("MAX"), "postgresql": _day_tail("GREATEST")},
)


async def _bump_days(
    conn: AsyncConnection, settled: Mapping[str, datetime], counts: Mapping[str, int]
) -> None:
    """Add each day's new questions and keep its latest settle time (one statement)."""
    rows = [(day, at, max(0, counts.get(day, 0))) for day, at in settled.items()]
    await _BUMP_DAYS.run(conn, rows)


def _values(key: tuple[str, str, str, str], sums: Sums) -> dict[str, Any]:
    day, dim, k, variant = key
    return {
        "local_date": day,
        "dim": dim,
        "key": k,
        "variant": variant,
        "unanswered": int((sums[0] >> (64 * _UNANSWERED)) & _M64),
        "counts": to_bytes(sums[0]),
        "frt": to_bytes(sums[1]),
        "res": to_bytes(sums[2]),
        "cens": to_bytes(sums[3]),
    }


_SUM_COLUMNS = ("unanswered", "counts", "frt", "res", "cens")


_KEY = ("local_date", "dim", "key", "variant")
_ROLL_COLUMNS = (*_KEY, *_SUM_COLUMNS)
_ON_KEY = f"ON CONFLICT ({', '.join(_KEY)})"
# Missing rows created empty (PostgreSQL: before they are locked), then every row written whole.
_CREATE_EMPTY = Bulk(ROLL, _ROLL_COLUMNS, f"{_ON_KEY} DO NOTHING")
_WRITE = Bulk(
    ROLL,
    _ROLL_COLUMNS,
    f"{_ON_KEY} DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _SUM_COLUMNS),
)


async def _apply_deltas(
    conn: AsyncConnection, deltas: dict[tuple[str, str, str, str], Sums]
) -> None:
    """Add ``deltas`` ((day, dim, key, variant) → sums) to the stored rows."""
    live = {k: d for k, d in deltas.items() if d != ZERO}
    if not live:
        return
    keys = sorted(live)
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        # Several processes may add to the same day's rows at once: create the missing ones
        # empty first (a row another process inserts meanwhile is simply kept), then lock them
        # all in one order, so nobody reads a sum another is about to change, and no deadlock.
        await _CREATE_EMPTY.run(conn, [_values(k, ZERO) for k in keys])
    found = {
        (r[0], r[1], r[2], r[3]): r[4:]
        for r in await bulk.rows_by_key(
            conn, ROLL, _KEY, keys, (*_KEY, "counts", "frt", "res", "cens"), lock=postgres
        )
    }
    rows = []
    for k in keys:
        delta = live[k]
        stored = found.get(k)
        if stored is not None:
            delta = _add(
                (
                    from_bytes(stored[0]),
                    from_bytes(stored[1]),
                    from_bytes(stored[2]),
                    from_bytes(stored[3]),
                ),
                delta,
            )
        rows.append(_values(k, delta))
    # One statement per chunk for the batch (hundreds of rows), not a statement per row.
    await _WRITE.run(conn, rows)


def is_held(row: Mapping[str, Any] | None, mark: datetime) -> bool:
    """Whether the rollups hold ``row``'s contribution (settled by the watermark)."""
    if row is None:
        return False
    at = row.get("settle_at")
    return at is not None and at <= mark


async def apply_changes(
    conn: AsyncConnection,
    changes: Iterable[tuple[Mapping[str, Any] | None, Mapping[str, Any]]],
    *,
    calendar_of: ChatCalendar,
    tz: ZoneInfo,
    mark: datetime | None = None,
) -> None:
    """Move the rollups by (old row or None, new row) pairs, in the caller's transaction.

    ``mark``: the watermark, if the caller has read it in this transaction (under the lock).

    Only rows settled by the watermark are in the rollups: an old row that was takes its
    contribution out, a new row that is puts its in. Most changes touch neither (a question
    settles long after its last event), so this is usually just the day counts.
    """
    changes = list(changes)
    if not changes:
        return
    if mark is None:
        mark = await watermark(conn, lock="share")
    deltas: dict[tuple[str, str, str, str], Sums] = defaultdict(lambda: ZERO)
    settled: dict[str, datetime] = {}
    counts: dict[str, int] = defaultdict(int)
    for old, new in changes:
        cal = calendar_of(f"{new['platform']}:{new['chat_id']}")
        for sign, row in ((-1, old), (1, new)):
            if row is None or not is_held(row, mark):
                continue
            day = str(row["local_date"])
            for (dim, key, variant), data in contributions(
                row, day_positions(day, tz, tenant_axis(cal, tz))
            ).items():
                deltas[(day, dim, key, variant)] = _add(
                    deltas[(day, dim, key, variant)], data, sign
                )
        day = str(new["local_date"])
        counts[day] += 0 if old is not None else 1
        at = new.get("settle_at") or settle_time(new, cal)
        if at is not None and (day not in settled or at > settled[day]):
            settled[day] = at
    await _apply_deltas(conn, deltas)
    await _bump_days(conn, settled, counts)


async def watermark(conn: AsyncConnection, *, lock: str | None = None) -> datetime:
    """The rollups' watermark: they hold exactly the questions with ``settle_at`` <= it.

    ``lock`` (PostgreSQL): ``"share"`` for writers that decide by it (intake batches: many at
    once), ``"update"`` for the one that moves it; so a batch never decides by a watermark a
    concurrent fold is about to move past its rows.
    """
    stmt = select(STATE.c.watermark).where(STATE.c.id == 1)
    if lock is not None and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(read=lock == "share")
    found = (await conn.execute(stmt)).scalar_one_or_none()
    return found if found is not None else INF


async def settling(conn: AsyncConnection, after: datetime, until: datetime) -> bool:
    """Whether any question settles in ``(after, until]`` (a read: no lock, cheap)."""
    stmt = select(Q.c.id).where(Q.c.settle_at > after, Q.c.settle_at <= until).limit(1)
    return (await conn.execute(stmt)).first() is not None


async def move_watermark(
    conn: AsyncConnection,
    to: datetime,
    *,
    calendar_of: ChatCalendar,
    tz: ZoneInfo,
    now: datetime,
    limit: int | None = None,
) -> tuple[int, datetime]:
    """Move the watermark to ``to``; returns (questions moved in or out, the new watermark).

    Forward, the questions settling in between are added to the rollups (at most ``limit`` of
    them a pass: the watermark then stops at the last one's ``settle_at``, ties included); back,
    they are taken out. In the caller's transaction, which this first makes a writer (SQLite:
    holds the write lock from here on; PostgreSQL: locks the watermark row).
    """
    await conn.execute(update(STATE).where(STATE.c.id == 1).values(updated_at=now))
    mark = await watermark(conn, lock="update")
    if to == mark:
        return 0, mark
    forward = to > mark
    lo, hi = (mark, to) if forward else (to, mark)
    if forward and limit:
        nth = (
            select(Q.c.settle_at)
            .where(Q.c.settle_at > lo, Q.c.settle_at <= hi)
            .order_by(Q.c.settle_at)
            .offset(limit - 1)
            .limit(1)
        )
        cut = (await conn.execute(nth)).scalar_one_or_none()
        if cut is not None:
            hi = cut
    sums: dict[tuple[str, str, str, str], _Builder] = defaultdict(_Builder)
    positions: dict[str, tuple[float, float]] = {}
    n = 0
    result = await conn.stream(select(Q).where(Q.c.settle_at > lo, Q.c.settle_at <= hi))
    async for part in result.partitions(5000):
        for r in part:
            row = dict(r._mapping)
            day = str(row["local_date"])
            pos = positions.get(day)
            if pos is None:
                cal = calendar_of(f"{row['platform']}:{row['chat_id']}")
                pos = positions[day] = day_positions(day, tz, tenant_axis(cal, tz))
            n += 1
            for (dim, key, variant), raw in raw_contributions(row, pos):
                sums[(day, dim, key, variant)].add(raw)
    sign = 1 if forward else -1
    await _apply_deltas(conn, {k: _scale(b.sums(), sign) for k, b in sums.items()})
    new_mark = hi if forward else lo
    await conn.execute(update(STATE).where(STATE.c.id == 1).values(watermark=new_mark))
    return n, new_mark


def _scale(sums: Sums, sign: int) -> Sums:
    return sums if sign == 1 else _add(ZERO, sums, -1)


async def rebuild_days(
    conn: AsyncConnection,
    days: Sequence[str],
    *,
    calendar_of: ChatCalendar,
    tz: ZoneInfo,
    now: datetime,
    axis: BusinessAxis | None = None,
) -> int:
    """Recompute the rollups of ``days`` (local dates) from question rows; returns rows read.

    ``axis``: the tenant calendar's business axis (default: the axis of the first row's group).
    """
    total = 0
    mark = await watermark(conn, lock="share")
    for day in days:
        await conn.execute(delete(ROLL).where(ROLL.c.local_date == day))
        await conn.execute(delete(DAY).where(DAY.c.local_date == day))
        sums: dict[tuple[str, str, str], _Builder] = defaultdict(_Builder)
        settled: datetime | None = None
        n = 0
        positions: tuple[float, float] | None = None
        result = await conn.stream(select(Q).where(Q.c.local_date == day))
        async for part in result.partitions(5000):
            for r in part:
                row = dict(r._mapping)
                cal = calendar_of(f"{row['platform']}:{row['chat_id']}")
                if positions is None:
                    positions = day_positions(day, tz, axis or tenant_axis(cal, tz))
                n += 1
                if is_held(row, mark):
                    for k, raw in raw_contributions(row, positions):
                        sums[k].add(raw)
                at = row.get("settle_at") or settle_time(row, cal)
                if at is not None and (settled is None or at > settled):
                    settled = at
        rows = [_values((day, *k), b.sums()) for k, b in sums.items()]
        for lo in range(0, len(rows), 5000):
            await conn.execute(ROLL.insert(), rows[lo : lo + 5000])
        if n:
            await conn.execute(
                DAY.insert().values(
                    local_date=day, settled_at=settled or now, questions=n, rebuilt_at=now
                )
            )
        total += n
    return total


async def missing_days(conn: AsyncConnection) -> list[str]:
    """Local days that have questions but no rollup (e.g. rows bulk-loaded, or a fresh table)."""
    have = {r[0] for r in (await conn.execute(select(DAY.c.local_date))).all()}
    days = (await conn.execute(select(Q.c.local_date).distinct())).scalars().all()
    return sorted(str(d) for d in days if d not in have)


async def all_days(conn: AsyncConnection) -> list[str]:
    days = (await conn.execute(select(Q.c.local_date).distinct())).scalars().all()
    return sorted(str(d) for d in days)


# --- reads ----------------------------------------------------------------------------------


async def day_states(conn: AsyncConnection) -> dict[str, datetime]:
    """Local day → settled_at."""
    rows = (await conn.execute(select(DAY.c.local_date, DAY.c.settled_at))).all()
    return {str(r.local_date): r.settled_at for r in rows}


async def read(
    conn: AsyncConnection,
    *,
    variant: str,
    dim: str,
    days: Sequence[str],
    parts: Sequence[str] = ("frt", "res", "cens"),
) -> list[tuple[str, str, Sums]]:
    """(local_date, key, sums) of ``dim`` rows for ``days``.

    ``parts``: the histograms to read (others read as 0): what is not needed is neither read
    nor decompressed.
    """
    if not days:
        return []
    c = ROLL.c
    names = [p for p in ("frt", "res", "cens") if p in parts]
    stmt = select(c.local_date, c.key, c.counts, *(c[p] for p in names)).where(
        c.variant == variant, c.dim == dim, c.local_date.in_(list(days))
    )
    out = []
    for r in (await conn.execute(stmt)).all():
        got = dict(zip(names, r[3:], strict=True))
        sums = (
            from_bytes(r[2]),
            from_bytes(got.get("frt")),
            from_bytes(got.get("res")),
            from_bytes(got.get("cens")),
        )
        out.append((str(r[0]), str(r[1]), sums))
    return out


async def unanswered(
    conn: AsyncConnection, *, variant: str, dim: str, by_date: bool
) -> dict[str, int]:
    """Key (or local date) → questions unanswered as of +inf, over every day."""
    k = ROLL.c.local_date if by_date else ROLL.c.key
    stmt = (
        select(k.label("k"), func.sum(ROLL.c.unanswered).label("n"))
        .where(ROLL.c.variant == variant, ROLL.c.dim == dim, ROLL.c.unanswered > 0)
        .group_by(k)
    )
    return {str(r.k): int(r.n) for r in (await conn.execute(stmt)).all()}


async def questions_in(conn: AsyncConnection, first: str, last: str) -> int:
    """Questions opened on local days ``first..last`` (from the day table)."""
    stmt = select(func.coalesce(func.sum(DAY.c.questions), 0)).where(
        DAY.c.local_date >= first, DAY.c.local_date <= last
    )
    return int((await conn.execute(stmt)).scalar_one())
