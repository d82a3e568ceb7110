"""A fake qyapi (WeCom server API) on loopback, answering with the documented sample JSON.

Samples are the SKIT unit-test models named in reference/gateways.md §2 / §7 F8 (which mirror
the official docs): ``message/send`` answers exactly ``SAMPLES["message_send"]`` when
``partial_failure`` is on; otherwise it reports ``invaliduser`` for the userids in
``invalid_users``. It also plays WeCom's behaviours that matter to the client:

- tokens: ``gettoken`` issues ``tok-N`` per known secret; ``expire_tokens()`` makes every issued
  token answer 42001 (expired mid-run); unknown tokens answer 40014;
- scripted failures: ``fail["message/send"] = [45009, -1]`` pops one errcode per call,
  ``http_fail[...]`` one HTTP status, ``disconnect[...] = n`` aborts n connections;
- duplicate check: an identical ``message/send`` body with ``enable_duplicate_check=1`` is
  accepted but not delivered again (``delivered`` lists what reached a phone);
- paging: ``pages[name][cursor]`` is the response for that cursor;
- callbacks: ``callback_request(fields)`` encrypts and signs an event like WeCom does.

Every request is kept in ``calls`` (path, query without the token, JSON body).
``wecom_gateway(fake, FakeTime())`` starts the fake and a ``WeComGateway`` wired to it.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.clock import ManualClock
from bot.gateway.wecom import RetryPolicy, WeComGateway
from bot.gateway.wecom.crypto import WeComCrypto
from bot.metrics import Metrics
from tests.fakes.onebot import RecordingSink

Json = dict[str, Any]

CORP_ID = "wwfakecorp0001"
APP_SECRET = "app-secret-123"
CONTACT_SECRET = "contact-secret-456"
CALLBACK_TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
ROBOT_KEY = "robot-key-789"

SAMPLES: dict[str, Json] = {
    # SKIT CgibinMessage/CgibinMessageSendResponse.json
    "message_send": {
        "errcode": 0,
        "errmsg": "ok",
        "invaliduser": "userid1|userid2",
        "invalidparty": "1|2",
        "invalidtag": "3|4",
        "unlicenseduser": "userid3|userid4",
        "msgid": "xxxx",
        "response_code": "xyzxyz",
    },
    # SKIT …/Moment/CgibinExternalContactAddMomentTaskResponse.json
    "add_moment_task": {"errcode": 0, "errmsg": "ok", "jobid": "xxxx"},
    # SKIT …/Moment/…GetMomentTaskResultResponse.json (as quoted in gateways.md §2.3)
    "get_moment_task_result": {
        "errcode": 0,
        "errmsg": "ok",
        "status": 3,
        "type": "add_moment_task",
        "result": {
            "errcode": 0,
            "errmsg": "ok",
            "moment_id": "xxxx",
            "invalid_sender_list": {"user_list": ["zhangshan", "lisi"], "department_list": [2, 3]},
            "invalid_external_contact_list": {"tag_list": ["xxx"]},
        },
    },
    # SKIT …/Moment/…GetMomentTaskResponse.json
    "get_moment_task": {
        "errcode": 0,
        "errmsg": "ok",
        "next_cursor": "CURSOR",
        "task_list": [{"userid": "zhangsan", "publish_status": 1}],
    },
    # gateways.md §2.4 (SKIT …/GroupMessage/…AddMessageTemplateResponse.json)
    "add_msg_template": {
        "errcode": 0,
        "errmsg": "ok",
        "fail_list": ["wmqfasd1e1927831123109rBAAAA"],
        "msgid": "msgGCAAAXtWyujaWJHDDGi0mAAAA",
    },
    # SKIT …/GroupMessage/…GetGroupMessageTaskResponse.json (official doc 93338 sample)
    "get_groupmsg_task": {
        "errcode": 0,
        "errmsg": "ok",
        "next_cursor": "CURSOR",
        "task_list": [{"userid": "zhangsan", "status": 1, "send_time": 1552536375}],
    },
    # SKIT …/GroupMessage/…GetGroupMessageSendResultResponse.json
    "get_groupmsg_send_result": {
        "errcode": 0,
        "errmsg": "ok",
        "next_cursor": "CURSOR",
        "send_list": [
            {
                "external_userid": "wmqfasd1e19278asdasAAAA",
                "chat_id": "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA",
                "userid": "zhangsan",
                "status": 1,
                "send_time": 1552536375,
            }
        ],
    },
    "remind_groupmsg_send": {"errcode": 0, "errmsg": "ok"},
    # SKIT …/CgibinExternalContactGetUserBehaviorDataResponse.json (official doc 92132 sample)
    "get_user_behavior_data": {
        "errcode": 0,
        "errmsg": "ok",
        "behavior_data": [
            {
                "stat_time": 1536508800,
                "chat_cnt": 100,
                "message_cnt": 80,
                "reply_percentage": 60.25,
                "avg_reply_time": 1,
                "negative_feedback_cnt": 0,
                "new_apply_cnt": 6,
                "new_contact_cnt": 5,
            },
            {
                "stat_time": 1536940800,
                "chat_cnt": 20,
                "message_cnt": 40,
                "reply_percentage": 100,
                "avg_reply_time": 1,
                "negative_feedback_cnt": 0,
                "new_apply_cnt": 6,
                "new_contact_cnt": 5,
            },
        ],
    },
    "update_template_card": {"errcode": 0, "errmsg": "ok", "invaliduser": []},
    "webhook_send": {"errcode": 0, "errmsg": "ok"},
}

# Callback samples: SKIT EventSamples/_/Message/TextMessageEvent.xml, …/Push/TemplateCardPushEvent
# (trimmed of SelectedItems) and …/ExternalContact/ChangeExternalContactEvent.AddExternalContact
# in the self-built-app envelope (ToUserName/FromUserName=sys/MsgType=event, doc 92130).
TEXT_MESSAGE_XML = """<xml>
    <ToUserName><![CDATA[toUser]]></ToUserName>
    <FromUserName><![CDATA[fromUser]]></FromUserName>
    <CreateTime>1348831860</CreateTime>
    <MsgType><![CDATA[text]]></MsgType>
    <Content><![CDATA[this is a test]]></Content>
    <MsgId>1234567890123456</MsgId>
    <AgentID>1</AgentID>
