"""A customer deleted as a contact (WeCom ``del_external_contact`` / ``del_follow_user``).

Customers added as contacts are bound to their guide by ``sop_completion`` (lifecycle programs
start there). When the contact goes, the customer is marked as left (``left_at``: no new
lifecycle touches are materialized) and that customer's open touches from that day on are
``waived`` with reason ``contact_deleted``, so they neither nag the guide nor count as missed.
Only the guide the customer is bound to can end the binding this way.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.dispatch import Router
from bot.events import MemberChange, MemberChangeKind
from bot.roster import Roster
from bot.store.models import Customer, TaskInstance
from sop.compliance import TaskStatus
from sop.slots import local_date_of

log = logging.getLogger("sopbot.sop.contacts")
router = Router("wecom_contacts")

_CU = Customer.__table__  # type: ignore[attr-defined]
_TI = TaskInstance.__table__  # type: ignore[attr-defined]


@router.on(MemberChange, lambda e: e.kind is MemberChangeKind.CONTACT_DELETE)
async def customer_deleted(
    event: MemberChange, session: AsyncSession, roster: Roster, sop: Any
) -> None:
    conn = await session.connection()
    cond = [
        _CU.c.platform == event.platform,
        _CU.c.external_id == event.user_id,
        _CU.c.left_at.is_(None),
    ]
    if event.operator_id:
        guide = roster.by_user(event.platform, event.operator_id)
        if guide is None:
            return  # not one of ours
        cond.append(_CU.c.guide_id == guide.id)
    left = await conn.execute(
        update(_CU).where(*cond).values(left_at=event.at).returning(_CU.c.guide_id)
    )
    guide_ids = [r[0] for r in left]
    if not guide_ids:
        return
    waived = await conn.execute(
        update(_TI)
        .where(
            _TI.c.guide_id.in_(guide_ids),
            _TI.c.target_key == event.user_id,
            _TI.c.local_date >= local_date_of(event.at, sop.tz),
            _TI.c.status.in_((TaskStatus.PENDING.value, TaskStatus.REMINDED.value)),
            _TI.c.done < _TI.c.quota,
        )
        .values(status=TaskStatus.WAIVED.value, miss_reason="contact_deleted")
    )
    log.info(
        "sop: customer %s left %s; %d open touches waived",
        event.user_id[:4] + "…",
        guide_ids[0],
        int(waived.rowcount or 0),
    )


ROUTERS = (router,)
