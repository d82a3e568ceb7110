"""The whole app with every credential-bearing part switched on, for the security tests.

Known, unique secrets (so a test can look for them anywhere), three dashboard logins of
different levels, OneBot with an access token and a signing secret, WeCom with a callback and
a fake qyapi on loopback. ``Site`` logs in through the real login form.
"""

from __future__ import annotations

import base64
import functools
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.config import AppConfig
from bot.webauth import hash_password
from tests.conftest import make_config
from tests.fakes.wecom import CORP_ID, FakeWeCom


def _secret(name: str) -> str:
    return f"{name}-{secrets.token_hex(12)}"


API_TOKEN = _secret("api")
OB_TOKEN = _secret("onebot-token")
OB_SECRET = _secret("onebot-secret")
SESSION_SECRET = _secret("session")
PASSWORD = _secret("password")
APP_SECRET = _secret("wecom-app")
CONTACT_SECRET = _secret("wecom-contact")
CALLBACK_TOKEN = _secret("wecom-cb")
AES_KEY = base64.b64encode(secrets.token_bytes(32)).decode()[:43]
ROBOT_KEY = _secret("wecom-robot")
SECRETS = (
    API_TOKEN,
    OB_TOKEN,
    OB_SECRET,
    SESSION_SECRET,
    PASSWORD,
    APP_SECRET,
    CONTACT_SECRET,
    CALLBACK_TOKEN,
    AES_KEY,
    ROBOT_KEY,
)
CALLBACK_PATH = "/wecom/callback"
SESSION_COOKIE = "sopbot_session"
LOGINS = {"admin": "admin", "supervisor": "sup", "own": "wang"}  # level → username


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)  # argon2 is slow on purpose: hash once per run


def fake_wecom() -> FakeWeCom:
    return FakeWeCom(secrets={APP_SECRET: "app", CONTACT_SECRET: "contact"}, robot_key=ROBOT_KEY)


def security_config(
    tmp_path: Path, db_url: str, wecom_url: str, *, mode: str = "reverse-ws", **bot: Any
) -> AppConfig:
    digest = _password_hash()
    return make_config(
        tmp_path,
        bot={"data_dir": str(tmp_path), "database_url": db_url, **bot},
        web={
            "port": 0,
            "api_token": API_TOKEN,
            "session_secret": SESSION_SECRET,
            "users": [
                {"username": "admin", "password_hash": digest, "role": "admin"},
                {"username": "sup", "password_hash": digest, "operator_id": "sup"},
                {"username": "wang", "password_hash": digest, "operator_id": "wang"},
            ],
        },
        gateway={
            "onebot": {"access_token": OB_TOKEN, "secret": OB_SECRET, "mode": mode},
            "wecom": {
                "enabled": True,
                "corp_id": CORP_ID,
                "agent_id": 1000002,
                "app_secret": APP_SECRET,
                "contact_secret": CONTACT_SECRET,
                "callback_token": CALLBACK_TOKEN,
                "encoding_aes_key": AES_KEY,
                "robot_webhook_key": ROBOT_KEY,
                "base_url": wecom_url,
                "callback_path": CALLBACK_PATH,
            },
        },
    )


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Site:
    """The app on a loopback port, and ways to knock on it."""

    app: web.Application
    server: TestServer

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def client(self) -> aiohttp.ClientSession:
        # unsafe: the cookie jar must keep cookies for a bare IP host (127.0.0.1).
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def login(self, http: aiohttp.ClientSession, username: str, password: str) -> int:
        """Log in through the form (CSRF cookie first); the final status (303 on success)."""
        async with http.get(self.url("/login")) as r:
            page = await r.text()
        match = _CSRF.search(page)
        assert match, "the login page carries a CSRF token"
        form = {"username": username, "password": password, "csrf": match[1], "next": "/"}
        async with http.post(self.url("/login"), data=form, allow_redirects=False) as r:
            return r.status

    async def csrf(self, http: aiohttp.ClientSession) -> str:
        """The logged-in session's CSRF token, read from a page like a browser would."""
        async with http.get(self.url("/")) as r:
            match = _CSRF.search(await r.text())
        assert match, "a logged-in page carries the session's CSRF token"
        return match[1]
