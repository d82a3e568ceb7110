"""The simulator gateway: plays the day scripts into the event sink on the injected clock.

It is an in-process stand-in for a real platform connection and takes the same path: it emits
normalized ``bot.events`` values (message ids as strings, reply and @mention segments shaped like
the OneBot adapter's, ``AccountStatus`` on connect) and implements the outbound ``Gateway``
protocol, recording what the bot sends and echoing group sends back as ``is_self`` messages the
way QQ implementations report ``message_sent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.errors import GatewayError
from bot.events import (
    AccountStatus,
    ChatMessage,
    ChatType,
    InboundEvent,
    MemberChange,
    MemberChangeKind,
    MessageRecall,
    Segment,
    SegmentType,
)
from bot.gateway.base import EventSink, SentMessage
from bot.gateway.simulator.cast import PLATFORM, Cast
from bot.gateway.simulator.script import (
    SHANGHAI,
    DayScript,
    FriendAddSpec,
    JoinSpec,
    MessageSpec,
    RecallSpec,
    ScheduledAction,
    day_script,
)
from bot.metrics import Metrics

log = logging.getLogger(__name__)

MENTION_ALL_TEXT = "@全体成员"  # how QQ clients display an @all


def render(segments: tuple[Segment, ...]) -> tuple[str, str | None, tuple[str, ...], bool]:
    """(text, quoted id, mentioned ids, mention-all) exactly as the OneBot adapter derives them.

    Mentions show as ``@name`` in the text, except the implicit @ a client adds after a quote.
    """
    parts: list[str] = []
    reply_to: str | None = None
    mentions: list[str] = []
    mention_all = False
    for seg in segments:
        if seg.type is SegmentType.TEXT:
            parts.append(seg.data.get("text", ""))
        elif seg.type is SegmentType.REPLY:
            reply_to = reply_to or seg.data["message_id"]
        elif seg.type is SegmentType.MENTION:
            uid = seg.data["user_id"]
            if uid not in mentions:
                mentions.append(uid)
            if seg.data.get("implicit") != "true":
                parts.append("@" + (seg.data.get("name") or uid))
        elif seg.type is SegmentType.MENTION_ALL:
            mention_all = True
            parts.append(MENTION_ALL_TEXT)
    return "".join(parts).strip(), reply_to, tuple(mentions), mention_all


def build_event(
    item: ScheduledAction, *, account_id: str, received_at: datetime
) -> ChatMessage | MessageRecall | MemberChange:
    """The normalized event for one scripted action (``sent_at`` = its scripted time)."""
    action = item.action
    if isinstance(action, MessageSpec):
        text, reply_to, mentions, mention_all = render(action.segments)
        raw: dict[str, Any] = {"simulator": {"behaviour": str(item.behaviour)}}
        if item.question_id:
            raw["simulator"]["question_id"] = item.question_id
        return ChatMessage(
            platform=PLATFORM,
            account_id=account_id,
            chat_type=action.chat_type,
            chat_id=action.chat_id,
            message_id=action.message_id,
            sender_id=action.sender_id,
            text=text,
            sent_at=item.at,
            received_at=received_at,
            sender_name=action.sender_name,
            reply_to_message_id=reply_to,
            reply_to_sender_id=action.reply_to_sender_id if reply_to else None,
            mention_user_ids=mentions,
            mention_all=mention_all,
            is_self=action.sender_id == account_id,
            platform_role=action.platform_role,
            segments=action.segments,
            raw=raw,
        )
    if isinstance(action, RecallSpec):
        return MessageRecall(
            platform=PLATFORM,
            account_id=account_id,
            chat_type=ChatType.GROUP,
            chat_id=action.chat_id,
            message_id=action.message_id,
            sender_id=action.sender_id,
            operator_id=action.sender_id,
            at=item.at,
        )
    if isinstance(action, JoinSpec):
        return MemberChange(
            platform=PLATFORM,
            account_id=account_id,
            kind=MemberChangeKind.GROUP_JOIN,
            user_id=action.user_id,
            at=item.at,
            chat_id=action.chat_id,
            operator_id=action.operator_id,
        )
    assert isinstance(action, FriendAddSpec)
    # One simulated account observes everything; the guide whose contact list grew is named
    # as the operator so SOP counting can credit the friend add to that guide.
    return MemberChange(
        platform=PLATFORM,
        account_id=account_id,
        kind=MemberChangeKind.FRIEND_ADD,
        user_id=action.user_id,
        at=item.at,
        operator_id=action.staff_user_id,
    )


def _kind(event: InboundEvent) -> str:
    """The ``events_received`` label, the same vocabulary as the OneBot gateway's."""
    if isinstance(event, ChatMessage):
        return "message"
    if isinstance(event, MessageRecall):
        return "recall"
    if isinstance(event, MemberChange):
        return "member"
    return "lifecycle"


