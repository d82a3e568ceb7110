"""The WeCom app callback endpoint: URL verification, signed+encrypted events, replay guard.

``GET  <path>?msg_signature&timestamp&nonce&echostr`` — verify, answer the decrypted echostr.
``POST <path>?msg_signature&timestamp&nonce`` with ``<xml><Encrypt>…</Encrypt></xml>`` — verify
the signature over the ``Encrypt`` value, decrypt, parse, hand the event on, answer 200 at once
(WeCom retries after 5 s without an answer).

Mapped events:

- ``MsgType=text`` from a staff member → ``ChatMessage`` (private chat with the app), so guides
  can type commands to the bot;
- ``Event=template_card_event`` (a button click) → ``bot.events.CardClick`` (not a chat event:
  it goes to ``card_sink``; the SOP layer may grey out the card with its ``response_code``);
- ``Event=change_external_contact`` ``add_external_contact`` → ``MemberChange`` FRIEND_ADD,
  ``del_external_contact`` / ``del_follow_user`` → CONTACT_DELETE, with the staff userid as
  ``operator_id`` and the customer's external userid as ``user_id``.

Rejections: bad signature → 403 (counted, logged without payload); wrong receive id → 403;
malformed → 400; too large → 413. Replays are answered 200 and dropped: the same
``msg_signature``+``nonce``, the same ``MsgId``, or (for events, which have no MsgId) the same
sender + ``CreateTime`` + event identity, within ``replay_window`` seconds (WxJava's rule).
XML is parsed with ``xml.etree`` behind a size limit and with any DTD refused, so neither
external nor internal entities (billion laughs) are possible.
"""

from __future__ import annotations

import logging
import re
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiohttp import web

from bot.clock import Clock
from bot.events import (
    CardClick,
    ChatMessage,
    ChatType,
    InboundEvent,
    MemberChange,
    MemberChangeKind,
    Segment,
    SegmentType,
)
from bot.gateway.base import EventSink
from bot.gateway.wecom.crypto import CryptoError, WeComCrypto
from bot.metrics import Metrics

log = logging.getLogger(__name__)

PLATFORM = "wecom"
MAX_BODY_BYTES = 256 * 1024
FUTURE_SLACK = timedelta(minutes=5)
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Ignored:
    """A callback we accept but do not map (other events, images, ...)."""

    kind: str


Parsed = ChatMessage | MemberChange | CardClick | Ignored
CardSink = Callable[[CardClick], Awaitable[None]]


