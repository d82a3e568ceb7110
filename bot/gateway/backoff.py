"""Reconnect backoff shared by the gateway clients (OneBot forward-WS, Matterbridge stream)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """``min(cap, base * 2**attempt)`` scaled by a random factor in [0.5, 1).

    The jitter keeps many bots that lost the same server from reconnecting in lockstep.
    """

    base: float = 1.0
    cap: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * 2.0 ** min(self.attempt, 30))
        self.attempt += 1
        return delay * (0.5 + self.rng.random() / 2)

    def reset(self) -> None:
        self.attempt = 0
