"""``GET /api/v1/sop/compliance``: the SOP report as JSON (same numbers as ``sopbot report sop``).

Query: ``from``, ``to`` (local dates, inclusive; default today), ``store``, ``guide``, ``view``
(guides|stores|days|steps|missed), ``as_of`` (ISO 8601; default now). Bearer token required
(the ``/api/`` middleware).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.keys import CLOCK, CONFIG, ENGINE
from bot.reports import ReportRequest
from bot.store.tasks import compliance_tables

PATH = "/api/v1/sop/compliance"
_MAX_DAYS = 366


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def compliance(request: web.Request) -> web.Response:
    cfg, clock = request.app[CONFIG], request.app[CLOCK]
    tz = ZoneInfo(cfg.bot.timezone)
    q = request.query
    try:
        as_of = datetime.fromisoformat(q["as_of"]) if "as_of" in q else clock.now()
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=tz)
        today = as_of.astimezone(tz).date()
        start = date.fromisoformat(q["from"]) if "from" in q else today
        end = date.fromisoformat(q["to"]) if "to" in q else start
    except ValueError as exc:
        return _bad(f"bad date: {exc}")
    if end < start:
        return _bad("'to' is before 'from'")
    if (end - start).days >= _MAX_DAYS:
        return _bad(f"at most {_MAX_DAYS} days per request")
    filters = {k: q[k] for k in ("store", "guide") if q.get(k)}
    report = ReportRequest(start, end, as_of, view=q.get("view", ""), filters=filters)
    try:
        tables = await compliance_tables(request.app[ENGINE], cfg, report)
    except ValueError as exc:
        return _bad(str(exc))
    body: dict[str, Any] = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "as_of": as_of.isoformat(),
        "filters": filters,
        "tables": [
            {
                "title": t.title,
                "columns": list(t.columns),
                "rows": list(t.rows),
                "notes": list(t.notes),
            }
            for t in tables
        ],
    }
    return web.json_response(body, dumps=_dumps)


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False, default=lambda v: v.isoformat())


def routes() -> list[web.RouteDef]:
    return [web.get(PATH, compliance)]


_TABLE = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "columns": {"type": "array", "items": {"type": "string"}},
        "rows": {"type": "array", "items": {"type": "object"}},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    PATH: {
        "get": {
            "summary": "SOP compliance: completion per guide, store, day and step; misses",
            "security": [{"bearerAuth": []}],
            "parameters": [
                {"name": n, "in": "query", "required": False, "schema": s, "description": d}
                for n, s, d in (
                    (
                        "from",
                        {"type": "string", "format": "date"},
                        "first local date (default today)",
                    ),
                    ("to", {"type": "string", "format": "date"}, "last local date, inclusive"),
                    ("store", {"type": "string"}, "only this store"),
                    ("guide", {"type": "string"}, "only this guide (operator id)"),
                    (
                        "view",
                        {
                            "type": "string",
                            "enum": ["guides", "stores", "days", "steps", "missed"],
                        },
                        "one table only",
                    ),
                    (
                        "as_of",
                        {"type": "string", "format": "date-time"},
                        "evaluate as of (default now)",
                    ),
                )
            ],
            "responses": {
                "200": {
                    "description": "report tables",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "from": {"type": "string", "format": "date"},
                                    "to": {"type": "string", "format": "date"},
                                    "as_of": {"type": "string", "format": "date-time"},
                                    "filters": {"type": "object"},
                                    "tables": {"type": "array", "items": _TABLE},
                                },
                            }
                        }
                    },
                },
                "400": {"description": "bad query"},
                "401": {"description": "missing or wrong bearer token"},
            },
        }
    }
}
