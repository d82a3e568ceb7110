"""``[bot] event_loop``: uvloop by default where installed, asyncio on request."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from bot.config import load_config
from bot.errors import ConfigError
from bot.eventloop import new_event_loop


@pytest.mark.parametrize(
    ("choice", "kind"),
    [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")],
)
def test_loop_kind_follows_the_setting(choice: str, kind: str) -> None:
    loop, name = new_event_loop(choice)
    try:
        assert name == kind
        assert (type(loop).__module__.split(".")[0] == "uvloop") == (kind == "uvloop")
        assert loop.run_until_complete(asyncio.sleep(0, result=42)) == 42
    finally:
        loop.close()


def test_uvloop_asked_for_but_missing_names_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[bot]\nevent_loop = "uvloop"\n', encoding="utf-8")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a)
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "event_loop" in message
    assert "uvloop is not installed" in message
    assert str(path) in message