class SimulatorGateway:
    """Scripted customers and staff in several groups, on the same path as a real gateway."""

    platform: str = PLATFORM

    def __init__(
        self,
        *,
        sink: EventSink,
        clock: Clock,
        metrics: Metrics,
        cast: Cast,
        seed: int,
        account_id: str,
        start_day: date | None = None,
        days: int | None = None,
        tz: ZoneInfo = SHANGHAI,
        echo_group_sends: bool = True,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._metrics = metrics
        self._cast = cast
        self._seed = seed
        self.account_id = account_id
        self._start_day = start_day
        self._days = days
        self._tz = tz
        self._echo_group_sends = echo_group_sends
        self._staff_ids = cast.staff_user_ids()
        self._group_ids = frozenset(g.id for g in cast.sim_groups)
        self._started = False
        self._task: asyncio.Task[None] | None = None
        self._echo_task: asyncio.Task[None] | None = None
        self._echoes: asyncio.Queue[ChatMessage] = asyncio.Queue()
        self._senders: dict[str, str] = {}  # message id → sender, to resolve quotes we send
        self._sent = 0
        self._resume: tuple[date, int] | None = None  # next (day, action index) to play
        self._first_day = date.min
        self.outbox_log: list[tuple[datetime, str, str]] = []
        self.days_played: list[DayScript] = []

    # -- lifecycle

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._metrics.connected_accounts.labels(PLATFORM).set(1)
        await self._emit(AccountStatus(PLATFORM, self.account_id, True, self._clock.now()))
        self._task = asyncio.create_task(self._play(), name="simulator-script")
        self._echo_task = asyncio.create_task(self._pump_echoes(), name="simulator-echo")
        for task in (self._task, self._echo_task):
            task.add_done_callback(self._log_crash)
        log.info(
            "simulator gateway started: account %s, %d groups, seed %d",
            self.account_id,
            len(self._group_ids),
            self._seed,
        )

    async def stop(self) -> None:
        """Cancel the script and echo tasks and report the account offline (idempotent)."""
        if not self._started:
            return
        self._started = False
        for task in (self._task, self._echo_task):
            if task is None:
                continue
            task.cancel()
            # A crashed task was already logged by _log_crash; stopping must still succeed.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._echo_task = None
        self._metrics.connected_accounts.labels(PLATFORM).set(0)
        await self._emit(
            AccountStatus(PLATFORM, self.account_id, False, self._clock.now(), "stopped")
        )
        log.info("simulator gateway stopped")

    @staticmethod
    def _log_crash(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("simulator task %s crashed", task.get_name(), exc_info=exc)

    @property
    def finished(self) -> bool:
        """True once a bounded run (``days=N``) has played its last action."""
        return self._task is not None and self._task.done()

    async def _emit(self, event: InboundEvent) -> None:
        self._metrics.events_received.labels(PLATFORM, _kind(event)).inc()
        try:
            await self._sink(event)
        except Exception:
            # Like a real gateway: one failing event must not stop the rest of the day.
            log.exception("simulator sink failed on %s", type(event).__name__)

    async def _play(self) -> None:
        if self._resume is None:
            self._first_day = self._start_day or self._clock.now().astimezone(self._tz).date()
            self._resume = (self._first_day, 0)
        day, start_index = self._resume
        played = (day - self._first_day).days
        while self._days is None or played < self._days:
            script = day_script(self._cast, day, seed=self._seed, tz=self._tz)
            if start_index == 0:
                self.days_played.append(script)
                log.info(
                    "simulator day %s: %d actions, %d questions",
                    day,
                    len(script.actions),
                    len(script.questions),
                )
            for index in range(start_index, len(script.actions)):
                item = script.actions[index]
                # Actions already in the past (a demo started mid-day) are delivered at once,
                # like a backlog fetched after connecting; their sent_at keeps the scripted time.
                await self._clock.sleep_until(item.at)
                event = build_event(
                    item, account_id=self.account_id, received_at=self._clock.now()
                )
                if isinstance(event, ChatMessage):
                    self._remember(event.message_id, event.sender_id)
                # A restart after stop() resumes here rather than replaying the day.
                self._resume = (day, index + 1)
                await self._emit(event)
            day += timedelta(days=1)
            played += 1
            start_index = 0
            self._resume = (day, 0)
            self._senders.clear()  # quotes of older days are resolved by the store, not here

    async def _pump_echoes(self) -> None:
        # A separate task: a handler that sends from inside the sink must not wait on itself.
        while True:
            event = await self._echoes.get()
            await self._emit(event)

    def _remember(self, message_id: str, sender_id: str) -> None:
        self._senders[message_id] = sender_id

    # -- the Gateway protocol

    def online_accounts(self) -> list[str]:
        return [self.account_id] if self._started else []

    def _check(self, account_id: str | None) -> datetime:
        if not self._started:
            raise GatewayError("simulator gateway is not started")
        if account_id is not None and account_id != self.account_id:
            raise GatewayError(f"unknown simulator account {account_id!r}")
        return self._clock.now()

    def _next_message_id(self) -> str:
        self._sent += 1
        return f"out-{self._sent:06d}"

    async def send_private_text(
        self, user_id: str, text: str, *, account_id: str | None = None
    ) -> SentMessage:
        now = self._check(account_id)
        self.outbox_log.append((now, user_id, text))
        if user_id in self._staff_ids:
            log.info("simulator private send to staff %s: %s", user_id, text)
        else:
            log.info("simulator private send to %s (%d chars)", user_id, len(text))
        self._metrics.send_latency.labels(PLATFORM).observe(0.0)
        return SentMessage(PLATFORM, self.account_id, self._next_message_id())

    async def send_group_text(
        self,
        group_id: str,
        text: str,
        *,
        account_id: str | None = None,
        reply_to: str | None = None,
    ) -> SentMessage:
        now = self._check(account_id)
        if group_id not in self._group_ids:
            self._metrics.sends_failed.labels(PLATFORM).inc()
            raise GatewayError(f"simulator account is not in group {group_id!r}")
        self.outbox_log.append((now, group_id, text))
        # Groups are customer-facing: log who and how much, never the words.
        log.info("simulator group send to %s (%d chars)", group_id, len(text))
        self._metrics.send_latency.labels(PLATFORM).observe(0.0)
        message_id = self._next_message_id()
        if self._echo_group_sends:
            segments: list[Segment] = []
            if reply_to is not None:
                segments.append(Segment(SegmentType.REPLY, {"message_id": reply_to}))
            segments.append(Segment(SegmentType.TEXT, {"text": text}))
            self._echoes.put_nowait(
                ChatMessage(
                    platform=PLATFORM,
                    account_id=self.account_id,
                    chat_type=ChatType.GROUP,
                    chat_id=group_id,
                    message_id=message_id,
                    sender_id=self.account_id,
                    text=text.strip(),
                    sent_at=now,
                    received_at=now,
                    sender_name="sopbot",
                    reply_to_message_id=reply_to,
                    reply_to_sender_id=self._senders.get(reply_to) if reply_to else None,
                    is_self=True,
                    segments=tuple(segments),
                    raw={"simulator": {"behaviour": "self"}},
                )
            )
        return SentMessage(PLATFORM, self.account_id, message_id)
