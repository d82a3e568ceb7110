"""Login state of the dashboard: the session codec, the login limiter, and the route guard.

``guard(level)`` wraps a view: no valid session → redirect to ``/login`` (401 for POSTs); a
login below ``level`` → 403; a POST without the session's CSRF token → 403. The view reads the
``Principal`` from ``request[PRINCIPAL]``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import wraps

from aiohttp import web

from bot.keys import CLOCK, CONFIG, DISPATCHER, ENGINE, ROSTER
from bot.store import web_sessions
from bot.webauth import LoginLimiter, Principal, Session, SessionCodec, find_user, principal_for

log = logging.getLogger("sopbot.dashboard")

SESSION_COOKIE = "sopbot_session"
LOGIN_CSRF_COOKIE = "sopbot_login_csrf"
View = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class AuthState:
    codec: SessionCodec
    limiter: LoginLimiter
    secure: bool


AUTH = web.AppKey("dashboard_auth", AuthState)
PRINCIPAL = web.RequestKey("dashboard_principal", Principal)
SESSION = web.RequestKey("dashboard_session", Session)


def build_auth(app: web.Application) -> AuthState:
    web_cfg = app[CONFIG].web
    secret = web_cfg.session_secret.get_secret_value()
    if not secret:
        # Logins then end with the process; say so once rather than fail the start.
        log.warning("web.session_secret is empty: using a random one (sessions end at restart)")
        secret = secrets.token_urlsafe(32)
    return AuthState(
        codec=SessionCodec(secret.encode(), web_cfg.session_ttl),
        limiter=LoginLimiter(),
        secure=web_cfg.public_url.startswith("https://"),
    )


async def context(app: web.Application) -> AsyncIterator[None]:
    """Login state, and the scoped queries the digests share (handlers never import each other)."""
    from handlers.dashboard import data

    app[AUTH] = build_auth(app)
    app[DISPATCHER].provide(digest_queries=data)
    yield


def now_s(request: web.Request) -> float:
    return request.app[CLOCK].now().timestamp()


async def current(request: web.Request) -> tuple[Session, Principal] | None:
    """The request's session and principal, if it carries a valid session cookie: signed,
    unexpired, not logged out, and issued for the user's current password."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    codec = request.app[AUTH].codec
    session = codec.read(token, now_s(request))
    if session is None:
        return None
    cfg = request.app[CONFIG]
    user = find_user(cfg.web.users, session.username)
    if user is None or session.stamp != codec.stamp(user.password_hash):
        return None  # user removed, or password changed since login: the session ends
    async with request.app[ENGINE].connect() as conn:
        if await web_sessions.is_revoked(conn, session.sid):
            return None
    principal = principal_for(user, request.app[ROSTER].operators)
    return None if principal is None else (session, principal)


def csrf_token(request: web.Request) -> str:
    session = request[SESSION]
    return request.app[AUTH].codec.csrf(session)


def guard(level: str) -> Callable[[View], View]:
    """Require a session at ``level`` or above (and a CSRF token on POST)."""

    def wrap(view: View) -> View:
        @wraps(view)
        async def guarded(request: web.Request) -> web.StreamResponse:
            found = await current(request)
            if found is None:
                if request.method != "GET":
                    raise web.HTTPUnauthorized(text="login required")
                raise web.HTTPFound(f"/login?next={request.rel_url.path_qs}")
            session, principal = found
            if not principal.at_least(level):
                raise web.HTTPForbidden(text="forbidden")
            request[SESSION], request[PRINCIPAL] = session, principal
            if request.method == "POST":
                form = await request.post()
                token = str(form.get("csrf", "")) or request.headers.get("X-CSRF-Token", "")
                if not request.app[AUTH].codec.csrf_ok(session, token):
                    raise web.HTTPForbidden(text="bad or missing CSRF token")
            return await view(request)

        return guarded

    return wrap


def set_session_cookie(resp: web.StreamResponse, request: web.Request, token: str) -> None:
    state = request.app[AUTH]
    resp.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Lax",
        secure=state.secure,
        max_age=int(state.codec.ttl),
        path="/",
    )
