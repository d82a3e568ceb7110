"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright.

``scripts/ensure-chromium.sh`` installs the browser when missing (Playwright's own browser
download never works here) and prints its path. Without the ``playwright`` package (the dev
extra) the browser tests skip.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The browser's path, installing Debian's package first when needed."""
    pytest.importorskip("playwright.async_api")
    done = subprocess.run(
        [str(ROOT / "scripts" / "ensure-chromium.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    if done.returncode != 0:
        pytest.fail(f"ensure-chromium.sh failed: {done.stderr[-500:]}")
    return done.stdout.strip()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
