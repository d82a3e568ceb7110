"""Upgrading a store made by the first schema keeps its rows and its guarantees."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import messages as message_store
from bot.store import sla_rollup
from bot.store.db import make_engine, upgrade
from tests.conftest import BACKENDS, blank_postgres

_INSERT = text(
    "INSERT INTO message (platform, account_id, chat_type, chat_id, message_id, sender_id,"
    " sender_name, actor_role, is_self, text, mention_user_ids, mention_all, sent_at,"
    " received_at) VALUES ('onebot11', '10000', 'group', '5001', '77', '20001', 'n',"
    " 'customer', false, '请问', '[]', false, '2026-03-10 02:00:00', '2026-03-10 02:00:01')"
)


@pytest.fixture(params=BACKENDS)
async def blank(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database (no schema at all) on each backend."""
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        else:
            url = await stack.enter_async_context(blank_postgres("sopbot_m"))
        engine = make_engine(url)
        stack.push_async_callback(engine.dispose)
        yield engine


async def test_upgrade_from_the_first_schema_keeps_messages_unique(blank: AsyncEngine) -> None:
    await upgrade(blank, "0001")
    async with blank.begin() as conn:
        await conn.execute(_INSERT)
    await upgrade(blank)
    async with blank.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM message"))).scalar() == 1
        # Rollups built before the watermark hold every question: it starts at +inf.
        assert await sla_rollup.watermark(conn) == sla_rollup.INF
    with pytest.raises(IntegrityError):
        async with blank.begin() as conn:
            await conn.execute(_INSERT)
    await upgrade(blank)  # idempotent


async def test_upgrade_counts_existing_messages_into_the_tally(blank: AsyncEngine) -> None:
    await upgrade(blank, "0002")
    async with blank.begin() as conn:
        await conn.execute(_INSERT)
        await conn.execute(text(_INSERT.text.replace("'77'", "'78'")))
    await upgrade(blank)
    async with blank.connect() as conn:
        assert await message_store.tally_by_role(conn) == {"customer": 2}
