"""WeCom callback endpoint: URL verification, decrypted events, replays, bad signatures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.clock import ManualClock
from bot.events import ChatMessage, ChatType, MemberChange, MemberChangeKind
from bot.gateway.wecom import CardClick, WeComGateway
from bot.gateway.wecom.callback import XmlRejected, parse_xml
from bot.metrics import Metrics
from tests.fakes.onebot import RecordingSink, counter
from tests.fakes.wecom import (
    ADD_EXTERNAL_CONTACT_XML,
    AES_KEY,
    CALLBACK_TOKEN,
    CORP_ID,
    TEMPLATE_CARD_EVENT_XML,
    TEXT_MESSAGE_XML,
    CallbackSender,
    callback_xml,
)

NOW = datetime(2024, 6, 10, 6, 20, tzinfo=UTC)
PATH = "/wecom/callback"
ECHOSTR = (
    "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
)


class Harness:
    """A WeComGateway's callback routes on a test client, with what reached its sinks."""

    def __init__(self, corp_id: str) -> None:
        self.sink = RecordingSink()
        self.clicks: list[CardClick] = []
        self.metrics = Metrics()
        self.sender = CallbackSender(corp_id=corp_id)
        self.gateway = WeComGateway(
            corp_id=corp_id,
            agent_id=1,
            app_secret="s",
            callback_token=CALLBACK_TOKEN,
            encoding_aes_key=AES_KEY,
            sink=self.sink,
            clock=ManualClock(NOW),
            metrics=self.metrics,
            card_sink=self._on_click,
        )
        self.client: TestClient[Any, Any]

    async def _on_click(self, click: CardClick) -> None:
        self.clicks.append(click)

    async def post(self, inner: str, **kw: Any) -> tuple[int, str]:
        query, body = self.sender.post(inner, **kw)
        resp = await self.client.post(f"{PATH}?{query}", data=body)
        return resp.status, await resp.text()

    def rejected(self, reason: str) -> float:
        labels = {"platform": "wecom", "reason": reason}
        return counter(self.metrics, "sopbot_events_rejected_total", **labels)


async def make(aiohttp_client: Any, corp_id: str = CORP_ID) -> Harness:
    h = Harness(corp_id)
    app = web.Application()
    app.add_routes(h.gateway.routes())
    h.client = await aiohttp_client(app)
    return h


@pytest.fixture
async def h(aiohttp_client: Any) -> Harness:
    return await make(aiohttp_client)


async def test_url_verification_official_vector(aiohttp_client: Any) -> None:
    """GET with the documented signature answers the decrypted echostr."""
    harness = await make(aiohttp_client, corp_id="wx5823bf96d3bd56c7")
    resp = await harness.client.get(
        PATH,
        params={
            "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
            "timestamp": "1409659589",
            "nonce": "263014780",
            "echostr": ECHOSTR,
        },
    )
    assert resp.status == 200
    assert await resp.text() == "1616140317555161061"


async def test_url_verification_round_trip_and_bad_signature(h: Harness) -> None:
    """Our own sealed echostr verifies; a wrong signature gets 403 and is counted."""
    resp = await h.client.get(f"{PATH}?{h.sender.verify('echo-123')}")
    assert (resp.status, await resp.text()) == (200, "echo-123")
    bad = h.sender.verify("x").replace("msg_signature=", "msg_signature=0")
    resp = await h.client.get(f"{PATH}?{bad}")
    assert resp.status == 403
    assert h.rejected("bad_signature") == 1
    resp = await h.client.get(PATH)
    assert resp.status == 400


async def test_staff_text_becomes_private_chat_message(h: Harness) -> None:
    """The SKIT text message sample maps to a private ChatMessage from the staff userid."""
    status, text = await h.post(TEXT_MESSAGE_XML)
    assert (status, text) == (200, "")
    [msg] = h.sink.of(ChatMessage)
    assert msg.platform == "wecom"
    assert msg.account_id == CORP_ID
    assert msg.chat_type is ChatType.PRIVATE
    assert (msg.chat_id, msg.sender_id) == ("fromUser", "fromUser")
    assert msg.message_id == "1234567890123456"
    assert msg.text == "this is a test"
    assert msg.sent_at == datetime.fromtimestamp(1348831860, UTC)
    assert msg.received_at == NOW


async def test_card_click_goes_to_card_sink(h: Harness) -> None:
    """A template_card_event becomes a CardClick with key, task id and response code."""
    status, _ = await h.post(TEMPLATE_CARD_EVENT_XML)
    assert status == 200
    assert h.clicks == [
        CardClick(
            platform="wecom",
            account_id=CORP_ID,
            user_id="FromUser",
            event_key="key111",
            task_id="taskid111",
            response_code="ResponseCode",
            card_type="text_notice",
            at=datetime.fromtimestamp(123456789, UTC),
            agent_id="1",
        )
    ]
    assert h.sink.events == []


