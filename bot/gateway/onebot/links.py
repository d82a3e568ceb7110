"""How actions reach one bot account: over its Universal WebSocket, or over the HTTP API.

A link knows nothing about events; the gateway reads frames and hands responses to
``WsLink.store``. Both links expose ``call(action, params, timeout) -> data``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from bot.errors import ApiTimeout, FrameRejected, NetworkError
from bot.gateway.onebot.actions import ResultStore, action_frame, unwrap
from bot.gateway.onebot.parse import decode_frame, dumps

WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


class Link(Protocol):
    account_id: str | None

    async def call(self, action: str, params: Mapping[str, Any], time_limit: float) -> Any: ...

    async def close(self) -> None: ...


class WsLink:
    """One Universal WebSocket (reverse: we are the server; forward: we are the client)."""

    def __init__(self, account_id: str | None, ws: WebSocket, role: str) -> None:
        self.account_id = account_id
        self.ws = ws
        self.role = role  # "reverse-ws" / "forward-ws", for logs
        self.store = ResultStore()

    async def call(self, action: str, params: Mapping[str, Any], time_limit: float) -> Any:
        echo, future = self.store.register()
        try:
            await self.ws.send_str(dumps(action_frame(action, params, echo)))
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            self.store.discard(echo)
            raise NetworkError(f"onebot {action}: socket closed ({type(exc).__name__})") from None
        return unwrap(action, await self.store.wait(echo, future, action, time_limit))

    async def close(self) -> None:
        await self.ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"shutdown")


class HttpLink:
    """HTTP API of the implementation (``POST {api_url}/{action}``), for http-post mode."""

    def __init__(
        self,
        account_id: str,
        session: aiohttp.ClientSession | None,
        api_url: str | None,
        access_token: str | None,
        max_frame_bytes: int,
    ) -> None:
        self.account_id: str | None = account_id
        self._session = session
        self._api_url = api_url.rstrip("/") if api_url else None
        self._token = access_token
        self._max = max_frame_bytes

    async def call(self, action: str, params: Mapping[str, Any], time_limit: float) -> Any:
        if self._session is None or self._api_url is None:
            raise NetworkError("onebot http-post mode has no API url configured")
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            async with self._session.post(
                f"{self._api_url}/{action}",
                data=dumps(dict(params)),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=time_limit),
            ) as resp:
                if resp.status != 200:
                    raise NetworkError(f"onebot {action}: HTTP {resp.status}")
                body = await resp.read()
        except TimeoutError:
            raise ApiTimeout(action, time_limit) from None
        except aiohttp.ClientError as exc:
            raise NetworkError(f"onebot {action}: {type(exc).__name__}") from None
        try:
            return unwrap(action, decode_frame(body, self._max))
        except FrameRejected as exc:
            raise NetworkError(f"onebot {action}: unusable response ({exc.reason})") from None

    async def close(self) -> None:
        return None
