"""Inbound OneBot transports on our aiohttp app: reverse WebSocket and HTTP POST receiver.

Both check credentials *before* doing any work: the reverse-WS token (``Authorization: Bearer``
or ``?access_token=``) before the upgrade, the HTTP ``X-Signature`` (HMAC-SHA1 of the body with
the shared secret) before parsing. Comparisons are constant time. Rejections answer with a plain
status (401 missing credential, 403 wrong credential, 400 missing/bad ``X-Self-ID`` or client
role, 409 account already connected, 413 body too large) and log one line without secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from typing import TYPE_CHECKING

from aiohttp import web

from bot.errors import FrameRejected
from bot.gateway.onebot.links import WsLink

if TYPE_CHECKING:
    from bot.gateway.onebot.gateway import OneBotGateway

log = logging.getLogger(__name__)

WS_PATH = "/onebot/v11/ws"
HTTP_PATH = "/onebot/v11/http"
_SELF_ID_RE = re.compile(r"[0-9A-Za-z_.\-]{1,64}")
_AUTH_SCHEMES = frozenset({"bearer", "token"})  # go-cqhttp era clients send "Token <t>"


def presented_token(request: web.BaseRequest) -> str | None:
    """The access token a client presented, ``""`` for a malformed header, None for none."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        return value.strip() if scheme.lower() in _AUTH_SCHEMES else ""
    return request.query.get("access_token")


def check_access_token(request: web.BaseRequest, expected: str | None) -> web.Response | None:
    """None when the request may proceed, else the 401/403 response to send."""
    if not expected:
        return None
    given = presented_token(request)
    if given is None:
        return web.Response(status=401, text="access token required")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return web.Response(status=403, text="access token rejected")
    return None


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """``X-Signature: sha1=<hex HMAC-SHA1(secret, body)>``, compared in constant time."""
    if not header:
        return False
    expected = "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode())


def _self_id(request: web.BaseRequest) -> str | None:
    value = request.headers.get("X-Self-ID", "").strip()
    return value if _SELF_ID_RE.fullmatch(value) else None


async def handle_reverse_ws(gw: OneBotGateway, request: web.Request) -> web.StreamResponse:
    """``GET /onebot/v11/ws``: one Universal connection per bot account."""
    peer = request.remote
    denied = check_access_token(request, gw.access_token)
    if denied is not None:
        log.warning("onebot reverse-ws from %s refused: HTTP %d (token)", peer, denied.status)
        return denied
    self_id = _self_id(request)
    if self_id is None:
        log.warning("onebot reverse-ws from %s refused: missing or bad X-Self-ID", peer)
        return web.Response(status=400, text="X-Self-ID header required")
    role = request.headers.get("X-Client-Role", "Universal")
    if role.lower() != "universal":
        # Split API/Event sockets would need two connections per account; NapCat/LLBot use one.
        log.warning("onebot reverse-ws %s refused: client role %.20r", self_id, role)
        return web.Response(status=400, text="only X-Client-Role: Universal is supported")
    if not gw.reserve(self_id):
        log.warning("onebot reverse-ws %s refused: account already connected", self_id)
        return web.Response(status=409, text="this X-Self-ID is already connected")
    try:
        ws = web.WebSocketResponse(
            max_msg_size=gw.transport_max_bytes, heartbeat=gw.ws_ping_interval
        )
        await ws.prepare(request)
        log.info("onebot reverse-ws %s connected from %s", self_id, peer)
        await gw.run_link(WsLink(self_id, ws, "reverse-ws"))
    finally:
        gw.release(self_id)
    return ws


async def handle_http_post(gw: OneBotGateway, request: web.Request) -> web.StreamResponse:
    """``POST /onebot/v11/http``: one event per request; 204 once the sink took it."""
    self_id = _self_id(request)
    if self_id is None:
        return web.Response(status=400, text="X-Self-ID header required")
    body = await _read_limited(request, gw.max_frame_bytes)
    if body is None:
        gw.count_rejected(self_id, FrameRejected("too_large"))
        return web.Response(status=413)
    if gw.secret:
        header = request.headers.get("X-Signature")
        if not signature_ok(gw.secret, body, header):
            status = 401 if not header else 403
            log.warning("onebot http-post %s refused: HTTP %d (signature)", self_id, status)
            return web.Response(status=status, text="bad signature")
    accepted = await gw.accept_http_frame(self_id, body)
    return web.Response(status=204 if accepted else 400)


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
