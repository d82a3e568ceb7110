"""JSON API of the question log and SLA metrics (bearer auth: ``bot.web.api_auth``).

``GET /api/v1/questions``: one row per question (filters from, to, group, operator = first
responder or owner, status; all applied in SQL).
``GET /api/v1/sla/operators|groups|daily``: the ``sla`` report's tables, built by exactly the
builder ``sopbot report sla`` uses, so every number matches the CLI for the same parameters.
Query: ``from``/``to`` (local dates, inclusive; default today), ``as_of`` (ISO 8601; default
now), ``view=strict|lenient`` (or ``strict=true|false``), ``basis=business|calendar``, ``group``,
``operator``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.keys import CLOCK, CONFIG, ENGINE
from bot.reports import ReportBuilder, ReportRequest, ReportTable
from bot.store import questions as store


class _BadRequest(ValueError):
    pass


def _date(value: str | None, default: date, name: str) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _BadRequest(f"{name}: expected YYYY-MM-DD") from None


def request_params(request: web.Request, view: str) -> ReportRequest:
    """Parse the shared query parameters into the report request."""
    cfg, clock = request.app[CONFIG], request.app[CLOCK]
    tz = ZoneInfo(cfg.bot.timezone)
    q = request.query
    now = clock.now()
    today = now.astimezone(tz).date()
    start = _date(q.get("from"), today, "from")
    end = _date(q.get("to"), start if q.get("from") else today, "to")
    if end < start:
        raise _BadRequest("to is before from")
    if q.get("as_of"):
        try:
            as_of = datetime.fromisoformat(q["as_of"].replace("Z", "+00:00"))
        except ValueError:
            raise _BadRequest("as_of: expected an ISO 8601 instant") from None
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=tz)
    else:
        as_of = now
    basis = q.get("basis", "business")
    if basis not in ("business", "calendar"):
        raise _BadRequest("basis: business or calendar")
    mode = q.get("view", "")
    if mode not in ("", "strict", "lenient"):
        raise _BadRequest("view: strict or lenient")
    strict = mode != "lenient" and q.get("strict", "true").lower() not in ("false", "0", "no")
    filters = {k: q[k] for k in ("group", "operator") if q.get(k)}
    return ReportRequest(
        start=start,
        end=end,
        as_of=as_of,
        basis=basis,  # type: ignore[arg-type]  # checked above
        strict=strict,
        view=view,
        filters=filters,
    )


def _json_table(t: ReportTable, req: ReportRequest) -> dict[str, Any]:
    return {
        "from": req.start.isoformat(),
        "to": req.end.isoformat(),
        "as_of": req.as_of.isoformat(),
        "basis": req.basis,
        "view": "strict" if req.strict else "lenient",
        "title": t.title,
        "columns": list(t.columns),
        "rows": [
            {k: v.isoformat() if isinstance(v, datetime | date) else v for k, v in row.items()}
            for row in t.rows
        ],
        "notes": list(t.notes),
    }


def _report_handler(view: str, build: ReportBuilder) -> Any:
    async def handler(request: web.Request) -> web.Response:
        try:
            req = request_params(request, view)
        except _BadRequest as exc:
            return web.json_response({"error": str(exc)}, status=400)
        tables = await build(request.app[ENGINE], request.app[CONFIG], req)
        return web.json_response(_json_table(tables[0], req))

    return handler


async def list_questions(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    tz = ZoneInfo(cfg.bot.timezone)
    q = request.query
    try:
        today = request.app[CLOCK].now().astimezone(tz).date()
        start = _date(q.get("from"), today - timedelta(days=6), "from")
        end = _date(q.get("to"), today, "to")
        limit = min(max(int(q.get("limit", "1000")), 0), 10000)  # PostgreSQL refuses LIMIT -1
        offset = max(int(q.get("offset", "0")), 0)
    except (_BadRequest, ValueError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    async with request.app[ENGINE].connect() as conn:
        rows = await store.list_questions(
            conn,
            start=datetime.combine(start, time(0), tz),
            end=datetime.combine(end + timedelta(days=1), time(0), tz),
            group=q.get("group") or None,
            operator=q.get("operator") or None,
            status=q.get("status") or None,
            limit=limit,
            offset=offset,
        )
    body = [
        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
        for row in rows
    ]
    return web.json_response({"from": start.isoformat(), "to": end.isoformat(), "questions": body})


def routes(build: ReportBuilder) -> list[web.RouteDef]:
    """The API routes; ``build`` is the ``sla`` report builder (the CLI's, passed in)."""
    return [
        web.get("/api/v1/questions", list_questions),
        web.get("/api/v1/sla/operators", _report_handler("operators", build)),
        web.get("/api/v1/sla/groups", _report_handler("groups", build)),
        web.get("/api/v1/sla/daily", _report_handler("daily", build)),
        web.get("/api/v1/sla/summary", _report_handler("summary", build)),
    ]


_P = {"in": "query", "required": False, "schema": {"type": "string"}}
_REPORT_PARAMS = [
    {**_P, "name": "from", "description": "first local date (YYYY-MM-DD), default today"},
    {**_P, "name": "to", "description": "last local date, inclusive"},
    {**_P, "name": "as_of", "description": "evaluate as of this ISO 8601 instant"},
    {
        **_P,
        "name": "view",
        "schema": {"type": "string", "enum": ["strict", "lenient"]},
        "description": "strict: links with confidence >= 0.8 (default); lenient: every link",
    },
    {**_P, "name": "basis", "schema": {"type": "string", "enum": ["business", "calendar"]}},
    {**_P, "name": "group", "description": "group (chat) id"},
    {**_P, "name": "operator", "description": "operator id (operators view)"},
]
_TABLE = {"$ref": "#/components/schemas/SlaTable"}


def _report_op(summary: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": _REPORT_PARAMS,
            "responses": {
                "200": {
                    "description": "report",
                    "content": {"application/json": {"schema": _TABLE}},
                },
                "400": {"description": "bad parameter"},
                "401": {"description": "missing or wrong bearer token"},
            },
        }
    }


OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/questions": {
        "get": {
            "summary": "One row per question",
            "security": [{"bearer": []}],
            "parameters": [
                {
                    **_P,
                    "name": "from",
                    "description": "first local date (default: 7 days ago)",
                },
                {**_P, "name": "to", "description": "last local date opened, inclusive"},
                {**_P, "name": "group", "description": "group (chat) id"},
                {**_P, "name": "operator", "description": "first responder or owner"},
                {
                    **_P,
                    "name": "status",
                    "description": "comma-separated statuses",
                },
                {**_P, "name": "limit", "schema": {"type": "integer", "maximum": 10000}},
                {**_P, "name": "offset", "schema": {"type": "integer"}},
            ],
            "responses": {
                "200": {
                    "description": "questions",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "from": {"type": "string", "format": "date"},
                                    "to": {"type": "string", "format": "date"},
                                    "questions": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Question"},
                                    },
                                },
                            }
                        }
                    },
                },
                "401": {"description": "missing or wrong bearer token"},
            },
        }
    },
    "/api/v1/sla/operators": _report_op("Per operator: credit and accountability columns"),
    "/api/v1/sla/groups": _report_op("Per group SLA metrics"),
    "/api/v1/sla/daily": _report_op("Per local day SLA metrics"),
    "/api/v1/sla/summary": _report_op("SLA metrics for the whole period"),
}

_NUM = {"type": ["number", "null"]}
_STR = {"type": ["string", "null"]}
OPENAPI_SCHEMAS: dict[str, Any] = {
    "Question": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "question id, e.g. Q1234"},
            "group_id": {"type": "string"},
            "platform": {"type": "string"},
            "asker_id": {"type": "string"},
            "opened_at": {"type": "string", "format": "date-time"},
            "status": {
                "type": "string",
                "enum": ["open", "answered", "resolved", "dismissed", "withdrawn"],
            },
            "first_response_at": {**_STR, "format": "date-time"},
            "first_responder_id": _STR,
            "link_method": _STR,
            "link_confidence": _NUM,
            "owner_ids": {"type": "array", "items": {"type": "string"}},
            "frt_business_s": _NUM,
            "frt_calendar_s": _NUM,
            "frt_due_at": {**_STR, "format": "date-time"},
            "resolved_at": {**_STR, "format": "date-time"},
            "reopen_count": {"type": "integer"},
            "policy_version": {"type": "integer"},
        },
    },
    "SlaTable": {
        "type": "object",
        "properties": {
            "from": {"type": "string", "format": "date"},
            "to": {"type": "string", "format": "date"},
            "as_of": {"type": "string", "format": "date-time"},
            "basis": {"type": "string"},
            "view": {"type": "string"},
            "title": {"type": "string"},
            "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {"type": "object"}},
            "notes": {"type": "array", "items": {"type": "string"}},
        },
    },
}
