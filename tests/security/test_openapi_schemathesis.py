"""Schemathesis against ``/api/v1/openapi.json``: no documented endpoint may answer 500 or
stray from its documented statuses, content types and response schemas.

aiohttp has no in-process ASGI/WSGI bridge, so the app runs on a loopback port in a thread of
its own (schemathesis' calls are blocking) and schemathesis loads the schema from it with the
bearer token. Examples per operation are bounded and derandomized to keep the suite fast and
repeatable; the store is seeded with a few messages and a question so reports have rows.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bot.app import create_app
from bot.clock import ManualClock
from bot.events import ChatMessage, ChatType
from bot.keys import INTAKE
from tests.security.rig import API_TOKEN, security_config

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai, a Tuesday
EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


class ThreadedApp:
    """The app served on 127.0.0.1 by an event loop running in its own thread."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(60)

    def start(self) -> str:
        self._thread.start()
        return str(self._call(self._start()))

    async def _start(self) -> str:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        await self._seed()
        return f"http://127.0.0.1:{port}"

    async def _seed(self) -> None:
        intake = self._app[INTAKE]
        texts = ["请问这个几点发货？", "好的", "谢谢"]
        for n, text in enumerate(texts, start=1):
            await intake.put(
                ChatMessage(
                    platform="onebot11",
                    account_id="777",
                    chat_type=ChatType.GROUP,
                    chat_id="5001",
                    message_id=str(n),
                    sender_id="20001" if n != 2 else "9002",
                    text=text,
                    sent_at=NOW,
                    received_at=NOW,
                )
            )
        await intake.drain()

    def stop(self) -> None:
        if self._runner is not None:
            self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


@pytest.fixture
def base_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    cfg = security_config(tmp_path, db_url, "http://127.0.0.1:9")
    served = ThreadedApp(create_app(cfg, clock=ManualClock(NOW)))
    try:
        yield served.start()
    finally:
        served.stop()


def test_documented_api_matches_its_schema(base_url: str) -> None:
    """Every documented operation, with generated parameters: no 500, responses as documented."""
    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 5, [op.label for op in operations]
    failures: dict[str, str] = {}
    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(base_url=base_url, headers=AUTH, checks=CHECKS)

        try:
            check()
        except (Exception, FailureGroup) as exc:  # report every operation, not just the first
            failures[operation.label] = str(exc)[:1500]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