</xml>
"""
TEMPLATE_CARD_EVENT_XML = """<xml>
    <ToUserName><![CDATA[toUser]]></ToUserName>
    <FromUserName><![CDATA[FromUser]]></FromUserName>
    <CreateTime>123456789</CreateTime>
    <MsgType><![CDATA[event]]></MsgType>
    <Event><![CDATA[template_card_event]]></Event>
    <EventKey><![CDATA[key111]]></EventKey>
    <TaskId><![CDATA[taskid111]]></TaskId>
    <CardType><![CDATA[text_notice]]></CardType>
    <ResponseCode><![CDATA[ResponseCode]]></ResponseCode>
    <AgentID>1</AgentID>
</xml>"""
ADD_EXTERNAL_CONTACT_XML = """<xml>
    <ToUserName><![CDATA[toUser]]></ToUserName>
    <FromUserName><![CDATA[sys]]></FromUserName>
    <CreateTime>1403610513</CreateTime>
    <MsgType><![CDATA[event]]></MsgType>
    <Event><![CDATA[change_external_contact]]></Event>
    <ChangeType><![CDATA[add_external_contact]]></ChangeType>
    <UserID><![CDATA[zhangsan]]></UserID>
    <ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mACH71w]]></ExternalUserID>
    <State><![CDATA[teststate]]></State>
    <WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode>
