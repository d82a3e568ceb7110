"""Config loading: the example file, env overrides, and one clear line for every mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ENV_OVERRIDES, env_name, load_config
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"


def test_example_config_loads() -> None:
    """config.example.toml is valid and exercises the roster and groups."""
    cfg = load_config(EXAMPLE, environ={})
    assert cfg.bot.timezone == "Asia/Shanghai"
    assert cfg.web.port == 8780
    assert cfg.web.host == "127.0.0.1"
    assert cfg.gateway.onebot.mode == "reverse-ws"
    assert {o.role for o in cfg.operators} >= {"supervisor", "operator", "guide"}
    assert cfg.groups[0].owners == ("li",)


def test_example_config_mentions_every_key() -> None:
    """Every model field appears in the example file, so it cannot drift from the code."""
    from pydantic import BaseModel

    from bot.config import AppConfig

    text = EXAMPLE.read_text(encoding="utf-8")

    def walk(model: type[BaseModel]) -> list[str]:
        keys = []
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                keys.extend(walk(ann))
            else:
                keys.append(name)
        return keys

    from bot.config import GroupConfig, OperatorConfig

    missing = [
        k
        for k in walk(AppConfig) + walk(OperatorConfig) + walk(GroupConfig)
        if k not in ("operators", "groups") and f"\n{k} =" not in text
    ]
    assert missing == []


def test_defaults_without_file_sections(tmp_path: Path) -> None:
    """An empty file gives the embedded defaults: SQLite in data_dir, port 8780."""
    p = tmp_path / "c.toml"
    p.write_text("", encoding="utf-8")
    cfg = load_config(p, environ={})
    assert cfg.bot.resolved_database_url().startswith("sqlite+aiosqlite:///")
    assert cfg.bot.resolved_database_url().endswith("data/sopbot.db")


def test_secrets_come_from_environment(tmp_path: Path) -> None:
    """SOPBOT_* variables override secrets and the database URL, and win over the file."""
    p = tmp_path / "c.toml"
    p.write_text('[web]\napi_token = "from-file"\n', encoding="utf-8")
    env = {
        "SOPBOT_WEB_API_TOKEN": "from-env",
        "SOPBOT_GATEWAY_ONEBOT_ACCESS_TOKEN": "ob-token",
        "SOPBOT_BOT_DATABASE_URL": "postgresql+asyncpg://u:p@127.0.0.1/x",
    }
    cfg = load_config(p, environ=env)
    assert cfg.web.api_token.get_secret_value() == "from-env"
    assert cfg.gateway.onebot.access_token.get_secret_value() == "ob-token"
    assert cfg.bot.database_url.startswith("postgresql+asyncpg://")
    assert "ob-token" not in repr(cfg)
    assert env_name(("gateway", "onebot", "secret")) == "SOPBOT_GATEWAY_ONEBOT_SECRET"
    assert ("gateway", "onebot", "secret") in ENV_OVERRIDES


BAD = [
    ('[web]\nport = "eighty"\n', "web.port", 2),
    ("[web]\nprot = 1\n", "web.prot", 2),
    ('[bot]\ntimezone = "Mars/Olympus"\n', "bot.timezone", 2),
    ('[gateway.onebot]\nmode = "carrier-pigeon"\n', "gateway.onebot.mode", 2),
    ('[gateway.onebot]\nmode = "forward-ws"\n', "gateway.onebot.url", None),
    ('[[operators]]\nid = "a"\nname = "A"\nrole = "boss"\n', "operators[0].role", 4),
    (
        '[[operators]]\nid = "a"\nname = "A"\n\n[[groups]]\nid = "1"\nowners = ["nobody"]\n',
        "groups[0].owners",
        7,
    ),
    (
        '[[operators]]\nid = "a"\nname = "A"\nsupervisor = "ghost"\n',
        "operators[0].supervisor",
        4,
    ),
    (
        '[[operators]]\nid = "a"\nname = "A"\nonebot_user_ids = [1]\n'
        '[[operators]]\nid = "b"\nname = "B"\nonebot_user_ids = ["1"]\n',
        "operators[1].onebot_user_ids",
        8,
    ),
    ('[intake]\nflush_interval = "soon"\n', "intake.flush_interval", 2),
    ("[bot\ntimezone = 1\n", "", 1),
]


@pytest.mark.parametrize(("text", "key", "line"), BAD)
def test_bad_config_names_key_file_and_line(
    tmp_path: Path, text: str, key: str, line: int | None
) -> None:
    """A bad value becomes one ConfigError with the key path and the line."""
    p = tmp_path / "bad.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(p, environ={})
    err = info.value
    assert err.key == key
    if line is not None:
        assert err.line == line
    msg = err.one_line()
    assert str(p) in msg
    assert "\n" not in msg


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is a config error too."""
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml", environ={})


def _sopbot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_cli_ok() -> None:
    """`sopbot check-config` exits 0 on the example file."""
    proc = _sopbot("check-config", str(EXAMPLE))
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


def test_check_config_cli_bad(tmp_path: Path) -> None:
    """On a bad file it prints one line naming the file, key and line, and exits 2."""
    p = tmp_path / "bad.toml"
    p.write_text('[web]\nhost = "0.0.0.0"\nport = 99999\n', encoding="utf-8")
    proc = _sopbot("check-config", str(p))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"{p}:3" in lines[0]
    assert "web.port" in lines[0]
