"""SOP runtime: materialize each day's tasks and turn due slots into outbox reminders.

The ``sop`` tick (every second, real time) does, in order:
1. on start and whenever the local date changes, materialize today's and the next
   ``lead_days`` days' tasks (idempotent: existing rows, i.e. history, are never touched, so a
   plan edit applies from the next new day);
2. mark tasks whose window closed unfinished as ``missed``;
3. enqueue every reminder that has fallen due: one slot digest per guide per slot (only when
   something is left), the end-of-day nudge (only to unfinished guides) and the supervisor
   summary. Text is rendered when the reminder falls due, so it shows the progress of that
   moment. A reminder that fell due while the bot was down is enqueued with its original due
   time and window: the outbox sends it late (marked 补发) if the window is open, else records
   it ``missed``. Keys come from ``sop.slots.reminder_key``, so a restart never repeats one.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.clock import Clock
from bot.config import AppConfig
from bot.keys import CLOCK, CONFIG, DISPATCHER, ENGINE, ROSTER
from bot.outbox import OutboxItem, enqueue
from bot.roster import Roster
from bot.scheduler import Tick
from bot.store import tasks as store
from bot.store.models import Outbox
from sop.content import ContentItem, pick_content
from sop.lifecycle import Customer, Program, due_lifecycle_steps
from sop.plans import Guide, Plan, PlanOverride, is_plan_day, resolve_plan, tasks_for_day
from sop.reminder_text import (
    GuideProgress,
    render_nudge,
    render_slot_reminder,
    render_supervisor_summary,
)
from sop.slots import (
    ReminderKind,
    day_window_end,
    local_date_of,
    nudge_time,
    reminder_key,
    slot_times,
    summary_time,
)

log = logging.getLogger("sopbot.sop")

_OUT = Outbox.__table__  # type: ignore[attr-defined]
KIND_PREFIX = "sop_"  # outbox kinds: sop_slot, sop_nudge, sop_summary, sop_urge
_CARRY_DAYS = 10  # lifecycle touches due on days off are carried to the next plan day
# Planned per transaction when materializing a day (each page is a few tens of ms of the loop).
GUIDE_PAGE = 1_000
CUSTOMER_PAGE = 2_000
RENDER_PAGE = 200  # reminders rendered and queued per transaction


@dataclass(frozen=True, slots=True)
class Due:
    """One reminder of the day's schedule."""

    due_at: datetime
    window_end: datetime
    kind: ReminderKind
    recipient: str
    slot: str
    local_date: date
    guides: tuple[str, ...] = ()  # summary: the supervisor's guides

    @property
    def key(self) -> str:
        return reminder_key(self.recipient, self.local_date, self.slot, self.kind)


@dataclass(slots=True)
class _Day:
    entries: list[Due]
    dues: list[datetime]
    cursor: int
    sent_keys: set[str]


def guides_from_roster(roster: Roster, plans: Iterable[Plan]) -> list[Guide]:
    roles = {p.role for p in plans}
    return [
        Guide(op.id, op.role, op.store, op.name)
        for op in roster.operators
        if op.role in roles and not op.is_bot
    ]


