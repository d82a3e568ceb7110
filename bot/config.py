"""Configuration: TOML file → validated, frozen pydantic models (unknown keys rejected).

``load_config(path)`` is the only entry point. Secrets (``SecretStr`` fields) and the database URL
may be overridden from the environment: ``SOPBOT_<SECTION>_<KEY>`` in upper case, e.g.
``SOPBOT_WEB_API_TOKEN``, ``SOPBOT_GATEWAY_ONEBOT_ACCESS_TOKEN``, ``SOPBOT_BOT_DATABASE_URL``.
Every problem becomes one ``ConfigError`` naming the file, the key and, where we can find it,
the line.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.config_digest import DigestSection
from bot.config_sla import CalendarSection, DetectorSection, SlaSection
from bot.config_sop import SopSection
from bot.config_types import Duration, Section
from bot.config_web import WebUser
from bot.config_wecom import MatterbridgeSection, WeComSection
from bot.errors import ConfigError


class BotSection(Section):
    timezone: str = "Asia/Shanghai"
    data_dir: Path = Path("./data")
    database_url: str = ""
    language: Literal["zh-CN", "en"] = "zh-CN"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    instance_id: str = ""
    event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"

    @field_validator("event_loop")
    @classmethod
    def _loop_available(cls, v: str) -> str:
        if v == "uvloop" and importlib.util.find_spec("uvloop") is None:
            raise ValueError('uvloop is not installed (use "auto" or "asyncio")')
        return v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name like Asia/Shanghai)"
            ) from None
        return v

    @field_validator("database_url")
    @classmethod
    def _supported_url(cls, v: str) -> str:
        if v and not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "database_url must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return v

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'sopbot.db').resolve()}"


class WebSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8780, ge=0, le=65535)
    api_token: SecretStr = SecretStr("")
    public_url: str = ""
    users: tuple[WebUser, ...] = ()
    session_secret: SecretStr = SecretStr("")
    session_ttl: Duration = 43200.0


class OneBotSection(Section):
    enabled: bool = True
    mode: Literal["reverse-ws", "forward-ws", "http-post"] = "reverse-ws"
    url: str = ""
    access_token: SecretStr = SecretStr("")
    secret: SecretStr = SecretStr("")
    action_timeout: Duration = 30.0
    max_frame_bytes: int = Field(default=1 << 20, ge=1024)
    reconnect_max_delay: Duration = 60.0

    @model_validator(mode="after")
    def _url_for_forward(self) -> OneBotSection:
        if (
            self.enabled
            and self.mode == "forward-ws"
            and not self.url.startswith(("ws://", "wss://"))
        ):
            raise ValueError('url: forward-ws mode needs url = "ws://host:port/"')
        return self


class SimulatorSection(Section):
    enabled: bool = False
    seed: int = 7
    groups: int = Field(default=4, ge=1, le=200)
    customers_per_group: int = Field(default=12, ge=1, le=5000)
    account_id: str = "sim-bot"


class GatewaySection(Section):
    onebot: OneBotSection = OneBotSection()
    simulator: SimulatorSection = SimulatorSection()
    wecom: WeComSection = WeComSection()
    matterbridge: MatterbridgeSection = MatterbridgeSection()


class IntakeSection(Section):
    queue_size: int = Field(default=5_000, ge=10)
    batch_size: int = Field(default=1_000, ge=1)
    flush_interval: Duration = 0.005  # receipt→commit latency vs transactions per second
    store_raw: bool = False


class DeliverySection(Section):
    every: Duration = 1.0
    total_per_second: float = Field(default=50.0, ge=0)
    per_recipient_per_minute: float = Field(default=30.0, ge=0)
    lease: Duration = 120.0
    max_attempts: int = Field(default=5, ge=1)


Role = Literal["guide", "operator", "specialist", "supervisor", "admin"]


class OperatorConfig(Section):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    role: Role = "operator"
    onebot_user_ids: tuple[str, ...] = ()
    wecom_user_id: str = ""
    supervisor: str = ""
    store: str = ""
    is_bot: bool = False

    @field_validator("onebot_user_ids", mode="before")
    @classmethod
    def _ids_as_strings(cls, v: object) -> object:
        # QQ numbers are often written unquoted in TOML; ids are strings everywhere in sopbot.
        if isinstance(v, list | tuple):
            return tuple(str(x) for x in v)
        return v


class GroupConfig(Section):
    platform: str = "onebot11"
    id: str = Field(min_length=1)
    name: str = ""
    owners: tuple[str, ...] = ()
    monitored: bool = True

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_string(cls, v: object) -> object:
        return str(v) if isinstance(v, int) else v


class AppConfig(Section):
    bot: BotSection = BotSection()
    web: WebSection = WebSection()
    gateway: GatewaySection = GatewaySection()
    intake: IntakeSection = IntakeSection()
    delivery: DeliverySection = DeliverySection()
    sla: SlaSection = SlaSection()
    calendar: CalendarSection = CalendarSection()
    detector: DetectorSection = DetectorSection()
    sop: SopSection = SopSection()
    digest: DigestSection = DigestSection()
    operators: tuple[OperatorConfig, ...] = ()
    groups: tuple[GroupConfig, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> AppConfig:
        ids: set[str] = set()
        seen_user: dict[str, str] = {}
        for i, op in enumerate(self.operators):
            if op.id in ids:
                raise _RefError(f"operators[{i}].id", f"duplicate operator id {op.id!r}")
            ids.add(op.id)
            for uid in op.onebot_user_ids:
                if uid in seen_user:
                    raise _RefError(
                        f"operators[{i}].onebot_user_ids",
                        f"user id {uid!r} is already listed for operator {seen_user[uid]!r}",
                    )
                seen_user[uid] = op.id
        for i, op in enumerate(self.operators):
            if op.supervisor and op.supervisor not in ids:
                raise _RefError(
                    f"operators[{i}].supervisor", f"unknown operator id {op.supervisor!r}"
                )
        seen_groups: set[tuple[str, str]] = set()
        for i, g in enumerate(self.groups):
            if (g.platform, g.id) in seen_groups:
                raise _RefError(f"groups[{i}].id", f"duplicate group {g.platform}:{g.id}")
            seen_groups.add((g.platform, g.id))
            for owner in g.owners:
                if owner not in ids:
                    raise _RefError(f"groups[{i}].owners", f"unknown operator id {owner!r}")
        return self


class _RefError(ValueError):
    """A cross-reference problem, carrying the key path it is about."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


