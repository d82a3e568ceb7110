"""Fuzzing the WeCom callback endpoint with hypothesis: signed, encrypted, hostile input.

Inner payloads are the SKIT callback samples of ``tests/fakes/wecom.py`` with a field's text
replaced (random text, control characters, huge values, invalid UTF-8), a field dropped, deep
nesting or a DTD spliced in; they are encrypted and signed exactly as WeCom does, so the fuzz
reaches the XML parser and the event mapping behind the signature check. Outer bodies,
ciphertexts and signatures are fuzzed too. Every request must answer 200/400/403/413 (never a
500) and be counted once: as an event received, or as a rejection with a known reason.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import re
import urllib.parse
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.clock import ManualClock
from bot.gateway.wecom.callback import CallbackEndpoint
from bot.gateway.wecom.crypto import WeComCrypto
from bot.metrics import Metrics
from tests.fakes.onebot import RecordingSink
from tests.fakes.wecom import (
    ADD_EXTERNAL_CONTACT_XML,
    AES_KEY,
    CALLBACK_TOKEN,
    CORP_ID,
    NOW,
    TEMPLATE_CARD_EVENT_XML,
    TEXT_MESSAGE_XML,
)

PATH = "/wecom/callback"
SAMPLES = (TEXT_MESSAGE_XML, TEMPLATE_CARD_EVENT_XML, ADD_EXTERNAL_CONTACT_XML)
REASONS = frozenset(
    {
        "missing_params",
        "too_large",
        "bad_xml",
        "dtd_forbidden",
        "no_encrypt",
        "bad_signature",
        "bad_base64",
        "bad_length",
        "bad_padding",
        "wrong_receive_id",
        "bad_encoding",
        "replay",
    }
)
KINDS = ("message", "member", "card_click", "ignored")
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CRYPTO = WeComCrypto(CALLBACK_TOKEN, AES_KEY, CORP_ID)
FOREIGN = WeComCrypto(CALLBACK_TOKEN, AES_KEY, "wwsomeoneelse")
NONCES = itertools.count(1_700_000_000)
_TAG = re.compile(r"<(\w+)>(.*?)</\1>", re.DOTALL)

# -- strategies -------------------------------------------------------------------------------

hostile_text = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(codec="utf-8", max_codepoint=0x1F), max_size=8),  # XML-illegal
    st.integers(min_value=0, max_value=300_000).map(lambda n: "客" * n),
    st.sampled_from(
        [
            *("", " ", "]]>", "<![CDATA[", "&amp;", "&bogus;", "99999999999999999999999", "-1"),
            *("1" * 5000, "text", "event", "change_external_contact", "template_card_event"),
        ]
    ),
)


def fresh(sample: str) -> str:
    """The sample with a new MsgId and CreateTime, so the replay guard lets it through."""
    stamp = next(NONCES)
    sample = re.sub(r"<CreateTime>\d+</CreateTime>", f"<CreateTime>{stamp}</CreateTime>", sample)
    return re.sub(r"<MsgId>\d+</MsgId>", f"<MsgId>{stamp}</MsgId>", sample)


@st.composite
def inner_payloads(draw: st.DrawFn) -> bytes:
    """A decrypted callback: a sample with one field replaced, dropped, or worse."""
    sample = fresh(draw(st.sampled_from(SAMPLES)))
    fields = _TAG.findall(sample)
    i = draw(st.integers(min_value=0, max_value=len(fields) - 1))
    tag, _ = fields[i]
    action = draw(st.sampled_from(["text", "cdata", "drop", "nest", "dtd", "bytes", "dup"]))
    body = sample
    element = re.compile(rf"<{tag}>.*?</{tag}>", re.S)
    if action in ("text", "cdata"):
        value = draw(hostile_text)
        if action == "cdata":
            value = f"<![CDATA[{value}]]>"
        body = element.sub(lambda _: f"<{tag}>{value}</{tag}>", body, count=1)
    elif action == "drop":
        body = element.sub("", body, count=1)
    elif action == "nest":
        depth = draw(st.integers(min_value=1, max_value=20_000))
        body = body.replace("</xml>", "<n>" * depth + "</n>" * depth + "</xml>")
    elif action == "dtd":
        body = '<!DOCTYPE xml [<!ENTITY a "aaaa">]>' + body.replace("toUser", "&a;")
    elif action == "dup":
        body = body.replace("</xml>", f"<{tag}>again</{tag}></xml>")
    raw = body.encode()
    if action == "bytes":
        at = draw(st.integers(min_value=0, max_value=len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=6)) + raw[at:]
    return raw


@st.composite
def posts(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    """(query, body) of one POST: mostly well signed around a hostile inner payload."""
    nonce = str(next(NONCES))
    timestamp = draw(st.sampled_from(["1718000000", "0", "abc"]))
    kind = draw(st.sampled_from(["sealed"] * 3 + ["ciphertext", "foreign", "outer", "query"]))
    if kind == "sealed":
        encrypt = CRYPTO.encrypt(draw(inner_payloads()))
    elif kind == "ciphertext":
        # Signed correctly around junk: reaches the base64, length and padding checks.
        encrypt = draw(
            st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
            | st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode())
            | st.integers(min_value=1, max_value=8)
            .flatmap(lambda k: st.binary(min_size=16 * k, max_size=16 * k))
            .map(lambda b: base64.b64encode(b).decode())
        )
    elif kind == "foreign":
        # Well formed, but sealed for another corp's app.
        encrypt = FOREIGN.encrypt(fresh(TEXT_MESSAGE_XML).encode())
    else:
        encrypt = CRYPTO.encrypt(fresh(TEXT_MESSAGE_XML).encode())
    query = {"msg_signature": CRYPTO.sign(timestamp, nonce, encrypt), "timestamp": timestamp}
    query["nonce"] = nonce
    body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    if kind == "outer":
        body = draw(
            st.binary(max_size=300)
            | st.sampled_from([b"", b"<xml></xml>", b"<xml><Encrypt/></xml>", b"\xff\xfe<"])
            | st.integers(min_value=0, max_value=300_000).map(lambda n: b"<xml>" + b"x" * n)
        )
    elif kind == "query":
        dropped = draw(st.sampled_from(["msg_signature", "timestamp", "nonce", None]))
        if dropped is None:
            query["msg_signature"] = draw(st.text(max_size=40))
        else:
            del query[dropped]
    return query, body


# -- the endpoint ----------------------------------------------------------------------------


class Rig:
    """The callback endpoint on a real loopback server, with its metrics."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.sink = RecordingSink()
        self.clicks: list[Any] = []
        endpoint = CallbackEndpoint(
            crypto=CRYPTO,
            corp_id=CORP_ID,
            sink=self.sink,
            clock=ManualClock(NOW),
            metrics=self.metrics,
            card_sink=self._click,
        )
        self.app = web.Application()
        self.app.router.add_get(PATH, endpoint.handle_get)
        self.app.router.add_post(PATH, endpoint.handle_post)
        self._client: TestClient[web.Request, web.Application] | None = None

    @property
    def client(self) -> TestClient[web.Request, web.Application]:
        assert self._client is not None
        return self._client

    async def start(self) -> None:
        self._client = TestClient(TestServer(self.app))
        await self._client.start_server()

    async def _click(self, click: Any) -> None:
        self.clicks.append(click)

    def counted(self) -> tuple[float, float]:
        """(events received, requests rejected); an unknown reason fails the test."""
        received = sum(
            self.metrics.registry.get_sample_value(
                "sopbot_events_received_total", {"platform": "wecom", "kind": k}
            )
            or 0.0
            for k in KINDS
        )
        rejected = 0.0
        for family in self.metrics.registry.collect():
            if family.name == "sopbot_events_rejected":
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        assert sample.labels["reason"] in REASONS, sample.labels
                        rejected += sample.value
        return received, rejected

    async def request(self, method: str, query: dict[str, str], body: bytes = b"") -> int:
        url = PATH + "?" + urllib.parse.urlencode(query)
        data = io.BytesIO(body) if body else None  # aiohttp warns on large raw bytes
        async with self.client.request(method, url, data=data) as resp:
            await resp.read()
            return resp.status


