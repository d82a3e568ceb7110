"""Chat text for SOP reminders: slot digest, end-of-day nudge, supervisor summary and urge.

Progress numbers are always "done/quota" and say so ("朋友圈 已完成 1/3，还差 2"), so a guide
cannot read "1/3" as "one left". zh-CN is the default; ``lang="en"`` gives English. Text is plain
(no markup): the sender decides on text, markdown or a template card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time

from sop.content import ContentItem
from sop.lifecycle import CustomerTask, TouchKind
from sop.plans import StepKind

STEP_NAMES: Mapping[str, Mapping[str, str]] = {
    "zh": {
        StepKind.MOMENTS: "朋友圈",
        StepKind.PRIVATE_CHATS: "私聊",
        StepKind.GROUP_POSTS: "群发",
        # default lifecycle steps (sop.lifecycle.default_programs)
        "welcome": "欢迎问候",
        "day_15": "15天回访",
        "month_1": "满月回访",
        "monthly_invite": "每月邀约",
        "month_3": "3个月回访",
        "month_6": "半年回访",
        "month_12": "周年回访",
        "thanks": "购后感谢",
        "care_7": "7天使用关怀",
        "care_15": "15天保养提醒",
        "marketing_40": "复购推荐",
    },
    "en": {
        StepKind.MOMENTS: "Moments",
        StepKind.PRIVATE_CHATS: "Private chats",
        StepKind.GROUP_POSTS: "Group posts",
        "welcome": "Welcome",
        "day_15": "Day-15 follow-up",
        "month_1": "One-month follow-up",
        "monthly_invite": "Monthly invitation",
        "month_3": "3-month follow-up",
        "month_6": "6-month follow-up",
        "month_12": "12-month follow-up",
        "thanks": "Thank-you after purchase",
        "care_7": "Day-7 care",
        "care_15": "Day-15 care",
        "marketing_40": "Repurchase offer",
    },
}

KIND_NAMES: Mapping[str, Mapping[TouchKind, str]] = {
    "zh": {TouchKind.CARE: "关怀", TouchKind.MARKETING: "营销", TouchKind.INVITE: "邀约"},
    "en": {TouchKind.CARE: "care", TouchKind.MARKETING: "marketing", TouchKind.INVITE: "invite"},
}


@dataclass(frozen=True, slots=True)
class StepProgress:
    """How far a guide is with one quota step today."""

    step: str
    done: int
    quota: int

    @property
    def left(self) -> int:
        return max(self.quota - self.done, 0)

    @property
    def complete(self) -> bool:
        return self.done >= self.quota


@dataclass(frozen=True, slots=True)
class GuideProgress:
    """One guide's progress for the supervisor summary."""

    guide_id: str
    name: str
    store: str
    steps: tuple[StepProgress, ...]

    @property
    def complete(self) -> bool:
        return all(s.complete for s in self.steps)


def _lang(lang: str) -> str:
    return "en" if lang.lower().startswith("en") else "zh"


def step_name(step: str, lang: str = "zh-CN", names: Mapping[str, str] | None = None) -> str:
    """Display name of a step; ``names`` overrides for free-named steps, else the raw name."""
    if names and step in names:
        return names[step]
    return STEP_NAMES[_lang(lang)].get(step, step)


def _progress_line(p: StepProgress, lang: str, names: Mapping[str, str] | None) -> str:
    name = step_name(p.step, lang, names)
    if _lang(lang) == "en":
        tail = " ✓" if p.complete else f", {p.left} to go"
        return f"· {name}: {p.done} of {p.quota} done{tail}"
    tail = " ✓" if p.complete else f"，还差 {p.left}"
    return f"· {name} 已完成 {p.done}/{p.quota}{tail}"


def _done_hint(
    progress: Sequence[StepProgress], lang: str, names: Mapping[str, str] | None
) -> str:
    todo = next((p for p in progress if not p.complete), None)
    if todo is None:
        return (
            "All of today's tasks are done. Thank you!"
            if _lang(lang) == "en"
            else ("今天的任务都完成了，辛苦了！")
        )
    zh_name = step_name(todo.step, "zh-CN", names)
    if _lang(lang) == "en":
        return f'Mark done: reply "/done {todo.step}" (or "完成 {zh_name}").'
    return f"完成后回复「完成 {zh_name}」或「/done {todo.step}」标记。"


