"""Infrastructure routes (health, metrics) and the API's bearer-token check."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy import text

from bot.keys import CLOCK, CONFIG, ENGINE, HUB, METRICS
from bot.metrics import CONTENT_TYPE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_ok(request: web.Request, token: str) -> bool:
    """Constant-time check of ``Authorization: Bearer <token>``; an empty token never passes."""
    if not token:
        return False
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


@web.middleware
async def api_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every ``/api/`` route needs the configured bearer token."""
    if request.path.startswith("/api/"):
        token = request.app[CONFIG].web.api_token.get_secret_value()
        if not token:
            return web.json_response(
                {"error": "api disabled: set [web] api_token or SOPBOT_WEB_API_TOKEN"}, status=503
            )
        if not bearer_ok(request, token):
            return web.json_response(
                {"error": "unauthorized"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="sopbot"'},
            )
    return await handler(request)


async def healthz(request: web.Request) -> web.Response:
    """Liveness plus the database and gateway state, for probes and humans."""
    db_ok = True
    try:
        async with request.app[ENGINE].connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        db_ok = False
    body = {
        "status": "ok" if db_ok else "degraded",
        "database": "ok" if db_ok else "unavailable",
        "time": request.app[CLOCK].now().isoformat(),
        "accounts_online": request.app[HUB].online(),
    }
    return web.json_response(body, status=200 if db_ok else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE})


def routes() -> list[web.RouteDef]:
    return [web.get("/healthz", healthz), web.get("/metrics", metrics)]
