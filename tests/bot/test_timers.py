"""The exact due-time timer: fires at the due second, wakes early for earlier items."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bot.clock import ManualClock
from bot.timers import DueTimer

T0 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


async def _spin() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_fires_each_key_at_its_due_time_in_order() -> None:
    """Keys fire exactly when due, earliest first, and not before."""
    clock = ManualClock(T0)
    fired: list[tuple[str, datetime]] = []

    async def fire(keys: list[str], now: datetime) -> None:
        fired.extend((k, now) for k in keys)

    timer = DueTimer(clock, fire)
    timer.schedule("b", T0 + timedelta(minutes=5))
    timer.schedule("a", T0 + timedelta(minutes=4))
    await timer.start()
    await clock.set(T0 + timedelta(minutes=3, seconds=59))
    await _spin()
    assert fired == []
    await clock.set(T0 + timedelta(minutes=10))
    await _spin()
    assert fired == [("a", T0 + timedelta(minutes=4)), ("b", T0 + timedelta(minutes=5))]
    await timer.stop()


async def test_an_earlier_item_wakes_the_sleeper() -> None:
    """Scheduling an item before the one being slept on re-arms the sleep."""
    clock = ManualClock(T0)
    fired: list[str] = []

    async def fire(keys: list[str], now: datetime) -> None:
        fired.extend(keys)

    timer = DueTimer(clock, fire)
    timer.schedule("late", T0 + timedelta(hours=1))
    await timer.start()
    await _spin()
    timer.schedule("soon", T0 + timedelta(seconds=30))
    await _spin()
    await clock.set(T0 + timedelta(seconds=30))
    await _spin()
    assert fired == ["soon"]
    await timer.stop()


async def test_reschedule_and_cancel_replace_the_due_time() -> None:
    """A rescheduled key fires once at its new time; a cancelled key never fires."""
    clock = ManualClock(T0)
    fired: list[str] = []

    async def fire(keys: list[str], now: datetime) -> None:
        fired.extend(keys)

    timer = DueTimer(clock, fire)
    timer.schedule("x", T0 + timedelta(seconds=10))
    timer.schedule("x", T0 + timedelta(seconds=20))
    timer.schedule("y", T0 + timedelta(seconds=15))
    timer.cancel("y")
    assert timer.next_due() == T0 + timedelta(seconds=20)
    assert len(timer) == 1
    await timer.start()
    await clock.set(T0 + timedelta(seconds=30))
    await _spin()
    assert fired == ["x"]
    await timer.stop()


async def test_a_failing_callback_does_not_stop_the_timer() -> None:
    """An exception in one batch is logged; later items still fire."""
    clock = ManualClock(T0)
    fired: list[str] = []

    async def fire(keys: list[str], now: datetime) -> None:
        if "bad" in keys:
            raise RuntimeError("boom")
        fired.extend(keys)

    timer = DueTimer(clock, fire)
    timer.schedule("bad", T0 + timedelta(seconds=1))
    timer.schedule("good", T0 + timedelta(seconds=2))
    await timer.start()
    await clock.set(T0 + timedelta(seconds=1))
    await _spin()
    await clock.set(T0 + timedelta(seconds=2))
    await _spin()
    assert fired == ["good"]
    await timer.stop()


async def test_stop_lets_a_firing_in_progress_finish() -> None:
    """stop() during a firing waits for it (it writes to the store) instead of cancelling it;
    keys due later are not fired once stopping."""
    clock = ManualClock(T0)
    inside, proceed = asyncio.Event(), asyncio.Event()
    fired: list[str] = []

    async def fire(keys: list[str], now: datetime) -> None:
        inside.set()
        await proceed.wait()
        fired.extend(keys)

    timer = DueTimer(clock, fire)
    timer.schedule("now", T0)
    timer.schedule("later", T0 + timedelta(seconds=1))
    await timer.start()
    await inside.wait()
    stopping = asyncio.create_task(timer.stop())
    await _spin()
    assert not stopping.done()
    await clock.set(T0 + timedelta(seconds=5))
    proceed.set()
    await stopping
    assert fired == ["now"]


async def test_settle_returns_after_the_due_firings_have_finished() -> None:
    """A firing that takes many loop passes (store writes) is over when ``settle`` returns."""
    clock = ManualClock(T0)
    done: list[str] = []

    async def fire(keys: list[str], now: datetime) -> None:
        for _ in range(100):  # a slow store write
            await asyncio.sleep(0)
        done.extend(keys)

    timer = DueTimer(clock, fire)
    timer.schedule("a", T0 + timedelta(minutes=1))
    timer.schedule("later", T0 + timedelta(hours=1))
    await timer.start()
    await clock.set(T0 + timedelta(minutes=2))
    await timer.settle()
    assert done == ["a"]
    await timer.stop()
