"""The dashboard's period picker and toggles → a ``ReportRequest`` (same shape as the API's)."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.keys import CLOCK, CONFIG
from bot.reports import Basis, ReportRequest

MAX_DAYS = 92


def report_request(request: web.Request, *, default_days: int = 1) -> ReportRequest:
    """``from``/``to`` (local dates), ``basis`` business|calendar, ``view`` strict|lenient.

    Bad or missing values fall back to defaults: a picker should never show an error page.
    """
    cfg = request.app[CONFIG]
    now = request.app[CLOCK].now()
    today = now.astimezone(ZoneInfo(cfg.bot.timezone)).date()
    q = request.query

    def day(name: str, default: date) -> date:
        try:
            return date.fromisoformat(q.get(name, ""))
        except ValueError:
            return default

    end = day("to", today)
    start = day("from", end - timedelta(days=default_days - 1))
    if start > end:
        start, end = end, start
    start = max(start, end - timedelta(days=MAX_DAYS - 1))
    basis: Basis = "calendar" if q.get("basis") == "calendar" else "business"
    strict = q.get("view") != "lenient"
    return ReportRequest(start, end, now, basis, strict)


def query_of(req: ReportRequest) -> dict[str, str]:
    """The picker's state as query parameters (for links and export URLs)."""
    return {
        "from": req.start.isoformat(),
        "to": req.end.isoformat(),
        "basis": req.basis,
        "view": "strict" if req.strict else "lenient",
    }
