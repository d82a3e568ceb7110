"""Bulk writes with hand-built SQL: the intake's hot paths (messages, questions, rollups).

SQLAlchemy Core converts every bound value through its type objects (``UTCDateTime``, ``JSON``,
``LargeBinary``…) on every execute: for a batch of a thousand 60-column question rows that cost
more than the database's own work. A ``Bulk`` statement picks one plain converter per column and
dialect once, and writes a chunk of rows as one multi-row ``INSERT … VALUES`` with whatever
``ON CONFLICT`` / ``RETURNING`` tail the caller gives, executed as driver SQL.

Values are stored exactly as the SQLAlchemy types store them (so the ORM and Core read them
back unchanged): on SQLite, timestamps as naive-UTC ``YYYY-MM-DD HH:MM:SS.ffffff`` text and
booleans as 0/1; on PostgreSQL (asyncpg), aware datetimes and booleans as they are. JSON is
text on both (``None`` is SQL NULL).

On SQLite, writes without ``RETURNING`` are one ``executemany`` per table and batch (each
statement costs several trips to aiosqlite's thread; ids of new rows follow from the row count),
and nothing returns rows (each returned row is a GIL hand-over with the busy event loop). The
trade-off measured here: ``executemany`` gives the GIL up once per row, a multi-row statement
once per statement; with the 0.5 ms switch interval (``bot/app.py``) neither won consistently in
the app. Elsewhere (PostgreSQL, or a ``RETURNING`` tail), chunks hold power-of-two row counts:
drivers cache one prepared statement per SQL text, and a multi-row statement's text depends on
its row count (a thousand-row, 57-column statement took 21 ms to prepare and ~2.5 MB cached), so
only a few sizes are ever used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, TypeVar

import orjson
from sqlalchemy import JSON, Boolean, LargeBinary, Table
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.models import UTCDateTime

# Bound parameters per statement: SQLite's limit is 32,766, PostgreSQL's protocol 32,767.
MAX_PARAMS = 32_000
MAX_ROWS = 1024

Convert = Callable[[Any], Any]
T = TypeVar("T")
Row = Mapping[str, Any] | tuple[Any, ...]


# Recently formatted timestamps: a batch repeats many (its rows' update time, the second its
# events were sent in, a question's opening as its last message, equal due times).
_TS_TEXT: dict[datetime, str] = {}
_TS_TEXT_MAX = 4096


def sqlite_ts(value: datetime | None) -> str | None:
    """A timestamp as SQLAlchemy's SQLite ``DATETIME`` stores it (naive UTC, microseconds)."""
    if value is None:
        return None
    tz = value.tzinfo
    if tz is not UTC:  # nearly every value is in UTC already: skip the offset lookups then
        if tz is None:
            raise ValueError("naive datetime written to the store; use aware UTC")
        value = value.astimezone(UTC)
    text = _TS_TEXT.get(value)
    if text is None:
        if len(_TS_TEXT) >= _TS_TEXT_MAX:
            _TS_TEXT.clear()
        text = _TS_TEXT[value] = value.replace(tzinfo=None).isoformat(" ", "microseconds")
    return text


def json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetime written to the store; use aware UTC")
    return value


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _converter(column_type: Any, dialect: str) -> Convert | None:
    """How a column's Python value becomes the driver's (None: passed as it is)."""
    if isinstance(column_type, UTCDateTime):
        return sqlite_ts if dialect == "sqlite" else _aware
    if isinstance(column_type, JSON):
        return json_text
    if isinstance(column_type, LargeBinary):
        return _bytes
    return None


