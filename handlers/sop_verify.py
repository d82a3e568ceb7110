"""The SOP verification tick: platform API results become completion evidence (source ``api``).

Runs only when the composition root provides a ``verification`` source (the WeCom gateway is
enabled). Every ``[gateway.wecom] verify_every`` it polls today's tracked Moments tasks and group
sends; once a day at ``behaviour_at`` (local time) it fetches yesterday's behaviour data (private
chats) and polls yesterday's Moments and group sends a last time, for what was done late.

Evidence times: intra-day results are dated when they were polled. Behaviour data is
day-granular, so its figure is dated at the task's window end (or now, if earlier): the chats
were made that day, and fetching them the next morning must not make them late.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock
from bot.config import AppConfig
from bot.keys import CLOCK, CONFIG, DISPATCHER, ENGINE
from bot.scheduler import Tick
from bot.store import tasks as store
from bot.verification import GuideCount, VerificationSource, apply_verified
from sop.slots import local_date_of

log = logging.getLogger("sopbot.sop.verify")


class SopVerifier:
    """When to ask the verification source, and how its counts are applied."""

    def __init__(
        self, source: VerificationSource, engine: AsyncEngine, clock: Clock, cfg: AppConfig
    ) -> None:
        self.source = source
        self.engine = engine
        self.clock = clock
        self.tz = cfg.bot.timezone
        self.zone = ZoneInfo(self.tz)
        self.every = timedelta(seconds=cfg.gateway.wecom.verify_every)
        self.behaviour_at = cfg.gateway.wecom.behaviour_at
        self._last_poll: datetime | None = None
        self._behaviour_done: date | None = None

    async def poll(self, local_date: date) -> int:
        """Moments and group-send results of ``local_date``; return tasks matched."""
        counts = [
            *await self.source.moment_results(local_date),
            *await self.source.group_send_results(local_date),
        ]
        return await apply_verified(self.engine, counts, self.clock.now())

    async def behaviour(self, local_date: date) -> int:
        """Behaviour data (private chats) of ``local_date``, dated at each task's window end."""
        counts: Sequence[GuideCount] = await self.source.behaviour_data(local_date)
        now = self.clock.now()
        matched = 0
        for c in counts:
            async with self.engine.connect() as conn:
                task = await store.find_task(conn, c.guide_id, c.step, c.local_date)
            if task is not None:
                matched += await apply_verified(self.engine, [c], min(now, task.window_end))
        return matched

    async def tick(self) -> int:
        now = self.clock.now()
        today = local_date_of(now, self.tz)
        matched = 0
        if self._last_poll is None or now - self._last_poll >= self.every:
            self._last_poll = now
            matched += await self.poll(today)
        yesterday = today - timedelta(days=1)
        local_now = now.astimezone(self.zone).time()
        if self._behaviour_done != yesterday and local_now >= self.behaviour_at:
            self._behaviour_done = yesterday
            matched += await self.poll(yesterday)
            matched += await self.behaviour(yesterday)
            log.info("sop verify: %s closed with %d api results", yesterday, matched)
        return matched


async def verify_tick(sop_verifier: SopVerifier | None = None) -> None:
    if sop_verifier is not None:
        await sop_verifier.tick()


TICKS: tuple[Tick, ...] = (Tick("sop_verify", 30.0, verify_tick),)


async def verify_context(app: web.Application) -> AsyncIterator[None]:
    source = app[DISPATCHER].deps.get("verification")
    if source is not None:
        verifier = SopVerifier(source, app[ENGINE], app[CLOCK], app[CONFIG])
        app[DISPATCHER].provide(sop_verifier=verifier)
    yield
