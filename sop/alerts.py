"""Batched SLA alert messages: one private message per staff recipient (sla.md §7.7).

Due alerts (``sop.timers``) that fire together are grouped by recipient; each message lists that
person's questions oldest first, with group, customer, time waited (business and calendar), a
short snippet and the question id. Alerts go to staff only: a recipient that is a customer group
or the asker is dropped. Customer text and nicknames are untrusted: they are flattened to one
plain line and characters that chat markdown or HTML would interpret are replaced by look-alikes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sop.questions import Question
from sop.timers import BACKLOG, BREACH, FOLLOWUP, WARN, Calendar, DueAlert, base_level

SNIPPET_CHARS = 30
NAME_CHARS = 20
# Markup characters of WeCom markdown / HTML / our own layout, swapped for full-width forms.
_DEFUSE = str.maketrans("<>*_`[]#|\\@", "＜＞＊＿｀［］＃｜＼＠")


@dataclass(frozen=True, slots=True)
class Roster:
    """Who gets what, injected by the runtime from config and the operator roster."""

    supervisors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # chat → ids
    default_supervisors: tuple[str, ...] = ()  # team queue when a chat has none listed
    group_names: Mapping[str, str] = field(default_factory=dict)
    customer_names: Mapping[str, str] = field(default_factory=dict)
    customer_chats: frozenset[str] = frozenset()  # never a recipient

    def supervisors_of(self, chat: str) -> tuple[str, ...]:
        return self.supervisors.get(chat) or self.default_supervisors


@dataclass(frozen=True, slots=True)
class AlertItem:
    """One question line of an alert message."""

    question_id: str
    level: str  # the most severe level of this question in the batch
    group_name: str
    customer_name: str
    waited_business_s: float
    waited_calendar_s: float
    snippet: str
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """One private message to send; ``sent_levels`` are the (question id, level key) it covers."""

    recipient_id: str
    text: str
    items: tuple[AlertItem, ...]
    sent_levels: tuple[tuple[str, str], ...]


def plain(text: str, limit: int) -> str:
    """Untrusted text as one plain line of at most ``limit`` characters."""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch)[0] != "C"  # controls, zero-width, bidi
    )
    flat = " ".join(kept.translate(_DEFUSE).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _severity(level_key: str) -> int:
    level = base_level(level_key)
    if level == WARN:
        return 0
    if level == FOLLOWUP:
        return 1
    if level == BREACH:
        return 2
    if level == BACKLOG:
        return 1000
    return 2 + int(level.removeprefix("escalate") or 0)  # escalateN


def recipients(question: Question, notify: str, roster: Roster) -> tuple[str, ...]:
    """Staff ids an alert with ``notify`` ("owners+supervisor", ...) goes to."""
    owners = question.owner_ids or roster.supervisors_of(question.chat)  # ownerless → team queue
    out: list[str] = []
    for target in notify.split("+"):
        if target == "owners":
            out.extend(owners)
        elif target == "supervisor":
            out.extend(roster.supervisors_of(question.chat))
        elif target == "responder":
            responder = question.first_responder_id
            out.extend((responder,) if responder else owners)
    blocked = {question.chat, question.asker_id, *roster.customer_chats}
    return tuple(r for r in dict.fromkeys(out) if r and r not in blocked)


_LABELS = {
    "zh-CN": {
        WARN: "即将超时",
        BREACH: "已超时",
        "escalate": "升级",
        BACKLOG: "超48小时未回复",
        FOLLOWUP: "跟进超时",
    },
    "en": {
        WARN: "due soon",
        BREACH: "overdue",
        "escalate": "escalated",
        BACKLOG: "48 h backlog",
        FOLLOWUP: "follow-up overdue",
    },
}


def _label(level_key: str, lang: str) -> str:
    level = base_level(level_key)
    labels = _LABELS["en" if lang == "en" else "zh-CN"]
    return labels["escalate"] if level.startswith("escalate") else labels[level]


def format_duration(seconds: float, lang: str = "zh-CN") -> str:
    """``3725`` → ``1小时2分钟`` / ``1h 2m``; days past 24 h; under a minute says so."""
    minutes = int(max(0.0, seconds) // 60)
    if minutes == 0:
        return "<1m" if lang == "en" else "不到1分钟"
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    units = (("d", "天"), ("h", "小时"), ("m", "分钟"))
    parts = [
        f"{n}{en}" if lang == "en" else f"{n}{zh}"
        for n, (en, zh) in zip((days, hours, mins), units, strict=True)
        if n
    ]
    return (" " if lang == "en" else "").join(parts)


def _render(items: list[AlertItem], lang: str) -> str:
    if lang == "en":
        head = f"[SLA alert] {len(items)} question(s) need attention (oldest first):"
    else:
        head = f"【SLA提醒】你有 {len(items)} 个问题待处理（最早的在前）："
    lines = [head]
    for n, it in enumerate(items, 1):
        business = format_duration(it.waited_business_s, lang)
        wall = format_duration(it.waited_calendar_s, lang)
        label = _label(it.level, lang)
        if lang == "en":
            lines.append(
                f"{n}. [{label}] group {it.group_name} · customer {it.customer_name} · waited "
                f"{business} business / {wall} calendar · “{it.snippet}” · id {it.question_id}"
            )
        else:
            lines.append(
                f"{n}. 【{label}】群「{it.group_name}」· 客户 {it.customer_name} · 已等待 "
                f"{business}（工作时间）/ {wall}（自然时间）· “{it.snippet}” · "
                f"编号 {it.question_id}"
            )
    return "\n".join(lines)


def build_alert_messages(
    alerts: Iterable[DueAlert],
    questions: Mapping[str, Question],
    roster: Roster,
    *,
    calendar_of: Callable[[str], Calendar],
    now: datetime,
    lang: str = "zh-CN",
) -> list[AlertMessage]:
    """One message per recipient for the alerts firing at ``now``; unknown questions skipped."""
    per_recipient: dict[str, dict[str, AlertItem]] = {}
    covered: dict[str, list[tuple[str, str]]] = {}
    for alert in alerts:
        q = questions.get(alert.question_id)
        if q is None:
            continue
        calendar = calendar_of(q.chat)
        item = AlertItem(
            question_id=q.id,
            level=alert.level,
            group_name=plain(roster.group_names.get(q.chat, q.chat), NAME_CHARS),
            customer_name=plain(roster.customer_names.get(q.asker_id, q.asker_id), NAME_CHARS),
            waited_business_s=calendar.business_seconds(q.clock_start, now),
            waited_calendar_s=max(0.0, (now - q.clock_start).total_seconds()),
            snippet=plain(q.snippet, SNIPPET_CHARS),
            opened_at=q.clock_start,
        )
        for rid in recipients(q, alert.notify, roster):
            mine = per_recipient.setdefault(rid, {})
            old = mine.get(q.id)
            if old is None or _severity(alert.level) > _severity(old.level):
                mine[q.id] = item
            covered.setdefault(rid, []).append((q.id, alert.level))
    messages = []
    for rid in sorted(per_recipient):
        items = sorted(per_recipient[rid].values(), key=lambda i: (i.opened_at, i.question_id))
        messages.append(AlertMessage(rid, _render(items, lang), tuple(items), tuple(covered[rid])))
    return messages