async def test_external_contact_add_and_delete(h: Harness) -> None:
    """add/del_external_contact map to FRIEND_ADD / CONTACT_DELETE with the staff as operator."""
    await h.post(ADD_EXTERNAL_CONTACT_XML)
    deleted = {
        "ToUserName": CORP_ID,
        "FromUserName": "sys",
        "CreateTime": 1403610600,
        "MsgType": "event",
        "Event": "change_external_contact",
        "ChangeType": "del_external_contact",
        "UserID": "zhangsan",
        "ExternalUserID": "woAJ2GCAAAXtWyujaWJHDDGi0mACH71w",
    }
    await h.post(callback_xml(deleted))
    add, delete = h.sink.of(MemberChange)
    assert add == MemberChange(
        platform="wecom",
        account_id=CORP_ID,
        kind=MemberChangeKind.FRIEND_ADD,
        user_id="woAJ2GCAAAXtWyujaWJHDDGi0mACH71w",
        at=datetime.fromtimestamp(1403610513, UTC),
        operator_id="zhangsan",
    )
    assert delete.kind is MemberChangeKind.CONTACT_DELETE
    assert delete.operator_id == "zhangsan"


async def test_replays_are_ignored(h: Harness) -> None:
    """Same request twice, same MsgId with a new nonce, same event re-sent: one event each."""
    query, body = h.sender.post(TEXT_MESSAGE_XML, nonce="n1")
    for _ in range(2):
        resp = await h.client.post(f"{PATH}?{query}", data=body)
        assert resp.status == 200
    await h.post(TEXT_MESSAGE_XML, nonce="n2")  # WeCom retry: new nonce, same MsgId
    await h.post(ADD_EXTERNAL_CONTACT_XML, nonce="n3")
    await h.post(ADD_EXTERNAL_CONTACT_XML, nonce="n4")  # event retry: same sender + CreateTime
    assert len(h.sink.of(ChatMessage)) == 1
    assert len(h.sink.of(MemberChange)) == 1
    assert h.rejected("replay") == 3


async def test_bad_signature_and_wrong_corp_rejected(aiohttp_client: Any, h: Harness) -> None:
    """A forged signature → 403; a message sealed for another corp → 403; both counted."""
    query, body = h.sender.post(TEXT_MESSAGE_XML)
    forged = query.replace("msg_signature=", "msg_signature=f")
    resp = await h.client.post(f"{PATH}?{forged}", data=body)
    assert resp.status == 403
    assert h.rejected("bad_signature") == 1
    other = CallbackSender(corp_id="wwanothercorp")
    query, body = other.post(TEXT_MESSAGE_XML)
    resp = await h.client.post(f"{PATH}?{query}", data=body)
    assert resp.status == 403
    assert h.rejected("wrong_receive_id") == 1
    assert h.sink.events == []


async def test_malformed_bodies(h: Harness) -> None:
    """Missing params, missing Encrypt, entities and oversize bodies are refused."""
    resp = await h.client.post(PATH, data=b"<xml/>")
    assert resp.status == 400
    query, _ = h.sender.post(TEXT_MESSAGE_XML)
    resp = await h.client.post(f"{PATH}?{query}", data=b"<xml><ToUserName>x</ToUserName></xml>")
    assert resp.status == 400
    bomb = '<!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><Content>&a;</Content></xml>'
    status, _ = await h.post(bomb)
    assert status == 400
    assert h.rejected("dtd_forbidden") == 1
    resp = await h.client.post(f"{PATH}?{query}", data=b"<xml>" + b"x" * 300_000 + b"</xml>")
    assert resp.status == 413
    assert h.sink.events == []


def test_parse_xml_limits() -> None:
    """parse_xml returns top-level fields and refuses DTDs, junk and oversize input."""
    assert parse_xml("<xml><A><![CDATA[1 < 2]]></A><B>3</B></xml>") == {"A": "1 < 2", "B": "3"}
    for bad, reason in [
        ('<!DOCTYPE x SYSTEM "file:///etc/passwd"><xml/>', "dtd_forbidden"),
        ("<xml><unclosed></xml>", "bad_xml"),
        ("<xml>" + "a" * 100 + "</xml>", "too_large"),
    ]:
        with pytest.raises(XmlRejected) as err:
            parse_xml(bad, max_bytes=64)
        assert err.value.reason == reason
