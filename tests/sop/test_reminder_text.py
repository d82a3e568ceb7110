"""Snapshot tests for sop.reminder_text in zh-CN and en."""

from __future__ import annotations

from datetime import date, time

import pytest

from sop.content import ContentItem
from sop.lifecycle import CustomerTask, TouchKind
from sop.reminder_text import (
    GuideProgress,
    StepProgress,
    render_nudge,
    render_slot_reminder,
    render_supervisor_summary,
    render_urge,
    step_name,
)

DAY = date(2024, 5, 6)
PROGRESS = (
    StepProgress("moments", 1, 3),
    StepProgress("private_chats", 3, 3),
    StepProgress("group_posts", 0, 3),
)
TASKS = (
    CustomerTask("c1", "g1", "consumption_cycle", "marketing_40", TouchKind.MARKETING, DAY, "k1"),
    CustomerTask("c2", "g1", "first_contact", "welcome", TouchKind.CARE, DAY, "k2"),
)
CONTENT = ContentItem("x", "夏季新品到店，欢迎来试穿！", "https://example.com/new")
NAMES = {"c1": "王女士"}
GUIDES = (
    GuideProgress("g1", "张三", "徐汇店", PROGRESS),
    GuideProgress("g2", "李四", "徐汇店", (StepProgress("moments", 3, 3),)),
    GuideProgress("g3", "", "静安店", (StepProgress("livestream", 0, 1),)),
)

SLOT_ZH = """【今日SOP提醒】
今日进度（已完成/目标）：
· 朋友圈 已完成 1/3，还差 2
· 私聊 已完成 3/3 ✓
· 群发 已完成 0/3，还差 3
客户任务：
· 王女士：复购推荐（营销）
· c2：欢迎问候（关怀）
推荐内容：
夏季新品到店，欢迎来试穿！
https://example.com/new
完成后回复「完成 朋友圈」或「/done moments」标记。"""

SLOT_EN = """[SOP reminder]
Today's progress (done/target):
· Moments: 1 of 3 done, 2 to go
· Private chats: 3 of 3 done ✓
· Group posts: 0 of 3 done, 3 to go
Customer tasks:
· 王女士: Repurchase offer (marketing)
· c2: Welcome (care)
Suggested content:
夏季新品到店，欢迎来试穿！
https://example.com/new
Mark done: reply "/done moments" (or "完成 朋友圈")."""


@pytest.mark.parametrize(("lang", "expected"), [("zh-CN", SLOT_ZH), ("en", SLOT_EN)])
def test_slot_reminder_snapshot(lang: str, expected: str) -> None:
    """The slot digest lists done/target per step, customer tasks, content and the done command."""
    text = render_slot_reminder(PROGRESS, TASKS, CONTENT, customer_names=NAMES, lang=lang)
    assert text == expected


def test_late_reminder_is_marked() -> None:
    """A reminder sent after a restart says it is late."""
    zh = render_slot_reminder(PROGRESS, late=True)
    en = render_slot_reminder(PROGRESS, late=True, lang="en-US")
    assert zh.splitlines()[0] == "【今日SOP提醒】（补发）"
    assert en.splitlines()[0] == "[SOP reminder] (sent late)"


def test_all_done_reminder_thanks_instead_of_asking() -> None:
    """When every step is complete there is no done-command hint."""
    done = (StepProgress("moments", 3, 3),)
    assert render_slot_reminder(done) == (
        "【今日SOP提醒】\n今日进度（已完成/目标）：\n"
        "· 朋友圈 已完成 3/3 ✓\n今天的任务都完成了，辛苦了！"
    )
    assert (
        render_nudge(done, time(22, 0), lang="en") == "All of today's tasks are done. Thank you!"
    )


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        (
            "zh-CN",
            "【收尾提醒】今天还有任务未完成，22:00 截止：\n"
            "· 朋友圈 已完成 1/3，还差 2\n"
            "· 群发 已完成 0/3，还差 3\n"
            "完成后回复「完成 朋友圈」或「/done moments」标记。",
        ),
        (
            "en",
            "[Wrap-up] Still open today, closes at 22:00:\n"
            "· Moments: 1 of 3 done, 2 to go\n"
            "· Group posts: 0 of 3 done, 3 to go\n"
            'Mark done: reply "/done moments" (or "完成 朋友圈").',
        ),
    ],
)
def test_nudge_snapshot(lang: str, expected: str) -> None:
    """The end-of-day nudge lists only unfinished steps and the closing time."""
    assert render_nudge(PROGRESS, time(22, 0), lang=lang) == expected


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        (
            "zh-CN",
            "【今日SOP汇总】2024-05-06\n"
            "3 人中已完成 1 人。\n"
            "未完成（已完成/目标）：\n"
            "· 张三（徐汇店）：朋友圈 1/3，群发 0/3\n"
            "· g3（静安店）：livestream 0/1",
        ),
        (
            "en",
            "[SOP summary] 2024-05-06\n"
            "1 of 3 guides done.\n"
            "Not finished (done/target):\n"
            "· 张三 (徐汇店): Moments 1/3, Group posts 0/3\n"
            "· g3 (静安店): livestream 0/1",
        ),
    ],
)
def test_supervisor_summary_snapshot(lang: str, expected: str) -> None:
    """The summary counts finished guides and lists the unfinished ones with open steps."""
    assert render_supervisor_summary(DAY, GUIDES, lang=lang) == expected


def test_summary_when_everyone_is_done() -> None:
    """With all guides done the summary has no unfinished list."""
    assert (
        render_supervisor_summary(DAY, GUIDES[1:2])
        == "【今日SOP汇总】2024-05-06\n1 人中已完成 1 人。"
    )


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        (
            "zh-CN",
            "【催办】王主管 提醒你尽快完成今天的任务：\n"
            "· 朋友圈 已完成 1/3，还差 2\n"
            "· 群发 已完成 0/3，还差 3\n"
            "完成后回复「完成 朋友圈」或「/done moments」标记。",
        ),
        (
            "en",
            "[Reminder from 王主管] Please finish today's tasks:\n"
            "· Moments: 1 of 3 done, 2 to go\n"
            "· Group posts: 0 of 3 done, 3 to go\n"
            'Mark done: reply "/done moments" (or "完成 朋友圈").',
        ),
    ],
)
def test_urge_snapshot(lang: str, expected: str) -> None:
    """催办 text names the supervisor and the open steps."""
    assert render_urge(PROGRESS, "王主管", lang=lang) == expected


def test_step_names() -> None:
    """Built-in steps have zh/en names; free-named steps use overrides or their own name."""
    assert step_name("private_chats") == "私聊"
    assert step_name("private_chats", "en") == "Private chats"
    assert step_name("livestream", names={"livestream": "直播预告"}) == "直播预告"
    assert step_name("livestream", "en") == "livestream"
