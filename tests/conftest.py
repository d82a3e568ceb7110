"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, config builders.

PostgreSQL comes from ``scripts/pg-test.sh`` (started by ``make test``), whose URL arrives in
``SOPBOT_TEST_POSTGRES_URL``. Without it the PostgreSQL variants skip, unless
``SOPBOT_REQUIRE_POSTGRES=1`` (set by ``make test``), where a missing server is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import AppConfig
from bot.store.db import make_engine, upgrade

PG_URL = os.environ.get("SOPBOT_TEST_POSTGRES_URL", "")
REQUIRE_PG = os.environ.get("SOPBOT_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", "postgresql"]


def _admin_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_admin_dsn(PG_URL))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


_TEMPLATE = f"sopbot_tpl_{os.getpid()}"


def _run_in_thread(coro: Coroutine[Any, Any, None]) -> None:
    """Session fixtures may be first requested from inside a running loop: use a fresh one."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


def require_postgres() -> None:
    """Skip without the test PostgreSQL; fail instead where ``make test`` promised one."""
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("SOPBOT_REQUIRE_POSTGRES=1 but SOPBOT_TEST_POSTGRES_URL is not set")
        pytest.skip("no PostgreSQL (run `make test`, or set SOPBOT_TEST_POSTGRES_URL)")


@contextlib.asynccontextmanager
async def blank_postgres(prefix: str) -> AsyncIterator[str]:
    """The URL of an empty database of its own on the test server, dropped afterwards."""
    require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """One migrated PostgreSQL database per test run; each test copies it (fast)."""
    require_postgres()

    async def build() -> None:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{_TEMPLATE}"')
        await _pg_admin(f'CREATE DATABASE "{_TEMPLATE}"')
        engine = make_engine(PG_URL.rsplit("/", 1)[0] + f"/{_TEMPLATE}")
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    _run_in_thread(build())
    yield _TEMPLATE
    _run_in_thread(_pg_admin(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated database URL on each backend."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        engine = make_engine(url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        yield url
        return
    template: str = request.getfixturevalue("pg_template")
    name = f"sopbot_t_{uuid.uuid4().hex[:12]}"
    await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(db_url)
    yield eng
    await eng.dispose()


def make_config(tmp_path: Path, **sections: Any) -> AppConfig:
    """A config with a small roster; ``sections`` override top-level sections (as dicts)."""
    data: dict[str, Any] = {
        "bot": {"data_dir": str(tmp_path / "data")},
        "web": {"port": 0, "api_token": "test-api-token"},
        "gateway": {"onebot": {"access_token": "test-onebot-token"}},
        "operators": [
            {"id": "sup", "name": "赵主管", "role": "supervisor", "onebot_user_ids": ["9001"]},
            {
                "id": "li",
                "name": "李群主",
                "role": "operator",
                "onebot_user_ids": ["9002"],
                "supervisor": "sup",
            },
            {
                "id": "wang",
                "name": "王导购",
                "role": "guide",
                "onebot_user_ids": ["9003"],
                "supervisor": "sup",
                "store": "徐汇店",
            },
            {
                "id": "helper-bot",
                "name": "小助理",
                "role": "operator",
                "onebot_user_ids": ["9999"],
                "is_bot": True,
            },
        ],
        "groups": [
            {"platform": "onebot11", "id": "5001", "name": "宝妈群 1", "owners": ["li"]},
            {"platform": "onebot11", "id": "5002", "name": "宝妈群 2", "owners": ["li", "wang"]},
        ],
    }
    data.update(sections)
    return AppConfig.model_validate(data)
