"""CQ-code string format: escaping, decoding and encoding (onebot-11 message/string.md)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.gateway.onebot import cq

_keys = st.from_regex(r"[a-z_]{1,8}", fullmatch=True)
_kinds = st.from_regex(r"[a-z]{2,8}", fullmatch=True).filter(lambda k: k != "text")
_code = st.builds(
    lambda kind, data: {"type": kind, "data": data},
    _kinds,
    st.dictionaries(_keys, st.text(max_size=20), max_size=3),
)
_text = st.text(min_size=1, max_size=30).map(lambda t: {"type": "text", "data": {"text": t}})


def _merge_texts(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for seg in segments:
        if seg["type"] == "text" and out and out[-1]["type"] == "text":
            out[-1] = {
                "type": "text",
                "data": {"text": out[-1]["data"]["text"] + seg["data"]["text"]},
            }
        else:
            out.append(seg)
    return out


@given(st.text())
def test_text_escape_round_trips(text: str) -> None:
    """unescape(escape(t)) == t for any text, including literal entities like '&#91;'."""
    assert cq.unescape(cq.escape(text)) == text
    assert cq.unescape(cq.escape(text, param=True)) == text


@given(st.text())
def test_escaped_text_has_no_brackets_and_params_no_commas(text: str) -> None:
    """Escaped text cannot open a CQ code; escaped params cannot split one."""
    assert "[" not in cq.escape(text)
    assert "]" not in cq.escape(text)
    assert "," not in cq.escape(text, param=True)


@given(st.lists(st.one_of(_text, _code), max_size=6))
def test_encode_then_decode_round_trips(segments: list[dict[str, Any]]) -> None:
    """Any segment list survives encode→decode (adjacent texts merge, as on the wire)."""
    assert cq.decode(cq.encode(segments)) == _merge_texts(segments)


@given(st.text())
def test_decode_never_loses_plain_text(text: str) -> None:
    """Escaped arbitrary text decodes back to itself as one text segment."""
    decoded = cq.decode(cq.escape(text))
    assert decoded == ([{"type": "text", "data": {"text": text}}] if text else [])


def test_decode_spec_examples() -> None:
    """The spec's examples: codes, params with escapes, text around them."""
    assert cq.decode("[CQ:at,qq=10001000]你好[CQ:reply,id=123456]") == [
        {"type": "at", "data": {"qq": "10001000"}},
        {"type": "text", "data": {"text": "你好"}},
        {"type": "reply", "data": {"id": "123456"}},
    ]
    assert cq.decode("[CQ:image,file=a&#44;b.jpg,url=x?a=1&amp;b=2]") == [
        {"type": "image", "data": {"file": "a,b.jpg", "url": "x?a=1&b=2"}},
    ]
    assert cq.decode("[CQ:shake]") == [{"type": "shake", "data": {}}]
    assert cq.decode("[CQ:face,id=14,]") == [{"type": "face", "data": {"id": "14"}}]


def test_decode_keeps_malformed_codes_as_text() -> None:
    """Unescaped brackets that do not form a code stay readable text."""
    assert cq.decode("价格[会员] [CQ:] [CQ:at") == [
        {"type": "text", "data": {"text": "价格[会员] [CQ:] [CQ:at"}}
    ]


def test_unescape_is_single_pass() -> None:
    """'&amp;#91;' is an escaped '&#91;', not a bracket."""
    assert cq.unescape("&amp;#91;") == "&#91;"
    assert cq.escape("&#91;") == "&amp;#91;"
