"""``MatterbridgeGateway``: chat through Matterbridge's REST API (its ``[api.NAME]`` account).

Inbound: one reader of ``GET /api/stream`` (JSON objects, one per line, after an
``api_connected`` greeting), reconnecting with capped exponential backoff and jitter. Matterbridge
dequeues that stream from the same ring buffer as ``/api/messages``, so there must be exactly one
consumer (no second poller) — and messages sent while we are disconnected may be lost.
Outbound: ``POST /api/message`` ``{text, username, gateway, event}``; Matterbridge posts it to
every bridge of the gateway. Both carry ``Authorization: Bearer <token>`` when a token is set.

Limits, by design of the bridge (reference/gateways.md §3, §6.4):

- **No message ids.** Messages reaching the api account carry an empty ``id``. We synthesize
  ``message_id = sha256(gateway|channel|userid|timestamp|text)`` so a message seen twice (for
  instance across a reconnect) has the same dedup key.
- **No reply links.** ``parent_id`` refers to the *source* platform's id, which we never see
  for the parent, so ``reply_to_message_id`` is always None. Answers to questions can only be
  linked by an ``@name`` mention (resolved to a user id seen earlier in the same chat) or by
  proximity (the next operator message).
- No private chats: the API only posts into the gateway, so ``send_private_text`` fails.
- ``chat_id`` is ``"<gateway>:<channel>"``; ``account_id`` is the gateway name; the wire
  ``timestamp`` is RFC 3339 (Go ``time.Time``), though ``contrib/api.yaml`` shows seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from bot.clock import Clock
from bot.config_wecom import MatterbridgeSection
from bot.errors import GatewayError, NetworkError
from bot.events import (
    AccountStatus,
    ChatMessage,
    ChatType,
    InboundEvent,
    Segment,
    SegmentType,
)
from bot.gateway.backoff import Backoff
from bot.gateway.base import EventSink, SentMessage
from bot.metrics import Metrics

log = logging.getLogger(__name__)

PLATFORM = "matterbridge"
STREAM_PATH = "/api/stream"
MESSAGE_PATH = "/api/message"
MAX_LINE_BYTES = 1 << 20
FUTURE_SLACK = timedelta(minutes=5)
MESSAGE_EVENTS = frozenset({"", "user_action"})  # plain text and /me
_MENTION = re.compile(r"@([^\s@,，:：]+)")
_NAMES_PER_CHAT = 2_000

Sleep = Callable[[float], Awaitable[None]]


def synthesized_id(gateway: str, channel: str, userid: str, timestamp: str, text: str) -> str:
    """The message id we give a Matterbridge message (it has none of its own)."""
    raw = "|".join((gateway, channel, userid, timestamp, text))
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def parse_timestamp(value: object, received_at: datetime) -> datetime:
    """RFC 3339 (the wire) or epoch seconds (the API doc); clamps the far future."""
    sent: datetime | None = None
    if isinstance(value, int | float):
        sent = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str) and value:
        try:
            sent = datetime.fromtimestamp(float(value), UTC)
        except ValueError:
            with contextlib.suppress(ValueError):
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
                if parsed.tzinfo is not None:
                    sent = parsed.astimezone(UTC)
    if sent is None or sent - received_at > FUTURE_SLACK:
        return received_at
    return sent


class MatterbridgeGateway:
    """One Matterbridge gateway reached through one api account."""

    platform = PLATFORM

    def __init__(
        self,
        *,
        url: str,
        gateway: str,
        sink: EventSink,
        clock: Clock,
        metrics: Metrics,
        token: str = "",
        username: str = "sopbot",
        session: aiohttp.ClientSession | None = None,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        max_line_bytes: int = MAX_LINE_BYTES,
        timeout: float = 30.0,
    ) -> None:
        if not gateway:
            raise ValueError("matterbridge needs the gateway name")
        self.url = url.rstrip("/")
        self.gateway = gateway
        self.username = username
        self._token = token
        self._sink = sink
        self._clock = clock
        self._metrics = metrics
        self._session = session
        self._own_session = session is None
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._max_line = max_line_bytes
        self._timeout = timeout
        self._online = False
        self._task: asyncio.Task[None] | None = None
        # chat_id -> username -> userid, so "@alice" can name a sender seen before.
        self._names: dict[str, OrderedDict[str, str]] = {}

    @classmethod
    def from_config(
        cls,
        section: MatterbridgeSection,
        *,
        sink: EventSink,
        clock: Clock,
        metrics: Metrics,
        **overrides: Any,
    ) -> MatterbridgeGateway:
        return cls(
            url=section.url,
            gateway=section.gateway,
            token=section.token.get_secret_value(),
            username=section.username,
            backoff=overrides.pop("backoff", None) or Backoff(cap=section.reconnect_max_delay),
            sink=sink,
            clock=clock,
            metrics=metrics,
            **overrides,
        )

    # -- lifecycle ----------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return []  # we are the client of Matterbridge's API

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        self._task = asyncio.create_task(self._run_stream(), name="matterbridge-stream")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None and self._own_session:
            await self._session.close()
            self._session = None

    def online_accounts(self) -> list[str]:
        return [self.gateway] if self._online else []

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    # -- inbound ------------------------------------------------------------------------

    async def _run_stream(self) -> None:
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout, sock_read=None)
        while True:
            try:
                async with self._session.get(
                    self.url + STREAM_PATH, headers=self._headers(), timeout=timeout
                ) as resp:
                    if resp.status != 200:
                        log.warning("matterbridge stream refused: HTTP %d", resp.status)
                    else:
                        await self._read(resp)
                        log.warning("matterbridge stream ended")
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("matterbridge stream failed: %s", type(exc).__name__)
            await self._set_online(False, "disconnected")
            delay = self._backoff.next_delay()
            log.info("matterbridge reconnecting in %.1fs", delay)
            await self._sleep(delay)

    async def _read(self, resp: aiohttp.ClientResponse) -> None:
        buffer = b""
        skipping = False  # inside an oversize line: drop until its newline
        async for chunk in resp.content.iter_any():
            buffer += chunk
            while (end := buffer.find(b"\n")) >= 0:
                line, buffer = buffer[:end], buffer[end + 1 :]
                if skipping:
                    skipping = False
                    continue
                await self._on_line(line)
            if len(buffer) > self._max_line:
                self._reject("too_large", len(buffer))
                buffer, skipping = b"", True

    async def _on_line(self, line: bytes) -> None:
        if not line.strip():
            return
        if len(line) > self._max_line:
            self._reject("too_large", len(line))
            return
        try:
            obj = json.loads(line)
        except ValueError:
            self._reject("bad_json", len(line))
            return
        if not isinstance(obj, dict):
            self._reject("not_object", len(line))
            return
        event = str(obj.get("event") or "")
        received = self._metrics.events_received
        if event == "api_connected":
            self._backoff.reset()
            received.labels(PLATFORM, "lifecycle").inc()
            await self._set_online(True, "connected")
            return
        msg = self.parse_message(obj, self._clock.now())
        if msg is None:
            received.labels(PLATFORM, "ignored").inc()
            return
        received.labels(PLATFORM, "message").inc()
        await self._emit(msg)

    def _reject(self, reason: str, size: int) -> None:
        self._metrics.events_rejected.labels(PLATFORM, reason).inc()
        log.warning("matterbridge line rejected reason=%s bytes=%d", reason, size)

    def parse_message(self, obj: Mapping[str, Any], received_at: datetime) -> ChatMessage | None:
        """A stream object as a group ``ChatMessage``; None for events and empty texts."""
        if str(obj.get("event") or "") not in MESSAGE_EVENTS:
            return None
        text = str(obj.get("text") or "")
        if not text.strip():
            return None
        gateway = str(obj.get("gateway") or self.gateway)
        channel = str(obj.get("channel") or "")
        username = str(obj.get("username") or "")
        userid = str(obj.get("userid") or username)
        timestamp = str(obj.get("timestamp") or "")
        chat_id = f"{gateway}:{channel}"
        names = self._names.setdefault(chat_id, OrderedDict())
        mentions: list[str] = []
        segments: list[Segment] = [Segment(SegmentType.TEXT, {"text": text})]
        for name in _MENTION.findall(text):
            uid = names.get(name)
            if uid is not None and uid not in mentions:
                mentions.append(uid)
                segments.append(Segment(SegmentType.MENTION, {"user_id": uid, "name": name}))
        if username:
            names[username.strip()] = userid
            names.move_to_end(username.strip())
            if len(names) > _NAMES_PER_CHAT:
                names.popitem(last=False)
        return ChatMessage(
            platform=PLATFORM,
            account_id=self.gateway,
            chat_type=ChatType.GROUP,
            chat_id=chat_id,
            message_id=synthesized_id(gateway, channel, userid, timestamp, text),
            sender_id=userid,
            text=text,
            sent_at=parse_timestamp(obj.get("timestamp"), received_at),
            received_at=received_at,
            sender_name=username,
            mention_user_ids=tuple(mentions),
            is_self=str(obj.get("protocol") or "") == "api" and username == self.username,
            segments=tuple(segments),
            raw=dict(obj),
        )

    async def _emit(self, event: InboundEvent) -> None:
        try:
            await self._sink(event)
        except Exception:
            log.exception("matterbridge sink failed on %s", type(event).__name__)

    async def _set_online(self, online: bool, reason: str) -> None:
        if self._online == online:
            return
        self._online = online
        self._metrics.connected_accounts.labels(PLATFORM).set(1 if online else 0)
        log.info(
            "matterbridge %s %s (%s)", self.gateway, "online" if online else "offline", reason
        )
        status = AccountStatus(PLATFORM, self.gateway, online, self._clock.now(), reason)
        await self._emit(status)

    # -- outbound -----------------------------------------------------------------------

    async def send_group_text(
        self,
        group_id: str,
        text: str,
        *,
        account_id: str | None = None,
        reply_to: str | None = None,
    ) -> SentMessage:
        """Post into the gateway (``group_id`` is the gateway or ``gateway:channel``)."""
        if group_id.split(":", 1)[0] != self.gateway:
            raise GatewayError(f"matterbridge only posts to gateway {self.gateway!r}")
        if self._session is None:
            raise NetworkError("matterbridge gateway is not started")
        body = {"text": text, "username": self.username, "gateway": self.gateway, "event": ""}
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with self._session.post(
                self.url + MESSAGE_PATH,
                json=body,
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as resp:
                if resp.status != 200:
                    raise NetworkError(f"matterbridge POST /api/message: HTTP {resp.status}")
                echo = await resp.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            self._metrics.sends_failed.labels(PLATFORM).inc()
            raise NetworkError(f"matterbridge POST /api/message: {type(exc).__name__}") from None
        except NetworkError:
            self._metrics.sends_failed.labels(PLATFORM).inc()
            raise
        self._metrics.send_latency.labels(PLATFORM).observe(loop.time() - started)
        echo = echo if isinstance(echo, dict) else {}
        message_id = synthesized_id(
            str(echo.get("gateway") or self.gateway),
            str(echo.get("channel") or "api"),
            str(echo.get("userid") or self.username),
            str(echo.get("timestamp") or ""),
            text,
        )
        log.info("matterbridge post to %s (%d chars)", self.gateway, len(text))
        return SentMessage(PLATFORM, self.gateway, message_id)

    async def send_private_text(
        self, user_id: str, text: str, *, account_id: str | None = None
    ) -> SentMessage:
        raise GatewayError("matterbridge has no private messages")
