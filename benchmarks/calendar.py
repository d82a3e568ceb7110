"""Business calendar cost per call on the intake's hot path.

Run from the repo root: ``python -m benchmarks.calendar``. Prints µs per call of
``add_business`` (seconds = 180, 240, 300, 172800: burst merge, alert ladder, FRT target, backlog
window), ``business_seconds`` (an FRT: question to first reply, minutes to hours later),
``is_open`` and ``next_open`` (quiet hours) and ``BusinessAxis(cal).position(t)`` (the rollups'
business axis), on the default calendar (Mon–Fri 09:00–12:00 + 13:30–18:00, statutory holidays)
and on a 24/7 calendar. Instants are spread uniformly over three weeks of March 2026 (seeded),
as aware UTC datetimes like the bot's message timestamps; the calendars' per-date caches are warm,
as they are in a running bot. Each figure is the best of several repeats.

``--reference`` adds a column for ``tests/sop/reference_calendar.py`` (the calendar before its
fast paths), timed in the same process on the same inputs, and the speed-up: on a shared machine
that comparison is steadier than two separate runs.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from bot.store.sla_rollup import BusinessAxis
from sop import calendar

N = 1000
REPEATS = 40
SECONDS = (180.0, 240.0, 300.0, 172800.0)
_T0 = datetime(2026, 3, 2, tzinfo=UTC)
_SPREAD_S = 21 * 86400


def _instants(rng: random.Random) -> list[datetime]:
    return [_T0 + timedelta(seconds=rng.uniform(0, _SPREAD_S)) for _ in range(N)]


def _replies(rng: random.Random, asked: Sequence[datetime]) -> list[datetime]:
    # Most first replies come within minutes; some an hour or a night later.
    return [t + timedelta(seconds=rng.choice((30, 120, 300, 900, 3600, 15 * 3600))) for t in asked]


def _per_call_us(*fns: Callable[[], object]) -> list[float]:
    """Best µs per call of each function; repeats alternate between them (same load for all)."""
    best = [float("inf")] * len(fns)
    for _ in range(REPEATS):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return [b / N * 1e6 for b in best]


def _adding(cal: Any, ts: Sequence[datetime], s: float) -> Callable[[], object]:
    return lambda: [cal.add_business(t, s) for t in ts]


def _rows(cal: Any) -> list[tuple[str, Callable[[], object]]]:
    rng = random.Random(20260302)
    ts = _instants(rng)
    pairs = list(zip(ts, _replies(rng, ts), strict=True))
    axis = BusinessAxis(cal)
    rows: list[tuple[str, Callable[[], object]]] = [
        (f"add_business(t, {s:g})", _adding(cal, ts, s)) for s in SECONDS
    ]
    rows += [
        ("business_seconds(t, reply)", lambda: [cal.business_seconds(a, b) for a, b in pairs]),
        ("is_open(t)", lambda: [cal.is_open(t) for t in ts]),
        ("next_open(t)", lambda: [cal.next_open(t) for t in ts]),
        ("BusinessAxis.position(t)", lambda: [axis.position(t) for t in ts]),
    ]
    for _, fn in rows:
        fn()  # warm the per-date caches and the axis's day totals
    return rows


def _calendars(mod: ModuleType) -> list[tuple[str, Any]]:
    always = mod.BusinessCalendar(
        weekly=mod.parse_weekly({"mon-sun": "00:00-24:00"}), statutory=False
    )
    return [
        (
            "default calendar (Mon-Fri 09:00-12:00 + 13:30-18:00, statutory)",
            mod.default_calendar(),
        ),
        ("24/7 calendar", always),
    ]


def main(argv: Sequence[str] = ()) -> None:
    reference: ModuleType | None = None
    if "--reference" in argv:
        from tests.sop import reference_calendar  # only needed for the comparison

        reference = reference_calendar
    old_calendars = _calendars(reference) if reference is not None else []
    for i, (name, cal) in enumerate(_calendars(calendar)):
        rows = _rows(cal)
        old_rows = _rows(old_calendars[i][1]) if old_calendars else []
        print(f"{name}:" + ("  (µs per call: now, reference, speed-up)" if old_rows else ""))
        for j, (label, fn) in enumerate(rows):
            if old_rows:
                now, before = _per_call_us(fn, old_rows[j][1])
                print(f"  {label:<28} {now:6.2f} µs {before:6.2f} µs {before / now:5.1f}x")
            else:
                (now,) = _per_call_us(fn)
                print(f"  {label:<28} {now:6.2f} µs")


if __name__ == "__main__":
    main(sys.argv[1:])
