"""Fuzzing the OneBot v11 frame pipeline with hypothesis: no frame may crash it.

Inputs are the recorded payloads of ``tests/data/onebot_v11_events.json`` with one field
deleted or replaced (random JSON, huge strings, numbers at the edges, nesting up to and past
orjson's depth limit), byte-level corruption of those frames (invalid UTF-8 included), and
random JSON documents. The pure parser may only answer a ``Parsed`` value or a typed
``FrameRejected``; the gateway must count every frame exactly once, either as received (by
kind) or as rejected (by a known reason). Examples are bounded and derandomized so the suite
stays fast and repeatable.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.clock import ManualClock
from bot.errors import FrameRejected
from bot.gateway.onebot import OneBotGateway
from bot.gateway.onebot.parse import decode_frame, is_response, parse_event
from bot.metrics import Metrics
from tests.fakes.onebot import FakeOneBot, RecordingSink

GOLDEN: list[dict[str, Any]] = [
    case["payload"]
    for case in json.loads(
        (Path(__file__).parents[2] / "data" / "onebot_v11_events.json").read_text("utf-8")
    )
]
RECEIVED = datetime(2025, 7, 10, tzinfo=UTC)
MAX_FRAME = 64 * 1024  # small, so "too large" is reachable without megabyte examples
REASONS = frozenset(
    {"too_large", "not_json", "not_object", "missing_field", "bad_field", "unknown_post_type"}
)
GATEWAY_REASONS = REASONS | {"unmatched_echo"}
KINDS = ("heartbeat", "lifecycle", "ignored", "message", "recall", "member")
FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HOLE = "\x00fuzz-hole\x00"  # stands for the replaced value until the frame is serialized

# -- strategies -------------------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield (*prefix, i)
            yield from _paths(item, (*prefix, i))


# Field name first, then one of its occurrences: every field gets hit, rare ones included.
TARGETS: dict[str, list[tuple[int, tuple[str | int, ...]]]] = {}
for _i, _payload in enumerate(GOLDEN):
    for _path in _paths(_payload):
        TARGETS.setdefault(str(_path[-1]) if isinstance(_path[-1], str) else "[]", []).append(
            (_i, _path)
        )

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


EDGES = (
    *("1e308", "-1e308", "1e400", "-0", "18446744073709551616", "-9223372036854775809"),
    *('"\\u0000"', '"\\ud800"', '"0x1"', '""', '"   "', "[]", "{}", "true", "null"),
)


def _nested(depth: int, as_dict: bool) -> str:
    # Built as text: orjson refuses to *write* nesting this deep, but a peer may send it.
    return ('{"a":' * depth + "1" + "}" * depth) if as_dict else ("[" * depth + "1" + "]" * depth)


replacements = st.one_of(
    json_values.map(lambda v: orjson.dumps(v).decode()),
    st.integers(min_value=0, max_value=MAX_FRAME + 4096).map(lambda n: json.dumps("群" * n)),
    st.builds(_nested, st.integers(min_value=1, max_value=1100), st.booleans()),
    st.sampled_from(EDGES),
)


def _set(frame: Any, path: tuple[str | int, ...], value: Any, delete: bool) -> None:
    for key in path[:-1]:
        frame = frame[key]
    if delete:
        del frame[path[-1]]
    else:
        frame[path[-1]] = value


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A recorded payload with one field deleted or replaced by a hostile value."""
    index, path = draw(st.sampled_from(TARGETS[draw(st.sampled_from(sorted(TARGETS)))]))
    frame = json.loads(json.dumps(GOLDEN[index]))
    if draw(st.integers(min_value=0, max_value=5)) == 0:
        _set(frame, path, None, delete=True)
        return orjson.dumps(frame)
    _set(frame, path, HOLE, delete=False)
    text = json.dumps(frame, ensure_ascii=False).replace(json.dumps(HOLE), draw(replacements))
    return text.encode()


