"""Every HTTP route of the app, walked with no, wrong, wrong-role and right credentials.

Routes come from ``app.router.routes()``, so a route added anywhere is walked too. Each is
classified by the table ``RULES`` (first match wins); a route no rule names fails the test:
whoever adds one decides here whether it is public and what it needs. Public are only
``/healthz``, ``/metrics``, the login page and static assets.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from bot.app import create_app
from bot.clock import ManualClock
from bot.gateway.wecom.crypto import WeComCrypto
from tests.fakes.onebot import FakeOneBot
from tests.fakes.wecom import CORP_ID, NOW
from tests.security.rig import (
    AES_KEY,
    API_TOKEN,
    CALLBACK_PATH,
    CALLBACK_TOKEN,
    LOGINS,
    OB_SECRET,
    OB_TOKEN,
    PASSWORD,
    SESSION_COOKIE,
    Site,
    fake_wecom,
    security_config,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True, slots=True)
class Rule:
    """``path``: exact, or a prefix when it ends with "/"; ``method``: all when empty."""

    path: str
    kind: str  # public | api | dashboard | onebot_ws | onebot_http | wecom_callback
    level: str = "own"  # dashboard: the lowest login level allowed
    method: str = ""

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        return path.startswith(self.path) if self.path.endswith("/") else path == self.path


RULES = (
    Rule("/healthz", "public"),
    Rule("/metrics", "public"),
    Rule("/login", "public"),
    Rule("/static/", "public"),
    Rule("/api/", "api"),
    Rule("/onebot/v11/ws", "onebot_ws"),
    Rule("/onebot/v11/http", "onebot_http"),
    Rule(CALLBACK_PATH, "wecom_callback"),
    Rule("/status", "dashboard", "admin"),
    Rule("/questions/{qid}/dismiss", "dashboard", "supervisor", "POST"),
    Rule("/questions/{qid}/resolve", "dashboard", "supervisor", "POST"),
    Rule("/", "dashboard"),
    Rule("/logout", "dashboard"),
    Rule("/operators", "dashboard"),
    Rule("/breaches", "dashboard"),
    Rule("/questions/", "dashboard"),
    Rule("/trends", "dashboard"),
    Rule("/sop", "dashboard"),
    Rule("/export/", "dashboard"),
)
BELOW = {"supervisor": "own", "admin": "supervisor"}
LOGIN_REDIRECT = re.compile(r"^/login\?next=")


def _routes(app: web.Application) -> list[tuple[str, str, str]]:
    """(method, canonical path, a concrete path to request) for every route."""
    out = []
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        canonical = resource.canonical
        if isinstance(resource, web.StaticResource):
            directory = Path(resource.get_info()["directory"])
            asset = sorted(p.name for p in directory.iterdir() if p.is_file())[0]
            canonical, concrete = canonical + "/", f"{canonical}/{asset}"
        else:
            concrete = re.sub(r"\{[^}]+\}", "1", canonical)
        out.append((route.method, canonical, concrete))
    return out


def _rule(method: str, path: str) -> Rule | None:
    return next((r for r in RULES if r.matches(method, path)), None)


# -- the app ----------------------------------------------------------------------------------


@dataclass
class Walk:
    site: Site
    http: aiohttp.ClientSession  # keeps no cookies: each request says what it carries
    sessions: dict[str, str]  # level → session cookie of a login at that level
    csrf: dict[str, str]  # level → that session's CSRF token
    mode: str

    def as_(self, level: str, method: str = "GET", *, csrf: bool = True) -> dict[str, object]:
        """Request options of a logged-in user (with the CSRF header on a POST)."""
        kw: dict[str, object] = {"cookies": {SESSION_COOKIE: self.sessions[level]}}
        if method == "POST" and csrf:
            kw["headers"] = {"X-CSRF-Token": self.csrf[level]}
        return kw

    async def renew(self, level: str) -> None:
        """A fresh login at ``level`` (after the walk logged the previous one out)."""
        async with self.site.client() as browser:
            assert await self.site.login(browser, LOGINS[level], PASSWORD) == 303
            self.csrf[level] = await self.site.csrf(browser)
            cookie = browser.cookie_jar.filter_cookies(self.site.server.make_url("/"))
            self.sessions[level] = cookie[SESSION_COOKIE].value


@pytest.fixture(params=["reverse-ws", "http-post"])
async def walk(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> AsyncIterator[Walk]:
    wecom = fake_wecom()
    wecom_url = await wecom.start()
    cfg = security_config(tmp_path, db_url, wecom_url, mode=request.param)
    server = TestServer(create_app(cfg, clock=ManualClock(NOW)))
    await server.start_server()
    site = Site(server.app, server)
    # Stateless: a logout's Set-Cookie (walked like any route) must not end later requests.
    http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    sessions: dict[str, str] = {}
    csrf: dict[str, str] = {}
    try:
        for level, username in LOGINS.items():
            async with site.client() as browser:
                assert await site.login(browser, username, PASSWORD) == 303
                csrf[level] = await site.csrf(browser)
                cookie = browser.cookie_jar.filter_cookies(server.make_url("/"))
                sessions[level] = cookie[SESSION_COOKIE].value
        yield Walk(site, http, sessions, csrf, request.param)
    finally:
        await http.close()
        await server.close()
        await wecom.close()


async def _status(
    client: aiohttp.ClientSession, method: str, url: str, **kw: object
) -> tuple[int, str]:
    async with client.request(method, url, allow_redirects=False, **kw) as r:  # type: ignore[arg-type]
        await r.read()
        return r.status, r.headers.get("Location", "")


def _granted(status: int, location: str, method: str, path: str) -> None:
    assert status not in (401, 403), (method, path, status)
    assert status < 500, (method, path, status)
    assert not LOGIN_REDIRECT.match(location), (method, path, location)


# -- the checks, one per kind of route ---------------------------------------------------------


async def _public(w: Walk, method: str, path: str, rule: Rule) -> None:
    status, _ = await _status(w.http, method, w.site.url(path))
    if method in ("GET", "HEAD"):
        assert status == 200, (method, path, status)
    else:
        assert status < 500, (method, path, status)


async def _api(w: Walk, method: str, path: str, rule: Rule) -> None:
    url = w.site.url(path)
    for headers in (
        {},
        {"Authorization": "Bearer wrong-" + API_TOKEN},
        {"Authorization": f"Basic {API_TOKEN}"},
        {"Authorization": "Bearer"},
    ):
        assert (await _status(w.http, method, url, headers=headers))[0] == 401, (path, headers)
    # A dashboard login (even an admin's) is not an API credential.
    assert (await _status(w.http, method, url, **w.as_("admin", method)))[0] == 401, path
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    _granted(*await _status(w.http, method, url, headers=bearer), method, path)


async def _dashboard(w: Walk, method: str, path: str, rule: Rule) -> None:
    url = w.site.url(path)
    denied = (302, 401) if method in ("GET", "HEAD") else (401,)
    forged = {"cookies": {SESSION_COOKIE: "eyJ1IjoiYWRtaW4ifQ.forged"}}
    for kw in ({}, forged):
        status, location = await _status(w.http, method, url, **kw)
        assert status in denied, (method, path, status)
        assert status != 302 or LOGIN_REDIRECT.match(location), location
    if rule.level in BELOW:
        status, _ = await _status(w.http, method, url, **w.as_(BELOW[rule.level], method))
        assert status == 403, ("wrong role", method, path, status)
    if method == "POST":
        status, _ = await _status(w.http, method, url, **w.as_(rule.level, method, csrf=False))
        assert status == 403, ("POST without CSRF", path)
    _granted(*await _status(w.http, method, url, **w.as_(rule.level, method)), method, path)
    if path == "/logout" and method == "POST":
        # Logged out on the server: the same cookie (any copy of it) no longer opens a page.
        status, location = await _status(w.http, "GET", w.site.url("/"), **w.as_(rule.level))
        assert status == 302, ("after logout", status)
        assert LOGIN_REDIRECT.match(location), location
        await w.renew(rule.level)


async def _onebot_ws(w: Walk, method: str, path: str, rule: Rule) -> None:
    url = w.site.url(path)
    fake = FakeOneBot("777", token=OB_TOKEN)
    try:
        if method == "HEAD":
            assert (await _status(w.http, method, url))[0] == 401
            return
        cases = {
            401: {k: v for k, v in fake.reverse_headers().items() if k != "Authorization"},
            403: {**fake.reverse_headers(), "Authorization": "Bearer wrong"},
            400: {**fake.reverse_headers(), "X-Client-Role": "Event"},  # wrong role
        }
        for expected, headers in cases.items():
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await fake.connect_reverse(url, headers=headers)
            assert info.value.status == expected, headers
        query_token = f"{url}?access_token=wrong"
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await fake.connect_reverse(query_token, headers={"X-Self-ID": "777"})
        assert info.value.status == 403
        ws = await fake.connect_reverse(url)
        assert not ws.closed
    finally:
        await fake.close()


async def _onebot_http(w: Walk, method: str, path: str, rule: Rule) -> None:
    url = w.site.url(path)
    fake = FakeOneBot("777", secret=OB_SECRET)
    event = fake.group_message("你好")
    body = json.dumps(event).encode()
    try:
        assert await fake.post_event(url, event, headers={"X-Self-ID": ""}) == 400
        no_sig = FakeOneBot("777")
        try:
            assert await no_sig.post_event(url, event) == 401
        finally:
            await no_sig.close()
        wrong = "sha1=" + hmac.new(b"wrong", body, hashlib.sha1).hexdigest()
        assert await fake.post_event(url, body, signature=wrong) == 403
        assert await fake.post_event(url, body) == 204
    finally:
        await fake.close()


_NONCES = itertools.count(1)


async def _wecom_callback(w: Walk, method: str, path: str, rule: Rule) -> None:
    crypto = WeComCrypto(CALLBACK_TOKEN, AES_KEY, CORP_ID)
    nonce, ts = str(next(_NONCES)), "1718000000"
    encrypt = crypto.encrypt(b"<xml><MsgType>event</MsgType></xml>" if method == "POST" else b"ok")
    query = {"msg_signature": crypto.sign(ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}
    body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    if method != "POST":
        query["echostr"] = encrypt
        body = b""
    url = w.site.url(path)
    assert (await _status(w.http, method, url, data=body))[0] == 400  # no signature at all
    wrong = {**query, "msg_signature": "0" * 40}
    assert (await _status(w.http, method, url, params=wrong, data=body))[0] == 403
    assert (await _status(w.http, method, url, params=query, data=body))[0] == 200


CHECKS: dict[str, Callable[[Walk, str, str, Rule], Awaitable[None]]] = {
    "public": _public,
    "api": _api,
    "dashboard": _dashboard,
    "onebot_ws": _onebot_ws,
    "onebot_http": _onebot_http,
    "wecom_callback": _wecom_callback,
}


async def test_every_route_checks_credentials(walk: Walk) -> None:
    """No route answers without its credential; wrong ones and wrong roles are refused."""
    routes = _routes(walk.site.app)
    unclassified = [(m, p) for m, p, _ in routes if _rule(m, p) is None]
    assert not unclassified, f"classify these routes in RULES: {unclassified}"
    walked = set()
    for method, canonical, concrete in routes:
        rule = _rule(method, canonical)
        assert rule is not None
        await CHECKS[rule.kind](walk, method, concrete, rule)
        walked.add(rule.kind)
    gateway = "onebot_ws" if walk.mode == "reverse-ws" else "onebot_http"
    assert walked == {"public", "api", "dashboard", "wecom_callback", gateway}


async def test_api_is_closed_without_a_configured_token(db_url: str, tmp_path: Path) -> None:
    """With no api_token configured the API refuses everyone (503), it is never open."""
    cfg = security_config(tmp_path, db_url, "http://127.0.0.1:9")
    cfg = cfg.model_copy(update={"web": cfg.web.model_copy(update={"api_token": SecretStr("")})})
    server = TestServer(create_app(cfg, clock=ManualClock(NOW)))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            for path in [p for m, _, p in _routes(server.app) if p.startswith("/api/")]:
                for headers in ({}, {"Authorization": "Bearer "}):
                    async with http.get(server.make_url(path), headers=headers) as r:
                        assert r.status == 503, path
    finally:
        await server.close()
