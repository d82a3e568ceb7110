"""Dashboard pages and exports over data seeded through the intake: numbers, escaping, actions."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.keys import CONFIG, DISPATCHER, ENGINE
from bot.reports import ReportRequest
from bot.store.questions import E, Q
from bot.webauth import Principal
from handlers.dashboard import data
from tests.handlers.test_dashboard_support import DAY, SCRIPT, at, start


async def _row(app: Any, chat: str) -> Any:
    async with app[ENGINE].connect() as conn:
        return (await conn.execute(select(Q).where(Q.c.chat_id == chat))).one()


async def test_overview_and_operator_table(
    tmp_path: Path, aiohttp_client: Any, db_url: str
) -> None:
    """The overview shows today's KPIs against targets; the table has credit and owner columns."""
    d = await start(tmp_path, aiohttp_client, db_url)
    await d.login("admin")
    html = await (await d.client.get("/")).text()
    assert 'data-kpi="attainment"' in html
    assert 'data-kpi="open_breaches"' in html
    assert "目标" in html
    html = await (await d.client.get("/operators?view=lenient&basis=calendar&sort=name")).text()
    assert 'data-operator="li"' in html
    assert "首次回复(功劳)" in html
    en = await (await d.client.get("/operators?lang=en")).text()
    assert "Credit (first responder)" in en
    # The language sticks through the cookie.
    assert "Operator SLA" in await (await d.client.get("/operators")).text()


async def test_scoped_summary_matches_builder(
    tmp_path: Path, aiohttp_client: Any, db_url: str
) -> None:
    """sop.metrics over a scope that covers everyone gives the builder's summary numbers."""
    d = await start(tmp_path, aiohttp_client, db_url)
    cfg = d.app[CONFIG]
    build = d.app[DISPATCHER].deps["sla_report"]
    everyone = frozenset(op.id for op in cfg.operators)
    admin = Principal("a", "a", "admin", "", None)
    team = Principal("s", "s", "supervisor", "sup", everyone)
    for basis in ("business", "calendar"):
        for strict in (True, False):
            req = ReportRequest(DAY, DAY, at(10, 40), basis, strict)
            a = await data.sla_summary(d.app[ENGINE], cfg, admin, req, build)
            b = await data.sla_summary(d.app[ENGINE], cfg, team, req, build)
            keys = ("questions", "attainment_strict", "attainment_lenient", "backlog_now")
            assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
            assert a["questions"] == 2


async def test_customer_text_is_escaped(tmp_path: Path, aiohttp_client: Any, db_url: str) -> None:
    """A <script> in a customer message is shown as text in the drill-down and breach list."""
    d = await start(tmp_path, aiohttp_client, db_url)
    await d.login("admin")
    row = await _row(d.app, "5001")
    html = await (await d.client.get(f"/questions/{row.public_id}")).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    assert "quote" in html  # the link method, and why
    assert "用40度温水冲" in html


async def test_dismiss_needs_reason_and_is_audited(
    tmp_path: Path, aiohttp_client: Any, db_url: str
) -> None:
    """Dismiss without a reason is 400; with one the question leaves the list, audited."""
    d = await start(tmp_path, aiohttp_client, db_url)
    await d.login("zhao")
    row = await _row(d.app, "5002")
    assert row.public_id in await (await d.client.get("/breaches")).text()
    token = await d.csrf()
    url = f"/questions/{row.public_id}/dismiss"
    assert (await d.client.post(url, data={"csrf": token, "reason": " "})).status == 400
    resp = await d.client.post(url, data={"csrf": token, "reason": "广告"})
    assert resp.status == 200
    assert row.public_id not in await resp.text()
    after = await _row(d.app, "5002")
    assert (after.status, after.dismissed_reason, after.dismissed_by) == (
        "dismissed",
        "广告",
        "sup",
    )
    async with d.app[ENGINE].connect() as conn:
        events = (
            await conn.execute(select(E.c.type, E.c.actor).where(E.c.question_id == row.id))
        ).all()
    assert ("question_dismissed", "sup") in [(e.type, e.actor) for e in events]
    # A second dismiss of a closed question is a conflict, not a silent success.
    assert (await d.client.post(url, data={"csrf": token, "reason": "x"})).status == 409


