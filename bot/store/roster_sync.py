"""Mirror the configured roster and groups into the store, keeping ownership history."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import AppConfig
from bot.store.models import Chat, GroupOwner, Operator, OperatorIdentity


async def sync_roster(session: AsyncSession, cfg: AppConfig, now: datetime) -> None:
    """Upsert operators, identities and groups; record owner changes with validity periods."""
    existing = {o.id: o for o in (await session.exec(select(Operator))).all()}
    configured = {op.id for op in cfg.operators}
    for op in cfg.operators:
        row = existing.get(op.id) or Operator(id=op.id, name=op.name, role=op.role)
        row.name, row.role, row.supervisor_id = op.name, op.role, op.supervisor
        row.store, row.wecom_user_id, row.is_bot = op.store, op.wecom_user_id, op.is_bot
        row.active, row.updated_at = True, now
        session.add(row)
    for op_id, row in existing.items():
        if op_id not in configured and row.active:
            row.active, row.updated_at = False, now
            session.add(row)

    identities = {
        (i.platform, i.user_id): i for i in (await session.exec(select(OperatorIdentity))).all()
    }
    wanted: dict[tuple[str, str], str] = {}
    for op in cfg.operators:
        for uid in op.onebot_user_ids:
            wanted[("onebot11", uid)] = op.id
        if op.wecom_user_id:
            wanted[("wecom", op.wecom_user_id)] = op.id
    for key, op_id in wanted.items():
        ident = identities.get(key) or OperatorIdentity(
            platform=key[0], user_id=key[1], operator_id=op_id
        )
        ident.operator_id = op_id
        session.add(ident)
    for key, ident in identities.items():
        if key not in wanted:
            await session.delete(ident)

    chats = {
        (c.platform, c.chat_id): c
        for c in (await session.exec(select(Chat).where(Chat.chat_type == "group"))).all()
    }
    open_owners = (
        await session.exec(select(GroupOwner).where(col(GroupOwner.until).is_(None)))
    ).all()
    current: dict[tuple[str, str], dict[str, GroupOwner]] = {}
    for go in open_owners:
        current.setdefault((go.platform, go.chat_id), {})[go.operator_id] = go
    for g in cfg.groups:
        chat = chats.get((g.platform, g.id)) or Chat(
            platform=g.platform, chat_type="group", chat_id=g.id, created_at=now
        )
        chat.name, chat.monitored = g.name, g.monitored
        session.add(chat)
        have = current.get((g.platform, g.id), {})
        for owner in g.owners:
            if owner not in have:
                session.add(
                    GroupOwner(platform=g.platform, chat_id=g.id, operator_id=owner, since=now)
                )
        for owner, ownership in have.items():
            if owner not in g.owners:
                ownership.until = now
                session.add(ownership)
    await session.commit()
