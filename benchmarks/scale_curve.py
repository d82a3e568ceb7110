"""Scale curve on PostgreSQL: ingest throughput and SLA report latency at 1, 2 and 4 ``sopbot run``
processes sharing one database, and report latency at 10^4..10^7 questions; one table and a chart.

    .venv/bin/python -m benchmarks.scale_curve [--procs 1,2,4]
        [--questions 10000,100000,1000000,10000000] [--events 100000] [--url postgresql+asyncpg://...]

The default sizes stop at 10^6 (the whole run then takes ~10 minutes on 2 cores); 10^7 must be
named (it adds ~4 min of generation and ~27 min of rollup building here).

Without ``--url`` a throwaway server is started (and removed at the end) with
``scripts/pg-test.sh``; with one, databases ``scale_*`` are created next to the URL's database.

**Questions.** Rows are generated server-side (``INSERT … SELECT … FROM generate_series``) with the
distributions of ``benchmarks/sla_report.py`` (30 days of March 2026, 500 operators, 2,000 groups,
85 % answered, 70 % of links strong, 30 % resolved, 1 % dismissed), each column drawn from
``hashint8extended(i, column)``, so row ``i`` is the same in every run. ``opened_bepoch`` and
``settle_at`` come from the tenant calendar's open spans, put in a table by the app's own
``BusinessAxis``. The per-day rollups are then built set-based: one SQL pass computes every
question's contribution per variant (the rules of ``sla_rollup._raw_contribution``, histogram
buckets with ``frt_bucket``'s float operations), GROUP BYs sum counters and count histogram
buckets per (day, dimension, key, variant), and Python only packs and zlib-compresses the
~360,000 rows with ``sla_rollup.pack_counts`` / ``to_bytes``. At the smallest size the result is
compared byte for byte with the app's ``sla_rollup.rebuild_days`` over the same rows
(``--no-verify`` skips it). Report latency = ``handlers.reports_sla.build`` of the ``operators``
view over 2026-03-01..30 as of 03-31 12:00 (as ``benchmarks/sla_report.py`` measures it).

**Processes.** A template database holds ``--report-questions`` questions (default 10^6)
*at rest* (answered ones marked resolved, unanswered ones dismissed: otherwise every process
would reload ~700,000 live questions into its question engine at start-up and sweep them), with
their rollups. For each process count N a fresh copy of it is made; N ``sopbot run`` processes
share it, each with its own web port, its own reverse WebSocket from the load generator (one
OneBot account per process) and disjoint groups (not monitored: the storage path, as
``benchmarks/ingest.py``). ``--events`` in total are split evenly over the processes and sent as
fast as the sockets take them; throughput = rows counted in ``message`` / (first send → last row
committed). Meanwhile every process is asked for ``/api/v1/sla/operators`` (same range and
as_of, bearer token) about once a second; after the flood each process serves ``--requests``
more, all processes at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import psutil
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks import ingest
from benchmarks import sla_report as fill
from bot.config import AppConfig
from bot.reports import ReportRequest
from bot.store import sla_rollup
from bot.store.db import make_engine, upgrade
from handlers import reports_sla

ROOT = Path(__file__).resolve().parent.parent
PNG = Path(__file__).with_name("scale_curve.png")
TOKEN = "scale-api-token"
T0 = datetime(2026, 3, 1, tzinfo=fill.TZ)
AS_OF = datetime(2026, 3, 31, 12, tzinfo=fill.TZ)
REPORT_QUERY = "from=2026-03-01&to=2026-03-30&as_of=2026-03-31T12:00:00%2B08:00"
EPS = 1e-6  # sla_rollup._EPS: the same slack in every comparison


# --- PostgreSQL -------------------------------------------------------------------------------


def raw_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@contextlib.asynccontextmanager
async def postgres(url: str) -> AsyncIterator[str]:
    """``url``, or a throwaway server's (``scripts/pg-test.sh``) stopped and removed after."""
    if url:
        yield url
        return
    tmp = tempfile.mkdtemp(prefix="sopbot-scale-pg-")
    script = str(ROOT / "scripts" / "pg-test.sh")
    out = subprocess.run([script, "start", tmp], check=True, capture_output=True, text=True)  # noqa: ASYNC221 (start-up)
    try:
        yield out.stdout.strip()
    finally:
        subprocess.run([script, "stop", tmp], check=False, capture_output=True)  # noqa: ASYNC221


