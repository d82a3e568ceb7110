"""An exact due-time timer: a heap of (due_at, key) served by one task (sla.md §7.9).

The task sleeps with ``clock.sleep_until(next_due)`` and is woken early when an earlier item is
scheduled, so alerts fire at their due second instead of on a polling cron. Rescheduling a key
replaces its due time (stale heap entries are skipped lazily). The owner rebuilds the heap from
the store on start; the heap itself holds nothing that is not in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime

from bot.clock import Clock
from bot.memo import Memo
from sop.policy import SlaPolicy
from sop.questions import Question, QuestionStatus
from sop.timers import Calendar, Rung, ladder, next_due

log = logging.getLogger("sopbot.timers")

FireFunc = Callable[[list[str], datetime], Awaitable[None]]


class DueTimer:
    """Calls ``fire(keys, now)`` with every key whose due time has come, in due order."""

    def __init__(self, clock: Clock, fire: FireFunc, *, name: str = "due-timer") -> None:
        self._clock = clock
        self._fire = fire
        self._name = name
        self._heap: list[tuple[datetime, int, str]] = []
        self._due: dict[str, tuple[datetime, int]] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._idle = asyncio.Event()  # set while not inside fire()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._due)

    def due_at(self, key: str) -> datetime | None:
        entry = self._due.get(key)
        return entry[0] if entry else None

    def schedule(self, key: str, at: datetime | None) -> None:
        """Set (or replace) ``key``'s due time; ``None`` cancels it."""
        if at is None:
            self.cancel(key)
            return
        current = self._due.get(key)
        if current is not None and current[0] == at:
            return
        seq = next(self._seq)
        self._due[key] = (at, seq)
        heapq.heappush(self._heap, (at, seq, key))
        if self._heap[0][1] == seq:
            self._wake.set()  # new earliest item: the sleeper must re-arm

    def cancel(self, key: str) -> None:
        self._due.pop(key, None)

    def clear(self) -> None:
        """Cancel every key (before re-arming all of them from reloaded state)."""
        self._due.clear()
        self._heap.clear()
        self._wake.set()

    def next_due(self) -> datetime | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def _drop_stale(self) -> None:
        while self._heap:
            at, seq, key = self._heap[0]
            if self._due.get(key) == (at, seq):
                return
            heapq.heappop(self._heap)

    def pop_due(self, now: datetime) -> list[str]:
        """Remove and return the keys due at ``now``, earliest first."""
        out: list[str] = []
        while (nxt := self.next_due()) is not None and nxt <= now:
            _, _, key = heapq.heappop(self._heap)
            del self._due[key]
            out.append(key)
        return out

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self, grace: float = 10.0) -> None:
        """Let a firing in progress finish (up to ``grace`` s), then end the task.

        A firing writes to the store; cancelling it mid-statement tears the driver connection
        down under a live statement (see ``TickRunner.stop``)."""
        if self._task is None:
            return
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._idle.wait()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def settle(self) -> None:
        """Return once every key due by the clock's now has fired and no firing is running.

        For callers that moved a manual clock and must see the firings' writes (tests, a
        simulator stepping its day), instead of guessing how many loop passes they take.
        """
        while True:
            if not self._idle.is_set():
                await self._idle.wait()
                continue
            nxt = self.next_due()
            if nxt is None or nxt > self._clock.now() or self._task is None:
                return
            await asyncio.sleep(0)  # due, and the timer task has not taken it yet: let it run

    async def _sleep(self, until: datetime | None) -> None:
        """Sleep until ``until`` (forever if None) or until woken by an earlier schedule."""
        self._wake.clear()
        waker = asyncio.ensure_future(self._wake.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep_until(until)) if until else None
        try:
            await asyncio.wait(
                [t for t in (waker, sleeper) if t is not None],
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for t in (waker, sleeper):
                if t is not None and not t.done():
                    t.cancel()

    async def _run(self) -> None:
        while not self._stopping:
            now = self._clock.now()
            keys = self.pop_due(now)
            if keys:
                self._idle.clear()
                try:
                    await self._fire(keys, now)
                except Exception:
                    # One failing batch must not stop the timer; the owner re-schedules keys.
                    log.exception("%s: firing %d keys failed", self._name, len(keys))
                finally:
                    self._idle.set()
                continue
            await self._sleep(self.next_due())


# An open question's alert ladder depends on its clock start, cycle, policy and calendar only;
# every message that touches it (merges, peer answers) re-arms it, so the ladder is computed
# once per question and cycle. Bounded (the oldest entries go first); keyed by the policy and
# calendar objects' identity, each entry holding both so that an id is never reused.
_Ladder = tuple[tuple[Rung, ...], SlaPolicy, Calendar]
_LADDERS: Memo[tuple[str, datetime, int, int, int], _Ladder] = Memo(20_000)


def _next_at(
    question: Question, policy: SlaPolicy, calendar: Calendar, sent: Collection[str]
) -> datetime | None:
    """When the question's next alert falls due (None: nothing more is due)."""
    if question.status is not QuestionStatus.OPEN:
        alert = next_due(question, policy, calendar, sent)
        return alert.at if alert else None
    key = (question.id, question.clock_start, question.reopen_count, id(policy), id(calendar))
    entry = _LADDERS.get(
        key, lambda: (tuple(ladder(question, policy, calendar)), policy, calendar)
    )
    # The ladder is sorted as due_alerts sorts: its first level not sent is the next alert.
    return next((rung[0] for rung in entry[0] if rung[2] not in sent), None)


def schedule_question(
    timer: DueTimer,
    question: Question,
    policy: SlaPolicy,
    calendar: Calendar,
    sent_levels: Collection[str],
) -> datetime | None:
    """Arm ``question``'s next alert (or disarm it when nothing more is due); returns when."""
    at = _next_at(question, policy, calendar, sent_levels) if question.is_live else None
    timer.schedule(question.id, at)
    return at
