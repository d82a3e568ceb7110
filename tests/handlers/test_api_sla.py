"""SLA JSON API: filters, strict/lenient, business/calendar basis, 401s, the OpenAPI shape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.clock import ManualClock
from bot.config import AppConfig
from bot.keys import ENGINE
from bot.reports import ReportRequest
from bot.store import questions as store
from handlers import questions, reports_sla
from sop.policy import SlaPolicy
from sop.questions import QuestionEngine
from tests.conftest import make_config

TZ = ZoneInfo("Asia/Shanghai")
API = {"Authorization": "Bearer test-api-token"}
G1, G2 = "onebot11:5001", "onebot11:5002"
DAY = "2026-03-10"


def at(hh: int, mm: int) -> datetime:
    return datetime(2026, 3, 10, hh, mm, tzinfo=TZ).astimezone(UTC)


@dataclass
class Api:
    client: TestClient[Any, Any]
    cfg: AppConfig

    async def get(self, path: str, status: int = 200, **params: str) -> Any:
        return await self.fetch(path, params, status)

    async def fetch(self, path: str, params: dict[str, str], status: int = 200) -> Any:
        resp = await self.client.get(path, params=params, headers=API)
        assert resp.status == status, await resp.text()
        return await resp.json()


async def _seed(cfg: AppConfig, app: Any) -> None:
    """Q1 quoted by li at 10:02; Q2/Q3 both open when wang speaks (proximity, weak link);
    Q4 in group 5002 at 11:58 answered by wang at 13:32 (business 4 min, calendar 94 min)."""
    owners = {G1: ("li",), G2: ("li", "wang")}
    calendar_of = questions.build_calendar_of(cfg)
    eng = QuestionEngine(
        SlaPolicy(), calendar_of=calendar_of, owners_of=lambda c: owners.get(c, ())
    )

    def ask(chat: str, n: int, t: datetime) -> list[Any]:
        return eng.on_customer_message(
            chat, f"m{n}", f"onebot11:c{n}", t, is_question=True, question_id=f"Q{n}"
        )

    steps = [
        ask(G1, 1, at(10, 0)),
        eng.on_staff_message(G1, "s1", "li", at(10, 2), reply_to_msg_id="m1"),
        ask(G1, 2, at(10, 3)),
        ask(G1, 3, at(10, 4)),
        eng.on_staff_message(G1, "s2", "wang", at(10, 5)),
        ask(G2, 4, at(11, 58)),
        eng.on_staff_message(G2, "s4", "wang", at(13, 32), reply_to_msg_id="m4"),
    ]
    ctx = store.RowContext(policy_of=eng.policy_for, calendar_of=calendar_of, tz=TZ, now=at(14, 0))
    async with app[ENGINE].begin() as conn:
        for effects in steps:
            await store.save_effects(conn, effects, ctx)


@pytest.fixture
async def api(tmp_path: Path, aiohttp_client: Any, db_url: str) -> Api:
    cfg = make_config(tmp_path, bot={"data_dir": str(tmp_path / "data"), "database_url": db_url})
    app = create_app(cfg, clock=ManualClock(at(14, 0)))
    client = await aiohttp_client(TestServer(app))
    await _seed(cfg, app)
    return Api(client, cfg)


PATHS = (
    "/api/v1/questions",
    "/api/v1/sla/operators",
    "/api/v1/sla/groups",
    "/api/v1/sla/daily",
    "/api/v1/sla/summary",
)


async def test_every_path_needs_the_bearer_token(api: Api) -> None:
    """No token or a wrong one: 401 on every SLA path."""
    for path in PATHS:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            resp = await api.client.get(path, headers=headers)
            assert resp.status == 401, path


async def test_openapi_describes_the_sla_paths(api: Api) -> None:
    """Every SLA path is a bearer-secured GET with its query parameters and schemas."""
    doc = await api.get("/api/v1/openapi.json")
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path in PATHS:
        op = doc["paths"][path]["get"]
        assert op["security"] == [{"bearer": []}]
        assert "401" in op["responses"]
        names = {p["name"] for p in op["parameters"]}
        assert {"from", "to", "group", "operator"} <= names
    report = doc["paths"]["/api/v1/sla/daily"]["get"]
    assert {"as_of", "view", "basis"} <= {p["name"] for p in report["parameters"]}
    question = doc["components"]["schemas"]["Question"]["properties"]
    assert {"frt_business_s", "frt_calendar_s", "link_method", "owner_ids"} <= set(question)
    assert "rows" in doc["components"]["schemas"]["SlaTable"]["properties"]


async def test_question_filters(api: Api) -> None:
    """group, operator (first responder or owner), status and dates filter in SQL."""

    async def ids(**params: str) -> list[str]:
        body = await api.fetch("/api/v1/questions", {"from": DAY, "to": DAY, **params})
        return [q["id"] for q in body["questions"]]

    assert await ids() == ["Q1", "Q2", "Q3", "Q4"]
    assert await ids(group="5002") == ["Q4"]
    assert await ids(operator="wang") == ["Q2", "Q4"]  # responder of Q2, owner of Q4
    assert await ids(operator="li") == ["Q1", "Q2", "Q3", "Q4"]
    assert await ids(status="open") == ["Q3"]
    assert await ids(status="answered,open", group="5001", limit="1", offset="1") == ["Q2"]
    assert await ids(**{"from": "2026-03-11", "to": "2026-03-11"}) == []
    bad = await api.fetch("/api/v1/questions", {"from": "yesterday"}, 400)
    assert "from" in bad["error"]


async def test_strict_lenient_and_basis_change_the_numbers(api: Api) -> None:
    """The weak proximity link counts only when lenient; basis switches FRT business/calendar."""
    common = {"from": DAY, "to": DAY, "as_of": at(14, 0).isoformat()}
    strict = await api.fetch("/api/v1/sla/summary", common)
    lenient = await api.fetch("/api/v1/sla/summary", {**common, "view": "lenient"})
    assert (strict["view"], lenient["view"]) == ("strict", "lenient")
    assert strict["rows"][0]["answered"] < lenient["rows"][0]["answered"]
    groups = await api.fetch("/api/v1/sla/groups", {**common, "group": "5002"})
    cal = await api.fetch("/api/v1/sla/groups", {**common, "group": "5002", "basis": "calendar"})
    assert groups["rows"][0]["frt_p50_s"] == 240.0
    assert cal["rows"][0]["frt_p50_s"] == 5640.0
    for bad in ({"basis": "wall"}, {"view": "fuzzy"}, {"as_of": "noon"}, {"to": "2026-03-01"}):
        await api.fetch("/api/v1/sla/daily", {**common, **bad}, 400)


async def test_api_numbers_equal_the_report_builder(api: Api) -> None:
    """The operators endpoint returns exactly the rows the CLI's builder gives."""
    body = await api.fetch(
        "/api/v1/sla/operators", {"from": DAY, "to": DAY, "as_of": at(14, 0).isoformat()}
    )
    req = ReportRequest(date(2026, 3, 10), date(2026, 3, 10), at(14, 0), view="operators")
    [table] = await reports_sla.build(api.client.app[ENGINE], api.cfg, req)
    assert body["rows"] == [dict(r) for r in table.rows]
    assert body["columns"] == list(table.columns)
    assert {r["operator"] for r in body["rows"]} == {"li", "wang"}
