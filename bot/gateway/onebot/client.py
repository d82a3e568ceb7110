"""Forward-WebSocket mode: we connect to the implementation's Universal endpoint and reconnect.

Reconnects use capped exponential backoff with jitter (so a fleet of bots does not reconnect in
lock-step after an implementation restart); the RNG and the sleep are injectable for tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import aiohttp
from yarl import URL

from bot.gateway.backoff import Backoff
from bot.gateway.onebot.links import WsLink

if TYPE_CHECKING:
    from bot.gateway.onebot.gateway import OneBotGateway

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


def redact(url: str) -> str:
    """The URL without query or credentials (a token may sit in ``?access_token=``)."""
    parsed = URL(url)
    return str(parsed.with_query(None).with_user(None).with_password(None))


async def run_forward_ws(
    gw: OneBotGateway,
    url: str,
    session: aiohttp.ClientSession,
    *,
    backoff: Backoff,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Connect, serve the connection until it drops, back off, repeat until cancelled."""
    headers = {"X-Client-Role": "Universal"}
    if gw.access_token:
        headers["Authorization"] = f"Bearer {gw.access_token}"
    where = redact(url)
    while True:
        try:
            async with session.ws_connect(
                url,
                headers=headers,
                max_msg_size=gw.transport_max_bytes,
                heartbeat=gw.ws_ping_interval,
            ) as ws:
                log.info("onebot forward-ws connected to %s", where)
                backoff.reset()
                await gw.run_link(WsLink(None, ws, "forward-ws"))
            log.warning("onebot forward-ws %s closed", where)
        except aiohttp.WSServerHandshakeError as exc:
            log.warning("onebot forward-ws %s refused: HTTP %d", where, exc.status)
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("onebot forward-ws %s failed: %s", where, type(exc).__name__)
        except Exception:
            # The reconnect loop is the one place allowed to survive anything: log and back off.
            log.exception("onebot forward-ws %s crashed", where)
        delay = backoff.next_delay()
        log.info("onebot forward-ws reconnecting to %s in %.1fs", where, delay)
        await sleep(delay)
