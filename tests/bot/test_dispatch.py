"""Dispatcher: kwargs by signature, filters, error isolation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.dispatch import Dispatcher, Router
from bot.metrics import Metrics


@dataclass
class Ping:
    n: int


async def test_handlers_get_only_what_they_declare() -> None:
    """A handler receives the event and the dependencies it names, nothing else."""
    router = Router("t")
    got: list[tuple[int, str]] = []

    @router.on(Ping)
    async def handle(event: Ping, greeting: str) -> None:
        got.append((event.n, greeting))

    d = Dispatcher(greeting="你好", unused=object())
    d.include(router)
    assert await d.feed(Ping(1)) == 1
    assert got == [(1, "你好")]


async def test_filters_and_types_select_handlers() -> None:
    """Only handlers whose event type and filters match run."""
    router = Router("t")
    calls: list[str] = []

    @router.on(Ping, lambda e: e.n > 5)
    async def big(event: Ping) -> None:
        calls.append("big")

    @router.on(str)
    async def text(event: str) -> None:
        calls.append("text")

    d = Dispatcher()
    d.include(router)
    await d.feed(Ping(1))
    await d.feed(Ping(9))
    await d.feed("hi")
    assert calls == ["big", "text"]


async def test_failing_handler_is_isolated_and_counted() -> None:
    """One handler raising does not stop the next; the error is counted per router."""
    bad, good = Router("bad"), Router("good")
    calls: list[str] = []

    @bad.on(Ping)
    async def boom(event: Ping) -> None:
        raise RuntimeError("boom")

    @good.on(Ping)
    async def ok(event: Ping) -> None:
        calls.append("ok")

    metrics = Metrics()
    d = Dispatcher(metrics)
    d.include(bad, good)
    assert await d.feed(Ping(1)) == 1
    assert calls == ["ok"]
    assert metrics.handler_errors.labels(router="bad")._value.get() == 1


def test_router_included_once() -> None:
    """Including the same router twice is a wiring bug and refused."""
    r = Router("x")
    d = Dispatcher()
    d.include(r)
    with pytest.raises(ValueError, match="already included"):
        d.include(r)