def _cap(width: int) -> int:
    """The largest power-of-two row count a statement of ``width`` values a row may hold."""
    cap = 1
    while cap * 2 <= min(MAX_ROWS, MAX_PARAMS // width):
        cap *= 2
    return cap


def _placeholders(dialect: str, rows: int, width: int) -> str:
    """``(?,?),(?,?)`` (SQLite) or ``($1,$2),($3,$4)`` (PostgreSQL) for ``rows`` × ``width``."""
    if dialect == "postgresql":
        return ",".join(
            "(" + ",".join(f"${r * width + i + 1}" for i in range(width)) + ")"
            for r in range(rows)
        )
    return ",".join(["(" + ",".join("?" * width) + ")"] * rows)


def _chunks(items: Sequence[T], cap: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive chunks of ``chunk_sizes`` lengths."""
    start = 0
    for size in chunk_sizes(len(items), cap):
        yield items[start : start + size]
        start += size


def chunk_sizes(n: int, cap: int) -> list[int]:
    """Split ``n`` rows into chunks of ``cap`` (a power of two) and then powers of two."""
    sizes = []
    while n >= cap:
        sizes.append(cap)
        n -= cap
    bit = cap // 2
    while n:
        if n >= bit:
            sizes.append(bit)
            n -= bit
        bit //= 2
    return sizes


class Bulk:
    """``INSERT INTO table (columns) VALUES … <tail>`` for many rows at once.

    ``tail``: dialect name → SQL after the VALUES list (``ON CONFLICT …``, ``RETURNING …``);
    it may name ``excluded`` and the table as PostgreSQL and SQLite both accept.
    """

    def __init__(
        self, table: Table, columns: Sequence[str], tail: Mapping[str, str] | str = ""
    ) -> None:
        self.table = table
        self.columns = tuple(columns)
        for name in self.columns:
            if name not in table.c:
                raise KeyError(f"{table.name} has no column {name!r}")
        self._tail = tail
        self._get = itemgetter(*self.columns)
        self._flat: dict[tuple[str, bool, bool], Callable[[Sequence[Row]], list[Any]]] = {}
        self._sql: dict[tuple[str, int, str], str] = {}
        self._cap = _cap(len(self.columns))

    def _converter_of(
        self, dialect: str, tuples: bool, flat: bool
    ) -> Callable[[Sequence[Row]], list[Any]]:
        """A function from rows to their parameters, generated once per dialect and shape:
        one flat list (a multi-row statement) or a tuple per row (executemany).

        One tuple expression per row with each converter inlined (NULLs pass as they are): a
        loop over the columns cost ~10 % of the intake's thread at 10,000 events/s.
        """
        found = self._flat.get((dialect, tuples, flat))
        if found is not None:
            return found
        env: dict[str, Any] = {"get": self._get}
        parts = []
        for i, name in enumerate(self.columns):
            conv = _converter(self.table.c[name].type, dialect)
            if conv is None:
                parts.append(f"v[{i}]")
            else:
                env[f"c{i}"] = conv
                parts.append(f"(None if v[{i}] is None else c{i}(v[{i}]))")
        source = "r" if tuples else ("(get(r),)" if len(self.columns) == 1 else "get(r)")
        code = (
            "def convert(rows):\n"
            "    out = []\n"
            f"    add = out.{'extend' if flat else 'append'}\n"
            "    for r in rows:\n"
            f"        v = {source}\n"
            f"        add(({', '.join(parts)},))\n"
            "    return out\n"
        )
        exec(code, env)
        convert: Callable[[Sequence[Row]], list[Any]] = env["convert"]
        self._flat[dialect, tuples, flat] = convert
        return convert

    def sql(self, dialect: str, rows: int, returning: str = "") -> str:
        found = self._sql.get((dialect, rows, returning))
        if found is None:
            found = self._build(dialect, rows)
            if returning:
                found += f" RETURNING {returning}"
            self._sql[dialect, rows, returning] = found
        return found

    def _build(self, dialect: str, rows: int) -> str:
        values = _placeholders(dialect, rows, len(self.columns))
        tail = self._tail if isinstance(self._tail, str) else self._tail.get(dialect, "")
        return f"INSERT INTO {self.table.name} ({','.join(self.columns)}) VALUES {values} {tail}"

    def params(self, rows: Sequence[Row], dialect: str) -> list[Any]:
        """The flat parameter list of ``rows`` (mappings, or tuples in ``columns`` order)."""
        tuples = bool(rows) and isinstance(rows[0], tuple)
        return self._converter_of(dialect, tuples, True)(rows)

    def row_params(self, rows: Sequence[Row], dialect: str) -> list[tuple[Any, ...]]:
        """One parameter tuple per row (``executemany``)."""
        tuples = bool(rows) and isinstance(rows[0], tuple)
        return self._converter_of(dialect, tuples, False)(rows)

    def _many(self, rows: Sequence[Row], dialect: str) -> bool:
        """SQLite without RETURNING: one ``executemany`` of the one-row statement.

        Each statement costs several trips to aiosqlite's thread (cursor, execute, fetch,
        close), each a GIL hand-over with the busy event loop: one statement for the whole
        batch instead of a multi-row statement per power-of-two chunk.
        """
        return dialect == "sqlite" and "RETURNING" not in self.sql(dialect, 1)

    async def run(self, conn: AsyncConnection, rows: Sequence[Row]) -> list[tuple[Any, ...]]:
        """Write ``rows`` (mappings with every column, or tuples in ``columns`` order); the
        ``RETURNING`` rows, if any."""
        dialect = conn.dialect.name
        if not rows:
            return []
        if self._many(rows, dialect):
            await conn.exec_driver_sql(self.sql(dialect, 1), self.row_params(rows, dialect))
            return []
        out: list[tuple[Any, ...]] = []
        for chunk in _chunks(rows, self._cap):
            result = await conn.exec_driver_sql(
                self.sql(dialect, len(chunk)), tuple(self.params(chunk, dialect))
            )
            if result.returns_rows:
                out += [tuple(r) for r in result.all()]
        return out

    async def insert_new(
        self, conn: AsyncConnection, rows: Sequence[Row], key: Sequence[str]
    ) -> dict[tuple[Any, ...], int]:
        """Insert ``rows`` (the tail must be ``ON CONFLICT … DO NOTHING``); the new rows' ids
        by their ``key`` values. Rows whose key is stored already are left out.

        SQLite: one ``executemany`` and no ``RETURNING`` (each returned row is a GIL hand-over
        between the database thread and the busy event loop: a thousand rows took 2 ms idle,
        200 ms under load). Rows inserted one after another get consecutive ids, so theirs
        follow from ``last_insert_rowid()`` and the count; a batch that met duplicates (rare:
        re-deliveries) reads its new rows back by that id range. PostgreSQL: ``RETURNING``.
        """
        if not rows:
            return {}
        dialect = conn.dialect.name
        if dialect != "sqlite":
            out: dict[tuple[Any, ...], int] = {}
            for chunk in _chunks(rows, self._cap):
                sql = self.sql(dialect, len(chunk), "id, " + ", ".join(key))
                params = tuple(self.params(chunk, dialect))
                for r in (await conn.exec_driver_sql(sql, params)).all():
                    out[tuple(r[1:])] = int(r[0])
            return out
        result = await conn.exec_driver_sql(self.sql(dialect, 1), self.row_params(rows, dialect))
        new = int(result.rowcount)
        if new <= 0:
            return {}
        last = int((await conn.exec_driver_sql("SELECT last_insert_rowid()")).scalar_one())
        if new == len(rows):
            at = [self.columns.index(k) for k in key]
            if isinstance(rows[0], tuple):
                keys = [tuple(row[i] for i in at) for row in rows]  # type: ignore[index]
            else:
                keys = [tuple(row[k] for k in key) for row in rows]  # type: ignore[call-overload]
            return {k: last - new + 1 + i for i, k in enumerate(keys)}
        back = await conn.exec_driver_sql(
            f"SELECT id, {', '.join(key)} FROM {self.table.name} WHERE id > ? AND id <= ?",
            (last - new, last),
        )
        return {tuple(r[1:]): int(r[0]) for r in back.all()}


async def rows_by_key(
    conn: AsyncConnection,
    table: Table,
    key: Sequence[str],
    keys: Sequence[tuple[Any, ...]],
    columns: Sequence[str],
    *,
    lock: bool = False,
) -> list[tuple[Any, ...]]:
    """``columns`` of the rows whose ``key`` columns equal one of ``keys`` (plain driver values).

    ``lock`` (PostgreSQL): ``FOR UPDATE``, rows locked in key order (one order everywhere, so
    two writers never deadlock). Key values must be text or numbers, compared as they are.
    """
    if not keys:
        return []
    dialect = conn.dialect.name
    head = f"SELECT {','.join(columns)} FROM {table.name} WHERE ({','.join(key)}) IN (VALUES "
    order = f") ORDER BY {','.join(key)} FOR UPDATE" if lock and dialect == "postgresql" else ")"
    out: list[tuple[Any, ...]] = []
    for chunk in _chunks(keys, _cap(len(key))):
        values = _placeholders(dialect, len(chunk), len(key))
        params = tuple(v for k in chunk for v in k)
        result = await conn.exec_driver_sql(head + values + order, params)
        out += [tuple(r) for r in result.all()]
    return out


def _sqlite_ts_in(value: Any) -> Any:
    # SQLAlchemy's SQLite DATETIME text, read back as UTCDateTime does: aware UTC.
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if isinstance(value, str) else value


def _utc(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def _json_in(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _reader(column_type: Any, dialect: str) -> Convert | None:
    """How a driver value becomes what the column's SQLAlchemy type returns (None: as it is)."""
    if isinstance(column_type, UTCDateTime):
        return _sqlite_ts_in if dialect == "sqlite" else _utc
    if isinstance(column_type, JSON):
        return _json_in
    if isinstance(column_type, Boolean) and dialect == "sqlite":
        return bool
    return None


async def read_by_values(
    conn: AsyncConnection,
    table: Table,
    column: str,
    values: Sequence[str],
    columns: Sequence[str],
    *,
    lock: bool = False,
) -> list[dict[str, Any]]:
    """``columns`` of the rows whose text ``column`` is one of ``values``, decoded as the ORM
    returns them (aware UTC times, JSON, booleans), in one statement: the values travel as one
    parameter (a JSON array on SQLite, an array on PostgreSQL), so no chunks and no per-value
    placeholders. ``lock`` (PostgreSQL): ``FOR UPDATE``, in ``column`` order.
    """
    if not values:
        return []
    dialect = conn.dialect.name
    cols = ",".join(columns)
    if dialect == "postgresql":
        lock_sql = f" ORDER BY {column} FOR UPDATE" if lock else ""
        sql = f"SELECT {cols} FROM {table.name} WHERE {column} = ANY($1::text[]){lock_sql}"
        params: tuple[Any, ...] = (list(values),)
    else:
        sql = f"SELECT {cols} FROM {table.name} WHERE {column} IN (SELECT value FROM json_each(?))"
        params = (json_text(list(values)),)
    result = await conn.exec_driver_sql(sql, params)
    return _decoded(table, columns, dialect, [tuple(r) for r in result.all()])


def _decoded(
    table: Table, columns: Sequence[str], dialect: str, raw_rows: Sequence[tuple[Any, ...]]
) -> list[dict[str, Any]]:
    readers = [
        (i, name, r)
        for i, name in enumerate(columns)
        if (r := _reader(table.c[name].type, dialect)) is not None
    ]
    out = []
    for raw in raw_rows:
        row = dict(zip(columns, raw, strict=True))
        for i, name, read in readers:
            if raw[i] is not None:
                row[name] = read(raw[i])
        out.append(row)
    return out
