"""The dashboard in a real headless Chromium: login, tables, escaping, dismiss, CSV download."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bot.app import TICKS, create_app
from bot.clock import ManualClock
from tests.browser.conftest import CHROMIUM_ARGS
from tests.conftest import make_config
from tests.handlers.test_dashboard_support import PASSWORD, SCRIPT, USERS, at, seed

pytestmark = pytest.mark.integration


async def _server(tmp_path: Path, aiohttp_server: Any) -> str:
    web = {"port": 0, "api_token": "t", "users": USERS, "session_secret": "s" * 32}
    cfg = make_config(tmp_path, web=web, gateway={"onebot": {"enabled": False}})
    clock = ManualClock(at(9, 0))
    app = create_app(cfg, clock=clock)
    server: TestServer = await aiohttp_server(app, host="127.0.0.1")
    await app[TICKS].stop()
    await seed(app, clock)
    return str(server.make_url("")).rstrip("/")


async def test_dashboard_in_chromium(
    tmp_path: Path, aiohttp_server: Any, chromium_path: str, screenshots: Path
) -> None:
    """Log in, read the operator table, see <script> as text, dismiss a breach, read a CSV."""
    from playwright.async_api import async_playwright

    base = await _server(tmp_path, aiohttp_server)
    dialogs: list[str] = []
    async with async_playwright() as pw:
        ctx = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium_path,
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = ctx.pages[0] if ctx.pages else await ctx.new_page()
            page.on("dialog", lambda d: dialogs.append(d.message))

            await page.goto(f"{base}/operators")
            assert page.url.startswith(f"{base}/login")
            await page.fill("input[name=username]", "zhao")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("form.login button[type=submit]")
            await page.wait_for_url(f"{base}/operators")
            row = page.locator('tr[data-operator="li"]')
            assert await row.count() == 1
            assert "1" in (await row.locator("td").nth(1).inner_text())  # first responses
            await page.screenshot(path=str(screenshots / "operators.png"), full_page=True)

            await page.goto(f"{base}/")
            assert await page.locator('[data-kpi="attainment"]').count() == 1
            await page.screenshot(path=str(screenshots / "overview.png"), full_page=True)

            await page.goto(f"{base}/breaches")
            link = page.locator("#breaches a").first
            qid = (await link.inner_text()).strip()
            await page.screenshot(path=str(screenshots / "breaches.png"), full_page=True)

            # Dismiss the breach with a reason.
            await page.goto(f"{base}/breaches")
            form = page.locator(f'tr[data-question="{qid}"] form.dismiss')
            await form.locator("input[name=reason]").fill("客户已私聊解决")
            await form.locator("button").click()
            await page.wait_for_url(f"{base}/breaches?done=dismissed")
            assert await page.locator(f'tr[data-question="{qid}"]').count() == 0

            # Download the per-question CSV and read it back.
            await page.goto(f"{base}/operators?from=2026-03-10&to=2026-03-10")
            async with page.expect_download() as info:
                await page.click('a[href^="/export/questions.csv"]')
            download = await info.value
            target = tmp_path / "questions.csv"
            await download.save_as(str(target))
            raw = target.read_bytes()  # a small local file, after the download
            assert raw.startswith(b"\xef\xbb\xbf")
            rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
            assert rows[0][:3] == ["问题", "群", "客户"]
            assert SCRIPT in {r[-1] for r in rows[1:]}
            qid_script = next(r[0] for r in rows[1:] if r[-1] == SCRIPT)

            # The question in 5001 carries a <script>: shown as text, nothing runs.
            await page.goto(f"{base}/questions/{qid_script}")
            text = await page.locator("#messages").inner_text()
            assert "<script>alert(1)</script>" in text
            assert await page.locator("#messages script").count() == 0
            await page.screenshot(path=str(screenshots / "question.png"), full_page=True)

            for name in ("trends", "sop"):
                await page.goto(f"{base}/{name}?from=2026-03-04&to=2026-03-10")
                await page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
            await page.set_viewport_size({"width": 390, "height": 844})
            await page.goto(f"{base}/?lang=en")
            await page.screenshot(path=str(screenshots / "overview-phone-en.png"), full_page=True)
            assert dialogs == []
        finally:
            await ctx.close()
