"""A fake Matterbridge API account (``bridge/api/api.go`` behaviour) on loopback.

``GET /api/stream`` checks the Bearer token, sends the ``api_connected`` greeting, then one JSON
object per line for every ``push()``ed message (a single shared queue, like the real ring
buffer: concurrent readers compete). ``drop_streams()`` ends every open stream.
``POST /api/message`` records the body and echoes it the way the server does (channel/protocol
``api``, RFC 3339 timestamp, empty id). ``GET /api/health`` answers ``OK``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

Json = dict[str, Any]

# contrib/api.yaml config.IncomingMessage example, with the wire's RFC 3339 timestamp (F10).
INCOMING_SAMPLE: Json = {
    "account": "slack.myteam",
    "avatar": "https://secure.gravatar.com/avatar/1234567890.jpg",
    "channel": "mygreatchannel",
    "event": "",
    "gateway": "mygateway",
    "id": "slack 1541361213.030700",
    "parent_id": "slack 1541361213.030700",
    "protocol": "slack",
    "text": "Testing, testing, 1-2-3.",
    "timestamp": "2018-11-04T19:53:33.0307+00:00",
    "userid": "U4MCXJKNC",
    "username": "alice",
    "Extra": None,
}


class FakeMatterbridge:
    def __init__(self, *, token: str = "", account: str = "api.myapi") -> None:
        self.token = token
        self.account = account
        self.posted: list[Json] = []
        self.connections = 0
        self.refused = 0
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.app = web.Application()
        self.app.router.add_get("/api/stream", self._stream)
        self.app.router.add_post("/api/message", self._message)
        self.app.router.add_get("/api/health", self._health)
        self._server: TestServer | None = None

    async def start(self) -> str:
        self._server = TestServer(self.app, host="127.0.0.1")
        await self._server.start_server()
        return str(self._server.make_url("")).rstrip("/")

    async def close(self) -> None:
        self.drop_streams()
        if self._server is not None:
            await self._server.close()

    def push(self, message: Json | bytes) -> None:
        self._queue.put_nowait(
            message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        )

    def drop_streams(self) -> None:
        self._queue.put_nowait(None)

    def _authorized(self, request: web.Request) -> bool:
        return not self.token or request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            self.refused += 1
            return web.json_response({"message": "invalid or expired jwt"}, status=401)
        self.connections += 1
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        greeting = {"event": "api_connected", "account": self.account, "text": ""}
        await resp.write(json.dumps(greeting).encode() + b"\n")
        while True:
            item = await self._queue.get()
            if item is None:
                break
            await resp.write(item)
        return resp

    async def _message(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"message": "invalid or expired jwt"}, status=401)
        body = await request.json()
        self.posted.append(body)
        echo = {
            **body,
            "channel": "api",
            "protocol": "api",
            "account": self.account,
            "id": "",
            "userid": "",
            "timestamp": f"2024-06-10T14:20:{len(self.posted):02d}.123456789+08:00",
        }
        return web.json_response(echo)
