"""WeComGateway outbound: idempotent app messages, template cards, the group robot."""

from __future__ import annotations

import pytest

from bot.clock import ManualClock
from bot.config_wecom import WeComSection
from bot.errors import GatewayError
from bot.gateway.wecom import ROBOT_GROUP, CardClick, WeComGateway
from bot.gateway.wecom.messages import IDEMPOTENCY_FIELD, card_task_id, fit_utf8
from bot.metrics import Metrics
from tests.fakes.onebot import RecordingSink
from tests.fakes.wecom import NOW, FakeTime, FakeWeCom, wecom_gateway

pytestmark = pytest.mark.integration


async def test_private_text_payload_and_result() -> None:
    """send_private_text posts an app text with duplicate check on and the key inside."""
    fake, t = FakeWeCom(), FakeTime()
    async with wecom_gateway(fake, t) as (gw, _, _):
        assert gw.online_accounts() == [gw.corp_id]
        sent = await gw.send_private_text("zhangsan", "今天还差 1 条朋友圈", idempotency_key="k1")
    body = fake.api_calls("send")[0].body
    assert body is not None
    assert body["touser"] == "zhangsan"
    assert body["msgtype"] == "text"
    assert body["agentid"] == 1000002
    assert body["text"] == {"content": "今天还差 1 条朋友圈"}
    assert body["enable_duplicate_check"] == 1
    assert body["duplicate_check_interval"] == 1800
    assert body[IDEMPOTENCY_FIELD] == "k1"
    assert (sent.platform, sent.account_id) == ("wecom", gw.corp_id)
    assert sent.message_id.startswith("msg-")
    assert gw.online_accounts() == []


async def test_retried_reminder_is_dropped_by_duplicate_check() -> None:
    """The same reminder sent twice (same key) reaches the guide once; another key does not."""
    fake, t = FakeWeCom(), FakeTime()
    async with wecom_gateway(fake, t) as (gw, _, _):
        await gw.send_private_text("zhangsan", "提醒", idempotency_key="slot-1")
        await gw.send_private_text("zhangsan", "提醒", idempotency_key="slot-1")
        await gw.send_private_text("zhangsan", "提醒", idempotency_key="slot-2")
    assert len(fake.api_calls("send")) == 3
    assert [d[IDEMPOTENCY_FIELD] for d in fake.delivered] == ["slot-1", "slot-2"]


async def test_card_with_buttons_and_update_after_click() -> None:
    """A card carries 完成 / 稍后提醒 and a key-derived task_id; a click greys it out."""
    fake, t = FakeWeCom(), FakeTime()
    async with wecom_gateway(fake, t) as (gw, _, _):
        result = await gw.send_card(
            ["zhangsan"],
            idempotency_key="guide-1|moments|2024-06-10",
            title="今日朋友圈 3 条",
            fields=[("已完成", "1/3")],
        )
        click = CardClick(
            "wecom", gw.corp_id, "zhangsan", "done", result.msgid, result.response_code, "", NOW
        )
        await gw.acknowledge_click(click)
    card = fake.delivered[0]["template_card"]
    assert card["card_type"] == "button_interaction"
    assert card["task_id"] == card_task_id("guide-1|moments|2024-06-10")
    assert [(b["text"], b["key"]) for b in card["button_list"]] == [
        ("完成", "done"),
        ("稍后提醒", "snooze"),
    ]
    assert result.response_code.startswith("rc-")
    update = fake.api_calls("update_template_card")[0].body
    assert update == {
        "userids": ["zhangsan"],
        "agentid": 1000002,
        "response_code": result.response_code,
        "button": {"replace_name": "已完成"},
    }


async def test_robot_group_text_and_markdown() -> None:
    """Group posts go to the staff-group robot; long text is cut to 2048 bytes."""
    fake, t = FakeWeCom(), FakeTime()
    async with wecom_gateway(fake, t) as (gw, _, _):
        sent = await gw.send_group_text(ROBOT_GROUP, "未回复 3 条 <@zhangsan>")
        await gw.send_group_text(ROBOT_GROUP, "长" * 1000)
        await gw.send_group_markdown('今日未回复 <font color="warning">3</font> 条')
        with pytest.raises(GatewayError):
            await gw.send_group_text("some-customer-group", "x")
    assert sent.message_id == ""
    assert fake.robot_posts[0] == {
        "msgtype": "text",
        "text": {"content": "未回复 3 条 <@zhangsan>"},
    }
    long = fake.robot_posts[1]["text"]["content"]
    assert len(long.encode()) <= 2048
    assert long.endswith("…")
    assert fake.robot_posts[2]["msgtype"] == "markdown"
    assert all(c.query == {} for c in fake.api_calls("webhook/send"))  # key never recorded


def test_fit_utf8_cuts_on_character_boundary() -> None:
    """Cutting never splits a multi-byte character."""
    assert fit_utf8("abc", 10) == "abc"
    cut = fit_utf8("中文" * 10, 10)
    assert len(cut.encode()) <= 10
    assert cut.endswith("…")


def test_from_config_and_routes() -> None:
    """The gateway is built from [gateway.wecom]; the callback routes exist when configured."""
    section = WeComSection(
        enabled=True,
        corp_id="wwcorp",
        agent_id=7,
        app_secret="s",
        callback_token="tok",
        encoding_aes_key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    )
    gw = WeComGateway.from_config(
        section, sink=RecordingSink(), clock=ManualClock(NOW), metrics=Metrics()
    )
    assert gw.platform == "wecom"
    assert gw.robot is None
    assert [(r.method, r.path) for r in gw.routes()] == [
        ("GET", "/wecom/callback"),
        ("POST", "/wecom/callback"),
    ]


def test_config_requires_ids_when_enabled() -> None:
    """Enabling WeCom without corp id / secret / agent id is a config error."""
    with pytest.raises(ValueError, match="corp_id"):
        WeComSection(enabled=True)
    assert WeComSection().enabled is False