def _secret_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if ann is SecretStr:
            paths.append((*prefix, name))
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            paths.extend(_secret_paths(ann, (*prefix, name)))
    return paths


ENV_OVERRIDES: tuple[tuple[str, ...], ...] = (
    *_secret_paths(AppConfig),
    ("bot", "database_url"),
)


def env_name(path: tuple[str, ...]) -> str:
    return "SOPBOT_" + "_".join(path).upper()


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    for path in ENV_OVERRIDES:
        value = environ.get(env_name(path))
        if value is None:
            continue
        node = data
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                break
            node = nxt
        else:
            node[path[-1]] = value
    return data


def _loc_to_key(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _find_line(text: str, key: str) -> int | None:
    """Best-effort line of ``key`` (dotted path with [i] indexes) in the TOML source."""
    parts = [p for p in re.split(r"\.|\[\d+\]", key) if p]
    indexes = [int(i) for i in re.findall(r"\[(\d+)\]", key)]
    if not parts:
        return None
    lines = text.splitlines()
    leaf = parts[-1]
    # Find the table header for the section path, then the leaf key after it.
    section_start = 0
    if len(parts) > 1:
        header_parts = parts[:-1]
        array_name = header_parts[0]
        if indexes:
            count = -1
            for i, line in enumerate(lines):
                if re.match(rf"^\s*\[\[\s*{re.escape(array_name)}\s*\]\]", line):
                    count += 1
                    if count == indexes[0]:
                        section_start = i
                        break
        else:
            dotted = r"\s*\.\s*".join(re.escape(p) for p in header_parts)
            for i, line in enumerate(lines):
                if re.match(rf"^\s*\[\s*{dotted}\s*\]", line):
                    section_start = i
                    break
    for i in range(section_start, len(lines)):
        if i > section_start and re.match(r"^\s*\[", lines[i]) and len(parts) > 1:
            break
        if re.match(rf"^\s*{re.escape(leaf)}\s*=", lines[i]):
            return i + 1
    return section_start + 1 if section_start else None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> AppConfig:
    """Read, override from the environment and validate a config file."""
    p = Path(path)
    shown = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(shown, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(shown, "", f"cannot read file: {exc}") from None
    return parse_config(text, shown, os.environ if environ is None else environ)


def parse_config(text: str, shown: str, environ: Mapping[str, str]) -> AppConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(
            shown, "", f"not valid TOML: {exc}", int(m.group(1)) if m else None
        ) from None
    data = _apply_env(data, environ)
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _RefError):
            key, msg = ctx_error.key, str(ctx_error)
        else:
            key = _loc_to_key(tuple(err["loc"]))
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling against config.example.toml)"
            if ":" in msg and msg.split(":", 1)[0].isidentifier() and err["type"] == "value_error":
                # validators may prefix the exact sub-key: "url: forward-ws mode needs ..."
                sub, msg = msg.split(":", 1)
                key = f"{key}.{sub}" if key else sub
                msg = msg.strip()
        raise ConfigError(shown, key, msg, _find_line(text, key)) from None