async def fresh_db(base_url: str, name: str, template: str = "") -> str:
    """(Re)create database ``name`` (empty, or a copy of ``template``); its URL."""
    admin = await asyncpg.connect(raw_url(with_db(base_url, "postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        tpl = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{tpl}')
    finally:
        await admin.close()
    return with_db(base_url, name)


# --- questions generated in SQL ---------------------------------------------------------------


async def calendar_tables(conn: asyncpg.Connection) -> None:
    """The tenant calendar's open spans and day positions, from the app's ``BusinessAxis``."""
    await conn.execute(
        """
        DROP TABLE IF EXISTS scale_span, scale_day;
        CREATE TABLE scale_span (s float8, e float8, cum float8, cum_end float8);
        CREATE TABLE scale_day (local_date text PRIMARY KEY, epos float8, bpos float8,
                                s1 float8, e1 float8, s2 float8, e2 float8);
        """
    )
    spans, days = [], []
    d = date(2026, 2, 20)
    while d <= date(2026, 6, 30):
        ivs = fill.CAL.intervals_on(d)
        for s, e in ivs:
            cum = fill.AXIS.position(s)
            spans.append((s.timestamp(), e.timestamp(), cum, cum + (e - s).total_seconds()))
        if date(2026, 2, 25) <= d <= date(2026, 4, 5):
            if len(ivs) > 2:
                raise SystemExit("the generator handles at most two open spans a day")
            epos, bpos = sla_rollup.day_positions(d.isoformat(), fill.TZ, fill.AXIS)
            flat = [t.timestamp() for iv in ivs for t in iv] + [None] * (4 - 2 * len(ivs))
            days.append((d.isoformat(), epos, bpos, *flat))
        d += timedelta(days=1)
    await conn.copy_records_to_table("scale_span", records=spans)
    await conn.copy_records_to_table("scale_day", records=days)
    await conn.execute("CREATE INDEX ON scale_span (cum_end); ANALYZE scale_span, scale_day")


def _u(column: int) -> str:
    """A uniform [0, 1) draw for row ``i`` and ``column`` (53 bits of a seeded hash)."""
    return f"((hashint8extended(i, {column}) & 9007199254740991)::float8 / 9007199254740992.0)"


# Columns written, in order; the values come from GENERATE_SQL's select list.
_COLUMNS = """public_id, platform, account_id, chat_id, asker_id, open_message_id, message_ids,
  snippet, bot_message_ids, alert_levels_sent, opened_at, opened_epoch, opened_bepoch, settle_at,
  local_date, last_customer_msg_at, status, detector_reason, detect_score, policy_version,
  calendar_version, owner_ids, frt_target_s, frt_due_at, frt_due_calendar_at, backlog_due_at,
  first_response_at, first_responder_id, first_response_message_id, link_method,
  link_confidence, frt_business_s, frt_calendar_s, strict_first_response_at,
  strict_first_responder_id, strict_frt_business_s, strict_frt_calendar_s, holding,
  followup_breached, resolved_at, resolved_by, resolution_business_s, resolution_calendar_s,
  bot_resolved, reopen_count, peer_answered, bot_touch, updated_at"""

# sla_report._rows in SQL: $1..$2 = row range, $3 operators, $4 groups, $5 at rest (no live
# questions: answered -> resolved, open -> dismissed).
GENERATE_SQL = f"""
INSERT INTO question ({_COLUMNS})
SELECT 'Q' || (i + 1), 'onebot11', '1', (100000 + g)::text, floor(u_ask * 1e6)::bigint::text,
  i::text, json_build_array(i::text), '', '[]'::json, '[]'::json, opened, ep,
  bep, GREATEST(opened, resp, resolved, CASE WHEN NOT strong THEN GREATEST(
    opened + interval '48 hours',
    (SELECT to_timestamp(sp.s + ((bep + 180.0) - sp.cum)) FROM scale_span sp
     WHERE sp.cum_end >= bep + 180.0 ORDER BY sp.cum_end LIMIT 1)) END),
  local_date, opened,
  CASE WHEN r > 0.99 THEN 'dismissed' WHEN resolved IS NOT NULL THEN 'resolved'
       WHEN answered THEN (CASE WHEN $5 THEN 'resolved' ELSE 'answered' END)
       ELSE (CASE WHEN $5 THEN 'dismissed' ELSE 'open' END) END,
  '', 0.0, 1, 1,
  CASE WHEN g % 20 = 7 THEN '[]'::json
       ELSE json_build_array('op' || (g % ops), 'op' || ((g * 7 + 1) % ops)) END,
  300.0, opened + interval '300 seconds', opened + interval '300 seconds',
  opened + interval '48 hours',
  resp, CASE WHEN answered THEN responder END, CASE WHEN answered THEN i::text END,
  CASE WHEN answered THEN (CASE WHEN strong THEN 'quote' ELSE 'proximity_fifo' END) END,
  CASE WHEN answered THEN conf END, frt, frt,
  CASE WHEN strong THEN resp END, CASE WHEN strong THEN responder END,
  CASE WHEN strong THEN frt END, CASE WHEN strong THEN frt END,
  holding, CASE WHEN holding THEN u_fu < 0.2 END, resolved,
  CASE WHEN resolved IS NOT NULL THEN 'operator' END,
  extract(epoch FROM resolved - opened)::float8, extract(epoch FROM resolved - opened)::float8,
  false, 0, false, false, opened
FROM (
  SELECT c.*, d.bpos + GREATEST(0, LEAST(ep, d.e1) - d.s1) + GREATEST(0, LEAST(ep, d.e2) - d.s2)
           AS bep,
         CASE WHEN answered AND r < 0.3
              THEN resp + make_interval(secs => 360.0 + u_res * 71640.0) END AS resolved,
         answered AND conf >= 0.8 AS strong
  FROM (
    SELECT b.*, extract(epoch FROM opened)::float8 AS ep,
           to_char(opened AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD') AS local_date,
           CASE WHEN answered THEN opened + make_interval(secs => frt) END AS resp
    FROM (
      SELECT i, to_timestamp({T0.timestamp()} + {_u(1)} * {fill.DAYS * 86400}.0) AS opened,
             floor({_u(2)} * ngroups)::int AS g, {_u(3)} AS r, {_u(3)} < 0.85 AS answered,
             CASE WHEN {_u(3)} < 0.85
                  THEN round((-240.0 * ln(1.0 - {_u(4)}))::numeric, 3)::float8 END AS frt,
             CASE WHEN {_u(5)} < 0.7 THEN 1.0 ELSE 0.5 END::float8 AS conf,
             'op' || floor({_u(6)} * ops)::int AS responder, ops, {_u(7)} AS u_res,
             {_u(3)} < 0.85 AND {_u(8)} < 0.1 AS holding, {_u(9)} AS u_fu, {_u(10)} AS u_ask
      FROM generate_series($1::bigint, $2::bigint - 1) i,
           (SELECT $3::int AS ops, $4::int AS ngroups) prm
    ) b
  ) c
  LEFT JOIN scale_day d ON d.local_date = c.local_date
) t
"""


async def drop_question_indexes(conn: asyncpg.Connection) -> None:
    for index in sla_rollup.Q.indexes:
        await conn.execute(f'DROP INDEX IF EXISTS "{index.name}"')


async def create_question_indexes(conn: asyncpg.Connection) -> None:
    """The models' question indexes, built after the load (faster than maintained per row)."""
    for index in sla_rollup.Q.indexes:
        cols = ", ".join(f'"{c.name}"' for c in index.columns)
        await conn.execute(f'CREATE INDEX IF NOT EXISTS "{index.name}" ON question ({cols})')


async def generate(
    conn: asyncpg.Connection, n: int, *, ops: int, groups: int, at_rest: bool
) -> None:
    """Replace the question table's rows by ``n`` generated ones (chunks of 10^6)."""
    await conn.execute("TRUNCATE question, sla_rollup, sla_rollup_day")
    await drop_question_indexes(conn)
    for lo in range(0, n, 1_000_000):
        await conn.execute(GENERATE_SQL, lo, min(n, lo + 1_000_000), ops, groups, at_rest)
    await create_question_indexes(conn)
    await conn.execute("ANALYZE question")


# --- rollups, set-based -----------------------------------------------------------------------


def bucket(expr: str) -> str:
    """``sla_rollup.frt_bucket`` in SQL with the same float8 operations (NULL in, NULL out)."""
    s = f"(({expr}) + {EPS!r}::float8)"
    parts, base, lower = [f"WHEN {s} < 0 THEN 0"], 0, 0.0
    for upper, width in sla_rollup._EDGES:
        parts.append(
            f"WHEN {s} < {upper!r}::float8 THEN "
            f"{base} + floor(({s} - {lower!r}::float8) / {width!r}::float8)::int"
        )
        base += int((upper - lower) // width)
        lower = upper
    return f"CASE {' '.join(parts)} ELSE {base} END"


# One row per question and variant: the counters, buckets and credited responder of
# sla_rollup._raw_contribution (e = eligible; pick(strict, lenient), by(business, calendar)).
_VARIANTS = ", ".join(f"('{sla_rollup.variant_name(b, s)}', {b == 'business'}, {s})"
                      for b, s in sla_rollup.VARIANTS)  # fmt: skip
CONTRIB_SQL = f"""
CREATE UNLOGGED TABLE scale_contrib AS
SELECT local_date, variant, chat_id, owners,
  1 AS n_cohort, (status = 'dismissed')::int AS n_dismissed,
  (status = 'withdrawn')::int AS n_withdrawn, e::int AS n_eligible,
  (e AND ans)::int AS n_answered, (e AND NOT ans AND due IS NOT NULL)::int AS n_overdue,
  CASE WHEN e AND ans AND frt IS NOT NULL THEN frt END AS frt_sum,
  (e AND s_at IS NOT NULL AND s_frt IS NOT NULL AND s_frt <= tgt)::int AS att_s_num,
  (e AND (s_at IS NOT NULL OR due IS NOT NULL))::int AS att_s_den,
  (e AND l_at IS NOT NULL AND l_frt IS NOT NULL AND l_frt <= tgt)::int AS att_l_num,
  (e AND (l_at IS NOT NULL OR due IS NOT NULL))::int AS att_l_den,
  (e AND w48)::int AS a48_num, (e AND (w48 OR backlog_due_at IS NOT NULL))::int AS a48_den,
  (e AND resolved_at IS NOT NULL)::int AS resolved,
  (e AND fu AND followup_breached)::int AS fu_num, (e AND fu)::int AS fu_den,
  (e AND ans AND frt IS NOT NULL AND frt <= 180.0::float8 + {EPS!r}::float8)::int AS three_num,
  e::int AS three_den, (e AND NOT ans)::int AS unanswered,
  CASE WHEN e AND ans AND frt IS NOT NULL THEN {bucket("frt")} END AS f,
  CASE WHEN e AND resolved_at IS NOT NULL AND res IS NOT NULL THEN {bucket("res")} END AS r,
  CASE WHEN e AND NOT ans AND due IS NOT NULL
       THEN LEAST(23, GREATEST(0, floor(off / 3600.0::float8)::int)) END AS x,
  CASE WHEN e AND ans THEN responder END AS cred
FROM (
  SELECT q.local_date, v.variant, q.chat_id, q.owners, q.status, q.resolved_at,
    q.followup_breached, q.backlog_due_at,
    q.status NOT IN ('dismissed', 'withdrawn') AND NOT q.bot_resolved AS e,
    CASE WHEN v.strict THEN q.strict_first_response_at ELSE q.first_response_at END
      IS NOT NULL AS ans,
    CASE WHEN v.strict THEN q.strict_first_responder_id ELSE q.first_responder_id END
      AS responder,
    CASE WHEN v.strict THEN (CASE WHEN v.business THEN q.strict_frt_business_s
                                  ELSE q.strict_frt_calendar_s END)
         ELSE (CASE WHEN v.business THEN q.frt_business_s ELSE q.frt_calendar_s END) END AS frt,
    CASE WHEN v.business THEN q.frt_due_at ELSE q.frt_due_calendar_at END AS due,
    q.strict_first_response_at AS s_at, q.first_response_at AS l_at,
    CASE WHEN v.business THEN q.strict_frt_business_s ELSE q.strict_frt_calendar_s END AS s_frt,
    CASE WHEN v.business THEN q.frt_business_s ELSE q.frt_calendar_s END AS l_frt,
    CASE WHEN v.business THEN q.resolution_business_s ELSE q.resolution_calendar_s END AS res,
    COALESCE(q.frt_target_s, 0.0) + {EPS!r}::float8 AS tgt,
    q.holding AND q.followup_breached IS NOT NULL AS fu,
    CASE WHEN v.strict THEN q.strict_first_response_at ELSE q.first_response_at END IS NOT NULL
      AND q.backlog_due_at IS NOT NULL
      AND CASE WHEN v.strict THEN q.strict_first_response_at ELSE q.first_response_at END
          <= q.backlog_due_at AS w48,
    CASE WHEN v.business THEN COALESCE(q.opened_bepoch, 0.0) - d.bpos
         ELSE COALESCE(q.opened_epoch, 0.0) - d.epos END AS off
  FROM (
    SELECT qq.*, ARRAY(SELECT DISTINCT o FROM json_array_elements_text(qq.owner_ids) o)
             AS owners
    FROM question qq OFFSET 0
  ) q
  CROSS JOIN (VALUES {_VARIANTS}) v(variant, business, strict)
  JOIN scale_day d ON d.local_date = q.local_date
) c
"""


# Every (dimension, key) a contribution counts under (sla_rollup.dim_keys): day, group and
# credit by a join with a 3-row list (no per-row subquery), owners by unnest.
def _expanded(cols: str) -> str:
    key = "CASE dd.dim WHEN 'day' THEN '' WHEN 'group' THEN c.chat_id ELSE c.cred END"
    owners = "CASE WHEN cardinality(c.owners) = 0 THEN ARRAY['']::text[] ELSE c.owners END"
    return f"""(
  SELECT c.local_date, c.variant, dd.dim, {key} AS key, {cols}
  FROM scale_contrib c CROSS JOIN (VALUES ('day'), ('group'), ('credit')) dd(dim)
  UNION ALL
  SELECT c.local_date, c.variant, 'owner', o, {cols}
  FROM scale_contrib c CROSS JOIN LATERAL unnest({owners}) o
) x WHERE x.key IS NOT NULL"""


_COUNTERS = list(sla_rollup.COUNTERS)
COUNTS_SQL = f"""
SELECT local_date, dim, key, variant, {", ".join(f"sum({c})" for c in _COUNTERS)}
FROM {_expanded(", ".join(f"c.{c}" for c in _COUNTERS))}
GROUP BY 1, 2, 3, 4
"""

# Bucket counts per key and histogram (1 frt, 2 res, 3 cens), as two parallel arrays (one
# aggregation pass each, hashed: an ORDER BY inside array_agg would sort every cell).
_KINDS = "CROSS JOIN (VALUES (1), (2), (3)) hk(kind)"
_B = "CASE hk.kind WHEN 1 THEN c.f WHEN 2 THEN c.r ELSE c.x END"
HIST_SQL = f"""
SELECT local_date, dim, key, variant, kind, array_agg(b), array_agg(n)
FROM (
  SELECT local_date, dim, key, variant, kind, b, count(*)::int AS n
  FROM (
    SELECT c.local_date, c.variant, dd.dim,
      CASE dd.dim WHEN 'day' THEN '' WHEN 'group' THEN c.chat_id ELSE c.cred END AS key,
      hk.kind, {_B} AS b
    FROM scale_contrib c CROSS JOIN (VALUES ('day'), ('group'), ('credit')) dd(dim) {_KINDS}
    UNION ALL
    SELECT c.local_date, c.variant, 'owner', o, hk.kind, {_B}
    FROM scale_contrib c
    CROSS JOIN LATERAL unnest(
      CASE WHEN cardinality(c.owners) = 0 THEN ARRAY['']::text[] ELSE c.owners END) o
    {_KINDS}
  ) x WHERE x.key IS NOT NULL AND x.b IS NOT NULL
  GROUP BY 1, 2, 3, 4, 5, 6
) t
GROUP BY 1, 2, 3, 4, 5
"""

REBUILT_AT = datetime(2026, 4, 1, tzinfo=UTC)  # sla_report._rebuild's ``now``


def _packed(buckets: Sequence[int], counts: Sequence[int]) -> int:
    """32-bit fields (bucket index -> count) as one little-endian integer."""
    fields = array("I", bytes(4 * (max(buckets) + 1)))
    for b, n in zip(buckets, counts, strict=True):
        fields[b] = n
    return int.from_bytes(fields.tobytes(), "little")


async def build_rollups(conn: asyncpg.Connection) -> int:
    """Rebuild ``sla_rollup`` / ``sla_rollup_day`` from the question rows, set-based."""
    await conn.execute(
        "TRUNCATE sla_rollup, sla_rollup_day; DROP TABLE IF EXISTS scale_contrib;"
        # Session settings of this bulk build only (the app's queries run with the defaults).
        "SET work_mem = '512MB'; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0"
    )
    await conn.execute(CONTRIB_SQL)
    sums: dict[tuple[str, str, str, str], list[int]] = {}
    for rec in await conn.fetch(COUNTS_SQL):
        values = dict(zip(_COUNTERS, rec[4:], strict=True))
        sums[(rec[0], rec[1], rec[2], rec[3])] = [sla_rollup.pack_counts(values), 0, 0, 0]
    for rec in await conn.fetch(HIST_SQL):
        sums[(rec[0], rec[1], rec[2], rec[3])][rec[4]] = _packed(rec[5], rec[6])
    shift = 64 * sla_rollup.COUNTERS.index("unanswered")
    rows = [
        (
            *key,
            (s[0] >> shift) & ((1 << 64) - 1),
            *(sla_rollup.to_bytes(v) for v in s),
        )
        for key, s in sums.items()
    ]
    await conn.copy_records_to_table(
        "sla_rollup",
        records=rows,
        columns=[
            "local_date",
            "dim",
            "key",
            "variant",
            "unanswered",
            "counts",
            "frt",
            "res",
            "cens",
        ],
    )
    await conn.execute(
        """INSERT INTO sla_rollup_day (local_date, settled_at, questions, rebuilt_at)
           SELECT local_date, max(settle_at), count(*), $1 FROM question GROUP BY local_date;
        """,
        REBUILT_AT,
    )
    await conn.execute("DROP TABLE scale_contrib; RESET ALL; ANALYZE sla_rollup, sla_rollup_day")
    return len(rows)


async def _snapshot(conn: asyncpg.Connection) -> tuple[dict[Any, Any], dict[Any, Any]]:
    roll = {
        (r[0], r[1], r[2], r[3]): tuple(r[4:])
        for r in await conn.fetch(
            "SELECT local_date, dim, key, variant, unanswered, counts, frt, res, cens "
            "FROM sla_rollup"
        )
    }
    days = {
        r[0]: (r[1], r[2])
        for r in await conn.fetch("SELECT local_date, settled_at, questions FROM sla_rollup_day")
    }
    return roll, days


async def verify(conn: asyncpg.Connection, engine: AsyncEngine) -> str:
    """Set-based rollups vs the app's ``rebuild_days`` over the same rows; generator vs app."""
    mine = await _snapshot(conn)
    await fill._rebuild(engine)
    app = await _snapshot(conn)
    diff = [k for k in mine[0].keys() | app[0].keys() if mine[0].get(k) != app[0].get(k)]
    day_diff = [k for k in mine[1].keys() | app[1].keys() if mine[1].get(k) != app[1].get(k)]
    for k in diff[:3]:
        print("  rollup differs:", k, mine[0].get(k) is None, app[0].get(k) is None)
    # The generated rows against the app's own functions (business axis, settle time).
    cols = ", ".join(dict.fromkeys([*sla_rollup.ROW_COLUMNS, "opened_at", "settle_at"]))
    bad_pos = bad_settle = 0
    rows = await conn.fetch(f"SELECT {cols} FROM question ORDER BY id LIMIT 5000")
    for r in rows:
        row = dict(r)
        if abs(fill.AXIS.position(row["opened_at"]) - row["opened_bepoch"]) > 1e-3:
            bad_pos += 1
        expect = sla_rollup.settle_time(row, fill.CAL)
        if expect is None or abs((expect - row["settle_at"]).total_seconds()) > 1e-3:
            bad_settle += 1
    ok = not diff and not day_diff and not bad_pos and not bad_settle
    return (
        f"{'IDENTICAL' if ok else 'DIFFERENT'}: {len(mine[0]):,} rollup rows vs app "
        f"{len(app[0]):,} ({len(diff)} differ), {len(mine[1])} day rows ({len(day_diff)} differ); "
        f"{len(rows):,} rows vs BusinessAxis/settle_time: {bad_pos} + {bad_settle} off by > 1 ms"
    )


# --- report latency -----------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else float("nan")


async def time_report(url: str, repeat: int) -> list[float]:
    engine = make_engine(url)
    cfg = AppConfig()
    req = ReportRequest(fill.START, date(2026, 3, 30), AS_OF, view="operators")
    times = []
    try:
        await reports_sla.build(engine, cfg, req)  # warm the database's caches once
        for _ in range(repeat):
            t = time.perf_counter()
            await reports_sla.build(engine, cfg, req)
            times.append(time.perf_counter() - t)
    finally:
        await engine.dispose()
    return times


@dataclass(slots=True)
class SizeResult:
    questions: int
    gen_s: float
    rollup_s: float
    rollup_rows: int
    times: list[float]
    load: tuple[float, float, float]


async def question_curve(
    url: str, sizes: Sequence[int], args: argparse.Namespace
) -> list[SizeResult]:
    db = await fresh_db(url, "scale_questions")
    engine = make_engine(db)
    await upgrade(engine)
    conn = await asyncpg.connect(raw_url(db))
    out = []
    try:
        await calendar_tables(conn)
        for i, n in enumerate(sizes):
            try:
                check = i == 0 and args.verify
                out.append(await _one_size(conn, engine, db, n, check=check, args=args))
            except (OSError, asyncpg.PostgresError) as exc:  # keep the sizes measured so far
                print(f"[questions] {n:,}: FAILED ({type(exc).__name__}: {exc})")
                break
    finally:
        await conn.close()
        await engine.dispose()
    return out


async def _one_size(
    conn: asyncpg.Connection,
    engine: AsyncEngine,
    db: str,
    n: int,
    *,
    check: bool,
    args: argparse.Namespace,
) -> SizeResult:
    """Fill the store with ``n`` questions and their rollups, then time the report."""
    t = time.perf_counter()
    await generate(conn, n, ops=args.operators, groups=args.groups, at_rest=False)
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    rows = await build_rollups(conn)
    rollup_s = time.perf_counter() - t
    print(
        f"[questions] {n:>12,}: generated in {gen_s:6.1f}s, {rows:,} rollup rows "
        f"in {rollup_s:6.1f}s"
    )
    if check:
        print(f"[questions] verify at {n:,}: {await verify(conn, engine)}")
        await build_rollups(conn)
    load = os.getloadavg()
    times = await time_report(db, args.repeat)
    print(
        f"[questions] {n:>12,}: operators report p50 {pct(times, 0.5):.3f}s "
        f"p95 {pct(times, 0.95):.3f}s (load {load[0]:.1f})"
    )
    return SizeResult(n, gen_s, rollup_s, rows, times, load)


# --- several processes ----------------------------------------------------------------------


@dataclass(slots=True)
class ProcResult:
    procs: int
    events: int
    stored: int
    elapsed: float
    rss_mb: list[float]
    p99_commit_ms: list[float]
    report_busy: list[float] = field(default_factory=list)
    report_idle: list[float] = field(default_factory=list)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    connected: bool = True


def proc_events(p: int, per: int, groups: int, start_ts: int) -> list[str]:
    """``ingest.make_events`` moved to account ``10000 + p``, its own groups and message ids."""
    out = []
    for raw in ingest.make_events(per, groups, start_ts):
        ev = orjson.loads(raw)
        ev["self_id"] = 10000 + p
        ev["group_id"] += p * groups
        ev["message_id"] += p * per
        for seg in ev["message"]:
            if seg["type"] == "reply":
                seg["data"]["id"] = str(int(seg["data"]["id"]) + p * per)
        out.append(orjson.dumps(ev).decode())
    return out


def write_config(tmp: Path, p: int, port: int, url: str) -> Path:
    cfg = tmp / f"p{p}.toml"
    cfg.write_text(
        f"""
[bot]
data_dir = "{tmp / f"data{p}"}"
database_url = "{url}"
log_level = "WARNING"
instance_id = "scale-p{p}"
[web]
port = {port}
api_token = "{TOKEN}"
[gateway.onebot]
access_token = "{ingest.TOKEN}"
""",
        encoding="utf-8",
    )
    return cfg


async def _report_once(http: aiohttp.ClientSession, base: str) -> float:
    t = time.perf_counter()
    async with http.get(
        f"{base}/api/v1/sla/operators?{REPORT_QUERY}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as r:
        await r.read()
        if r.status != 200:
            raise RuntimeError(f"report: HTTP {r.status}")
    return time.perf_counter() - t


async def _wait_healthy(
    http: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes]
) -> None:
    for _ in range(600):
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(f"{base}/healthz") as r:
                if r.status == 200:
                    return
        if proc.poll() is not None:
            break
        await asyncio.sleep(0.1)
    err = proc.stderr.read().decode()[-2000:] if proc.stderr and proc.poll() is not None else ""
    raise RuntimeError(f"sopbot at {base} did not start: {err}")


async def run_procs(url: str, n: int, template: str, args: argparse.Namespace) -> ProcResult:
    db = await fresh_db(url, f"scale_ingest_{n}", template)
    tmp = Path(tempfile.mkdtemp(prefix="sopbot-scale-"))
    per = args.events // n
    ports = [ingest.free_port() for _ in range(n)]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    events = [proc_events(p, per, args.ingest_groups, int(time.time())) for p in range(n)]
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 (start-up)
            [sys.executable, "-m", "bot", "run", "--config", str(write_config(tmp, p, port, db))],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for p, port in enumerate(ports)
    ]
    peaks = [0] * n
    stop = asyncio.Event()

    async def sample() -> None:
        ps = [psutil.Process(p.pid) for p in procs]
        while not stop.is_set():
            for i, pr in enumerate(ps):
                with contextlib.suppress(psutil.Error):
                    peaks[i] = max(peaks[i], pr.memory_info().rss)
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    res = ProcResult(n, per * n, 0, 0.0, [], [])
    pg = await asyncpg.connect(raw_url(db))
    try:
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(
                *(_wait_healthy(http, b, p) for b, p in zip(bases, procs, strict=True))
            )
            done = asyncio.Event()

            async def reports_meanwhile(base: str) -> None:
                while not done.is_set():
                    res.report_busy.append(await _report_once(http, base))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(done.wait(), 1.0)

            async def flood(p: int, ws: aiohttp.ClientWebSocketResponse) -> None:
                for ev in events[p]:
                    await ws.send_str(ev)

            sockets = []
            for p, base in enumerate(bases):
                ws = await http.ws_connect(
                    f"{base}/onebot/v11/ws",
                    headers={
                        "X-Self-ID": str(10000 + p),
                        "X-Client-Role": "Universal",
                        "Authorization": f"Bearer {ingest.TOKEN}",
                        "User-Agent": "OneBot/11",
                    },
                    max_msg_size=0,
                )
                await ws.send_bytes(
                    orjson.dumps(
                        {
                            "time": int(time.time()),
                            "self_id": 10000 + p,
                            "post_type": "meta_event",
                            "meta_event_type": "lifecycle",
                            "sub_type": "connect",
                        }
                    )
                )
                sockets.append(ws)
            load0 = os.getloadavg()
            t0 = time.perf_counter()
            reporters = [asyncio.create_task(reports_meanwhile(b)) for b in bases]
            await asyncio.gather(*(flood(p, ws) for p, ws in enumerate(sockets)))
            deadline = time.perf_counter() + 600
            while time.perf_counter() < deadline:
                res.stored = int(await pg.fetchval("SELECT count(*) FROM message"))
                if res.stored >= res.events:
                    break
                await asyncio.sleep(0.05)
            res.elapsed = time.perf_counter() - t0
            load1 = os.getloadavg()
            res.load = (max(load0[0], load1[0]), load1[1], load1[2])
            done.set()
            await asyncio.gather(*reporters)
            res.connected = all(not ws.closed for ws in sockets)

            async def idle(base: str) -> list[float]:
                return [await _report_once(http, base) for _ in range(args.requests)]

            for times in await asyncio.gather(*(idle(b) for b in bases)):
                res.report_idle += times
            for base in bases:
                async with http.get(f"{base}/metrics") as r:
                    text = await r.text()
                p99 = ingest.histogram_quantile(text, "sopbot_intake_commit_seconds", 0.99)
                res.p99_commit_ms.append(1000 * (p99 or 0.0))
            for ws in sockets:
                await ws.close()
    finally:
        stop.set()
        await sampler
        await pg.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    res.rss_mb = [p / 2**20 for p in peaks]
    return res


async def proc_curve(
    url: str, counts: Sequence[int], args: argparse.Namespace
) -> list[ProcResult]:
    base = await fresh_db(url, "scale_ingest_base")
    engine = make_engine(base)
    await upgrade(engine)
    await engine.dispose()
    conn = await asyncpg.connect(raw_url(base))
    try:
        await calendar_tables(conn)
        t = time.perf_counter()
        await generate(
            conn, args.report_questions, ops=args.operators, groups=args.groups, at_rest=True
        )
        await build_rollups(conn)
        await conn.execute("DROP TABLE scale_span, scale_day")
        print(
            f"[procs] template: {args.report_questions:,} questions at rest + rollups in "
            f"{time.perf_counter() - t:.1f}s"
        )
    finally:
        await conn.close()
    out = []
    for n in counts:
        r = await run_procs(url, n, "scale_ingest_base", args)
        print(
            f"[procs] {n}: {r.stored:,}/{r.events:,} stored, "
            f"{r.stored / r.elapsed:,.0f} events/s, "
            f"RSS {', '.join(f'{m:.0f}' for m in r.rss_mb)} MB, report busy p50 "
            f"{pct(r.report_busy, 0.5):.3f}s p95 {pct(r.report_busy, 0.95):.3f}s, idle p50 "
            f"{pct(r.report_idle, 0.5):.3f}s p95 {pct(r.report_idle, 0.95):.3f}s "
            f"(load {r.load[0]:.1f})"
        )
        out.append(r)
    return out


# --- output -----------------------------------------------------------------------------------


def table(
    procs: Sequence[ProcResult], sizes: Sequence[SizeResult], args: argparse.Namespace
) -> str:
    lines = []
    if procs:
        lines += [
            f"Ingest + report, N sopbot processes on one PostgreSQL ({args.events:,} events in "
            f"total, split evenly; report = operators view over {args.report_questions:,} "
            "questions)",
            "| processes | events/s | lost | peak RSS per process (MB) | p99 receipt→commit (ms) "
            "| report during ingest p50 / p95 (n) | report idle, all at once p50 / p95 (n) "
            "| load avg |",
            "|---:|---:|---:|---|---|---|---|---:|",
        ]
        lines += [
            f"| {r.procs} | {r.stored / r.elapsed:,.0f} | {r.events - r.stored:,} | "
            f"{' / '.join(f'{m:.0f}' for m in r.rss_mb)} | "
            f"{' / '.join(f'{m:.0f}' for m in r.p99_commit_ms)} | "
            f"{pct(r.report_busy, 0.5):.3f} / {pct(r.report_busy, 0.95):.3f} s "
            f"({len(r.report_busy)}) | "
            f"{pct(r.report_idle, 0.5):.3f} / {pct(r.report_idle, 0.95):.3f} s "
            f"({len(r.report_idle)}) | {r.load[0]:.1f} |"
            for r in procs
        ]
        lines.append("")
    if sizes:
        lines += [
            "SLA operators report (30 days) vs questions, one process, PostgreSQL",
            "| questions | report p50 | report p95 | runs | generate (SQL) | rollups (set-based) "
            "| rollup rows | load avg |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {s.questions:,} | {pct(s.times, 0.5):.3f} s | {pct(s.times, 0.95):.3f} s | "
            f"{len(s.times)} | {s.gen_s:.1f} s | {s.rollup_s:.1f} s | {s.rollup_rows:,} | "
            f"{s.load[0]:.1f} |"
            for s in sizes
        ]
    return "\n".join(lines)


def chart(procs: Sequence[ProcResult], sizes: Sequence[SizeResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    if procs:
        xs = [r.procs for r in procs]
        left.plot(xs, [r.stored / r.elapsed for r in procs], "o-", label="measured")
        one = procs[0].stored / procs[0].elapsed / procs[0].procs
        left.plot(xs, [one * x for x in xs], "--", color="grey", label="linear from the first")
        left.set_xticks(xs)
        left.set_ylim(bottom=0)
        left.legend()
    left.set_xlabel("sopbot processes (one PostgreSQL, 2 cores)")
    left.set_ylabel("ingest events/s (all processes)")
    left.set_title("Ingest throughput vs processes")
    left.grid(alpha=0.3)
    if sizes:
        xs = [s.questions for s in sizes]
        right.plot(xs, [pct(s.times, 0.5) for s in sizes], "o-", label="p50")
        right.plot(xs, [pct(s.times, 0.95) for s in sizes], "s--", label="p95")
        right.set_xscale("log")
        right.set_ylim(bottom=0)
        right.legend()
    right.set_xlabel("questions in the store (log)")
    right.set_ylabel("seconds")
    right.set_title("SLA operators report, 30 days, PostgreSQL")
    right.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ints(text: str) -> list[int]:
    return [int(float(x)) for x in re.split(r"[,\s]+", text.strip()) if x]


async def run(args: argparse.Namespace) -> int:
    print(f"machine: {fill.machine()}; load average {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    async with postgres(args.url) as url:
        print(f"PostgreSQL: {url.rsplit('@', 1)[-1]}")
        procs = await proc_curve(url, args.procs, args) if args.procs else []
        sizes = await question_curve(url, args.questions, args) if args.questions else []
    print()
    print(table(procs, sizes, args))
    if not args.no_chart:
        chart(procs, sizes, args.png)
        print(f"\nchart: {args.png}")
    print(f"total {time.perf_counter() - started:.0f}s")
    lost = sum(r.events - r.stored for r in procs)
    return 1 if lost else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--procs", type=_ints, default=[1, 2, 4], help="process counts, e.g. 1,2,4")
    p.add_argument(
        "--questions",
        type=_ints,
        default=[10**4, 10**5, 10**6],
        help="store sizes (10^7 only when named: ~31 min of generation and rollups here)",
    )
    p.add_argument("--events", type=int, default=100_000, help="events in total per run")
    p.add_argument("--ingest-groups", type=int, default=200, help="groups per process")
    p.add_argument("--report-questions", type=int, default=1_000_000)
    p.add_argument("--operators", type=int, default=500)
    p.add_argument("--groups", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=7, help="timed reports per store size")
    p.add_argument("--requests", type=int, default=10, help="idle reports per process")
    p.add_argument("--url", default="", help="a PostgreSQL URL (default: a throwaway server)")
    p.add_argument("--no-verify", dest="verify", action="store_false")
    p.add_argument("--no-chart", action="store_true")
    p.add_argument("--png", type=Path, default=PNG)
    args = p.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