</xml>
"""


@dataclass(frozen=True, slots=True)
class Call:
    path: str
    query: Mapping[str, str]
    body: Json | None
    secret: str | None = None  # which secret's token was used


@dataclass
class FakeWeCom:
    """One corp's qyapi."""

    corp_id: str = CORP_ID
    secrets: dict[str, str] = field(
        default_factory=lambda: {APP_SECRET: "app", CONTACT_SECRET: "contact"}
    )
    robot_key: str = ROBOT_KEY
    token_ttl: int = 7200
    calls: list[Call] = field(default_factory=list)
    fail: dict[str, list[int]] = field(default_factory=dict)
    http_fail: dict[str, list[int]] = field(default_factory=dict)
    disconnect: dict[str, int] = field(default_factory=dict)
    responses: dict[str, Json] = field(default_factory=dict)
    pages: dict[str, dict[str, Json]] = field(default_factory=dict)
    invalid_users: set[str] = field(default_factory=set)
    partial_failure: bool = False
    job_statuses: list[int] = field(default_factory=lambda: [1, 2, 3])
    delivered: list[Json] = field(default_factory=list)
    robot_posts: list[Json] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> secret name
    expired: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._dup_seen: set[str] = set()
        self._server: TestServer | None = None
        self.app = web.Application()
        self.app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        self.app.router.add_route("*", "/cgi-bin/{tail:.+}", self._api)

    # -- control -------------------------------------------------------------------------

    async def start(self) -> str:
        self._server = TestServer(self.app, host="127.0.0.1")
        await self._server.start_server()
        return str(self._server.make_url("")).rstrip("/")

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    def expire_tokens(self) -> None:
        """Every token issued so far now answers 42001 (expired)."""
        self.expired |= set(self.tokens)

    def api_calls(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.path.endswith("/" + name)]

    # -- handlers ------------------------------------------------------------------------

    async def _gettoken(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(Call(request.path, {"corpid": request.query.get("corpid", "")}, None))
        scripted = self._scripted(request, "gettoken")
        if scripted is not None:
            return scripted
        if request.query.get("corpid") != self.corp_id:
            return web.json_response({"errcode": 40013, "errmsg": "invalid corpid"})
        name = self.secrets.get(request.query.get("corpsecret", ""))
        if name is None:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        token = f"tok-{next(self._ids)}"
        self.tokens[token] = name
        return web.json_response(
            {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": self.token_ttl}
        )

    def _scripted(self, request: web.Request, name: str) -> web.StreamResponse | None:
        if self.disconnect.get(name, 0) > 0:
            self.disconnect[name] -= 1
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        statuses = self.http_fail.get(name)
        if statuses:
            return web.Response(status=statuses.pop(0), text="bad gateway")
        codes = self.fail.get(name)
        if codes:
            code = codes.pop(0)
            return web.json_response({"errcode": code, "errmsg": f"scripted {code}"})
        return None

    async def _api(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["tail"]
        body: Json | None = None
        if request.method == "POST":
            raw = await request.read()
            body = json.loads(raw) if raw else {}
        query = {k: v for k, v in request.query.items() if k != "access_token"}
        if name == "webhook/send":
            self.calls.append(Call(request.path, {}, body))
            if request.query.get("key") != self.robot_key:
                return web.json_response({"errcode": 93000, "errmsg": "invalid webhook url"})
            scripted = self._scripted(request, name)
            if scripted is not None:
                return scripted
            self.robot_posts.append(body or {})
            return web.json_response(self.responses.get(name, SAMPLES["webhook_send"]))
        token = request.query.get("access_token", "")
        self.calls.append(Call(request.path, query, body, self.tokens.get(token)))
        if token in self.expired:
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        if token not in self.tokens:
            return web.json_response({"errcode": 40014, "errmsg": "invalid access_token"})
        scripted = self._scripted(request, name)
        if scripted is not None:
            return scripted
        if name in self.responses:
            return web.json_response(self.responses[name])
        short = name.rsplit("/", 1)[-1]
        if short in self.pages:
            cursor = str((body or {}).get("cursor", ""))
            return web.json_response(self.pages[short].get(cursor, {"errcode": 0, "errmsg": "ok"}))
        if name == "message/send":
            return web.json_response(self._message_send(body or {}))
        if short == "get_moment_task_result":
            result = copy.deepcopy(SAMPLES[short])
            result["status"] = self.job_statuses.pop(0) if len(self.job_statuses) > 1 else 3
            return web.json_response(result)
        sample = SAMPLES.get(short)
        if sample is None:
            return web.json_response({"errcode": 0, "errmsg": "ok"})
        return web.json_response(sample)

    def _message_send(self, body: Json) -> Json:
        if self.partial_failure:
            return SAMPLES["message_send"]
        touser = [u for u in str(body.get("touser", "")).split("|") if u]
        invalid = [u for u in touser if u in self.invalid_users]
        if body.get("enable_duplicate_check") == 1:
            key = json.dumps(body, sort_keys=True, ensure_ascii=False)
            if key in self._dup_seen:
                return {"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": "dup"}
            self._dup_seen.add(key)
        if len(invalid) < len(touser):
            self.delivered.append(body)
        n = next(self._ids)
        answer: Json = {
            "errcode": 0,
            "errmsg": "ok",
            "invaliduser": "|".join(invalid),
            "msgid": f"msg-{n}",
        }
        if body.get("msgtype") == "template_card":
            answer["response_code"] = f"rc-{n}"
        return answer


def callback_xml(fields: Mapping[str, object]) -> str:
    """A callback body in WeCom's XML style (strings as CDATA, numbers bare)."""
    parts = []
    for key, value in fields.items():
        text = str(value) if isinstance(value, int) else f"<![CDATA[{value}]]>"
        parts.append(f"<{key}>{text}</{key}>")
    return "<xml>" + "".join(parts) + "</xml>"


@dataclass
class CallbackSender:
    """Encrypts and signs callbacks exactly as WeCom does for one app."""

    token: str = CALLBACK_TOKEN
    aes_key: str = AES_KEY
    corp_id: str = CORP_ID
    nonces: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    @property
    def crypto(self) -> WeComCrypto:
        return WeComCrypto(self.token, self.aes_key, self.corp_id)

    def post(
        self, inner_xml: str, *, timestamp: str = "1718000000", nonce: str | None = None
    ) -> tuple[str, bytes]:
        """``(query string, body)`` of a POST carrying ``inner_xml``."""
        nonce = nonce or str(next(self.nonces))
        encrypt, sig = self.crypto.seal(inner_xml.encode(), timestamp, nonce)
        body = (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID><![CDATA[1]]></AgentID></xml>"
        )
        query = urllib.parse.urlencode(
            {"msg_signature": sig, "timestamp": timestamp, "nonce": nonce}
        )
        return query, body.encode()

    def verify(self, echo: str, *, timestamp: str = "1718000000", nonce: str = "42") -> str:
        """The query string of a GET URL verification for plaintext ``echo``."""
        encrypt, sig = self.crypto.seal(echo.encode(), timestamp, nonce)
        return urllib.parse.urlencode(
            {"msg_signature": sig, "timestamp": timestamp, "nonce": nonce, "echostr": encrypt}
        )


# -- test rig: a gateway wired to this fake -------------------------------------------

NOW = datetime(2024, 6, 10, 6, 20, tzinfo=UTC)


class FakeTime:
    """Monotonic seconds that only move when something sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds
        await asyncio.sleep(0)


@asynccontextmanager
async def wecom_gateway(
    fake: FakeWeCom, t: FakeTime, **options: Any
) -> AsyncIterator[tuple[WeComGateway, RecordingSink, Metrics]]:
    url = await fake.start()
    sink, metrics = RecordingSink(), Metrics()
    kwargs: dict[str, Any] = {
        "corp_id": CORP_ID,
        "agent_id": 1000002,
        "app_secret": APP_SECRET,
        "contact_secret": CONTACT_SECRET,
        "callback_token": CALLBACK_TOKEN,
        "encoding_aes_key": AES_KEY,
        "robot_webhook_key": ROBOT_KEY,
        "base_url": url,
        "sink": sink,
        "clock": ManualClock(NOW),
        "metrics": metrics,
        "sleep": t.sleep,
        "time_fn": t,
        "retry": RetryPolicy(retries=3, base_delay=0.5, max_delay=2.0),
    }
    kwargs.update(options)
    gw = WeComGateway(**kwargs)
    await gw.start()
    try:
        yield gw, sink, metrics
    finally:
        await gw.stop()
        await fake.close()