@st.composite
def corrupted_frames(draw: st.DrawFn) -> bytes:
    """A recorded payload with raw bytes spliced in (invalid UTF-8, truncation, junk)."""
    data = bytearray(orjson.dumps(draw(st.sampled_from(GOLDEN))))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(data)))
        cut = draw(st.integers(min_value=0, max_value=3))
        junk = draw(st.binary(max_size=6) | st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0"]))
        data[at : at + cut] = junk
    return bytes(data)


frames = st.one_of(
    mutated_frames(),
    corrupted_frames(),
    json_values.map(orjson.dumps),
    st.dictionaries(
        st.sampled_from(["post_type", "self_id", "echo", "retcode", "time", "message_type"]),
        json_values,
    ).map(orjson.dumps),
    st.binary(max_size=64),
)

# -- the pure parser -------------------------------------------------------------------------


@settings(FUZZ, max_examples=800)
@given(data=mutated_frames())
def test_parser_on_mutated_real_payloads(data: bytes) -> None:
    """A recorded payload with any one field hostile: an event or a typed rejection."""
    _parse(data)


@FUZZ
@given(data=frames)
def test_parser_on_any_frame(data: bytes) -> None:
    """Corrupted bytes, random JSON, anything: an event or a typed rejection."""
    _parse(data)


def _parse(data: bytes) -> None:
    """decode_frame + parse_event raise nothing but FrameRejected, with a known reason."""
    try:
        frame = decode_frame(data, MAX_FRAME)
        if is_response(frame):
            return
        parse_event(frame, received_at=RECEIVED)
        parse_event(frame, received_at=RECEIVED, account_id="10001")
    except FrameRejected as exc:
        reason = exc.reason
    else:
        return
    assert reason in REASONS, reason


@FUZZ
@given(text=st.text(max_size=200), limit=st.integers(min_value=0, max_value=400))
def test_decode_frame_on_any_text(text: str, limit: int) -> None:
    """Any str (lone surrogates included) decodes to an object or a typed rejection."""
    try:
        frame: object = decode_frame(text, limit)
    except FrameRejected as exc:
        frame = exc.reason
    assert isinstance(frame, dict) or frame in {"too_large", "not_json", "not_object"}


# -- the gateway: every frame counted once ---------------------------------------------------


def _total(
    metrics: Metrics, name: str, label: str, values: frozenset[str] | tuple[str, ...]
) -> float:
    return sum(
        metrics.registry.get_sample_value(name, {"platform": "onebot11", label: v}) or 0.0
        for v in values
    )


def _rejected_total(metrics: Metrics) -> float:
    """All rejections, by any reason; an unknown reason label is a test failure."""
    total = 0.0
    for family in metrics.registry.collect():
        if family.name != "sopbot_events_rejected":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                assert sample.labels["reason"] in GATEWAY_REASONS, sample.labels
                total += sample.value
    return total


def test_gateway_counts_every_frame_once() -> None:
    """Each HTTP-posted frame is either received (by kind) or rejected (by reason), once."""
    metrics, sink = Metrics(), RecordingSink()
    gw = OneBotGateway(
        sink=sink,
        clock=ManualClock(RECEIVED),
        metrics=metrics,
        mode="http-post",
        max_frame_bytes=MAX_FRAME,
    )

    with asyncio.Runner() as runner:

        @FUZZ
        @given(data=frames)
        def check(data: bytes) -> None:
            received = _total(metrics, "sopbot_events_received_total", "kind", KINDS)
            rejected = _rejected_total(metrics)
            accepted = runner.run(gw.accept_http_frame("10001", data))
            d_received = _total(metrics, "sopbot_events_received_total", "kind", KINDS) - received
            d_rejected = _rejected_total(metrics) - rejected
            assert (d_received, d_rejected) == ((1.0, 0.0) if accepted else (0.0, 1.0))

        check()
        runner.run(gw.stop())
    assert _rejected_total(metrics) > 0
    assert _total(metrics, "sopbot_events_received_total", "kind", KINDS) > 0


@pytest.mark.integration
async def test_hostile_frames_over_a_real_socket_are_counted_and_the_link_survives() -> None:
    """Over reverse WS, junk text/binary frames are counted; the connection keeps working."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    metrics, sink = Metrics(), RecordingSink()
    gw = OneBotGateway(
        sink=sink, clock=ManualClock(RECEIVED), metrics=metrics, max_frame_bytes=MAX_FRAME
    )
    app = web.Application()
    app.add_routes(gw.routes())
    server = TestServer(app)
    await server.start_server()
    fake = FakeOneBot("10001")
    await gw.start()
    try:
        await fake.connect_reverse(server.make_url("/onebot/v11/ws"))
        hostile: list[str | bytes] = [
            b"\xff\xfe not utf-8",
            b'{"post_type": "message", "text": "\xc3\x28"}',
            "[" * 1100 + "]" * 1100,
            json.dumps({"echo": "nobody-asked", "retcode": 0}),
            json.dumps({"post_type": "message", "message": "x" * (MAX_FRAME + 1)}),
            json.dumps({**GOLDEN[0], "message_id": "9" * 500}),
            json.dumps({**GOLDEN[0], "sender": {"role": [], "card": [[[]]]}}),
            "null",
        ]
        for frame in hostile:
            await fake.push_raw(frame)
        await fake.push({**GOLDEN[0], "message_id": 4242})
        await sink.wait_for(lambda evs: any(getattr(e, "message_id", "") == "4242" for e in evs))
        assert _rejected_total(metrics) == len(hostile) - 1  # the odd sender is still a message
        assert fake.connected
    finally:
        await fake.close()
        await gw.stop()
        await server.close()
