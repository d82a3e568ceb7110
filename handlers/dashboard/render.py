"""Jinja2 rendering for the dashboard: autoescape everywhere, filters for rates and times.

Customer text only ever reaches templates as plain strings, so autoescape turns it into text;
the one ``Markup`` we pass is chart SVG built by ``charts`` from numbers and escaped labels.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from bot.keys import CLOCK, CONFIG
from handlers.dashboard.auth import PRINCIPAL, SESSION, csrf_token
from handlers.dashboard.i18n import LANG_COOKIE, TEXT, pick_lang
from sop.metrics import format_duration

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def dur(seconds: float | None, lang: str = "zh-CN") -> str:
    return "—" if seconds is None else format_duration(seconds, lang)


ENV.filters["pct"] = pct
ENV.filters["dur"] = dur


def lang_of(request: web.Request) -> str:
    return pick_lang(request, request.app[CONFIG].bot.language)


def local(request: web.Request, t: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    if t is None:
        return "—"
    return t.astimezone(ZoneInfo(request.app[CONFIG].bot.timezone)).strftime(fmt)


def render(request: web.Request, name: str, status: int = 200, **ctx: Any) -> web.Response:
    lang = lang_of(request)
    principal = request.get(PRINCIPAL)
    html = ENV.get_template(f"dashboard/{name}").render(
        t=TEXT[lang],
        lang=lang,
        other_lang="en" if lang == "zh-CN" else "zh-CN",
        principal=principal,
        csrf=csrf_token(request) if request.get(SESSION) is not None else "",
        path=request.path,
        query=dict(request.query),
        now=local(request, request.app[CLOCK].now(), "%Y-%m-%d %H:%M"),
        **ctx,
    )
    resp = web.Response(text=html, content_type="text/html", charset="utf-8", status=status)
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cache-Control"] = "no-store"
    if "lang" in request.query and request.query["lang"] in TEXT:
        resp.set_cookie(LANG_COOKIE, lang, samesite="Lax", path="/", max_age=365 * 86400)
    return resp
