"""Revoked dashboard sessions (``web_session_revoked``): written at logout, read per request."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.db import insert_for
from bot.store.models import WebSessionRevoked

_T = WebSessionRevoked.__table__  # type: ignore[attr-defined]


async def revoke(conn: AsyncConnection, sid: str, expires_at: datetime, now: datetime) -> None:
    """Refuse session ``sid`` from now on; forget sessions that have expired anyway."""
    await conn.execute(delete(_T).where(_T.c.expires_at <= now))
    stmt = insert_for(conn)(_T).values(sid=sid, expires_at=expires_at).on_conflict_do_nothing()
    await conn.execute(stmt)


async def is_revoked(conn: AsyncConnection, sid: str) -> bool:
    return (await conn.execute(select(_T.c.sid).where(_T.c.sid == sid))).first() is not None
