"""WeCom customer-contact APIs that *prove* SOP work was done (reference/gateways.md §2.3–2.5).

Typed results only — no SOP logic here; the SOP engine's verification port adapts these.

- Moments (客户朋友圈): ``add_moment_task`` → async job (``get_moment_task_result`` polled by
  ``wait_moment_task``) → ``get_moment_task`` per-member ``publish_status`` (cursor paging).
- Group sends (企业群发): ``add_msg_template`` → ``get_groupmsg_task`` per member and
  ``get_groupmsg_send_result`` per recipient (cursor paging); ``remind_groupmsg_send`` is capped at
  3 per 群发 per 24 h by WeCom, and refused here before the call (``RemindCapReached``). The
  ledger is in memory: after a restart WeCom's own refusal is the backstop.
- ``get_user_behavior_data``: per member per *local* day ``chat_cnt``, ``message_cnt``, …;
  day-granular, so it verifies yesterday, not today. WeCom sums over all ``userid`` given, so we
  ask for one member at a time.

These calls use the 客户联系 secret when configured, else the app secret (a self-built app with
customer-contact permission may call them too).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as dtime
from enum import IntEnum
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from bot.gateway.wecom.client import Json, Sleep, TimeFn, WeComClient
from bot.gateway.wecom.errors import RemindCapReached

EC = "/cgi-bin/externalcontact/"
REMIND_CAP = 3
REMIND_WINDOW = 24 * 3600.0
BEHAVIOR_MAX_DAYS = 30
MAX_PAGES = 1000
SHANGHAI = ZoneInfo("Asia/Shanghai")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a cursor-paged list; ``next_cursor`` is empty on the last page."""

    items: tuple[T, ...]
    next_cursor: str = ""


class MomentJobStatus(IntEnum):
    STARTED = 1
    CREATING = 2
    DONE = 3


@dataclass(frozen=True, slots=True)
class MomentJobResult:
    status: int
    moment_id: str = ""
    errcode: int = 0
    errmsg: str = ""
    invalid_users: tuple[str, ...] = ()
    invalid_departments: tuple[int, ...] = ()
    invalid_tags: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        return self.status == MomentJobStatus.DONE


class PublishStatus(IntEnum):
    NOT_PUBLISHED = 0
    PUBLISHED = 1


@dataclass(frozen=True, slots=True)
class MomentTaskEntry:
    userid: str
    publish_status: int

    @property
    def published(self) -> bool:
        return self.publish_status == PublishStatus.PUBLISHED


@dataclass(frozen=True, slots=True)
class MsgTemplateResult:
    msgid: str
    fail_list: tuple[str, ...] = ()


class GroupMsgStatus(IntEnum):
    """Per-member task status; 0/1 per doc 93338, the rest per send result (from memory)."""

    UNSENT = 0
    SENT = 1
    NOT_FRIEND = 2
    ALREADY_RECEIVED = 3


@dataclass(frozen=True, slots=True)
class GroupMsgTask:
    userid: str
    status: int
    send_time: datetime | None = None

    @property
    def sent(self) -> bool:
        return self.status == GroupMsgStatus.SENT


@dataclass(frozen=True, slots=True)
class GroupMsgSend:
    userid: str
    status: int
    external_userid: str = ""
    chat_id: str = ""
    send_time: datetime | None = None

    @property
    def sent(self) -> bool:
        return self.status == GroupMsgStatus.SENT


@dataclass(frozen=True, slots=True)
class BehaviorDay:
    """One member's customer-contact statistics for one local day."""

    userid: str
    day: date
    chat_cnt: int
    message_cnt: int
    reply_percentage: float | None = None
    avg_reply_time: int | None = None  # minutes
    negative_feedback_cnt: int = 0
    new_apply_cnt: int = 0
    new_contact_cnt: int = 0


