"""A fake OneBot v11 implementation that speaks the NapCat wire format over real sockets.

It plays every transport role the gateway supports:

- reverse-WS client: ``await fake.connect_reverse(url)`` with NapCat's headers (``X-Self-ID``,
  ``Authorization: Bearer``, ``X-Client-Role: Universal``, ``User-Agent: OneBot/11``);
- forward-WS server: ``url = await fake.serve()``; ``await fake.restart()`` drops every client
  and comes back on the same port; it sends ``lifecycle connect`` first, like NapCat;
- HTTP-POST poster: ``await fake.post_event(url, event)``, signed (``X-Signature``) if it has
  a secret; its server also answers the HTTP API (``POST /:action``).

Actions are answered from the socket they arrive on (``send_*_msg`` → a fresh ``message_id``);
``fail[action] = retcode`` makes one fail, ``silent`` leaves it unanswered, ``results`` overrides
``data``. Every action frame received is kept in ``calls``. Event builders return plain dicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import aiohttp
from aiohttp import web

from bot.events import InboundEvent
from bot.gateway.onebot import cq

Format = Literal["array", "string"]
WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse
DEFAULT_TIME = 1_718_000_000  # 2024-06-10T06:13:20Z


class FakeOneBot:
    """One bot account of a OneBot implementation (NapCat-like)."""

    def __init__(
        self,
        self_id: str = "10001",
        *,
        token: str | None = None,
        secret: str | None = None,
        time: int = DEFAULT_TIME,
    ) -> None:
        self.self_id = self_id
        self.token = token
        self.secret = secret
        self.time = time
        self.calls: list[dict[str, Any]] = []
        self.fail: dict[str, int] = {}
        self.silent: set[str] = set()
        self.results: dict[str, Any] = {}
        self.handshakes = 0  # forward-WS connections accepted
        self._ids = itertools.count(900_001)
        self._session: aiohttp.ClientSession | None = None
        self._sockets: list[WebSocket] = []
        self._readers: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # -- event builders ---------------------------------------------------------------------

    def group_message(
        self,
        text: str = "",
        *,
        group_id: int = 5001,
        user_id: int = 20001,
        message_id: int | None = None,
        segments: list[dict[str, Any]] | None = None,
        fmt: Format = "array",
        card: str = "",
        nickname: str = "顾客",
        role: str = "member",
        time: int | None = None,
        post_type: str = "message",
    ) -> dict[str, Any]:
        """A group message event; ``segments`` replace the single text segment."""
        event = self._message("group", text, user_id, message_id, segments, fmt, time, post_type)
        event["group_id"] = group_id
        event["sub_type"] = "normal"
        event["anonymous"] = None
        event["sender"] = {
            "user_id": user_id,
            "nickname": nickname,
            "card": card,
            "sex": "unknown",
            "age": 0,
            "role": role,
        }
        return event

    def private_message(
        self,
        text: str = "",
        *,
        user_id: int = 20001,
        message_id: int | None = None,
        segments: list[dict[str, Any]] | None = None,
        fmt: Format = "array",
        time: int | None = None,
    ) -> dict[str, Any]:
        event = self._message("private", text, user_id, message_id, segments, fmt, time, "message")
        event["sub_type"] = "friend"
        event["sender"] = {"user_id": user_id, "nickname": "顾客", "sex": "unknown", "age": 0}
        return event

    def self_message(
        self, text: str, *, group_id: int | None = 5001, target_id: int | None = None
    ) -> dict[str, Any]:
        """NapCat ``message_sent`` (reportSelfMessage): a message our own account sent."""
        user, kind = int(self.self_id), "message_sent"
        if group_id is not None:
            event = self.group_message(text, group_id=group_id, user_id=user, post_type=kind)
        else:
            event = self._message("private", text, user, None, None, "array", None, kind)
            event["target_id"] = target_id
            event["sender"] = {"user_id": user, "nickname": "me"}
        event["message_sent_type"] = "self"
        return event

    def _message(
        self,
        message_type: str,
        text: str,
        user_id: int,
        message_id: int | None,
        segments: list[dict[str, Any]] | None,
        fmt: Format,
        time: int | None,
        post_type: str,
    ) -> dict[str, Any]:
        array = segments if segments is not None else [{"type": "text", "data": {"text": text}}]
        raw = cq.encode(array)
        return {
            "time": self.time if time is None else time,
            "self_id": int(self.self_id),
            "post_type": post_type,
            "message_type": message_type,
            "message_id": next(self._ids) if message_id is None else message_id,
            "user_id": user_id,
            "message": raw if fmt == "string" else array,
            "raw_message": raw,
            "font": 14,
        }

    def notice(self, notice_type: str, **fields: Any) -> dict[str, Any]:
        return {
            "time": self.time,
            "self_id": int(self.self_id),
            "post_type": "notice",
            "notice_type": notice_type,
            **fields,
        }

    def heartbeat(self, interval_ms: int = 30_000, *, online: bool = True) -> dict[str, Any]:
        return {
            "time": self.time,
            "self_id": int(self.self_id),
            "post_type": "meta_event",
            "meta_event_type": "heartbeat",
            "status": {"online": online, "good": True},
            "interval": interval_ms,
        }

    def lifecycle(self, sub_type: str = "connect") -> dict[str, Any]:
        return {
            "time": self.time,
            "self_id": int(self.self_id),
            "post_type": "meta_event",
            "meta_event_type": "lifecycle",
            "sub_type": sub_type,
        }

    # -- actions ----------------------------------------------------------------------------

    def answer(self, frame: Mapping[str, Any]) -> dict[str, Any] | None:
        """The response to an action frame, or None to stay silent."""
        action = str(frame.get("action"))
        self.calls.append(dict(frame))
        if action in self.silent:
            return None
        echo = frame.get("echo")
        if action in self.fail:
            code = self.fail[action]
            return {
                "status": "failed",
                "retcode": code,
                "data": None,
                "message": "fake failure",
                "wording": "fake failure",
                "echo": echo,
            }
        if action in self.results:
            data = self.results[action]
        elif action in ("send_group_msg", "send_private_msg", "send_msg"):
            data = {"message_id": next(self._ids)}
        elif action == "get_login_info":
            data = {"user_id": int(self.self_id), "nickname": "fake"}
        else:
            return {"status": "failed", "retcode": 1404, "data": None, "echo": echo}
        return {"status": "ok", "retcode": 0, "data": data, "message": "", "echo": echo}

    def calls_of(self, action: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c.get("action") == action]

    async def _serve_socket(self, ws: WebSocket) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            if isinstance(frame, dict) and "action" in frame:
                reply = self.answer(frame)
                if reply is not None:
                    await ws.send_str(json.dumps(reply, ensure_ascii=False))

    # -- pushing ----------------------------------------------------------------------------

    async def push(self, *events: Mapping[str, Any]) -> None:
        """Send events, in order, on every open socket."""
        for event in events:
            await self.push_raw(json.dumps(event, ensure_ascii=False))

    async def push_raw(self, text: str | bytes) -> None:
        for ws in list(self._sockets):
            if ws.closed:
                continue
            if isinstance(text, bytes):
                await ws.send_bytes(text)
            else:
                await ws.send_str(text)

    @property
    def connected(self) -> bool:
        return any(not ws.closed for ws in self._sockets)

    # -- reverse WS: we are the client ------------------------------------------------------

    def reverse_headers(self) -> dict[str, str]:
        headers = {
            "X-Self-ID": self.self_id,
            "X-Client-Role": "Universal",
            "User-Agent": "OneBot/11",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def connect_reverse(
        self, url: str | Any, *, headers: Mapping[str, str] | None = None
    ) -> aiohttp.ClientWebSocketResponse:
        """Connect to our reverse-WS endpoint; ``WSServerHandshakeError`` if refused."""
        ws = await self._client().ws_connect(
            url, headers=self.reverse_headers() if headers is None else dict(headers)
        )
        self._track(ws)
        return ws

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def _track(self, ws: WebSocket) -> None:
        self._sockets.append(ws)
        task = asyncio.create_task(self._serve_socket(ws))
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    async def disconnect(self) -> None:
        """Close every socket this fake holds (client and server side)."""
        for ws in list(self._sockets):
            await ws.close()
        self._sockets.clear()
        if self._readers:
            await asyncio.gather(*self._readers, return_exceptions=True)

    async def close(self) -> None:
        await self.disconnect()
        await self.stop_server()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- forward WS: we are the server ------------------------------------------------------

    async def serve(self, host: str = "127.0.0.1") -> str:
        """Start the forward-WS server (same port across restarts); returns its ``ws://`` URL."""
        app = web.Application()
        app.router.add_get("/", self._handle_ws)
        app.router.add_post("/{action}", self._handle_http_action)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        # Bind the socket ourselves so a restart can come back on the very same port.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, self._port))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return f"ws://{host}:{self._port}/"

    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.handshakes += 1
        self._sockets.append(ws)
        await ws.send_str(json.dumps(self.lifecycle("connect")))
        try:
            await self._serve_socket(ws)
        finally:
            with contextlib.suppress(ValueError):
                self._sockets.remove(ws)
        return ws

    async def _handle_http_action(self, request: web.Request) -> web.StreamResponse:
        """The HTTP API (``POST /:action``), used by the gateway in http-post mode."""
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401)
        params = await request.json() if request.can_read_body else {}
        reply = self.answer({"action": request.match_info["action"], "params": params})
        if reply is None:
            await asyncio.sleep(3600)  # "no response": the caller's timeout must fire
        reply = dict(reply or {})
        reply.pop("echo", None)
        return web.json_response(reply)

    async def stop_server(self) -> None:
        if self._runner is None:
            return
        for ws in list(self._sockets):
            if isinstance(ws, web.WebSocketResponse):
                await ws.close()
        await self._runner.cleanup()
        self._runner = None

    async def restart(self) -> str:
        """Simulate an implementation restart: drop clients, then listen again on the same port."""
        await self.stop_server()
        return await self.serve()

    # -- HTTP POST: we post events ----------------------------------------------------------

    def sign(self, body: bytes) -> str:
        assert self.secret is not None
        return "sha1=" + hmac.new(self.secret.encode(), body, hashlib.sha1).hexdigest()

    async def post_event(
        self,
        url: str | Any,
        event: Mapping[str, Any] | bytes,
        *,
        signature: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> int:
        """POST one event like NapCat's http-client; returns the HTTP status."""
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        sent = {
            "Content-Type": "application/json",
            "X-Self-ID": self.self_id,
            "User-Agent": "OneBot/11",
        }
        if signature is not None:
            sent["X-Signature"] = signature
        elif self.secret:
            sent["X-Signature"] = self.sign(body)
        sent.update(headers or {})
        async with self._client().post(url, data=body, headers=sent) as resp:
            await resp.read()
            return resp.status


class RecordingSink:
    """An ``EventSink`` that keeps every event and lets a test await the ones it expects."""

    def __init__(self) -> None:
        self.events: list[InboundEvent] = []
        self._changed = asyncio.Event()
        self.gate: asyncio.Event | None = (
            None  # when set up, each call waits for it (backpressure)
        )

    async def __call__(self, event: InboundEvent) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.events.append(event)
        self._changed.set()

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(
        self, predicate: Callable[[list[InboundEvent]], bool], limit: float = 3.0
    ) -> list[InboundEvent]:
        """Return once ``predicate(events)`` holds; fail after ``limit`` seconds (a guard only)."""

        async def poll() -> None:
            while not predicate(self.events):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(poll(), limit)
        return self.events

    async def wait_count(self, kind: type[Any], count: int, limit: float = 3.0) -> list[Any]:
        await self.wait_for(lambda _: len(self.of(kind)) >= count, limit)
        return self.of(kind)


def segs(*items: tuple[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Shorthand for array-format segments: ``segs(("reply", {"id": 1}), ("text", {...}))``."""
    return [{"type": kind, "data": dict(data)} for kind, data in items]


async def wait_until(check: Callable[[], bool], limit: float = 3.0) -> None:
    """Poll ``check`` on the loop (network I/O has no event to await); guard after ``limit``."""

    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), limit)


def texts(events: Iterable[Any]) -> list[str]:
    return [e.text for e in events if hasattr(e, "text")]


def counter(metrics: Any, name: str, **labels: str) -> float:
    """Current value of a Prometheus sample (0 when never incremented)."""
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)
