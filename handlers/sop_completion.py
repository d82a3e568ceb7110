"""SOP completion observed from chat: guides' group posts and private chats, new customers.

- A guide's message in a (monitored) group counts one ``group_posts`` unit per distinct group
  per day (evidence ref = the group), source ``observed``.
- A guide's private message to someone who is not staff counts one ``private_chats`` unit per
  distinct customer per day. A private message *to the bot* (peer = the guide themself) is a
  command, not a chat.
- Friend adds and group joins create customers bound to their guide: the guide named as the
  event's operator (the simulator and WeCom say who), else the guide running the account, else
  a guide owning the group. The new customer's touches due today are materialized at once.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import AppConfig, OperatorConfig
from bot.dispatch import Router
from bot.events import ChatType, MemberChange, MemberChangeKind
from bot.intake import BatchEnd, StoredMessage
from bot.roster import ActorRole, Roster
from bot.store import tasks as store
from sop.lifecycle import Customer
from sop.plans import StepKind
from sop.slots import local_date_of

log = logging.getLogger("sopbot.sop.completion")
router = Router("sop_completion")


def _guide_actor(event: StoredMessage) -> bool:
    op = event.actor.operator
    return event.actor.role is ActorRole.OPERATOR and op is not None and not op.is_bot


_PENDING = "sop_observed_evidence"  # written once per intake batch, at BatchEnd


@router.on(StoredMessage, _guide_actor)
async def observe_guide_message(
    event: StoredMessage, session: AsyncSession, cfg: AppConfig, roster: Roster
) -> None:
    msg, op = event.msg, event.actor.operator
    assert op is not None
    if msg.chat_type is ChatType.GROUP:
        if cfg.sop.monitored_groups_only and not roster.is_monitored(msg.platform, msg.chat_id):
            return
        step, ref = StepKind.GROUP_POSTS.value, f"group:{msg.platform}:{msg.chat_id}"
    else:
        peer = msg.chat_id
        if peer == msg.sender_id or roster.by_user(msg.platform, peer) is not None:
            return  # a command to the bot, or a chat with a colleague
        step, ref = StepKind.PRIVATE_CHATS.value, f"private:{msg.platform}:{peer}"
    # Count when it was sent, in the tenant's day; the first message per group/customer counts.
    # Buffered: the batch's evidence is written in a few statements when the batch ends.
    day = local_date_of(msg.sent_at, cfg.bot.timezone)
    pending = session.info.setdefault(_PENDING, [])
    pending.append(store.Evidence(op.id, step, day, ref, msg.sent_at))


@router.on(BatchEnd)
async def write_observed(event: BatchEnd, session: AsyncSession) -> None:
    """Write the evidence the batch's guide messages produced (with the batch's commit)."""
    pending: list[store.Evidence] = session.info.pop(_PENDING, [])
    if pending:
        await store.add_observed(await session.connection(), pending)


def _owner_guide(event: MemberChange, roster: Roster, sop: Any) -> OperatorConfig | None:
    candidates: list[OperatorConfig | None] = []
    if event.operator_id:
        candidates.append(roster.by_user(event.platform, event.operator_id))
    candidates.append(roster.by_user(event.platform, event.account_id))
    if event.chat_id:
        candidates.extend(roster.operator(o) for o in roster.owners(event.platform, event.chat_id))
    for op in candidates:
        if op is not None and op.id in sop.guides:
            return op
    return None


@router.on(
    MemberChange, lambda e: e.kind in (MemberChangeKind.FRIEND_ADD, MemberChangeKind.GROUP_JOIN)
)
async def customer_contact(
    event: MemberChange, session: AsyncSession, roster: Roster, sop: Any
) -> None:
    if roster.by_user(event.platform, event.user_id) is not None:
        return  # staff joining a group is not a customer
    guide = _owner_guide(event, roster, sop)
    if guide is None:
        return
    conn = await session.connection()
    new = await store.upsert_customer(
        conn,
        store.CustomerRow(
            platform=event.platform,
            external_id=event.user_id,
            guide_id=guide.id,
            added_at=event.at,
            last_purchase_at=None,
            source=event.kind.value,
        ),
    )
    if not new:
        return
    log.info("sop: customer %s bound to %s (%s)", event.user_id[:4] + "…", guide.id, event.kind)
    customer = Customer(event.user_id, guide.id, local_date_of(event.at, sop.tz))
    await sop.materialize_customer(conn, customer, event.at)


ROUTERS = (router,)
