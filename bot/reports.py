"""Report tables shared by `sopbot report` and the JSON API: one definition, many outputs.

Handler modules build ``ReportTable``s from the store; this module only carries and formats them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import AppConfig

Basis = Literal["business", "calendar"]


@dataclass(frozen=True, slots=True)
class ReportRequest:
    start: date  # local dates in the tenant time zone, inclusive
    end: date  # inclusive
    as_of: datetime
    basis: Basis = "business"
    strict: bool = True
    view: str = ""  # report-specific sub-view, e.g. "operators", "groups", "daily"
    filters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReportTable:
    title: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()


ReportBuilder = Callable[[AsyncEngine, AppConfig, ReportRequest], Awaitable[list[ReportTable]]]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def to_json(tables: Sequence[ReportTable]) -> str:
    return json.dumps(
        [
            {
                "title": t.title,
                "columns": list(t.columns),
                "rows": list(t.rows),
                "notes": list(t.notes),
            }
            for t in tables
        ],
        ensure_ascii=False,
        default=_cell,
        indent=2,
    )


def to_csv(tables: Sequence[ReportTable]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    for i, t in enumerate(tables):
        if i:
            writer.writerow([])
        if len(tables) > 1:
            writer.writerow([f"# {t.title}"])
        writer.writerow(t.columns)
        for row in t.rows:
            writer.writerow([_cell(row.get(c)) for c in t.columns])
    return buf.getvalue()


def to_text(tables: Sequence[ReportTable]) -> str:
    out: list[str] = []
    for t in tables:
        cells = [[_cell(r.get(c)) for c in t.columns] for r in t.rows]
        widths = [
            max([_width(c)] + [_width(row[i]) for row in cells]) for i, c in enumerate(t.columns)
        ]
        out.append(t.title)
        out.append("  ".join(_pad(c, w) for c, w in zip(t.columns, widths, strict=True)))
        out.append("  ".join("-" * w for w in widths))
        out.extend(
            "  ".join(_pad(v, w) for v, w in zip(row, widths, strict=True)) for row in cells
        )
        out.extend(f"note: {n}" for n in t.notes)
        out.append("")
    return "\n".join(out)


def _width(s: str) -> int:
    # CJK characters take two columns in a terminal.
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)


def _pad(s: str, width: int) -> str:
    return s + " " * (width - _width(s))


def render(tables: Sequence[ReportTable], fmt: str) -> str:
    if fmt == "json":
        return to_json(tables)
    if fmt == "csv":
        return to_csv(tables)
    return to_text(tables)
