"""CSV exports: UTF-8 with a BOM (Excel opens Chinese correctly), headers in the page's language.

Cells a spreadsheet would run as a formula (leading ``= + - @``, tab or CR) get a leading quote:
customer text is untrusted in a spreadsheet as much as in a page.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

BOM = "\ufeff"
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    text = str(value)
    if text.startswith(_FORMULA) and not _numeric(text):
        return "'" + text
    return text


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def to_csv(
    columns: Sequence[str], rows: Iterable[Mapping[str, Any]], labels: Mapping[str, str]
) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([labels.get(c, c) for c in columns])
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
    return BOM + buf.getvalue()


def csv_response(name: str, text: str) -> web.Response:
    resp = web.Response(body=text.encode("utf-8"), content_type="text/csv", charset="utf-8")
    resp.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name)}"
    resp.headers["Cache-Control"] = "no-store"
    return resp
