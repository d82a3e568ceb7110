"""``WeComClient``: the qyapi HTTP client every WeCom feature goes through.

- Access tokens are cached per secret (the 自建应用 secret and the 客户联系 secret give different
  tokens), refreshed ``token_margin`` seconds before ``expires_in`` runs out, and on errcode
  40014/42001 the call is retried once with a fresh token.
- errcode ``-1`` (system busy), transport errors and HTTP 5xx are retried with capped exponential
  backoff; ``sleep`` is injectable so tests never wait.
- Rate limits from WeCom's docs (reference/sop.md §3) are enforced with token buckets
  (``bot.ratelimit``): calls per API path per minute, and app messages per member per minute
  *and* per hour (two limiters composed) — WeCom silently drops messages over the member limits.
- Tokens and webhook keys never reach the logs: only the API path is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.errors import NetworkError
from bot.gateway.wecom.errors import (
    SystemBusy,
    TokenInvalid,
    WeComError,
    error_for,
)
from bot.ratelimit import RateLimiter

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"
TOKEN_PATH = "/cgi-bin/gettoken"
MAX_RESPONSE_BYTES = 4 << 20

Sleep = Callable[[float], Awaitable[None]]
TimeFn = Callable[[], float]
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``min(max_delay, base_delay * 2**attempt)`` between attempts; ``retries`` extra tries."""

    retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2.0 ** min(attempt, 30))


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float  # time_fn() seconds


