"""SOP verification through WeCom's customer-contact APIs: ``bot.verification.VerificationSource``.

What counts, per guide per local day (WeCom userids → operators through the roster):

- **moments**: one unit per tracked Moments task (客户朋友圈) the guide has published
  (``get_moment_task`` ``publish_status`` 1). WeCom has no publish time, so a task counts for
  the day it was tracked on.
- **group_posts**: per tracked group send (群发) of the guide, the distinct customer groups it
  reached that day (``get_groupmsg_send_result`` status 1, ``send_time`` on that local day); a
  send to single customers counts one unit.
- **private_chats**: ``chat_cnt`` of the next-day behaviour data (``get_user_behavior_data``),
  for every guide with a ``wecom_user_id`` and a ``private_chats`` task that day.

WeCom cannot list what a guide posted on their own through these calls, so only jobs sopbot
knows are checked: ``push_moment`` / ``push_group_send`` create them, ``track`` adopts one made
elsewhere. A tracked job is stored as a zero-count ``api`` evidence row on the guide's task
(ref ``moments:<moment_id>`` / ``group_send:<msgid>``), the same row the verified count later
replaces, so tracking survives restarts and needs no table of its own. One failing job or
member is logged and skipped; the others still count.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.errors import GatewayError
from bot.gateway.wecom.sop_api import WeComSopApi
from bot.roster import Roster
from bot.store import tasks as store
from bot.store.models import TaskCompletion, TaskInstance
from bot.verification import DEFAULT_STEPS, GuideCount, VerificationKind
from sop.plans import StepKind

log = logging.getLogger("sopbot.wecom.verify")

_TI = TaskInstance.__table__  # type: ignore[attr-defined]
_TC = TaskCompletion.__table__  # type: ignore[attr-defined]
PLATFORM = "wecom"


class WeComVerification:
    """Moments, group-send and behaviour-data counts for one local date, from WeCom."""

    def __init__(
        self,
        api: WeComSopApi,
        roster: Roster,
        engine: Callable[[], AsyncEngine],
        *,
        tz: str = "Asia/Shanghai",
    ) -> None:
        self._api = api
        self._roster = roster
        self._engine = engine  # a getter: the engine exists only once the app has started
        self._zone = ZoneInfo(tz)

    def _userid(self, guide_id: str) -> str:
        op = self._roster.operator(guide_id)
        return op.wecom_user_id if op is not None else ""

    # -- tracking ------------------------------------------------------------------------

    async def track(
        self,
        kind: VerificationKind,
        ref: str,
        guide_ids: Iterable[str],
        local_date: date,
        at: datetime,
    ) -> int:
        """Check WeCom job ``ref`` for these guides on ``local_date``; return tasks matched."""
        step = DEFAULT_STEPS[kind]
        matched = 0
        async with self._engine().begin() as conn:
            for gid in dict.fromkeys(guide_ids):
                task = await store.find_task(conn, gid, step, local_date)
                if task is None:
                    continue
                # Count 0 until verified; a later verified count replaces it (same ref).
                await store.add_evidence(
                    conn, task, source="api", ref=f"{kind.value}:{ref}", count=0, at=at
                )
                matched += 1
        return matched

    async def push_moment(
        self, text: str, guide_ids: Sequence[str], local_date: date, at: datetime
    ) -> str:
        """Create a Moments task for these guides (they confirm it in WeCom); track it."""
        users = [u for g in guide_ids if (u := self._userid(g))]
        if not users:
            raise GatewayError("none of these guides has a wecom_user_id")
        jobid = await self._api.add_moment_task(text, sender_users=users)
        result = await self._api.wait_moment_task(jobid)
        if not result.done or not result.moment_id:
            raise GatewayError(f"wecom moment job {jobid} did not finish (status {result.status})")
        if result.invalid_users:
            log.warning("wecom moment %s: %d senders invalid", jobid, len(result.invalid_users))
        await self.track(VerificationKind.MOMENTS, result.moment_id, guide_ids, local_date, at)
        return result.moment_id

    async def push_group_send(
        self, guide_id: str, text: str, chat_ids: Sequence[str], local_date: date, at: datetime
    ) -> str:
        """Queue a group send (群发) to these groups for the guide to confirm; track it."""
        userid = self._userid(guide_id)
        if not userid:
            raise GatewayError(f"guide {guide_id!r} has no wecom_user_id")
        result = await self._api.add_msg_template(
            sender=userid, text=text, chat_type="group", chat_ids=chat_ids
        )
        if not result.msgid:
            raise GatewayError("wecom add_msg_template returned no msgid")
        await self.track(VerificationKind.GROUP_SEND, result.msgid, [guide_id], local_date, at)
        return result.msgid

    async def _tracked(self, kind: VerificationKind, local_date: date) -> dict[str, set[str]]:
        """WeCom job id → guides tracking it on ``local_date``."""
        prefix = f"{kind.value}:"
        stmt = (
            select(_TC.c.ref, _TI.c.guide_id)
            .join(_TI, _TI.c.id == _TC.c.task_id)
            .where(
                _TI.c.local_date == local_date,
                _TI.c.step == DEFAULT_STEPS[kind],
                _TI.c.target_key == "",
                _TC.c.source == "api",
                _TC.c.ref.like(prefix + "%"),
            )
        )
        out: dict[str, set[str]] = defaultdict(set)
        async with self._engine().connect() as conn:
            for ref, guide_id in await conn.execute(stmt):
                out[ref[len(prefix) :]].add(guide_id)
        return out

    # -- VerificationSource --------------------------------------------------------------

    async def moment_results(self, local_date: date) -> Sequence[GuideCount]:
        counts: list[GuideCount] = []
        for moment_id, guides in sorted(
            (await self._tracked(VerificationKind.MOMENTS, local_date)).items()
        ):
            try:
                entries = await self._api.all_moment_task(moment_id)
            except GatewayError as exc:
                log.warning("wecom moment %s not verified: %s", moment_id, exc)
                continue
            published = {e.userid for e in entries if e.published}
            counts.extend(
                GuideCount(
                    gid,
                    StepKind.MOMENTS.value,
                    local_date,
                    int(self._userid(gid) in published),
                    moment_id,
                    VerificationKind.MOMENTS,
                )
                for gid in sorted(guides)
            )
        return counts

    async def group_send_results(self, local_date: date) -> Sequence[GuideCount]:
        counts: list[GuideCount] = []
        tracked = await self._tracked(VerificationKind.GROUP_SEND, local_date)
        for msgid, guides in sorted(tracked.items()):
            for gid in sorted(guides):
                userid = self._userid(gid)
                if not userid:
                    continue
                try:
                    sends = await self._api.all_groupmsg_send_result(msgid, userid)
                except GatewayError as exc:
                    log.warning("wecom group send %s for %s not verified: %s", msgid, gid, exc)
                    continue
                done = [
                    s
                    for s in sends
                    if s.sent
                    and (
                        s.send_time is None
                        or s.send_time.astimezone(self._zone).date() == local_date
                    )
                ]
                groups = {s.chat_id for s in done if s.chat_id}
                count = len(groups) or (1 if done else 0)
                counts.append(
                    GuideCount(
                        gid,
                        StepKind.GROUP_POSTS.value,
                        local_date,
                        count,
                        msgid,
                        VerificationKind.GROUP_SEND,
                    )
                )
        return counts

    async def behaviour_data(self, local_date: date) -> Sequence[GuideCount]:
        stmt = (
            select(_TI.c.guide_id)
            .where(
                _TI.c.local_date == local_date,
                _TI.c.step == StepKind.PRIVATE_CHATS.value,
                _TI.c.target_key == "",
            )
            .distinct()
        )
        async with self._engine().connect() as conn:
            guides = sorted(r[0] for r in await conn.execute(stmt))
        counts: list[GuideCount] = []
        for gid in guides:
            userid = self._userid(gid)
            if not userid:
                continue
            try:
                days = await self._api.get_user_behavior_data(userid, local_date, local_date)
            except GatewayError as exc:
                log.warning("wecom behaviour data for %s not fetched: %s", gid, exc)
                continue
            chats = sum(d.chat_cnt for d in days if d.day == local_date)
            counts.append(
                GuideCount(
                    gid,
                    StepKind.PRIVATE_CHATS.value,
                    local_date,
                    chats,
                    "day",
                    VerificationKind.BEHAVIOUR,
                )
            )
        return counts
