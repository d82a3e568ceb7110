"""SOP verification APIs on the fake qyapi: moments, group sends, reminders cap, behaviour data."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bot.gateway.wecom.errors import RemindCapReached
from bot.gateway.wecom.sop_api import (
    BehaviorDay,
    GroupMsgSend,
    GroupMsgTask,
    MomentTaskEntry,
    local_midnight,
)
from tests.fakes.wecom import SAMPLES, FakeTime, FakeWeCom, wecom_gateway

pytestmark = pytest.mark.integration


async def test_moment_task_created_and_polled_until_done() -> None:
    """add_moment_task returns the job id; polling sleeps until status 3 and types the result."""
    fake, t = FakeWeCom(), FakeTime()
    async with wecom_gateway(fake, t) as (gw, _, _):
        jobid = await gw.sop.add_moment_task(
            "文本消息内容", sender_users=["zhangshan", "lisi"], customer_tags=["etXXXXXXXXXX"]
        )
        result = await gw.sop.wait_moment_task(jobid, poll_interval=2.0)
    assert jobid == "xxxx"
    body = fake.api_calls("add_moment_task")[0].body
    assert body == {
        "text": {"content": "文本消息内容"},
        "visible_range": {
            "sender_list": {"user_list": ["zhangshan", "lisi"], "department_list": []},
            "external_contact_list": {"tag_list": ["etXXXXXXXXXX"]},
        },
    }
    assert [c.query for c in fake.api_calls("get_moment_task_result")] == [{"jobid": "xxxx"}] * 3
    assert t.sleeps == [2.0, 2.0]
    assert result.done
    assert result.moment_id == "xxxx"
    assert result.invalid_users == ("zhangshan", "lisi")
    assert result.invalid_departments == (2, 3)
    assert result.invalid_tags == ("xxx",)


async def test_moment_task_publish_status_paged() -> None:
    """get_moment_task follows next_cursor; publish_status 1 means published."""
    fake, t = FakeWeCom(), FakeTime()
    fake.pages["get_moment_task"] = {
        "": SAMPLES["get_moment_task"],
        "CURSOR": {
            "errcode": 0,
            "errmsg": "ok",
            "next_cursor": "",
            "task_list": [{"userid": "lisi", "publish_status": 0}],
        },
    }
    async with wecom_gateway(fake, t) as (gw, _, _):
        first = await gw.sop.get_moment_task("momxxx")
        entries = await gw.sop.all_moment_task("momxxx")
    assert first.next_cursor == "CURSOR"
    assert entries == [MomentTaskEntry("zhangsan", 1), MomentTaskEntry("lisi", 0)]
    assert [e.published for e in entries] == [True, False]
    assert all(c.secret == "contact" for c in fake.api_calls("get_moment_task"))


async def test_group_send_template_task_and_results() -> None:
    """add_msg_template → msgid + fail_list; task and send results typed across pages."""
    fake, t = FakeWeCom(), FakeTime()
    last_page = {"errcode": 0, "errmsg": "ok", "next_cursor": "", "send_list": []}
    fake.pages["get_groupmsg_send_result"] = {
        "": SAMPLES["get_groupmsg_send_result"],
        "CURSOR": last_page,
    }
    async with wecom_gateway(fake, t) as (gw, _, _):
        tmpl = await gw.sop.add_msg_template(
            sender="zhangsan",
            text="文本消息内容",
            chat_type="group",
        )
        tasks = await gw.sop.get_groupmsg_task(tmpl.msgid)
        sends = await gw.sop.all_groupmsg_send_result(tmpl.msgid, "zhangsan")
    assert tmpl.msgid == "msgGCAAAXtWyujaWJHDDGi0mAAAA"
    assert tmpl.fail_list == ("wmqfasd1e1927831123109rBAAAA",)
    assert fake.api_calls("add_msg_template")[0].body == {
        "chat_type": "group",
        "sender": "zhangsan",
        "text": {"content": "文本消息内容"},
    }
    sent_at = datetime.fromtimestamp(1552536375, UTC)
    assert tasks.items == (GroupMsgTask("zhangsan", 1, sent_at),)
    assert tasks.items[0].sent
    assert sends == [
        GroupMsgSend(
            userid="zhangsan",
            status=1,
            external_userid="wmqfasd1e19278asdasAAAA",
            chat_id="wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA",
            send_time=sent_at,
        )
    ]
    assert [c.body["cursor"] for c in fake.api_calls("get_groupmsg_send_result") if c.body] == [
        "",
        "CURSOR",
    ]


async def test_remind_capped_at_three_per_24h() -> None:
    """The 4th reminder within 24 h is refused without calling WeCom; a day later it is fine."""
    fake, t = FakeWeCom(), FakeTime()
    async with wecom_gateway(fake, t) as (gw, _, _):
        for _ in range(3):
            await gw.sop.remind_groupmsg_send("msg1")
            t.now += 3600
        with pytest.raises(RemindCapReached) as err:
            await gw.sop.remind_groupmsg_send("msg1")
        assert err.value.retry_after == pytest.approx(24 * 3600 - 3 * 3600)
        await gw.sop.remind_groupmsg_send("msg2")  # a different 群发 has its own budget
        t.now += 24 * 3600 - 3 * 3600
        await gw.sop.remind_groupmsg_send("msg1")
    assert [c.body for c in fake.api_calls("remind_groupmsg_send")] == [{"msgid": "msg1"}] * 3 + [
        {"msgid": "msg2"},
        {"msgid": "msg1"},
    ]


async def test_behavior_data_per_local_day() -> None:
    """stat_time maps to Asia/Shanghai dates; the request spans local midnights."""
    fake, t = FakeWeCom(), FakeTime()
    async with wecom_gateway(fake, t) as (gw, _, _):
        days = await gw.sop.get_user_behavior_data(
            "zhangsan", date(2018, 9, 10), date(2018, 9, 15)
        )
        with pytest.raises(ValueError, match="30 days"):
            await gw.sop.get_user_behavior_data("zhangsan", date(2018, 1, 1), date(2018, 3, 1))
    body = fake.api_calls("get_user_behavior_data")[0].body
    assert body is not None
    assert body["userid"] == ["zhangsan"]
    assert body["start_time"] == 1536508800  # 2018-09-10 00:00 +08:00
    assert body["end_time"] == local_midnight(date(2018, 9, 15), gw.sop._tz)
    assert days[0] == BehaviorDay(
        userid="zhangsan",
        day=date(2018, 9, 10),
        chat_cnt=100,
        message_cnt=80,
        reply_percentage=60.25,
        avg_reply_time=1,
        negative_feedback_cnt=0,
        new_apply_cnt=6,
        new_contact_cnt=5,
    )
    assert (days[1].day, days[1].chat_cnt, days[1].reply_percentage) == (
        date(2018, 9, 15),
        20,
        100.0,
    )


async def test_app_secret_used_without_contact_secret() -> None:
    """Without a 客户联系 secret the verification calls use the app's token."""
    fake, t = FakeWeCom(), FakeTime()
    async with wecom_gateway(fake, t, contact_secret="") as (gw, _, _):
        await gw.sop.get_groupmsg_task("m")
    assert fake.api_calls("get_groupmsg_task")[0].secret == "app"
