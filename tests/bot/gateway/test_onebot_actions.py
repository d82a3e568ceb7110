"""Action framing and echo correlation (ResultStore), without any socket."""

from __future__ import annotations

import asyncio

import pytest

from bot.errors import ActionFailed, ApiTimeout, NetworkError
from bot.gateway.backoff import Backoff
from bot.gateway.onebot.actions import ResultStore, action_frame, unwrap
from bot.gateway.onebot.client import redact


async def test_response_resolves_its_waiter_by_echo() -> None:
    """A response with the same echo wakes exactly the matching call."""
    store = ResultStore()
    echo1, fut1 = store.register()
    echo2, fut2 = store.register()
    assert echo1 != echo2
    waiter = asyncio.create_task(store.wait(echo2, fut2, "get_msg", 1.0))
    assert store.resolve({"status": "ok", "retcode": 0, "data": {"x": 1}, "echo": echo2})
    assert (await waiter)["data"] == {"x": 1}
    assert not fut1.done()
    assert len(store) == 1


async def test_unknown_or_late_echo_is_not_matched() -> None:
    """A response nobody waits for (late, unknown) reports False."""
    store = ResultStore()
    assert not store.resolve({"retcode": 0, "echo": "nope"})


async def test_timeout_raises_api_timeout_and_forgets_the_echo() -> None:
    """No response in time → ApiTimeout; a later response for it is unmatched."""
    store = ResultStore()
    echo, fut = store.register()
    with pytest.raises(ApiTimeout) as info:
        await store.wait(echo, fut, "send_group_msg", 0.01)
    assert info.value.action == "send_group_msg"
    assert len(store) == 0
    assert not store.resolve({"retcode": 0, "echo": echo})


async def test_fail_all_wakes_waiters_with_the_error() -> None:
    """A closed connection fails every pending call at once."""
    store = ResultStore()
    echo, fut = store.register()
    waiter = asyncio.create_task(store.wait(echo, fut, "get_msg", 5.0))
    await asyncio.sleep(0)
    store.fail_all(NetworkError("closed"))
    with pytest.raises(NetworkError):
        await waiter


def test_action_frame_shape() -> None:
    """Actions go out as {action, params, echo} (onebot-11 communication/ws.md)."""
    frame = action_frame("send_private_msg", {"user_id": 10001000, "message": "你好"}, "123")
    assert frame == {
        "action": "send_private_msg",
        "params": {"user_id": 10001000, "message": "你好"},
        "echo": "123",
    }


def test_unwrap_success_async_and_failure() -> None:
    """ok/async return data; failed raises ActionFailed with the retcode (F2)."""
    assert unwrap("a", {"status": "ok", "retcode": 0, "data": {"message_id": 5}}) == {
        "message_id": 5
    }
    assert unwrap("a", {"status": "async", "retcode": 1, "data": None}) is None
    with pytest.raises(ActionFailed) as info:
        unwrap("send_private_msg", {"status": "failed", "retcode": 1404, "data": None})
    assert info.value.code == 1404
    with pytest.raises(ActionFailed) as info:
        unwrap("x", {"status": "failed", "retcode": 100, "wording": "不是好友"})
    assert info.value.message == "不是好友"


def test_backoff_is_capped_exponential_with_jitter() -> None:
    """Delays double up to the cap, each scaled into [50%, 100%) of its step; reset restarts."""
    import random

    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(7)]
    steps = [1, 2, 4, 8, 8, 8, 8]
    assert all(s / 2 <= d < s for d, s in zip(delays, steps, strict=True))
    assert len(set(delays)) == len(delays)
    backoff.reset()
    assert backoff.next_delay() < 1.0


def test_redact_drops_query_and_credentials() -> None:
    """Logged URLs never carry ?access_token= or user:password."""
    assert redact("ws://u:p@127.0.0.1:3001/?access_token=s3cret") == "ws://127.0.0.1:3001/"