def _counted_once(rig: Rig, runner: asyncio.Runner, method: str, query: Any, body: bytes) -> None:
    before = rig.counted()
    status = runner.run(rig.request(method, query, body))
    after = rig.counted()
    delta = (after[0] - before[0], after[1] - before[1])
    assert status in (200, 400, 403, 413), status
    assert delta in ((1.0, 0.0), (0.0, 1.0)), (status, delta)
    if status != 200:
        assert delta == (0.0, 1.0)


def test_callback_posts_are_answered_and_counted_once() -> None:
    """Every POST: no 500, one count (received by kind or rejected by reason)."""
    rig = Rig()
    with asyncio.Runner() as runner:
        runner.run(rig.start())
        try:

            @FUZZ
            @given(post=posts())
            def check(post: tuple[dict[str, str], bytes]) -> None:
                _counted_once(rig, runner, "POST", *post)

            check()
        finally:
            runner.run(rig.client.close())
    received, rejected = rig.counted()
    assert received > 0
    assert rejected > 0


def test_url_verification_is_answered_and_counted() -> None:
    """GET verification with hostile echostr plaintext or ciphertext never crashes."""
    rig = Rig()
    with asyncio.Runner() as runner:
        runner.run(rig.start())
        try:

            @settings(FUZZ, max_examples=100)
            @given(echo=st.binary(max_size=64), sealed=st.booleans())
            def check(echo: bytes, sealed: bool) -> None:
                nonce = str(next(NONCES))
                encrypt = CRYPTO.encrypt(echo) if sealed else echo.decode("latin-1")
                query = {
                    "msg_signature": CRYPTO.sign("1718000000", nonce, encrypt),
                    "timestamp": "1718000000",
                    "nonce": nonce,
                    "echostr": encrypt,
                }
                before = rig.counted()
                status = runner.run(rig.request("GET", query))
                rejected = rig.counted()[1] - before[1]
                assert (status, rejected) in ((200, 0.0), (400, 1.0), (403, 1.0)), status

            check()
        finally:
            runner.run(rig.client.close())
