"""Suggested content for reminder slots, rotated so a guide does not see the same item in a week.

Rotation rule (``pick_content``): among the items that fit the step, drop every item the guide
was given within ``window_days`` (7) of the date; choose the fresh item used longest ago (never
used first), ties broken by a stable hash of guide, date, slot and item so guides do not all
get the same text. With at least ``window_days`` x slots-per-day fitting items a fresh item
always exists, so no item repeats within the window. With a smaller library no fresh item may
be left: the least recently used item is then repeated (the repeat is as old as possible)
rather than sending no suggestion. ``None`` only when no item fits at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

ROTATION_DAYS = 7


@dataclass(frozen=True, slots=True)
class ContentItem:
    """One piece of suggested content; ``steps`` empty means it fits any step."""

    id: str
    text: str
    link: str | None = None
    steps: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("content item id must not be empty")
        if not self.text.strip() and not self.link:
            raise ValueError(f"content item {self.id!r} has neither text nor link")

    def fits(self, step: str | None) -> bool:
        return step is None or not self.steps or step in self.steps


def _tiebreak(guide_id: str, local_date: date, slot: str, item_id: str) -> bytes:
    return hashlib.sha256(
        f"{guide_id}\x1f{local_date.isoformat()}\x1f{slot}\x1f{item_id}".encode()
    ).digest()


def pick_content(
    library: Iterable[ContentItem],
    guide_id: str,
    local_date: date,
    slot: str,
    recent: Sequence[tuple[date, str]],
    *,
    step: str | None = None,
    window_days: int = ROTATION_DAYS,
) -> ContentItem | None:
    """The item to suggest to ``guide_id`` in ``slot`` on ``local_date`` (see module doc).

    ``recent`` is the guide's history of (date given, item id), including earlier slots of
    the same day. Deterministic for equal inputs.
    """
    candidates = {item.id: item for item in library if item.fits(step)}
    if not candidates:
        return None
    last_used: dict[str, date] = {}
    blocked: set[str] = set()
    for used_on, item_id in recent:
        if abs((local_date - used_on).days) < window_days:
            blocked.add(item_id)
        if used_on <= local_date and (item_id not in last_used or used_on > last_used[item_id]):
            last_used[item_id] = used_on
    fresh = [i for i in candidates if i not in blocked]
    pool = fresh or list(candidates)

    def rank(item_id: str) -> tuple[int, date, bytes]:
        used = last_used.get(item_id)
        return (
            0 if used is None else 1,
            used or date.min,
            _tiebreak(guide_id, local_date, slot, item_id),
        )

    return candidates[min(pool, key=rank)]


def picks_for_day(
    library: Sequence[ContentItem],
    guide_id: str,
    local_date: date,
    slots: Sequence[str],
    recent: Sequence[tuple[date, str]],
    *,
    step: str | None = None,
    window_days: int = ROTATION_DAYS,
) -> dict[str, ContentItem | None]:
    """One pick per slot of the day, each counting the earlier picks as recent."""
    history = list(recent)
    picks: dict[str, ContentItem | None] = {}
    for slot in slots:
        item = pick_content(
            library, guide_id, local_date, slot, history, step=step, window_days=window_days
        )
        picks[slot] = item
        if item is not None:
            history.append((local_date, item.id))
    return picks
