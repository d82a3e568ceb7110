"""SOP chat commands: mark steps done, show today's tasks, and let supervisors urge (催办).

- ``/done moments [n]`` / ``完成 朋友圈 [n]``: n units (default 1) of a quota step, source
  ``self``; ``/done welcome <customer>`` / ``完成 欢迎问候 <客户>``: a named customer task.
- ``/today`` / ``今日任务``: today's progress.
- ``/urge <guide>`` / ``催办 <导购>`` (supervisors, admins): a 催办 message to the guide
  through the outbox; the supervisor gets the guide's progress back.
Every answer is private and ends with today's progress.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.commands import Command, CommandContext
from bot.outbox import OutboxItem, enqueue
from bot.store import tasks as store
from sop.reminder_text import STEP_NAMES, render_slot_reminder, render_urge
from sop.slots import ReminderKind, day_window_end, reminder_key

_MAX_UNITS = 50


def _en(lang: str) -> bool:
    return lang.lower().startswith("en")


def _step_aliases() -> dict[str, str]:
    """Display names (zh and en, case-insensitive) and raw names → step name."""
    out: dict[str, str] = {}
    for names in STEP_NAMES.values():
        for step, label in names.items():
            out[str(step).lower()] = str(step)
            out[label.lower().replace(" ", "")] = str(step)
    out.update(
        {"朋友圈": "moments", "私聊": "private_chats", "群发": "group_posts", "群": "group_posts"}
    )
    return out


_ALIASES = _step_aliases()


async def _rows(ctx: CommandContext, guide_id: str) -> tuple[Any, list[store.TaskRow]]:
    sop = ctx.dep("sop")
    session: AsyncSession = ctx.dep("session")
    conn = await session.connection()
    return conn, await store.tasks_on(conn, sop.today(), [guide_id])


def _progress_text(rows: list[store.TaskRow], lang: str) -> str:
    if not rows:
        return "Today has no SOP tasks for you." if _en(lang) else "你今天没有SOP任务。"
    return render_slot_reminder(
        store.step_progress(rows), store.open_customer_tasks(rows), lang=lang
    ).split("\n", 1)[1]


async def _done(ctx: CommandContext) -> str:
    lang, guide_id = ctx.lang, ctx.operator.id
    conn, rows = await _rows(ctx, guide_id)
    usage = (
        "Usage: /done moments [n] or /done <customer task> <customer>"
        if _en(lang)
        else "用法：完成 朋友圈 [数量]，或 完成 <客户任务> <客户>"
    )
    if not ctx.args:
        return f"{usage}\n{_progress_text(rows, lang)}"
    word, rest = ctx.args[0].lower(), list(ctx.args[1:])
    step = _ALIASES.get(word, word)
    sop = ctx.dep("sop")
    now = sop.clock.now()
    ref = f"cmd:{ctx.msg.platform}:{ctx.msg.message_id}"
    quota = next((r for r in rows if not r.is_customer_task and r.step == step), None)
    if quota is not None:
        count = 1
        if rest:
            if not rest[0].isdigit() or not 0 < int(rest[0]) <= _MAX_UNITS:
                return f"{usage}\n{_progress_text(rows, lang)}"
            count = int(rest[0])
        await store.add_evidence(conn, quota, source="self", ref=ref, count=count, at=now)
    else:
        named = [
            r
            for r in rows
            if r.is_customer_task
            and not r.complete
            and step in (r.step, r.step.partition(".")[2])
            and (not rest or r.target_key == rest[0])
        ]
        if len(named) != 1:
            msg = (
                f"No single open task matches {ctx.args[0]!r}."
                if _en(lang)
                else f"没有找到唯一匹配「{ctx.args[0]}」的未完成任务。"
            )
            return f"{msg}\n{usage}\n{_progress_text(rows, lang)}"
        await store.add_evidence(conn, named[0], source="self", ref=ref, count=1, at=now)
    rows = await store.tasks_on(conn, sop.today(), [guide_id])
    head = "Recorded." if _en(lang) else "已记录。"
    return f"{head}\n{_progress_text(rows, lang)}"


async def _today(ctx: CommandContext) -> str:
    _, rows = await _rows(ctx, ctx.operator.id)
    head = "Today's tasks:" if _en(ctx.lang) else "今日任务："
    return f"{head}\n{_progress_text(rows, ctx.lang)}"


async def _urge(ctx: CommandContext) -> str:
    lang = ctx.lang
    sop = ctx.dep("sop")
    if not ctx.args:
        return "Usage: /urge <guide>" if _en(lang) else "用法：催办 <导购>"
    who = " ".join(ctx.args)
    guide = next(
        (g for g in sop.guides.values() if who in (g.id, g.name)),
        None,
    )
    if guide is None:
        return f"Unknown guide {who!r}." if _en(lang) else f"没有找到导购「{who}」。"
    conn, rows = await _rows(ctx, guide.id)
    label = guide.name or guide.id
    if not rows:
        return f"{label}: no tasks today." if _en(lang) else f"{label} 今天没有SOP任务。"
    progress = store.step_progress(rows)
    report = f"{label}\n{_progress_text(rows, lang)}"
    if not store.has_open_work(rows):
        done = "Nothing to urge: all done." if _en(lang) else "无需催办：已全部完成。"
        return f"{done}\n{report}"
    now = sop.clock.now()
    plan = sop.plan_of(guide.id)
    text = render_urge(progress, ctx.operator.name, lang=lang)
    customer = store.open_customer_tasks(rows)
    if customer and all(p.complete for p in progress):
        text = render_slot_reminder(progress, customer, lang=lang)
    slot = f"urge-{ctx.msg.platform}-{ctx.msg.message_id}"
    await enqueue(
        conn,
        [
            OutboxItem(
                key=reminder_key(guide.id, sop.today(), slot, ReminderKind.URGE),
                kind="sop_urge",
                recipient_id=guide.id,
                text=text,
                due_at=now,
                window_end=max(day_window_end(plan, sop.today(), sop.tz), now)
                + timedelta(hours=1),
            )
        ],
        now,
    )
    sent = f"Urged {label}." if _en(lang) else f"已催办 {label}。"
    return f"{sent}\n{report}"


COMMANDS: tuple[Command, ...] = (
    Command(
        ("done", "完成", "打卡"),
        "标记SOP任务完成（完成 朋友圈 2）",
        "mark SOP work done (/done moments 2)",
        _done,
        usage="<step> [n] | <customer task> <customer>",
    ),
    Command(("today", "今日任务", "今天"), "查看今日SOP任务和进度", "today's SOP tasks", _today),
    Command(
        ("urge", "催办"),
        "催导购完成今日任务",
        "urge a guide to finish today's tasks",
        _urge,
        usage="<guide>",
        roles=frozenset({"supervisor", "admin"}),
    ),
)
