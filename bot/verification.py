"""The port through which a platform API verifies SOP work (the WeCom gateway will fill it).

``VerificationSource`` is what a gateway implements: per-guide counts for one local date from
moment-task results (朋友圈), group-send results (群发) and next-day behaviour data (私聊
``chat_cnt``). ``apply_verified`` turns such counts into completion evidence with source
``api``; the evidence ref is ``<kind>:<ref>``, and a re-fetched figure for the same ref replaces
the earlier count instead of adding to it, so polling the API repeatedly is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import tasks as store
from sop.plans import StepKind


class VerificationKind(StrEnum):
    MOMENTS = "moments"  # moment task publish results
    GROUP_SEND = "group_send"  # group-send (群发) results
    BEHAVIOUR = "behaviour"  # next-day behaviour data (chat counts)


@dataclass(frozen=True, slots=True)
class GuideCount:
    """``count`` verified units of ``step`` by ``guide_id`` on ``local_date``.

    ``ref`` names the API object the figure comes from (moment id, msgid, "day"), so the same
    result fetched twice is recognised.
    """

    guide_id: str
    step: str
    local_date: date
    count: int
    ref: str
    kind: VerificationKind

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError("a verified count cannot be negative")


class VerificationSource(Protocol):
    """Implemented by a gateway that can verify SOP work through its platform API."""

    async def moment_results(self, local_date: date) -> Sequence[GuideCount]:
        """Moments each guide published that day (step ``moments``)."""
        ...

    async def group_send_results(self, local_date: date) -> Sequence[GuideCount]:
        """Group sends each guide completed that day (step ``group_posts``)."""
        ...

    async def behaviour_data(self, local_date: date) -> Sequence[GuideCount]:
        """Private chats per guide from the platform's behaviour data (step ``private_chats``)."""
        ...


DEFAULT_STEPS = {
    VerificationKind.MOMENTS: StepKind.MOMENTS.value,
    VerificationKind.GROUP_SEND: StepKind.GROUP_POSTS.value,
    VerificationKind.BEHAVIOUR: StepKind.PRIVATE_CHATS.value,
}


async def apply_verified(engine: AsyncEngine, counts: Iterable[GuideCount], at: datetime) -> int:
    """Record counts as ``api`` evidence on the matching tasks; return how many tasks matched."""
    matched = 0
    async with engine.begin() as conn:
        for c in counts:
            task = await store.find_task(conn, c.guide_id, c.step, c.local_date)
            if task is None:
                continue
            await store.add_evidence(
                conn,
                task,
                source="api",
                ref=f"{c.kind.value}:{c.ref}",
                count=c.count,
                at=at,
                replace_count=True,
            )
            matched += 1
    return matched


async def verify_day(
    engine: AsyncEngine, source: VerificationSource, local_date: date, at: datetime
) -> int:
    """Fetch every kind of result for ``local_date`` from ``source`` and apply it."""
    counts: list[GuideCount] = [
        *await source.moment_results(local_date),
        *await source.group_send_results(local_date),
        *await source.behaviour_data(local_date),
    ]
    return await apply_verified(engine, counts, at)
