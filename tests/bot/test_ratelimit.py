"""Rate limiter: per-recipient and global token buckets, on an injected clock."""

from __future__ import annotations

from bot.ratelimit import RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


async def test_per_recipient_burst_then_paced() -> None:
    """A recipient gets a burst of ``per_key`` messages, then one per period/per_key."""
    ft = FakeTime()
    rl = RateLimiter(per_key=30, per_key_period=60, time_fn=ft, sleep_fn=ft.sleep)
    for _ in range(30):
        await rl.acquire("guide-1")
    assert ft.slept == []
    await rl.acquire("guide-1")
    assert abs(sum(ft.slept) - 2.0) < 1e-6  # 30/min → one every 2 s
    await rl.acquire("guide-2")  # another recipient is not held back
    assert abs(sum(ft.slept) - 2.0) < 1e-6


async def test_global_rate() -> None:
    """The global bucket paces all recipients together."""
    ft = FakeTime()
    rl = RateLimiter(total_per_s=10, time_fn=ft, sleep_fn=ft.sleep)
    for i in range(30):
        await rl.acquire(f"g{i}")
    assert abs((ft.t - 1000.0) - 2.0) < 1e-6  # 10 burst, then 20 at 10/s


async def test_unlimited() -> None:
    """Rates of zero never wait."""
    ft = FakeTime()
    rl = RateLimiter(time_fn=ft, sleep_fn=ft.sleep)
    for _ in range(1000):
        await rl.acquire("x")
    assert ft.slept == []