class MemberLimiter:
    """30 messages/min *and* 1,000/hour per member: two token buckets, both must allow."""

    def __init__(
        self,
        *,
        per_minute: float,
        per_hour: float,
        time_fn: TimeFn = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._limiters = [
            RateLimiter(per_key=per_minute, per_key_period=60.0, time_fn=time_fn, sleep_fn=sleep),
            RateLimiter(per_key=per_hour, per_key_period=3600.0, time_fn=time_fn, sleep_fn=sleep),
        ]

    async def acquire(self, member: str) -> None:
        for limiter in self._limiters:
            await limiter.acquire(member)


class WeComClient:
    """qyapi client for one corp; ``secrets`` maps a name (``app``, ``contact``) to its secret."""

    def __init__(
        self,
        *,
        corp_id: str,
        secrets: Mapping[str, str],
        base_url: str = DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        time_fn: TimeFn = time.monotonic,
        calls_per_api_per_minute: float = 10_000.0,
        member_per_minute: float = 30.0,
        member_per_hour: float = 1_000.0,
        token_margin: float = 300.0,
    ) -> None:
        self.corp_id = corp_id
        self.base_url = base_url.rstrip("/")
        self._secrets = {name: s for name, s in secrets.items() if s}
        self._session = session
        self._own_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._time = time_fn
        self._token_margin = token_margin
        self._tokens: dict[str, _Token] = {}
        self._token_locks: dict[str, asyncio.Lock] = {}
        self._api_limiter = RateLimiter(
            per_key=calls_per_api_per_minute, per_key_period=60.0, time_fn=time_fn, sleep_fn=sleep
        )
        self.members = MemberLimiter(
            per_minute=member_per_minute, per_hour=member_per_hour, time_fn=time_fn, sleep=sleep
        )
        self.tokens_fetched = 0  # observability and tests: how often gettoken was called

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        if self._own_session:
            self._session = None

    def has_secret(self, name: str) -> bool:
        return name in self._secrets

    # -- tokens -------------------------------------------------------------------------

    async def access_token(self, secret: str = "app") -> str:
        """A valid token for ``secret`` (cached; fetched at most once at a time)."""
        cached = self._tokens.get(secret)
        if cached is not None and self._time() < cached.expires_at:
            return cached.value
        lock = self._token_locks.setdefault(secret, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(secret)
            if cached is not None and self._time() < cached.expires_at:
                return cached.value
            return await self._fetch_token(secret)

    def invalidate(self, secret: str, token: str | None = None) -> None:
        """Forget the cached token (only if it is still ``token``, when given)."""
        cached = self._tokens.get(secret)
        if cached is not None and (token is None or cached.value == token):
            del self._tokens[secret]

    async def _fetch_token(self, secret: str) -> str:
        if secret not in self._secrets:
            raise WeComError("gettoken", 40001, f"no {secret!r} secret configured")
        params = {"corpid": self.corp_id, "corpsecret": self._secrets[secret]}
        data = await self._send("GET", TOKEN_PATH, params, None, "gettoken")
        value = data.get("access_token")
        if not isinstance(value, str) or not value:
            raise NetworkError("wecom gettoken answered without access_token")
        expires_in = float(data.get("expires_in") or 7200)
        # Refresh early: a token that expires mid-flight costs a retry and a second gettoken.
        lifetime = max(expires_in - self._token_margin, expires_in / 2)
        self._tokens[secret] = _Token(value, self._time() + lifetime)
        self.tokens_fetched += 1
        log.info("wecom token for %s secret fetched, valid %.0fs", secret, expires_in)
        return value

    # -- calls --------------------------------------------------------------------------

    async def call(
        self,
        path: str,
        body: Json | None = None,
        *,
        params: Mapping[str, str] | None = None,
        secret: str = "app",
        method: str | None = None,
    ) -> Json:
        """Call ``/cgi-bin/...`` with an access token; POST when ``body`` is given."""
        verb = method or ("POST" if body is not None else "GET")
        action = path.removeprefix("/cgi-bin/")
        await self._api_limiter.acquire(path)
        retried_token = False
        while True:
            token = await self.access_token(secret)
            query = {**(params or {}), "access_token": token}
            try:
                return await self._send(verb, path, query, body, action)
            except TokenInvalid:
                if retried_token:
                    raise
                retried_token = True
                log.info("wecom %s: token rejected, refreshing once", action)
                self.invalidate(secret, token)

    async def call_webhook(self, path: str, key: str, body: Json) -> Json:
        """POST to a token-less endpoint authenticated by ``?key=`` (the group robot)."""
        action = path.removeprefix("/cgi-bin/")
        await self._api_limiter.acquire(path)
        return await self._send("POST", path, {"key": key}, body, action)

    async def acquire_members(self, members: Iterable[str]) -> None:
        """Wait for every member's message budget (minute and hour buckets)."""
        for member in members:
            await self.members.acquire(member)

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        body: Json | None,
        action: str,
    ) -> Json:
        """One logical request: retries ``-1``, 5xx and transport errors with backoff."""
        attempt = 0
        while True:
            try:
                data = await self._request_once(method, path, params, body, action)
                errcode = int(data.get("errcode") or 0)
                if errcode != 0:
                    raise error_for(action, errcode, str(data.get("errmsg", "")))
                return data
            except (SystemBusy, _Retryable) as exc:
                if attempt >= self._retry.retries:
                    if isinstance(exc, _Retryable):
                        raise NetworkError(f"wecom {action}: {exc}") from None
                    raise
                delay = self._retry.delay(attempt)
                attempt += 1
                log.warning("wecom %s failed (%s); retry %d in %.1fs", action, exc, attempt, delay)
                await self._sleep(delay)

    async def _request_once(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        body: Json | None,
        action: str,
    ) -> Json:
        if self._session is None:
            raise NetworkError("wecom client is not started")
        try:
            async with self._session.request(
                method,
                self.base_url + path,
                params=dict(params),
                json=body,
                timeout=self._timeout,
            ) as resp:
                if resp.status >= 500:
                    raise _Retryable(f"HTTP {resp.status}")
                if resp.status != 200:
                    raise NetworkError(f"wecom {action}: HTTP {resp.status}")
                raw = await resp.content.read(MAX_RESPONSE_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _Retryable(type(exc).__name__) from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise NetworkError(f"wecom {action}: response too large")
        try:
            data = json.loads(raw)
        except ValueError:
            raise NetworkError(f"wecom {action}: response is not JSON") from None
        if not isinstance(data, dict):
            raise NetworkError(f"wecom {action}: response is not a JSON object")
        return data


class _Retryable(Exception):
    """A transport failure worth another attempt."""
