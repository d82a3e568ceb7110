"""Upgrading a store made by the first schema keeps its rows and its guarantees."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

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
async def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database (no schema at all) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    async with blank_postgres("sopbot_m") as url:
        yield url


async def test_upgrade_from_the_first_schema_keeps_messages_unique(blank_url: str) -> None:
    engine = make_engine(blank_url)
    try:
        await upgrade(engine, "0001")
        async with engine.begin() as conn:
            await conn.execute(_INSERT)
        await upgrade(engine)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM message"))).scalar() == 1
            # Rollups built before the watermark hold every question: it starts at +inf.
            assert await sla_rollup.watermark(conn) == sla_rollup.INF
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(_INSERT)
        await upgrade(engine)  # idempotent
    finally:
        await engine.dispose()


async def test_upgrade_counts_existing_messages_into_the_tally(blank_url: str) -> None:
    engine = make_engine(blank_url)
    try:
        await upgrade(engine, "0002")
        async with engine.begin() as conn:
            await conn.execute(_INSERT)
            await conn.execute(text(_INSERT.text.replace("'77'", "'78'")))
        await upgrade(engine)
        async with engine.connect() as conn:
            assert await message_store.tally_by_role(conn) == {"customer": 2}
    finally:
        await engine.dispose()
