"""Dashboard auth on every route: no session, wrong role, right role; CSRF; login rate limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.webauth import LoginLimiter, SessionCodec, hash_password, team_of, verify_password
from handlers.dashboard.auth import SESSION_COOKIE
from tests.conftest import make_config
from tests.handlers.test_dashboard_support import USERS, start

PAGES = [
    "/",
    "/operators",
    "/breaches",
    "/trends",
    "/sop",
    "/status",
    "/questions/Q1",
    "/export/operators.csv",
    "/export/questions.csv",
    "/export/breaches.csv",
    "/export/sop_tasks.csv",
    "/export/sop_guides.csv",
    "/export/sop_stores.csv",
    "/export/sop_days.csv",
]
POSTS = ["/questions/Q1/dismiss", "/questions/Q1/resolve", "/logout"]


async def test_every_route_needs_a_session(
    tmp_path: Path, aiohttp_client: Any, db_url: str
) -> None:
    """Without a session, pages redirect to /login and POSTs answer 401; health stays public."""
    d = await start(tmp_path, aiohttp_client, db_url)
    for path in PAGES:
        resp = await d.client.get(path, allow_redirects=False)
        assert resp.status == 302, path
        assert resp.headers["Location"].startswith("/login?next="), path
    for path in POSTS:
        resp = await d.client.post(path, data={"reason": "x"}, allow_redirects=False)
        assert resp.status == 401, path
    assert (await d.client.get("/healthz")).status == 200
    assert (await d.client.get("/metrics")).status == 200
    assert (await d.client.get("/static/dashboard.css")).status == 200


async def test_roles_and_scopes(tmp_path: Path, aiohttp_client: Any, db_url: str) -> None:
    """Admin sees every route; a guide is refused /status and actions, and sees only itself."""
    d = await start(tmp_path, aiohttp_client, db_url)
    assert await d.login("admin") == 303
    for path in PAGES:
        resp = await d.client.get(path.replace("Q1", await _qid(d, "5001")))
        assert resp.status == 200, path
    await d.client.post("/logout", data={"csrf": await d.csrf("/")})
    assert (await d.client.get("/", allow_redirects=False)).status == 302

    assert await d.login("wang") == 303
    assert (await d.client.get("/status")).status == 403
    qid = await _qid(d, "5001", as_admin=False)
    token = await d.csrf("/")
    resp = await d.client.post(f"/questions/{qid}/dismiss", data={"csrf": token, "reason": "x"})
    assert resp.status == 403
    html = await (await d.client.get("/operators")).text()
    assert 'data-operator="wang"' in html
    assert 'data-operator="li"' not in html
    # 5001 is li's group and li answered: not wang's question.
    assert (await d.client.get(f"/questions/{qid}")).status == 404


async def test_supervisor_sees_team(tmp_path: Path, aiohttp_client: Any, db_url: str) -> None:
    """A supervisor's operator table holds the team (li, wang) and the breach list their groups."""
    d = await start(tmp_path, aiohttp_client, db_url)
    assert await d.login("zhao") == 303
    html = await (await d.client.get("/operators")).text()
    assert 'data-operator="li"' in html
    breaches = await (await d.client.get("/breaches")).text()
    assert "请问今天有优惠吗？" in breaches


async def test_csrf_missing_or_wrong_is_403(
    tmp_path: Path, aiohttp_client: Any, db_url: str
) -> None:
    """POSTs without the session's CSRF token are refused, the login form's too."""
    d = await start(tmp_path, aiohttp_client, db_url)
    assert await d.login("zhao") == 303
    qid = await _qid(d, "5002", as_admin=False)
    for data in ({"reason": "spam"}, {"reason": "spam", "csrf": "wrong"}):
        resp = await d.client.post(f"/questions/{qid}/dismiss", data=data)
        assert resp.status == 403
    resp = await d.client.post("/login", data={"username": "zhao", "password": "x"})
    assert resp.status == 403


async def test_login_rate_limit(tmp_path: Path, aiohttp_client: Any, db_url: str) -> None:
    """Five wrong passwords for one user → 429, even with the right password afterwards."""
    d = await start(tmp_path, aiohttp_client, db_url)
    for _ in range(5):
        assert await d.login("li", "wrong") == 401
    assert await d.login("li") == 429
    assert await d.login("wang") == 303  # other users are not locked out


