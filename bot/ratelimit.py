"""Token buckets: a global rate and a per-recipient rate for outbound messages.

Rates protect the platforms in *real* time (WeCom counts per real minute), so the buckets run on
the event loop's monotonic clock, not on the bot's (possibly simulated) clock. ``time_fn`` and
``sleep_fn`` are injectable so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    capacity: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take a token if one is there; otherwise return the seconds until one is."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0 - 1e-9:  # float refill can land a hair under a whole token
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """``per_key`` messages per ``per_key_period`` s for each key; ``total_per_s`` overall.

    A rate of 0 means unlimited.
    """

    def __init__(
        self,
        *,
        total_per_s: float = 0.0,
        per_key: float = 0.0,
        per_key_period: float = 60.0,
        time_fn: Callable[[], float] = time.monotonic,
        sleep_fn: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_keys: int = 100_000,
    ) -> None:
        self._time = time_fn
        self._sleep = sleep_fn
        now = time_fn()
        self._global = (
            TokenBucket(total_per_s, max(1.0, total_per_s), max(1.0, total_per_s), now)
            if total_per_s > 0
            else None
        )
        self._per_key_rate = per_key / per_key_period if per_key > 0 else 0.0
        self._per_key_cap = max(1.0, per_key)
        self._keys: dict[str, TokenBucket] = {}
        self._max_keys = max_keys

    async def acquire(self, key: str) -> None:
        """Wait until both the recipient's and the global bucket allow one message."""
        while True:
            now = self._time()
            wait = 0.0
            bucket = None
            if self._per_key_rate:
                bucket = self._keys.get(key)
                if bucket is None:
                    if len(self._keys) >= self._max_keys:
                        self._keys.clear()  # idle buckets refill to full anyway
                    bucket = TokenBucket(
                        self._per_key_rate, self._per_key_cap, self._per_key_cap, now
                    )
                    self._keys[key] = bucket
                wait = bucket.take(now)
            if wait == 0.0 and self._global is not None:
                wait = self._global.take(now)
                if wait and bucket is not None:
                    bucket.tokens += 1.0  # give back the recipient's token; we wait globally
            if wait == 0.0:
                return
            await self._sleep(wait)
