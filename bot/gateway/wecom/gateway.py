"""``WeComGateway``: the ``Gateway`` for platform ``wecom`` (企业微信 self-built app).

Outbound: ``send_private_text`` sends an app text message to a staff userid (duplicate check on,
optional idempotency key carried in the payload); ``send_markdown`` and ``send_card`` (template
card with 完成 / 稍后提醒 buttons) likewise; ``update_card`` greys a card out after a click via its
``response_code``. ``send_group_text`` posts to the internal staff group through the group
robot webhook: WeCom has no API to post into customer groups, so the only group id accepted is
``ROBOT_GROUP`` (``"robot"``).

Inbound: ``routes()`` gives the callback endpoint (GET verification + POST events) when a
callback token and EncodingAESKey are configured; chat messages and contact changes go to the
``EventSink``, card clicks to ``card_sink``. ``sop`` exposes the verification APIs and
``client`` the raw qyapi client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from bot.clock import Clock
from bot.config_wecom import WeComSection
from bot.errors import GatewayError
from bot.events import CardClick
from bot.gateway.base import EventSink, SentMessage
from bot.gateway.wecom.callback import PLATFORM, CallbackEndpoint, CardSink
from bot.gateway.wecom.client import (
    DEFAULT_BASE_URL,
    Json,
    RetryPolicy,
    Sleep,
    TimeFn,
    WeComClient,
)
from bot.gateway.wecom.crypto import WeComCrypto
from bot.gateway.wecom.errors import ALL_RECIPIENTS_INVALID, InvalidRecipient
from bot.gateway.wecom.messages import (
    DONE_KEY,
    DUPLICATE_CHECK_INTERVAL,
    CardButton,
    SendResult,
    button_card_message,
    markdown_message,
    parse_send_result,
    text_message,
    update_card_buttons,
)
from bot.gateway.wecom.robot import RobotWebhook
from bot.gateway.wecom.sop_api import WeComSopApi
from bot.metrics import Metrics

log = logging.getLogger(__name__)

ROBOT_GROUP = "robot"
SEND_PATH = "/cgi-bin/message/send"
UPDATE_CARD_PATH = "/cgi-bin/message/update_template_card"


class WeComGateway:
    """One WeCom corp + app."""

    platform = PLATFORM

    def __init__(
        self,
        *,
        corp_id: str,
        agent_id: int,
        app_secret: str,
        sink: EventSink,
        clock: Clock,
        metrics: Metrics,
        contact_secret: str = "",
        callback_token: str = "",
        encoding_aes_key: str = "",
        robot_webhook_key: str = "",
        base_url: str = DEFAULT_BASE_URL,
        callback_path: str = "/wecom/callback",
        card_sink: CardSink | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        time_fn: TimeFn = time.monotonic,
        member_per_minute: float = 30.0,
        member_per_hour: float = 1_000.0,
        calls_per_api_per_minute: float = 10_000.0,
        duplicate_check_interval: float = DUPLICATE_CHECK_INTERVAL,
        replay_window: float = 300.0,
    ) -> None:
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.callback_path = callback_path
        self._metrics = metrics
        self._dup_interval = int(duplicate_check_interval)
        self._started = False
        self.client = WeComClient(
            corp_id=corp_id,
            secrets={"app": app_secret, "contact": contact_secret},
            base_url=base_url,
            session=session,
            timeout=timeout,
            retry=retry,
            sleep=sleep,
            time_fn=time_fn,
            calls_per_api_per_minute=calls_per_api_per_minute,
            member_per_minute=member_per_minute,
            member_per_hour=member_per_hour,
        )
        self.sop = WeComSopApi(self.client, sleep=sleep, time_fn=time_fn)
        self.robot = (
            RobotWebhook(self.client, robot_webhook_key, time_fn=time_fn, sleep=sleep)
            if robot_webhook_key
            else None
        )
        self.callback = (
            CallbackEndpoint(
                crypto=WeComCrypto(callback_token, encoding_aes_key, corp_id),
                corp_id=corp_id,
                sink=sink,
                clock=clock,
                metrics=metrics,
                card_sink=card_sink,
                replay_window=replay_window,
                time_fn=time_fn,
            )
            if callback_token and encoding_aes_key
            else None
        )

    @classmethod
    def from_config(
        cls,
        section: WeComSection,
        *,
        sink: EventSink,
        clock: Clock,
        metrics: Metrics,
        card_sink: CardSink | None = None,
        **overrides: Any,
    ) -> WeComGateway:
        """Build from ``[gateway.wecom]``; ``overrides`` (sleep, time_fn, session) for tests."""
        return cls(
            corp_id=section.corp_id,
            agent_id=section.agent_id,
            app_secret=section.app_secret.get_secret_value(),
            contact_secret=section.contact_secret.get_secret_value(),
            callback_token=section.callback_token.get_secret_value(),
            encoding_aes_key=section.encoding_aes_key.get_secret_value(),
            robot_webhook_key=section.robot_webhook_key.get_secret_value(),
            base_url=section.base_url,
            callback_path=section.callback_path,
            timeout=section.request_timeout,
            retry=RetryPolicy(retries=section.max_retries, max_delay=section.retry_max_delay),
            member_per_minute=section.messages_per_member_per_minute,
            member_per_hour=section.messages_per_member_per_hour,
            calls_per_api_per_minute=section.calls_per_api_per_minute,
            duplicate_check_interval=section.duplicate_check_interval,
            replay_window=section.replay_window,
            sink=sink,
            clock=clock,
            metrics=metrics,
            card_sink=card_sink,
            **overrides,
        )

    # -- lifecycle ----------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        if self.callback is None:
            return []
        return [
            web.get(self.callback_path, self.callback.handle_get),
            web.post(self.callback_path, self.callback.handle_post),
        ]

    async def start(self) -> None:
        await self.client.start()
        self._started = True
        self._metrics.connected_accounts.labels(PLATFORM).set(1)
        if self.callback is None:
            log.warning("wecom callback not configured: no card clicks or replies from staff")

    async def stop(self) -> None:
        self._started = False
        self._metrics.connected_accounts.labels(PLATFORM).set(0)
        await self.client.close()

    def online_accounts(self) -> list[str]:
        return [self.corp_id] if self._started else []

    # -- app messages -------------------------------------------------------------------

    async def send_app_message(self, payload: Json) -> SendResult:
        """``message/send`` with the member rate limits; raises if nobody was reachable."""
        touser = tuple(u for u in str(payload.get("touser", "")).split("|") if u)
        await self.client.acquire_members(touser)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            result = parse_send_result(await self.client.call(SEND_PATH, payload))
            unreached = set(result.unreached)
            if touser and unreached.issuperset(touser):
                raise InvalidRecipient(
                    "message/send", ALL_RECIPIENTS_INVALID, "invaliduser", tuple(sorted(unreached))
                )
        except GatewayError:
            self._metrics.sends_failed.labels(PLATFORM).inc()
            raise
        self._metrics.send_latency.labels(PLATFORM).observe(loop.time() - started)
        if result.unreached:
            log.warning(
                "wecom message %s: %d of %d recipients unreachable",
                result.msgid,
                len(result.unreached),
                len(touser),
            )
        return result

    async def send_private_text(
        self,
        user_id: str,
        text: str,
        *,
        account_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> SentMessage:
        payload = text_message(
            self.agent_id,
            [user_id],
            text,
            idempotency_key=idempotency_key,
            duplicate_check_interval=self._dup_interval,
        )
        result = await self.send_app_message(payload)
        log.info("wecom text to %s: message %s (%d chars)", user_id, result.msgid, len(text))
        return SentMessage(PLATFORM, self.corp_id, result.msgid)

    async def send_markdown(
        self, user_ids: Sequence[str], content: str, *, idempotency_key: str | None = None
    ) -> SendResult:
        return await self.send_app_message(
            markdown_message(
                self.agent_id,
                user_ids,
                content,
                idempotency_key=idempotency_key,
                duplicate_check_interval=self._dup_interval,
            )
        )

    async def send_card(
        self,
        user_ids: Sequence[str],
        *,
        idempotency_key: str,
        title: str,
        desc: str = "",
        fields: Iterable[tuple[str, str]] = (),
        buttons: Sequence[CardButton] | None = None,
        lang: str = "zh-CN",
    ) -> SendResult:
        """A button card (完成 / 稍后提醒 by default); its ``task_id`` derives from the key."""
        return await self.send_app_message(
            button_card_message(
                self.agent_id,
                user_ids,
                idempotency_key=idempotency_key,
                title=title,
                desc=desc,
                fields=fields,
                buttons=buttons,
                lang=lang,
                duplicate_check_interval=self._dup_interval,
            )
        )

    async def update_card(
        self, user_ids: Sequence[str], response_code: str, replace_name: str
    ) -> None:
        """Replace a clicked card's buttons by one grey ``replace_name`` label."""
        body = update_card_buttons(self.agent_id, user_ids, response_code, replace_name)
        await self.client.call(UPDATE_CARD_PATH, body)

    async def acknowledge_click(self, click: CardClick, *, lang: str = "zh-CN") -> None:
        """Grey out the clicked card with a label saying what was chosen."""
        done = click.event_key == DONE_KEY
        if lang.startswith("en"):
            label = "Done" if done else "Will remind later"
        else:
            label = "已完成" if done else "稍后提醒"
        await self.update_card([click.user_id], click.response_code, label)

    # -- group robot --------------------------------------------------------------------

    async def send_group_text(
        self,
        group_id: str,
        text: str,
        *,
        account_id: str | None = None,
        reply_to: str | None = None,
    ) -> SentMessage:
        """Post to the internal staff group's robot (``group_id`` must be ``"robot"``)."""
        if group_id != ROBOT_GROUP or self.robot is None:
            raise GatewayError(
                "wecom can only post to the configured robot group (group id 'robot')"
            )
        try:
            await self.robot.send_text(text)
        except GatewayError:
            self._metrics.sends_failed.labels(PLATFORM).inc()
            raise
        log.info("wecom robot post (%d chars)", len(text))
        return SentMessage(PLATFORM, self.corp_id, "")

    async def send_group_markdown(self, content: str) -> None:
        if self.robot is None:
            raise GatewayError("wecom robot webhook key is not configured")
        await self.robot.send_markdown(content)
