"""Question engine micro-benchmark: per-call cost of the SLA state machine with a growing backlog.

    .venv/bin/python -m benchmarks.question_engine [--n 100000] [--seed 42]

Drives ``sop.questions.QuestionEngine`` in-process (no store, no detector) with the traffic shape
of ``benchmarks.nonebot_compare.make_events``: 200 groups, 5,000 customers, 1 in 8 messages from
the group's guide quoting the previous message id (the previous message is usually in another
group, so such quotes are mostly unknown and the reply links by proximity), 1 in 17 customer
messages quoting the previous message, 1 in 11 @-ing the guide. A second seeded RNG marks ~45 %
of customer messages as questions; every third guide message is a holding reply (稍等), as in
that benchmark's staff texts. One message every 2 ms of simulated time on a 24/7 calendar.

Nothing resolves questions here (no acks, no quiet sweep), so the live backlog grows to over a
hundred per group: the point is how the per-call cost behaves as it grows. Prints µs per call
for customer and staff messages overall and per quarter of the run, and the live count.

``--gc bot`` (default) sets the garbage collector up as ``bot.app`` does after start-up (freeze,
threshold 50,000/20/100); ``--gc default`` keeps Python's defaults, under which full collections
walking the growing heap land on whichever call happens to allocate.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sop.calendar import ALWAYS_OPEN
from sop.policy import SlaPolicy
from sop.questions import QuestionEngine, QuestionStatus

# Same constants as benchmarks/nonebot_compare.py (not imported: that module pulls in aiohttp).
GROUPS = 200
CUSTOMERS = 5000
GUIDE_IDS = tuple(range(20002, 20012))
QUESTION_SHARE = 0.45
STEP = timedelta(milliseconds=2)
T0 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
TEXTS = ("请问这款奶粉几段适合八个月宝宝？", "这个颜色还有M码吗？", "今天的活动什么时候开始")


@dataclass(frozen=True, slots=True)
class Event:
    """One group message, already in the engine's terms."""

    staff: bool
    chat: str
    msg_id: str
    sender: str
    at: datetime
    reply_to: str | None
    mentions: tuple[str, ...]
    is_question: bool
    is_holding: bool
    text: str


def make_events(n: int, seed: int = 42) -> list[Event]:
    """N messages: the group/customer stream of nonebot_compare.make_events, plus flags."""
    rng = random.Random(seed)
    flags = random.Random(seed + 1)  # separate stream, so groups/customers match make_events
    out: list[Event] = []
    for i in range(n):
        g = rng.randrange(GROUPS)
        msg_id = 1000 + i
        chat = f"qq:{700000 + g}"
        guide = f"qq:{GUIDE_IDS[g % len(GUIDE_IDS)]}"
        at = T0 + STEP * i
        reply_to = str(msg_id - 1) if i else None
        if i % 8 == 3:
            out.append(
                Event(True, chat, str(msg_id), guide, at, reply_to, (), False, i % 3 == 1, "")
            )
            continue
        user = f"qq:{300000 + rng.randrange(CUSTOMERS)}"
        out.append(
            Event(
                False,
                chat,
                str(msg_id),
                user,
                at,
                reply_to if i % 17 == 0 else None,
                (guide,) if i % 11 == 0 else (),
                flags.random() < QUESTION_SHARE,
                False,
                TEXTS[i % len(TEXTS)],
            )
        )
    return out


def new_engine() -> QuestionEngine:
    return QuestionEngine(
        SlaPolicy(), calendar_of=lambda _c: ALWAYS_OPEN, owners_of=lambda _c: ("owner",)
    )


@dataclass(slots=True)
class Tally:
    calls: int = 0
    ns: int = 0
    effects: int = 0

    def us(self) -> float:
        return self.ns / self.calls / 1000 if self.calls else 0.0


def run(events: list[Event], quarters: int = 4) -> tuple[QuestionEngine, list[dict[str, Tally]]]:
    """Feed every event; per quarter of the stream, time per kind of call."""
    engine = new_engine()
    size = max(1, len(events) // quarters)
    parts: list[dict[str, Tally]] = []
    clock = time.perf_counter_ns
    for start in range(0, len(events), size):
        tallies = {"customer": Tally(), "staff": Tally()}
        cust, staff = tallies["customer"], tallies["staff"]
        for e in events[start : start + size]:
            if e.staff:
                t = clock()
                effects = engine.on_staff_message(
                    e.chat, e.msg_id, e.sender, e.at, reply_to_msg_id=e.reply_to,
                    is_holding=e.is_holding,
                )  # fmt: skip
                staff.ns += clock() - t
                staff.calls += 1
                staff.effects += len(effects)
            else:
                t = clock()
                effects = engine.on_customer_message(
                    e.chat, e.msg_id, e.sender, e.at, is_question=e.is_question, text=e.text,
                    reply_to_msg_id=e.reply_to, mention_user_ids=e.mentions,
                )  # fmt: skip
                cust.ns += clock() - t
                cust.calls += 1
                cust.effects += len(effects)
        parts.append(tallies)
    return engine, parts


def total(parts: list[dict[str, Tally]], kind: str) -> Tally:
    out = Tally()
    for p in parts:
        out.calls += p[kind].calls
        out.ns += p[kind].ns
        out.effects += p[kind].effects
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--n", type=int, default=100_000, help="messages (default 100,000)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--gc", choices=("bot", "default"), default="bot")
    args = ap.parse_args()
    events = make_events(args.n, args.seed)
    if args.gc == "bot":
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
    wall = time.perf_counter()
    engine, parts = run(events)
    wall = time.perf_counter() - wall
    held = engine.questions()
    live = [q for q in held if q.is_live]
    opened = sum(q.status is QuestionStatus.OPEN for q in live)
    print(
        f"python {platform.python_version()}, {args.n:,} messages, seed {args.seed}, "
        f"gc {args.gc} {gc.get_threshold()}"
    )
    cust, staff = total(parts, "customer"), total(parts, "staff")
    calls_ns = cust.ns + staff.ns
    print(f"customer messages: {cust.calls:>7,} calls  {cust.us():6.2f} µs/call")
    print(f"staff messages:    {staff.calls:>7,} calls  {staff.us():6.2f} µs/call")
    print(f"all messages:      {cust.calls + staff.calls:>7,} calls  "
          f"{calls_ns / (cust.calls + staff.calls) / 1000:6.2f} µs/call  "
          f"(engine {calls_ns / 1e9:.2f} s of {wall:.2f} s wall)")  # fmt: skip
    print("per quarter (µs/call customer / staff):")
    for i, p in enumerate(parts):
        print(f"  Q{i + 1}: {p['customer'].us():6.2f} / {p['staff'].us():6.2f}")
    print(f"effects: {cust.effects:,} from customer, {staff.effects:,} from staff messages")
    per_chat = Counter(q.chat for q in live)
    print(
        f"live questions at the end: {len(live):,} ({opened:,} open, {len(live) - opened:,} "
        f"answered) in {len(per_chat)} chats, max {max(per_chat.values(), default=0)} per chat"
    )


if __name__ == "__main__":
    main()