async def test_resolve(tmp_path: Path, aiohttp_client: Any, db_url: str) -> None:
    """Resolve from the breach list marks the question resolved."""
    d = await start(tmp_path, aiohttp_client, db_url)
    await d.login("admin")
    row = await _row(d.app, "5002")
    resp = await d.client.post(
        f"/questions/{row.public_id}/resolve", data={"csrf": await d.csrf()}
    )
    assert resp.status == 200
    assert (await _row(d.app, "5002")).status == "resolved"


async def test_csv_exports(tmp_path: Path, aiohttp_client: Any, db_url: str) -> None:
    """Exports are UTF-8 with BOM, Chinese headers, one row per question; basis is honoured."""
    d = await start(tmp_path, aiohttp_client, db_url)
    await d.login("admin")
    q = {"from": DAY.isoformat(), "to": DAY.isoformat(), "basis": "calendar"}
    resp = await d.client.get("/export/questions.csv", params=q)
    assert resp.headers["Content-Type"].startswith("text/csv")
    body = await resp.read()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][0] == "问题"
    assert len(rows) == 3
    assert {r[5] for r in rows[1:]} == {"calendar"}
    assert any(r[-1] == "'" + SCRIPT or r[-1] == SCRIPT for r in rows[1:])
    ops = await (await d.client.get("/export/operators.csv", params=q)).read()
    assert "首次回复数" in ops.decode("utf-8-sig")
    for name in ("breaches", "sop_tasks", "sop_guides", "sop_stores", "sop_days"):
        assert (await d.client.get(f"/export/{name}.csv")).status == 200
    assert (await d.client.get("/export/nope.csv")).status == 404


async def test_trends_and_sop_pages(tmp_path: Path, aiohttp_client: Any, db_url: str) -> None:
    """Trend charts and the heat map are inline SVG; the SOP page renders for a guide."""
    d = await start(tmp_path, aiohttp_client, db_url)
    await d.login("zhao")
    html = await (await d.client.get("/trends?from=2026-03-04&to=2026-03-10")).text()
    assert html.count("<svg") == 5
    assert "<circle" in html  # the seeded day's points
    await d.client.post("/logout", data={"csrf": await d.csrf("/")})
    await d.login("wang")
    assert (await d.client.get("/sop")).status == 200
    assert (await d.client.get("/trends")).status == 200


def test_csv_cell_defuses_formulas() -> None:
    """Cells that a spreadsheet would evaluate get a leading quote; numbers stay numbers."""
    from handlers.dashboard.exports import cell

    assert cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert cell("-5") == "-5"
    assert cell(0.12345) == "0.1235"
    assert cell(None) == ""


async def test_overview_figures_follow_new_questions_despite_the_cache(
    tmp_path: Path, aiohttp_client: Any, db_url: str
) -> None:
    """A new question changes the store version: the cached overview is not served stale."""
    from bot.keys import INTAKE
    from tests.handlers.test_dashboard_support import msg

    d = await start(tmp_path, aiohttp_client, db_url)
    await d.login("admin")

    def questions(html: str) -> str:
        return html.split('data-kpi="questions"', 1)[1][:400]

    before = questions(await (await d.client.get("/")).text())
    assert before == questions(await (await d.client.get("/")).text())  # served from the cache
    await d.app[INTAKE].put(msg("301", "5001", "20003", "请问几点发货？", at(10, 40)))
    await d.app[INTAKE].drain()
    async with d.app[ENGINE].connect() as conn:
        assert (await data.store_version(conn))[0] >= 3
    assert questions(await (await d.client.get("/")).text()) != before


def test_page_cache_keys_expire_with_the_time_bucket(monkeypatch: Any) -> None:
    """Keys carry as_of // CACHE_SECONDS; CACHE_SECONDS = 0 turns the cache off."""
    cache = data.PageCache()
    k1 = cache.key("overview", None, as_of=at(10, 0))
    cache.put(k1, "figures")
    assert cache.get(cache.key("overview", None, as_of=at(10, 0))) == "figures"
    assert cache.get(cache.key("overview", None, as_of=at(10, 5))) is None
    monkeypatch.setattr(data, "CACHE_SECONDS", 0)
    assert cache.key("overview", None, as_of=at(10, 0)) is None
