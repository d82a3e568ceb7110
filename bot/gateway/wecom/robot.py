"""Group robot webhook (群机器人): send-only posts into an internal staff group.

``POST /cgi-bin/webhook/send?key=KEY`` needs no access token; the key is the credential, so it
is never logged. Text is capped at 2048 bytes UTF-8 and markdown at 4096 (longer digests are cut
with ``…``); ``<@userid>`` mentions work in both. WeCom allows 20 messages per minute per robot,
enforced here with a token bucket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from bot.gateway.wecom.client import Json, Sleep, TimeFn, WeComClient
from bot.gateway.wecom.messages import fit_utf8
from bot.ratelimit import RateLimiter

WEBHOOK_PATH = "/cgi-bin/webhook/send"
ROBOT_TEXT_MAX_BYTES = 2048
ROBOT_MARKDOWN_MAX_BYTES = 4096
ROBOT_PER_MINUTE = 20.0


def robot_text(
    content: str,
    mentioned_list: Sequence[str] = (),
    mentioned_mobile_list: Sequence[str] = (),
) -> Json:
    text: Json = {"content": fit_utf8(content, ROBOT_TEXT_MAX_BYTES)}
    if mentioned_list:
        text["mentioned_list"] = list(mentioned_list)
    if mentioned_mobile_list:
        text["mentioned_mobile_list"] = list(mentioned_mobile_list)
    return {"msgtype": "text", "text": text}


def robot_markdown(content: str) -> Json:
    return {
        "msgtype": "markdown",
        "markdown": {"content": fit_utf8(content, ROBOT_MARKDOWN_MAX_BYTES)},
    }


class RobotWebhook:
    """One group robot."""

    def __init__(
        self,
        client: WeComClient,
        key: str,
        *,
        per_minute: float = ROBOT_PER_MINUTE,
        time_fn: TimeFn = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not key:
            raise ValueError("a robot webhook needs its key")
        self._client = client
        self._key = key
        self._limiter = RateLimiter(
            per_key=per_minute, per_key_period=60.0, time_fn=time_fn, sleep_fn=sleep
        )

    async def send(self, payload: Json) -> None:
        await self._limiter.acquire("robot")
        await self._client.call_webhook(WEBHOOK_PATH, self._key, payload)

    async def send_text(
        self,
        content: str,
        *,
        mentioned_list: Sequence[str] = (),
        mentioned_mobile_list: Sequence[str] = (),
    ) -> None:
        await self.send(robot_text(content, mentioned_list, mentioned_mobile_list))

    async def send_markdown(self, content: str) -> None:
        await self.send(robot_markdown(content))