class XmlRejected(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def parse_xml(data: bytes | str, max_bytes: int = MAX_BODY_BYTES) -> dict[str, str]:
    """Top-level ``<xml>`` children as ``{tag: text}``; refuses DTDs and oversize input."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise XmlRejected("too_large")
    if _DTD.search(raw):
        raise XmlRejected("dtd_forbidden")  # no DTD, so no entity can be declared or expanded
    try:
        root = ET.fromstring(raw)
    except ET.ParseError:
        raise XmlRejected("bad_xml") from None
    return {child.tag: (child.text or "") for child in root}


def _created_at(fields: Mapping[str, str], received_at: datetime) -> datetime:
    try:
        sent = datetime.fromtimestamp(int(fields.get("CreateTime", "")), UTC)
    except (ValueError, OverflowError, OSError):
        return received_at
    return received_at if sent - received_at > FUTURE_SLACK else sent


def parse_callback(fields: Mapping[str, str], *, corp_id: str, received_at: datetime) -> Parsed:
    """Map one decrypted callback to a sopbot event."""
    msg_type = fields.get("MsgType", "").strip()
    sender = fields.get("FromUserName", "").strip()
    at = _created_at(fields, received_at)
    if msg_type == "text":
        msg_id = fields.get("MsgId", "").strip()
        if not sender or not msg_id:
            return Ignored("text_without_ids")
        text = fields.get("Content", "")
        return ChatMessage(
            platform=PLATFORM,
            account_id=corp_id,
            chat_type=ChatType.PRIVATE,
            chat_id=sender,
            message_id=msg_id,
            sender_id=sender,
            text=text,
            sent_at=at,
            received_at=received_at,
            segments=(Segment(SegmentType.TEXT, {"text": text}),),
            raw=dict(fields),
        )
    if msg_type != "event":
        return Ignored(f"msg_{msg_type or 'unknown'}")
    event = fields.get("Event", "").strip()
    if event == "template_card_event":
        return CardClick(
            platform=PLATFORM,
            account_id=corp_id,
            user_id=sender,
            event_key=fields.get("EventKey", "").strip(),
            task_id=fields.get("TaskId", "").strip(),
            response_code=fields.get("ResponseCode", "").strip(),
            card_type=fields.get("CardType", "").strip(),
            at=at,
            agent_id=fields.get("AgentID", "").strip(),
        )
    if event == "change_external_contact":
        change = fields.get("ChangeType", "").strip()
        kind = {
            "add_external_contact": MemberChangeKind.FRIEND_ADD,
            "del_external_contact": MemberChangeKind.CONTACT_DELETE,
            "del_follow_user": MemberChangeKind.CONTACT_DELETE,
        }.get(change)
        customer = fields.get("ExternalUserID", "").strip()
        staff = fields.get("UserID", "").strip()
        if kind is None or not customer:
            return Ignored(f"external_contact_{change or 'unknown'}")
        return MemberChange(
            platform=PLATFORM,
            account_id=corp_id,
            kind=kind,
            user_id=customer,
            at=at,
            operator_id=staff or None,
        )
    return Ignored(f"event_{event or 'unknown'}")


def replay_key(fields: Mapping[str, str]) -> str:
    """MsgId when there is one, else sender + CreateTime + what the event is about."""
    msg_id = fields.get("MsgId", "").strip()
    if msg_id:
        return "msg:" + msg_id
    parts = (
        "FromUserName",
        "CreateTime",
        "Event",
        "ChangeType",
        "UserID",
        "ExternalUserID",
        "TaskId",
        "EventKey",
    )
    return "evt:" + "|".join(fields.get(p, "").strip() for p in parts)


@dataclass(slots=True)
class ReplayGuard:
    """Keys seen within ``window`` seconds (bounded memory: oldest forgotten first)."""

    window: float = 300.0
    max_entries: int = 100_000
    time_fn: Callable[[], float] = time.monotonic
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def seen(self, key: str) -> bool:
        """True if ``key`` was seen within the window; records it either way."""
        now = self.time_fn()
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at < self.window and len(self._seen) < self.max_entries:
                break
            del self._seen[oldest]
        if key in self._seen:
            return True
        self._seen[key] = now
        return False


class CallbackEndpoint:
    """aiohttp handlers for the callback URL of one WeCom app."""

    def __init__(
        self,
        *,
        crypto: WeComCrypto,
        corp_id: str,
        sink: EventSink,
        clock: Clock,
        metrics: Metrics,
        card_sink: CardSink | None = None,
        replay_window: float = 300.0,
        time_fn: Callable[[], float] = time.monotonic,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._crypto = crypto
        self._corp_id = corp_id
        self._sink = sink
        self._card_sink = card_sink
        self._clock = clock
        self._metrics = metrics
        self._replays = ReplayGuard(window=replay_window, time_fn=time_fn)
        self._max_body = max_body_bytes

    def _reject(self, reason: str, status: int, request: web.BaseRequest) -> web.Response:
        self._metrics.events_rejected.labels(PLATFORM, reason).inc()
        log.warning("wecom callback from %s rejected: %s", request.remote, reason)
        return web.Response(status=status, text=reason)

    @staticmethod
    def _query(request: web.BaseRequest, *names: str) -> tuple[str, ...] | None:
        values = tuple(request.query.get(n, "") for n in names)
        return values if all(values) else None

    async def handle_get(self, request: web.Request) -> web.Response:
        q = self._query(request, "msg_signature", "timestamp", "nonce", "echostr")
        if q is None:
            return self._reject("missing_params", 400, request)
        try:
            plain = self._crypto.verify_url(*q)
        except CryptoError as exc:
            return self._reject(exc.reason, _status(exc.reason), request)
        log.info("wecom callback URL verified")
        return web.Response(text=plain)

    async def handle_post(self, request: web.Request) -> web.Response:
        q = self._query(request, "msg_signature", "timestamp", "nonce")
        if q is None:
            return self._reject("missing_params", 400, request)
        signature, timestamp, nonce = q
        if request.content_length is not None and request.content_length > self._max_body:
            return self._reject("too_large", 413, request)
        body = await request.content.read(self._max_body + 1)
        try:
            outer = parse_xml(body, self._max_body)
            encrypt = outer.get("Encrypt", "").strip()
            if not encrypt:
                raise XmlRejected("no_encrypt")
            inner = parse_xml(self._crypto.open(signature, timestamp, nonce, encrypt))
        except XmlRejected as exc:
            return self._reject(exc.reason, 413 if exc.reason == "too_large" else 400, request)
        except CryptoError as exc:
            return self._reject(exc.reason, _status(exc.reason), request)
        if self._replays.seen(f"sig:{signature}:{nonce}") or self._replays.seen(replay_key(inner)):
            self._metrics.events_rejected.labels(PLATFORM, "replay").inc()
            log.info("wecom callback replay ignored")
            return web.Response(text="")
        await self.deliver(inner)
        return web.Response(text="")

    async def deliver(self, fields: Mapping[str, str]) -> Parsed:
        """Map decrypted ``fields`` and hand the event to its sink (errors logged, not raised)."""
        parsed = parse_callback(fields, corp_id=self._corp_id, received_at=self._clock.now())
        received = self._metrics.events_received
        try:
            match parsed:
                case CardClick():
                    received.labels(PLATFORM, "card_click").inc()
                    log.info("wecom card click by %s key=%s", parsed.user_id, parsed.event_key)
                    if self._card_sink is not None:
                        await self._card_sink(parsed)
                case Ignored():
                    received.labels(PLATFORM, "ignored").inc()
                    log.debug("wecom callback ignored: %s", parsed.kind)
                case ChatMessage():
                    received.labels(PLATFORM, "message").inc()
                    await self._emit(parsed)
                case MemberChange():
                    received.labels(PLATFORM, "member").inc()
                    await self._emit(parsed)
        except Exception:
            # Answer WeCom anyway: a retry would only hit the same failing sink.
            log.exception("wecom callback sink failed on %s", type(parsed).__name__)
        return parsed

    async def _emit(self, event: InboundEvent) -> None:
        await self._sink(event)


def _status(reason: str) -> int:
    return 403 if reason in ("bad_signature", "wrong_receive_id") else 400
