"""The supervisor dashboard: login, overview, operator SLA table, breaches, question drill-down,
trends, SOP compliance and CSV exports, served by the bot itself (static assets included).

``routes()`` is the whole URL map; ``context`` builds the login state (session codec, limiter).
Everything except ``/login`` and ``/static/`` needs a session (see ``auth.guard``).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from handlers.dashboard import views
from handlers.dashboard.auth import context, guard

STATIC = Path(__file__).resolve().parent.parent / "static"

__all__ = ["context", "guard", "routes"]


def routes() -> list[web.RouteDef | web.StaticDef]:
    return [
        web.get("/login", views.login_page),
        web.post("/login", views.login_post),
        web.post("/logout", views.logout),
        web.get("/", views.overview),
        web.get("/operators", views.operators),
        web.get("/breaches", views.breaches),
        web.post("/questions/{qid}/dismiss", views.dismiss),
        web.post("/questions/{qid}/resolve", views.resolve),
        web.get("/questions/{qid}", views.question),
        web.get("/trends", views.trends),
        web.get("/sop", views.sop_page),
        web.get("/export/{name}.csv", views.export),
        web.static("/static", STATIC, append_version=False),
    ]
