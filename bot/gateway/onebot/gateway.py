"""``OneBotGateway``: the OneBot v11 ``Gateway`` over every connected bot account.

It owns the per-account state (which link carries actions, heartbeat health, groups seen, recent
message authors for reply resolution) and the frame pipeline shared by all transports:
decode → response or event → parse → sink. Transports live in ``server`` (reverse WS, HTTP POST)
and ``client`` (forward WS). A bad frame is counted and logged, never fatal to its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from aiohttp import web

from bot.clock import Clock
from bot.errors import ActionFailed, FrameRejected, GatewayError, NetworkError
from bot.events import (
    AccountStatus,
    ChatMessage,
    ChatType,
    InboundEvent,
    MemberChange,
    MessageRecall,
)
from bot.gateway.backoff import Backoff
from bot.gateway.base import EventSink, SentMessage
from bot.gateway.onebot import server
from bot.gateway.onebot.client import Sleep, run_forward_ws
from bot.gateway.onebot.history import parse_history
from bot.gateway.onebot.links import HttpLink, Link, WsLink
from bot.gateway.onebot.memory import AccountMemory
from bot.gateway.onebot.parse import (
    PLATFORM,
    Heartbeat,
    Ignored,
    Lifecycle,
    Parsed,
    decode_frame,
    is_response,
    parse_event,
)
from bot.metrics import Metrics

log = logging.getLogger(__name__)

Mode = Literal["reverse-ws", "forward-ws", "http-post"]
MODES: tuple[Mode, ...] = ("reverse-ws", "forward-ws", "http-post")
HEARTBEAT_MISSES = 3


@dataclass(slots=True)
class _Health:
    online: bool = False
    last_beat: float | None = None  # loop.time(): a transport timeout, not a business time
    interval: float | None = None  # seconds, from the last heartbeat frame


class OneBotGateway:
    """OneBot v11 adapter; one instance serves all accounts of one transport mode."""

    platform = PLATFORM

    def __init__(
        self,
        *,
        sink: EventSink,
        clock: Clock,
        metrics: Metrics,
        access_token: str | None = None,
        secret: str | None = None,
        mode: Mode = "reverse-ws",
        url: str | None = None,
        action_timeout: float = 30.0,
        max_frame_bytes: int = 1 << 20,
        watchdog_period: float = 5.0,
        ws_ping_interval: float | None = 30.0,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        backfill_count: int = 20,
        keep_raw: bool = True,
    ) -> None:
        """``url``: forward-ws endpoint, or the HTTP API root in http-post mode (optional).

        ``backfill_count``: messages of history asked per known group when an account comes
        back after a drop (0: never ask); implementations without the action are asked once.
        ``keep_raw``: keep each message's decoded frame on the event (``ChatMessage.raw``);
        the app keeps it only when the intake stores it.
        """
        if mode not in MODES:
            raise ValueError(f"unknown onebot mode {mode!r}; expected one of {MODES}")
        if mode == "forward-ws" and not url:
            raise ValueError("onebot forward-ws mode needs a url")
        self.access_token = access_token or None
        self.secret = secret or None
        self.mode = mode
        self.max_frame_bytes = max_frame_bytes
        # aiohttp closes the socket on frames over its own limit; keep that limit well above
        # ours so an oversized frame is rejected alone and the connection stays up.
        self.transport_max_bytes = max(max_frame_bytes * 8, 4 << 20)
        self.ws_ping_interval = ws_ping_interval
        self._sink = sink
        self._clock = clock
        self._metrics = metrics
        # Label children resolved once: labels() per event is measurable at 10k events/s.
        self._received = {
            kind: metrics.events_received.labels(PLATFORM, kind)
            for kind in ("heartbeat", "lifecycle", "ignored", "message", "recall", "member")
        }
        self._url = url
        self._action_timeout = action_timeout
        self._watchdog_period = watchdog_period
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._backfill_count = backfill_count
        self._keep_raw = keep_raw
        self._links: dict[str, Link] = {}
        self._reserved: set[str] = set()
        self._ws_links: set[WsLink] = set()
        self._health: dict[str, _Health] = {}
        self._seen: set[str] = set()
        self._no_history: set[str] = set()
        self._memory = AccountMemory()
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._closing = False

    # -- lifecycle ----------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        """Routes to add to the app: the WS endpoint or the HTTP POST receiver, by mode."""
        if self.mode == "reverse-ws":
            return [web.get(server.WS_PATH, self._handle_ws)]
        if self.mode == "http-post":
            return [web.post(server.HTTP_PATH, self._handle_http)]
        return []

    async def start(self) -> None:
        self._closing = False
        if self.access_token is None and self.mode == "reverse-ws":
            log.warning("onebot reverse-ws endpoint has no access token: anyone can connect")
        self._spawn(self._watchdog(), "onebot-watchdog")
        if self.mode == "forward-ws" or (self.mode == "http-post" and self._url):
            self._session = aiohttp.ClientSession()
        if self.mode == "forward-ws" and self._session is not None and self._url is not None:
            self._spawn(
                run_forward_ws(
                    self, self._url, self._session, backoff=self._backoff, sleep=self._sleep
                ),
                "onebot-forward-ws",
            )

    async def stop(self) -> None:
        """Cancel background tasks and close every socket; safe to call twice."""
        self._closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for link in list(self._ws_links):
            with contextlib.suppress(Exception):
                await link.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        if self._closing:
            return web.Response(status=503)
        return await server.handle_reverse_ws(self, request)

    async def _handle_http(self, request: web.Request) -> web.StreamResponse:
        return await server.handle_http_post(self, request)

    # -- transports call these -----------------------------------------------------------

    def reserve(self, account_id: str) -> bool:
        """Claim ``account_id`` for a new reverse-WS connection; False if it is taken."""
        if account_id in self._links or account_id in self._reserved:
            return False
        self._reserved.add(account_id)
        return True

    def release(self, account_id: str) -> None:
        self._reserved.discard(account_id)

    async def run_link(self, link: WsLink) -> None:
        """Read one WebSocket until it closes; each event is sunk before the next read."""
        self._ws_links.add(link)
        try:
            if link.account_id is not None:
                await self._attach(link.account_id, link)
            async for msg in link.ws:
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    await self._on_frame(link, msg.data)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    log.warning("onebot %s %s socket error", link.role, link.account_id)
                    break
        finally:
            self._ws_links.discard(link)
            link.store.fail_all(NetworkError("onebot connection closed"))
            account = link.account_id
            if account is not None and self._links.get(account) is link:
                del self._links[account]
                log.info("onebot %s %s disconnected", link.role, account)
                await self._set_online(account, False, "disconnected")

    async def accept_http_frame(self, account_id: str, body: bytes) -> bool:
        """One HTTP-POSTed event; False (and counted) when the frame is unusable."""
        try:
            parsed = parse_event(
                decode_frame(body, self.max_frame_bytes),
                received_at=self._clock.now(),
                account_id=account_id,
                reply_sender=self._memory.reply_sender,
                keep_raw=self._keep_raw,
            )
        except FrameRejected as exc:
            self.count_rejected(account_id, exc, len(body))
            return False
        except Exception as exc:
            self._count_parser_bug(account_id, exc, len(body))
            return False
        if account_id not in self._links:
            link = HttpLink(
                account_id, self._session, self._url, self.access_token, self.max_frame_bytes
            )
            await self._attach(account_id, link)
        await self._dispatch(parsed)
        return True

    def count_rejected(self, account_id: str | None, exc: FrameRejected, size: int = -1) -> None:
        self._metrics.events_rejected.labels(PLATFORM, exc.reason).inc()
        # One line, no payload: the detail is a field name at most.
        log.warning(
            "onebot frame rejected account=%s reason=%s field=%s bytes=%d",
            account_id or "?",
            exc.reason,
            exc.detail or "-",
            size,
        )

    def _count_parser_bug(self, account_id: str | None, exc: Exception, size: int) -> None:
        self._metrics.events_rejected.labels(PLATFORM, "internal_error").inc()
        # The type only: the exception text may quote the frame, customer text included.
        log.error(
            "onebot frame crashed the parser account=%s error=%s bytes=%d",
            account_id or "?",
            type(exc).__name__,
            size,
        )

    # -- frame pipeline -----------------------------------------------------------------

    async def _on_frame(self, link: WsLink, data: str | bytes) -> None:
        try:
            frame = decode_frame(data, self.max_frame_bytes)
            if is_response(frame):
                if not link.store.resolve(frame):
                    raise FrameRejected("unmatched_echo")
                return
            parsed = parse_event(
                frame,
                received_at=self._clock.now(),
                account_id=link.account_id,
                reply_sender=self._memory.reply_sender,
                keep_raw=self._keep_raw,
            )
        except FrameRejected as exc:
            self.count_rejected(link.account_id, exc, len(data))
            return
        except Exception as exc:
            # A parser bug must cost one frame, not the connection and every event behind it.
            self._count_parser_bug(link.account_id, exc, len(data))
            return
        if link.account_id is None:
            # Forward WS: the implementation tells us who it is in its first event.
            link.account_id = parsed.account_id
            await self._attach(parsed.account_id, link)
        await self._dispatch(parsed)

    async def _attach(self, account_id: str, link: Link) -> None:
        self._links[account_id] = link
        health = self._health.setdefault(account_id, _Health())
        health.last_beat = asyncio.get_running_loop().time()
        health.interval = None  # the watchdog starts with this connection's first heartbeat
        returning = account_id in self._seen
        self._seen.add(account_id)
        await self._set_online(account_id, True, "connected")
        if returning and self._backfill_count > 0:
            self._spawn(self._backfill_quietly(account_id), f"onebot-backfill-{account_id}")

    async def _dispatch(self, parsed: Parsed) -> None:
        account = parsed.account_id
        received = self._received
        match parsed:
            case Heartbeat():
                health = self._health.setdefault(account, _Health())
                health.last_beat = asyncio.get_running_loop().time()
                health.interval = parsed.interval_s or health.interval
                received["heartbeat"].inc()
                if parsed.online is False:
                    await self._set_online(account, False, "implementation_offline")
                elif account in self._links:
                    await self._set_online(account, True, "heartbeat")
            case Lifecycle():
                received["lifecycle"].inc()
                online = parsed.sub_type != "disable"
                await self._set_online(account, online, f"lifecycle_{parsed.sub_type}")
            case Ignored():
                received["ignored"].inc()
                log.debug("onebot %s ignored %s", account, parsed.kind)
            case ChatMessage():
                received["message"].inc()
                self._memory.note_message(parsed)
                await self._emit(parsed)
            case MessageRecall():
                received["recall"].inc()
                await self._emit(parsed)
            case MemberChange():
                received["member"].inc()
                self._memory.note_member(parsed)
                await self._emit(parsed)

    async def _emit(self, event: InboundEvent) -> None:
        try:
            await self._sink(event)
        except Exception:
            # A failing sink must not take the connection (and every later event) down with it.
            log.exception(
                "onebot sink failed on %s for %s", type(event).__name__, event.account_id
            )

    async def _set_online(self, account_id: str, online: bool, reason: str) -> None:
        health = self._health.setdefault(account_id, _Health())
        if health.online == online:
            return
        health.online = online
        self._metrics.connected_accounts.labels(PLATFORM).set(len(self.online_accounts()))
        log.info(
            "onebot account %s %s (%s)", account_id, "online" if online else "offline", reason
        )
        await self._emit(AccountStatus(PLATFORM, account_id, online, self._clock.now(), reason))

    async def _watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._watchdog_period)
            now = loop.time()
            for account, health in list(self._health.items()):
                if (
                    health.online
                    and health.interval is not None
                    and health.last_beat is not None
                    and now - health.last_beat > HEARTBEAT_MISSES * health.interval
                ):
                    await self._set_online(account, False, "heartbeat_timeout")

    # -- outbound (Gateway) -------------------------------------------------------------

    def online_accounts(self) -> list[str]:
        return [a for a in self._links if self._health.get(a, _Health()).online]

    async def call(self, account_id: str, action: str, **params: Any) -> Any:
        """Run any OneBot action on ``account_id``; returns the response ``data``."""
        link = self._links.get(account_id)
        if link is None:
            raise NetworkError(f"onebot account {account_id} is not connected")
        return await link.call(action, params, self._action_timeout)

    async def send_group_text(
        self,
        group_id: str,
        text: str,
        *,
        account_id: str | None = None,
        reply_to: str | None = None,
    ) -> SentMessage:
        account = self._pick_account(account_id, group_id)
        message: list[dict[str, Any]] = []
        if reply_to is not None:
            message.append({"type": "reply", "data": {"id": reply_to}})
        message.append({"type": "text", "data": {"text": text}})
        params = {"group_id": _wire_id(group_id), "message": message}
        return await self._send(account, "send_group_msg", params, ChatType.GROUP, group_id)

    async def send_private_text(
        self, user_id: str, text: str, *, account_id: str | None = None
    ) -> SentMessage:
        account = self._pick_account(account_id, None)
        message = [{"type": "text", "data": {"text": text}}]
        params = {"user_id": _wire_id(user_id), "message": message}
        return await self._send(account, "send_private_msg", params, ChatType.PRIVATE, user_id)

    def _pick_account(self, account_id: str | None, group_id: str | None) -> str:
        if account_id is not None:
            if account_id not in self._links:
                raise NetworkError(f"onebot account {account_id} is not connected")
            return account_id
        online = self.online_accounts()
        if not online:
            raise NetworkError("no onebot account is online")
        if group_id is not None:
            for account in online:
                if self._memory.in_group(account, group_id):
                    return account
        return online[0]

    async def _send(
        self,
        account: str,
        action: str,
        params: dict[str, Any],
        chat_type: ChatType,
        chat_id: str,
    ) -> SentMessage:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            data = await self.call(account, action, **params)
        except GatewayError as exc:
            self._metrics.sends_failed.labels(PLATFORM).inc()
            log.warning("onebot %s to %s via %s failed: %s", action, chat_id, account, exc)
            raise
        self._metrics.send_latency.labels(PLATFORM).observe(loop.time() - started)
        raw_id = data.get("message_id") if isinstance(data, Mapping) else None
        message_id = "" if raw_id is None else str(raw_id)
        if message_id:
            # Replies to this message then resolve to us as the quoted author.
            self._memory.remember(account, chat_type, chat_id, message_id, account)
        log.info("onebot %s to %s via %s: message %s", action, chat_id, account, message_id)
        return SentMessage(PLATFORM, account, message_id)

    # -- backfill ---------------------------------------------------------------------------

    async def get_group_msg_history(
        self,
        account_id: str,
        group_id: str,
        *,
        message_seq: str | None = None,
        count: int = 20,
    ) -> list[ChatMessage] | None:
        """Recent group messages (go-cqhttp extension); None when the implementation lacks it."""
        if account_id in self._no_history:
            return None
        params: dict[str, Any] = {"group_id": _wire_id(group_id), "count": count}
        if message_seq is not None:
            params["message_seq"] = _wire_id(message_seq)
        try:
            data = await self.call(account_id, "get_group_msg_history", **params)
        except ActionFailed as exc:
            # Unknown action (retcode 1404) or any refusal: treat as unsupported, remember it.
            self._no_history.add(account_id)
            log.info("onebot %s: no get_group_msg_history (%s); not asked again", account_id, exc)
            return None
        messages, rejected = parse_history(
            data,
            account_id,
            group_id,
            received_at=self._clock.now(),
            reply_sender=self._memory.reply_sender,
            keep_raw=self._keep_raw,
        )
        for bad in rejected:
            self.count_rejected(account_id, bad)
        return messages

    async def backfill(self, account_id: str, *, count: int = 20) -> int:
        """Push recent history of every group seen on ``account_id`` to the sink (dedup is the
        store's job: ``ChatMessage.dedup_key``). Returns how many messages were delivered."""
        delivered = 0
        for group_id in self._memory.groups_of(account_id):
            messages = await self.get_group_msg_history(account_id, group_id, count=count)
            if messages is None:
                break
            for msg in messages:
                self._metrics.events_received.labels(PLATFORM, "backfill").inc()
                self._memory.note_message(msg)
                await self._emit(msg)
                delivered += 1
        return delivered

    async def _backfill_quietly(self, account_id: str) -> None:
        try:
            delivered = await self.backfill(account_id, count=self._backfill_count)
        except GatewayError as exc:
            log.warning("onebot backfill for %s stopped: %s", account_id, exc)
            return
        log.info("onebot backfill for %s: %d messages", account_id, delivered)


def _wire_id(value: str) -> int | str:
    """OneBot ids are int64 on the wire; keep non-numeric ids (other platforms) as strings."""
    return int(value) if value.isascii() and value.isdigit() else value