def _customer_lines(
    tasks: Sequence[CustomerTask],
    lang: str,
    customer_names: Mapping[str, str],
    names: Mapping[str, str] | None,
) -> list[str]:
    en = _lang(lang) == "en"
    kinds = KIND_NAMES[_lang(lang)]
    lines: list[str] = []
    for task in tasks:
        who = customer_names.get(task.customer_id, task.customer_id)
        what = step_name(task.step, lang, names)
        kind = kinds[task.kind]
        lines.append(f"· {who}: {what} ({kind})" if en else f"· {who}：{what}（{kind}）")
    return lines


def render_slot_reminder(
    progress: Sequence[StepProgress],
    customer_tasks: Sequence[CustomerTask] = (),
    content: ContentItem | None = None,
    *,
    customer_names: Mapping[str, str] | None = None,
    step_names: Mapping[str, str] | None = None,
    late: bool = False,
    lang: str = "zh-CN",
) -> str:
    """One slot reminder for one guide: what is left, customer tasks, content, how to mark."""
    en = _lang(lang) == "en"
    lines = ["[SOP reminder]" if en else "【今日SOP提醒】"]
    if late:
        lines[0] += " (sent late)" if en else "（补发）"
    if progress:
        lines.append("Today's progress (done/target):" if en else "今日进度（已完成/目标）：")
        lines.extend(_progress_line(p, lang, step_names) for p in progress)
    if customer_tasks:
        lines.append("Customer tasks:" if en else "客户任务：")
        lines.extend(_customer_lines(customer_tasks, lang, customer_names or {}, step_names))
    if content is not None:
        lines.append("Suggested content:" if en else "推荐内容：")
        if content.text.strip():
            lines.append(content.text.strip())
        if content.link:
            lines.append(content.link)
    lines.append(_done_hint(progress, lang, step_names))
    return "\n".join(lines)


def render_nudge(
    progress: Sequence[StepProgress],
    window_end: time,
    *,
    step_names: Mapping[str, str] | None = None,
    lang: str = "zh-CN",
) -> str:
    """End-of-day nudge: only the unfinished steps, and when the day closes (local time)."""
    en = _lang(lang) == "en"
    todo = [p for p in progress if not p.complete]
    deadline = f"{window_end:%H:%M}"
    if not todo:
        return _done_hint(progress, lang, step_names)
    head = (
        f"[Wrap-up] Still open today, closes at {deadline}:"
        if en
        else f"【收尾提醒】今天还有任务未完成，{deadline} 截止："
    )
    return "\n".join(
        [
            head,
            *(_progress_line(p, lang, step_names) for p in todo),
            _done_hint(todo, lang, step_names),
        ]
    )


def _short_progress(p: StepProgress, lang: str, names: Mapping[str, str] | None) -> str:
    return f"{step_name(p.step, lang, names)} {p.done}/{p.quota}"


def render_supervisor_summary(
    local_date: date,
    guides: Sequence[GuideProgress],
    *,
    step_names: Mapping[str, str] | None = None,
    lang: str = "zh-CN",
) -> str:
    """Daily summary for a supervisor: how many guides are done, and who is not (done/target)."""
    en = _lang(lang) == "en"
    open_guides = sorted((g for g in guides if not g.complete), key=lambda g: (g.store, g.name))
    done = len(guides) - len(open_guides)
    day = local_date.isoformat()
    if en:
        lines = [f"[SOP summary] {day}", f"{done} of {len(guides)} guides done."]
    else:
        lines = [f"【今日SOP汇总】{day}", f"{len(guides)} 人中已完成 {done} 人。"]
    if not open_guides:
        return "\n".join(lines)
    lines.append("Not finished (done/target):" if en else "未完成（已完成/目标）：")
    sep = ", " if en else "，"
    for g in open_guides:
        label = g.name or g.guide_id
        if g.store:
            label += f" ({g.store})" if en else f"（{g.store}）"
        todo = sep.join(_short_progress(p, lang, step_names) for p in g.steps if not p.complete)
        lines.append(f"· {label}: {todo}" if en else f"· {label}：{todo}")
    return "\n".join(lines)


def render_urge(
    progress: Sequence[StepProgress],
    from_name: str,
    *,
    step_names: Mapping[str, str] | None = None,
    lang: str = "zh-CN",
) -> str:
    """催办: a supervisor asks a guide to finish today's open steps."""
    en = _lang(lang) == "en"
    todo = [p for p in progress if not p.complete]
    head = (
        f"[Reminder from {from_name}] Please finish today's tasks:"
        if en
        else f"【催办】{from_name} 提醒你尽快完成今天的任务："
    )
    return "\n".join(
        [
            head,
            *(_progress_line(p, lang, step_names) for p in todo),
            _done_hint(todo, lang, step_names),
        ]
    )