def _int(value: object, default: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default
    try:
        return int(value)
    except ValueError:
        return default


def _opt_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _ts(value: object) -> datetime | None:
    seconds = _int(value)
    return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None


def _strs(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _dicts(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def local_midnight(day: date, tz: ZoneInfo) -> int:
    """Unix seconds of 00:00 on ``day`` in ``tz``."""
    return int(datetime.combine(day, dtime(0), tz).timestamp())


class RemindLedger:
    """Sliding 24 h window of reminders sent per 群发 msgid (at most ``cap``)."""

    def __init__(self, *, cap: int = REMIND_CAP, window: float = REMIND_WINDOW) -> None:
        self.cap = cap
        self.window = window
        self._sent: dict[str, deque[float]] = {}

    def retry_after(self, msgid: str, now: float) -> float:
        """0 when a reminder may be sent now, else seconds until one may."""
        times = self._sent.get(msgid)
        if times is None:
            return 0.0
        while times and now - times[0] >= self.window:
            times.popleft()
        if len(times) < self.cap:
            return 0.0
        return times[0] + self.window - now

    def note(self, msgid: str, now: float) -> None:
        self._sent.setdefault(msgid, deque()).append(now)


class WeComSopApi:
    """Moments, group-send and behaviour-data calls over one ``WeComClient``."""

    def __init__(
        self,
        client: WeComClient,
        *,
        sleep: Sleep = asyncio.sleep,
        time_fn: TimeFn = time.monotonic,
        tz: ZoneInfo = SHANGHAI,
    ) -> None:
        self._client = client
        self._sleep = sleep
        self._time = time_fn
        self._tz = tz
        self.reminders = RemindLedger()

    @property
    def _secret(self) -> str:
        return "contact" if self._client.has_secret("contact") else "app"

    async def _post(self, name: str, body: Json) -> Json:
        return await self._client.call(EC + name, body, secret=self._secret)

    # -- moments ------------------------------------------------------------------------

    async def add_moment_task(
        self,
        text: str,
        *,
        attachments: Sequence[Json] = (),
        sender_users: Sequence[str] = (),
        sender_departments: Sequence[int] = (),
        customer_tags: Sequence[str] = (),
    ) -> str:
        """Queue a Moments post for members to publish; returns the async ``jobid``."""
        body: Json = {"text": {"content": text}}
        if attachments:
            body["attachments"] = list(attachments)
        visible: Json = {}
        if sender_users or sender_departments:
            visible["sender_list"] = {
                "user_list": list(sender_users),
                "department_list": list(sender_departments),
            }
        if customer_tags:
            visible["external_contact_list"] = {"tag_list": list(customer_tags)}
        if visible:
            body["visible_range"] = visible
        data = await self._post("add_moment_task", body)
        return str(data.get("jobid") or "")

    async def get_moment_task_result(self, jobid: str) -> MomentJobResult:
        data = await self._client.call(
            EC + "get_moment_task_result", params={"jobid": jobid}, secret=self._secret
        )
        result = data.get("result") if isinstance(data.get("result"), dict) else {}
        assert isinstance(result, dict)
        senders = result.get("invalid_sender_list")
        senders = senders if isinstance(senders, dict) else {}
        customers = result.get("invalid_external_contact_list")
        customers = customers if isinstance(customers, dict) else {}
        return MomentJobResult(
            status=_int(data.get("status")),
            moment_id=str(result.get("moment_id") or ""),
            errcode=_int(result.get("errcode")),
            errmsg=str(result.get("errmsg") or ""),
            invalid_users=_strs(senders.get("user_list")),
            invalid_departments=tuple(_int(d) for d in senders.get("department_list") or ()),
            invalid_tags=_strs(customers.get("tag_list")),
        )

    async def wait_moment_task(
        self, jobid: str, *, poll_interval: float = 2.0, max_polls: int = 30
    ) -> MomentJobResult:
        """Poll the async job until it is done (or ``max_polls`` runs out: last status)."""
        result = await self.get_moment_task_result(jobid)
        for _ in range(max_polls - 1):
            if result.done:
                break
            await self._sleep(poll_interval)
            result = await self.get_moment_task_result(jobid)
        return result

    async def get_moment_task(
        self, moment_id: str, *, cursor: str = "", limit: int = 1000
    ) -> Page[MomentTaskEntry]:
        data = await self._post(
            "get_moment_task", {"moment_id": moment_id, "cursor": cursor, "limit": limit}
        )
        items = tuple(
            MomentTaskEntry(str(t.get("userid", "")), _int(t.get("publish_status")))
            for t in _dicts(data.get("task_list"))
        )
        return Page(items, str(data.get("next_cursor") or ""))

    async def all_moment_task(self, moment_id: str) -> list[MomentTaskEntry]:
        return await _all_pages(lambda c: self.get_moment_task(moment_id, cursor=c))

    # -- group sends --------------------------------------------------------------------

    async def add_msg_template(
        self,
        *,
        sender: str,
        text: str,
        chat_type: str = "single",
        external_userids: Sequence[str] = (),
        chat_ids: Sequence[str] = (),
        attachments: Sequence[Json] = (),
        allow_select: bool = False,
    ) -> MsgTemplateResult:
        """Queue a 群发 in ``sender``'s 群发助手; they still have to tap send."""
        if chat_type not in ("single", "group"):
            raise ValueError("chat_type is 'single' or 'group'")
        body: Json = {"chat_type": chat_type, "sender": sender, "text": {"content": text}}
        if external_userids:
            body["external_userid"] = list(external_userids)
        if chat_ids:
            body["chat_id_list"] = list(chat_ids)
        if attachments:
            body["attachments"] = list(attachments)
        if allow_select:
            body["allow_select"] = True
        data = await self._post("add_msg_template", body)
        return MsgTemplateResult(str(data.get("msgid") or ""), _strs(data.get("fail_list")))

    async def get_groupmsg_task(
        self, msgid: str, *, cursor: str = "", limit: int = 1000
    ) -> Page[GroupMsgTask]:
        data = await self._post(
            "get_groupmsg_task", {"msgid": msgid, "limit": limit, "cursor": cursor}
        )
        items = tuple(
            GroupMsgTask(str(t.get("userid", "")), _int(t.get("status")), _ts(t.get("send_time")))
            for t in _dicts(data.get("task_list"))
        )
        return Page(items, str(data.get("next_cursor") or ""))

    async def all_groupmsg_task(self, msgid: str) -> list[GroupMsgTask]:
        return await _all_pages(lambda c: self.get_groupmsg_task(msgid, cursor=c))

    async def get_groupmsg_send_result(
        self, msgid: str, userid: str, *, cursor: str = "", limit: int = 1000
    ) -> Page[GroupMsgSend]:
        data = await self._post(
            "get_groupmsg_send_result",
            {"msgid": msgid, "userid": userid, "limit": limit, "cursor": cursor},
        )
        items = tuple(
            GroupMsgSend(
                userid=str(s.get("userid", "")),
                status=_int(s.get("status")),
                external_userid=str(s.get("external_userid") or ""),
                chat_id=str(s.get("chat_id") or ""),
                send_time=_ts(s.get("send_time")),
            )
            for s in _dicts(data.get("send_list"))
        )
        return Page(items, str(data.get("next_cursor") or ""))

    async def all_groupmsg_send_result(self, msgid: str, userid: str) -> list[GroupMsgSend]:
        return await _all_pages(lambda c: self.get_groupmsg_send_result(msgid, userid, cursor=c))

    async def remind_groupmsg_send(self, msgid: str) -> None:
        """Nudge members who have not sent ``msgid`` yet; ``RemindCapReached`` past 3/24 h."""
        now = self._time()
        wait = self.reminders.retry_after(msgid, now)
        if wait > 0:
            raise RemindCapReached(msgid, wait)
        await self._post("remind_groupmsg_send", {"msgid": msgid})
        self.reminders.note(msgid, now)

    # -- behaviour data -----------------------------------------------------------------

    async def get_user_behavior_data(
        self, userid: str, start: date, end: date
    ) -> list[BehaviorDay]:
        """Daily stats for ``userid`` from ``start`` to ``end`` (local dates, inclusive)."""
        if end < start:
            raise ValueError("end is before start")
        if (end - start).days + 1 > BEHAVIOR_MAX_DAYS:
            raise ValueError(f"WeCom allows at most {BEHAVIOR_MAX_DAYS} days per query")
        body = {
            "userid": [userid],
            "start_time": local_midnight(start, self._tz),
            "end_time": local_midnight(end, self._tz),
        }
        data = await self._post("get_user_behavior_data", body)
        days: list[BehaviorDay] = []
        for row in _dicts(data.get("behavior_data")):
            stat = _int(row.get("stat_time"))
            local_day = datetime.fromtimestamp(stat, self._tz).date()  # local midnight
            avg = row.get("avg_reply_time")
            days.append(
                BehaviorDay(
                    userid=userid,
                    day=local_day,
                    chat_cnt=_int(row.get("chat_cnt")),
                    message_cnt=_int(row.get("message_cnt")),
                    reply_percentage=_opt_float(row.get("reply_percentage")),
                    avg_reply_time=None if avg is None else _int(avg),
                    negative_feedback_cnt=_int(row.get("negative_feedback_cnt")),
                    new_apply_cnt=_int(row.get("new_apply_cnt")),
                    new_contact_cnt=_int(row.get("new_contact_cnt")),
                )
            )
        return days


async def _all_pages(fetch: Callable[[str], Awaitable[Page[T]]]) -> list[T]:
    """Follow ``next_cursor`` to the end (bounded, in case a server repeats a cursor)."""
    items: list[T] = []
    cursor = ""
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        page = await fetch(cursor)
        items.extend(page.items)
        if not page.next_cursor or page.next_cursor in seen:
            break
        seen.add(page.next_cursor)
        cursor = page.next_cursor
    return items
