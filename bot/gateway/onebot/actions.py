"""OneBot v11 actions: ``{"action", "params", "echo"}`` framing and response correlation.

``ResultStore`` maps each ``echo`` we send to a future that the connection's reader resolves when
the matching response arrives (the NoneBot adapter's design). ``unwrap`` turns a response
envelope into its ``data`` or an ``ActionFailed`` carrying the retcode.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from typing import Any

from bot.errors import ActionFailed, ApiTimeout

RETCODE_UNSUPPORTED = 1404


def action_frame(action: str, params: Mapping[str, Any], echo: str) -> dict[str, Any]:
    return {"action": action, "params": dict(params), "echo": echo}


def unwrap(action: str, response: Mapping[str, Any]) -> Any:
    """Return ``data`` of a successful response; raise ``ActionFailed`` otherwise."""
    status = response.get("status")
    retcode = response.get("retcode")
    # ``async`` (retcode 1) means accepted for later execution: not a failure.
    if status in ("ok", "async") or (status is None and retcode in (0, 1)):
        return response.get("data")
    code: int | str = retcode if isinstance(retcode, int) else str(retcode)
    message = response.get("message") or response.get("wording") or ""
    raise ActionFailed(action, code, str(message)[:200])


class ResultStore:
    """Pending actions of one connection, keyed by ``echo``."""

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix
        self._seq = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Mapping[str, Any]]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def register(self) -> tuple[str, asyncio.Future[Mapping[str, Any]]]:
        """Allocate an echo and the future its response will resolve."""
        echo = f"{self._prefix}{next(self._seq)}"
        future: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[echo] = future
        return echo, future

    def discard(self, echo: str) -> None:
        future = self._pending.pop(echo, None)
        if future is not None:
            future.cancel()

    def resolve(self, response: Mapping[str, Any]) -> bool:
        """Hand a response to its waiter; False when nobody waits for that echo (late/unknown)."""
        future = self._pending.pop(str(response.get("echo")), None)
        if future is None or future.done():
            return False
        future.set_result(response)
        return True

    async def wait(
        self, echo: str, future: asyncio.Future[Mapping[str, Any]], action: str, time_limit: float
    ) -> Mapping[str, Any]:
        try:
            # Not wait_for: on 3.11 it swallows a cancel that lands as the response arrives.
            async with asyncio.timeout(time_limit):
                return await future
        except TimeoutError:
            raise ApiTimeout(action, time_limit) from None
        finally:
            self._pending.pop(echo, None)

    def fail_all(self, exc: Exception) -> None:
        """The connection is gone: wake every waiter with ``exc``."""
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)
