"""Compliance API and `sopbot report sop`: same builder, same numbers; auth and bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestServer

from bot.app import TICKS, create_app, run_report
from bot.clock import ManualClock
from bot.keys import DISPATCHER, ENGINE
from bot.reports import ReportRequest
from bot.store import tasks as store
from handlers.api_sop import OPENAPI_PATHS, PATH
from tests.conftest import make_config

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 10)
AUTH = {"Authorization": "Bearer test-api-token"}


async def test_api_matches_report_and_checks_input(tmp_path: Path, aiohttp_client: Any) -> None:
    """One done step, the rest missed: API rows equal the CLI builder's; 401 and 400 errors."""
    cfg = make_config(tmp_path, gateway={"onebot": {"enabled": False}})
    clock = ManualClock(datetime(2026, 3, 10, 9, 0, tzinfo=TZ).astimezone(UTC))
    app = create_app(cfg, clock=clock)
    client = await aiohttp_client(TestServer(app))
    await app[TICKS].stop()
    await app[DISPATCHER].deps["sop"].tick()
    async with app[ENGINE].begin() as conn:
        task = await store.find_task(conn, "wang", "moments", DAY)
        assert task is not None
        await store.add_evidence(conn, task, source="self", ref="r", count=3, at=clock.now())
    await clock.set(datetime(2026, 3, 10, 23, 0, tzinfo=TZ).astimezone(UTC))
    await app[DISPATCHER].deps["sop"].tick()

    q = {"from": "2026-03-10", "to": "2026-03-10", "store": "徐汇店"}
    resp = await client.get(PATH, params=q, headers=AUTH)
    assert resp.status == 200
    body = await resp.json()
    titles = [t["title"] for t in body["tables"]]
    assert titles == [
        "SOP completion by guide",
        "SOP completion by store",
        "SOP completion by day",
        "SOP completion by step",
        "SOP missed tasks",
    ]
    guide = body["tables"][0]["rows"][0]
    assert (guide["guide"], guide["on_time"], guide["missed"]) == ("wang", 1, 2)
    assert guide["unit_rate"] == round(3 / 9, 4)
    missed = body["tables"][4]["rows"]
    assert [(m["step"], m["reason"]) for m in missed] == [
        ("group_posts", "not_done"),
        ("private_chats", "not_done"),
    ]

    request = ReportRequest(DAY, DAY, clock.now(), filters={"store": "徐汇店"})
    cli = await run_report(cfg, "sop", request)
    assert [dict(r) for r in cli[0].rows] == body["tables"][0]["rows"]

    assert (await client.get(PATH, params=q)).status == 401
    bad = await client.get(PATH, params={"from": "2026-13-01"}, headers=AUTH)
    assert bad.status == 400
    rev = await client.get(PATH, params={"from": "2026-03-10", "to": "2026-03-01"}, headers=AUTH)
    assert rev.status == 400
    view = await client.get(PATH, params={"view": "nope"}, headers=AUTH)
    assert view.status == 400
    assert "get" in OPENAPI_PATHS[PATH]