class SopRuntime:
    """Plans resolved per guide, the day's reminder schedule, and the tick that drives them."""

    def __init__(
        self,
        cfg: AppConfig,
        roster: Roster,
        engine: AsyncEngine,
        clock: Clock,
        *,
        plans: tuple[Plan, ...] | None = None,
        overrides: tuple[PlanOverride, ...] | None = None,
    ) -> None:
        self.cfg = cfg
        self.roster = roster
        self.engine = engine
        self.clock = clock
        self.tz = cfg.bot.timezone
        self.zone = ZoneInfo(self.tz)
        self.lang = cfg.bot.language
        self.calendar = cfg.calendar.calendar(self.tz)
        # Asked for every guide and customer when a day is planned; the answer is per date.
        self.is_workday = functools.lru_cache(maxsize=1024)(self.calendar.is_workday)
        self.plans = plans if plans is not None else cfg.sop.core_plans()
        self.overrides = overrides if overrides is not None else cfg.sop.core_overrides()
        self.content: tuple[ContentItem, ...] = cfg.sop.core_content()
        self.programs: tuple[Program, ...] = cfg.sop.core_programs()
        self.grace = timedelta(seconds=cfg.sop.grace)
        self.guides = {g.id: g for g in guides_from_roster(roster, self.plans)}
        self._plan: dict[str, Plan] = {}
        self._materialized: set[date] = set()
        self._days: dict[date, _Day] = {}
        self._lock = asyncio.Lock()

    # -- plans -------------------------------------------------------------------------------

    def plan_of(self, guide_id: str) -> Plan | None:
        guide = self.guides.get(guide_id)
        if guide is None:
            return None
        plan = self._plan.get(guide_id)
        if plan is None:
            plan = resolve_plan(self.plans, self.overrides, guide)
            self._plan[guide_id] = plan
        return plan

    def is_plan_day(self, guide_id: str, local_date: date) -> bool:
        plan = self.plan_of(guide_id)
        return plan is not None and is_plan_day(plan, local_date, self.is_workday)

    def today(self, now: datetime | None = None) -> date:
        return local_date_of(now or self.clock.now(), self.tz)

    # -- materialization ---------------------------------------------------------------------

    def quota_tasks(
        self, local_date: date, guides: Iterable[Guide] | None = None
    ) -> list[store.NewTask]:
        """The day's quota tasks (3 Moments, 3 private chats, …) of ``guides`` (default: all)."""
        out: list[store.NewTask] = []
        for guide in self.guides.values() if guides is None else guides:
            plan = self.plan_of(guide.id)
            assert plan is not None
            specs = tasks_for_day(plan, guide, local_date, self.is_workday)
            if not specs:
                continue
            end = day_window_end(plan, local_date, self.tz)
            out.extend(
                store.NewTask(
                    guide_id=s.guide_id,
                    store=guide.store,
                    step=s.step,
                    local_date=local_date,
                    quota=s.quota,
                    window_end=end,
                    plan_id=plan.id,
                    plan_version=s.plan_version,
                )
                for s in specs
            )
        return out

    def customer_tasks(
        self,
        customers: Iterable[Customer],
        local_date: date,
        days_of: dict[str, list[date] | None] | None = None,
    ) -> list[store.NewTask]:
        """Lifecycle touches due on ``local_date`` (plus those carried over from days off).

        ``days_of``: guide id → the dates whose touches fall on ``local_date`` (None: not a
        plan day), filled as guides come up; pass one dict for all of a day's customers (the
        calendar lookups behind it cost more than planning the customer).
        """
        out: list[store.NewTask] = []
        if days_of is None:
            days_of = {}
        for customer in customers:
            guide = self.guides.get(customer.guide_id)
            if guide is None:
                continue
            if guide.id not in days_of:
                days_of[guide.id] = self._touch_days(guide.id, local_date)
            days = days_of[guide.id]
            if days is None:
                continue
            plan = self.plan_of(guide.id)
            assert plan is not None
            seen: set[str] = set()
            for day in days:
                for task in due_lifecycle_steps(customer, self.programs, day):
                    step = f"{task.program}.{task.step}"
                    if step in seen:
                        continue
                    seen.add(step)
                    out.append(
                        store.NewTask(
                            guide_id=guide.id,
                            store=guide.store,
                            step=step,
                            local_date=local_date,
                            quota=1,
                            window_end=day_window_end(plan, local_date, self.tz),
                            plan_id=task.program,
                            target_key=customer.id,
                            touch_kind=task.kind.value,
                        )
                    )
        return out

    def _touch_days(self, guide_id: str, local_date: date) -> list[date] | None:
        """``local_date`` and the days off just before it (their touches carry over to it);
        None when ``local_date`` is not one of the guide's plan days."""
        if not self.is_plan_day(guide_id, local_date):
            return None
        days = [local_date]
        for back in range(1, _CARRY_DAYS + 1):
            earlier = local_date - timedelta(days=back)
            if self.is_plan_day(guide_id, earlier):
                break
            days.append(earlier)
        return days

    async def materialize(self, local_date: date) -> int:
        """Create the day's tasks (existing ones are kept); return how many are new.

        Guides and customers are planned and written a page at a time, each page in its own
        transaction: memory stays flat with millions of customers and the event loop (the
        intake) gets a turn between pages. Task keys are unique, so a run cut short (a crash)
        is completed by the next one.
        """
        now = self.clock.now()
        inserted = planned = 0
        guides = list(self.guides.values())
        for start in range(0, len(guides), GUIDE_PAGE):
            new = self.quota_tasks(local_date, guides[start : start + GUIDE_PAGE])
            async with self.engine.begin() as conn:
                inserted += await store.materialize(conn, new, now)
            planned += len(new)
        if self.programs:
            days_of: dict[str, list[date] | None] = {}
            after = 0
            while True:
                async with self.engine.begin() as conn:
                    people, after = await store.customer_page(
                        conn, after, CUSTOMER_PAGE, self.zone
                    )
                    if not people:
                        break
                    new = self.customer_tasks(people, local_date, days_of)
                    inserted += await store.materialize(conn, new, now)
                planned += len(new)
        if inserted and self.engine.dialect.name == "postgresql":
            # A new day's rows are not in the planner's statistics until autovacuum gets to
            # them; the reminders' per-page reads (prepared, soon generic plans) then scanned
            # the whole day: 12 -> 170 ms a page at 10,000 guides.
            async with self.engine.begin() as conn:
                await conn.execute(text("ANALYZE task_instance"))
        self._materialized.add(local_date)
        self._days.pop(local_date, None)  # the schedule depends on who has tasks
        log.info("sop: materialized %s: %d new of %d tasks", local_date, inserted, planned)
        return inserted

    async def materialize_customer(
        self, conn: AsyncConnection, customer: Customer, now: datetime
    ) -> int:
        """A new contact's touches due today (e.g. the welcome), in the caller's transaction."""
        today = self.today(now)
        return await store.materialize(conn, self.customer_tasks([customer], today), now)

    # -- schedule ----------------------------------------------------------------------------

    async def schedule(self, local_date: date, guide_ids: Iterable[str]) -> list[Due]:
        """Every reminder of the day, in due order: the guides' slots and nudges, then one
        summary per supervisor. Worked out ``GUIDE_PAGE`` guides at a time with a turn of the
        event loop between (10,000 guides take a few hundred ms)."""
        gids = sorted(guide_ids)
        entries: list[Due] = []
        for start in range(0, len(gids), GUIDE_PAGE):
            for gid in gids[start : start + GUIDE_PAGE]:
                entries.extend(self._guide_dues(local_date, gid))
            await asyncio.sleep(0)
        entries.extend(self._summary_dues(local_date, gids))
        entries.sort(key=lambda e: (e.due_at, e.recipient, e.slot))
        return entries

    def _guide_dues(self, local_date: date, gid: str) -> list[Due]:
        plan = self.plan_of(gid)
        if plan is None:
            return []
        out = [
            Due(s.due_at, s.window_end, s.kind, gid, s.slot_name, local_date)
            for s in slot_times(plan, gid, local_date, self.tz)
        ]
        nudge = nudge_time(plan, gid, local_date, self.tz)
        if nudge is not None:
            out.append(
                Due(nudge.due_at, nudge.window_end, nudge.kind, gid, nudge.slot_name, local_date)
            )
        return out

    def _summary_dues(self, local_date: date, gids: list[str]) -> list[Due]:
        by_sup: dict[str, list[str]] = defaultdict(list)
        for gid in gids:
            op = self.roster.operator(gid)
            if op is not None and op.supervisor and self.plan_of(gid) is not None:
                by_sup[op.supervisor].append(gid)
        out: list[Due] = []
        for sup, mine in by_sup.items():
            plan = next((p for g in mine if (p := self.plan_of(g)) and p.summary), None)
            if plan is None:
                continue
            summ = summary_time(plan, sup, local_date, self.tz)
            assert summ is not None
            out.append(
                Due(
                    summ.due_at,
                    summ.window_end,
                    summ.kind,
                    sup,
                    summ.slot_name,
                    local_date,
                    tuple(mine),
                )
            )
        return out

    async def _day(self, conn: AsyncConnection, local_date: date) -> _Day:
        day = self._days.get(local_date)
        if day is None:
            gids = await store.guides_with_tasks(conn, local_date)
            entries = await self.schedule(local_date, gids)
            pattern = f"sop:%:{local_date.isoformat()}:%"
            sent = await conn.execute(
                select(_OUT.c.idempotency_key).where(_OUT.c.idempotency_key.like(pattern))
            )
            day = _Day(entries, [e.due_at for e in entries], 0, {r[0] for r in sent})
            self._days[local_date] = day
        return day

    # -- the tick ----------------------------------------------------------------------------

    async def tick(self) -> int:
        """Materialize if needed, close missed tasks, enqueue due reminders; return how many."""
        async with self._lock:
            now = self.clock.now()
            today = self.today(now)
            for offset in range(self.cfg.sop.lead_days + 1):
                d = today + timedelta(days=offset)
                if d not in self._materialized:
                    await self.materialize(d)
            for d in list(self._days):
                if d < today - timedelta(days=1):
                    del self._days[d]
            async with self.engine.begin() as conn:
                await store.mark_missed(conn, now, today - timedelta(days=7))
            queued = 0
            for d in (today - timedelta(days=1), today):
                queued += await self._enqueue_due(d, now)
            return queued

    async def _enqueue_due(self, local_date: date, now: datetime) -> int:
        """Render and queue the reminders due by ``now``, ``RENDER_PAGE`` a transaction (a
        slot shared by thousands of guides must not hold the event loop for seconds)."""
        async with self.engine.begin() as conn:
            day = await self._day(conn, local_date)
        stop = bisect.bisect_right(day.dues, now)
        due = [e for e in day.entries[day.cursor : stop] if e.key not in day.sent_keys]
        queued = 0
        for start in range(0, len(due), RENDER_PAGE):
            page = due[start : start + RENDER_PAGE]
            async with self.engine.begin() as conn:
                queued += await enqueue(conn, await self._render(conn, page, now), now)
            day.sent_keys.update(e.key for e in page)
        day.cursor = max(day.cursor, stop)
        return queued

    async def _render(
        self, conn: AsyncConnection, due: list[Due], now: datetime
    ) -> list[OutboxItem]:
        local_date = due[0].local_date
        wanted = {g for e in due for g in (e.guides or (e.recipient,))}
        rows: dict[str, list[store.TaskRow]] = defaultdict(list)
        for r in await store.tasks_on(conn, local_date, wanted):
            rows[r.guide_id].append(r)
        slot_guides = [e.recipient for e in due if e.kind is ReminderKind.SLOT]
        recent = await self._recent_content(conn, slot_guides, local_date) if self.content else {}
        items: list[OutboxItem] = []
        for e in due:
            late = now - e.due_at > self.grace
            if e.kind is ReminderKind.SUMMARY:
                text = render_supervisor_summary(
                    local_date,
                    [self._guide_progress(g, rows[g]) for g in e.guides],
                    lang=self.lang,
                )
                items.append(self._item(e, text))
                continue
            mine = rows.get(e.recipient, [])
            if not store.has_open_work(mine):
                continue  # nothing left: no reminder, no nudge
            progress = store.step_progress(mine)
            if e.kind is ReminderKind.NUDGE:
                plan = self.plan_of(e.recipient)
                assert plan is not None
                text = render_nudge(progress, plan.window_end, lang=self.lang)
                if store.open_customer_tasks(mine) and all(p.complete for p in progress):
                    text = render_slot_reminder(
                        progress, store.open_customer_tasks(mine), late=late, lang=self.lang
                    )
                items.append(self._item(e, text))
                continue
            history = recent.setdefault(e.recipient, [])
            item = pick_content(self.content, e.recipient, local_date, e.slot, history)
            if item is not None:
                history.append((local_date, item.id))
            text = render_slot_reminder(
                progress, store.open_customer_tasks(mine), item, late=late, lang=self.lang
            )
            items.append(self._item(e, text, {"content_id": item.id} if item else {}))
        return items

    def _item(self, e: Due, text: str, extra: dict[str, Any] | None = None) -> OutboxItem:
        return OutboxItem(
            key=e.key,
            kind=f"{KIND_PREFIX}{e.kind.value}",
            recipient_id=e.recipient,
            text=text,
            due_at=e.due_at,
            window_end=e.window_end,
            extra={"local_date": e.local_date.isoformat(), **(extra or {})},
        )

    def _guide_progress(self, gid: str, rows: list[store.TaskRow]) -> GuideProgress:
        g = self.guides.get(gid)
        return GuideProgress(
            gid, g.name if g else gid, g.store if g else "", tuple(store.step_progress(rows))
        )

    async def _recent_content(
        self, conn: AsyncConnection, guide_ids: list[str], local_date: date
    ) -> dict[str, list[tuple[date, str]]]:
        """What each guide was given in the last week (from earlier slot reminders)."""
        since = day_window_end(next(iter(self.plans)), local_date - timedelta(days=8), self.tz)
        result = await conn.execute(
            select(_OUT.c.recipient_id, _OUT.c.payload).where(
                _OUT.c.kind == f"{KIND_PREFIX}{ReminderKind.SLOT.value}",
                _OUT.c.recipient_id.in_(guide_ids),
                _OUT.c.due_at >= since,
            )
        )
        out: dict[str, list[tuple[date, str]]] = defaultdict(list)
        for recipient, payload in result:
            cid, day = (payload or {}).get("content_id"), (payload or {}).get("local_date")
            if cid and day:
                out[recipient].append((date.fromisoformat(day), str(cid)))
        return out


async def sop_tick(sop: SopRuntime) -> None:
    if sop.cfg.sop.enabled:
        await sop.tick()


TICKS: tuple[Tick, ...] = (Tick("sop", 1.0, sop_tick),)


async def sop_context(app: web.Application) -> AsyncIterator[None]:
    runtime = SopRuntime(app[CONFIG], app[ROSTER], app[ENGINE], app[CLOCK])
    app[DISPATCHER].provide(sop=runtime)
    yield