async def test_session_cookie_flags(tmp_path: Path, aiohttp_client: Any, db_url: str) -> None:
    """The session cookie is HttpOnly and SameSite=Lax; pages carry a strict CSP."""
    d = await start(tmp_path, aiohttp_client, db_url)
    page = await d.client.get("/login")
    from tests.handlers.test_dashboard_support import PASSWORD, csrf_of

    resp = await d.client.post(
        "/login",
        data={"username": "admin", "password": PASSWORD, "csrf": csrf_of(await page.text())},
        allow_redirects=False,
    )
    cookie = resp.headers.getall("Set-Cookie")
    session = next(c for c in cookie if c.startswith("sopbot_session="))
    assert "HttpOnly" in session
    assert "SameSite=Lax" in session
    assert "Secure" not in session
    overview = await d.client.get("/")
    assert "script-src 'self'" in overview.headers["Content-Security-Policy"]


def test_session_codec_and_limiter() -> None:
    """Tokens expire and reject tampering; the limiter's window slides."""
    codec = SessionCodec(b"k" * 32, ttl=60)
    token = codec.issue("zhao", 1000.0)
    session = codec.read(token, 1030.0)
    assert session is not None
    assert session.username == "zhao"
    assert codec.read(token, 1061.0) is None
    assert codec.read(token[:-2] + "xx", 1030.0) is None
    assert codec.csrf_ok(session, codec.csrf(session))
    assert not codec.csrf_ok(session, "")
    limiter = LoginLimiter(per_ip=3, per_user=2, window=10)
    limiter.failed("1.1.1.1", "a", 0.0)
    limiter.failed("1.1.1.1", "a", 1.0)
    assert limiter.blocked("1.1.1.1", "a", 2.0)
    assert not limiter.blocked("2.2.2.2", "b", 2.0)
    assert not limiter.blocked("1.1.1.1", "a", 12.0)


def test_passwords_and_teams(tmp_path: Path) -> None:
    """argon2 round trip; unknown users fail; teams are recursive."""
    digest = hash_password("pw")
    assert digest.startswith("$argon2id$")
    assert verify_password(digest, "pw")
    assert not verify_password(digest, "nope")
    assert not verify_password(None, "pw")
    cfg = make_config(tmp_path)
    assert team_of("sup", cfg.operators) == {"sup", "li", "wang"}
    assert team_of("li", cfg.operators) == {"li"}


@pytest.mark.parametrize("bad", ["plain", ""])
def test_config_rejects_plain_passwords(tmp_path: Path, bad: str) -> None:
    """[[web.users]] password_hash must be an argon2 hash."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        make_config(tmp_path, web={"users": [{"username": "a", "password_hash": bad}]})


async def _qid(d: Any, chat: str, *, as_admin: bool = True) -> str:
    from sqlalchemy import select

    from bot.keys import ENGINE
    from bot.store.questions import Q

    async with d.app[ENGINE].connect() as conn:
        row = (await conn.execute(select(Q.c.public_id).where(Q.c.chat_id == chat))).first()
    assert row is not None
    return str(row[0])


async def test_logout_ends_the_session_for_every_copy(
    tmp_path: Path, aiohttp_client: Any, db_url: str
) -> None:
    """A token copied before logout is refused after it (the server records the logout)."""
    d = await start(tmp_path, aiohttp_client, db_url)
    assert await d.login("admin") == 303
    copied = d.client.session.cookie_jar.filter_cookies(d.client.make_url("/"))[SESSION_COOKIE]
    assert (await d.client.get("/", allow_redirects=False)).status == 200
    await d.client.post("/logout", data={"csrf": await d.csrf("/")})
    d.client.session.cookie_jar.update_cookies({SESSION_COOKIE: copied.value})
    resp = await d.client.get("/", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"].startswith("/login")
    # A new login works as before.
    assert await d.login("admin") == 303
    assert (await d.client.get("/", allow_redirects=False)).status == 200


async def test_password_change_ends_earlier_sessions(tmp_path: Path, aiohttp_client: Any) -> None:
    """Sessions carry a stamp of the password hash they were issued for: the same token, shown
    to an app whose config has a new password for the user, is refused."""
    old = await start(tmp_path / "a", aiohttp_client)
    assert await old.login("admin") == 303
    jar = old.client.session.cookie_jar
    token = jar.filter_cookies(old.client.make_url("/"))[SESSION_COOKIE].value
    users = [
        {**u, "password_hash": hash_password("new pass")} if u["username"] == "admin" else u
        for u in USERS
    ]
    new = await start(tmp_path / "b", aiohttp_client, web_extra={"users": users})
    new.client.session.cookie_jar.update_cookies({SESSION_COOKIE: token})
    assert (await new.client.get("/", allow_redirects=False)).status == 302
    # The same token still works where the password is unchanged (same secret, same stamp).
    other = await start(tmp_path / "c", aiohttp_client)
    other.client.session.cookie_jar.update_cookies({SESSION_COOKIE: token})
    assert (await other.client.get("/", allow_redirects=False)).status == 200
    assert await new.login("admin", "new pass") == 303
    assert (await new.client.get("/", allow_redirects=False)).status == 200
