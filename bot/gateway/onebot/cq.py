"""CQ code: the OneBot v11 "string" message format (``message/string.md``).

A message string is plain text with embedded codes such as ``[CQ:at,qq=10001000]``. Text escapes
``&``, ``[`` and ``]``; parameter values additionally escape ``,``. ``decode`` turns a string into
the same ``{"type", "data"}`` dicts the array format uses, so one mapper handles both formats.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_TEXT_ESCAPES = (("&", "&amp;"), ("[", "&#91;"), ("]", "&#93;"))
_PARAM_ESCAPES = (*_TEXT_ESCAPES, (",", "&#44;"))
_UNESCAPES = {"&amp;": "&", "&#91;": "[", "&#93;": "]", "&#44;": ","}
_UNESCAPE_RE = re.compile(r"&(?:amp|#91|#93|#44);")

# Function name up to the first ``,``/``]``; params are ``key=value`` pairs split on ``,``.
# A trailing comma before ``]`` is tolerated (some implementations emit it).
_CQ_RE = re.compile(
    r"\[CQ:(?P<type>[A-Za-z0-9_.\-]+)(?P<params>(?:,[A-Za-z0-9_.\-]+=[^,\]]*)*),?\]"
)


def escape(text: str, *, param: bool = False) -> str:
    """Escape ``text`` for use as plain text (or, with ``param``, as a CQ parameter value)."""
    # ``&`` goes first so the entities produced by the later replacements are not re-escaped.
    for raw, entity in _PARAM_ESCAPES if param else _TEXT_ESCAPES:
        text = text.replace(raw, entity)
    return text


def unescape(text: str) -> str:
    """Undo ``escape`` in one pass, so ``&amp;#91;`` correctly becomes ``&#91;``."""
    return _UNESCAPE_RE.sub(lambda m: _UNESCAPES[m.group(0)], text)


def decode(message: str) -> list[dict[str, object]]:
    """Split a CQ-code string into array-format segments (text segments merged, empty dropped)."""
    segments: list[dict[str, object]] = []
    pos = 0
    for match in _CQ_RE.finditer(message):
        _append_text(segments, message[pos : match.start()])
        data: dict[str, object] = {}
        for pair in match.group("params").split(",")[1:]:
            key, _, value = pair.partition("=")
            data[key] = unescape(value)
        segments.append({"type": match.group("type"), "data": data})
        pos = match.end()
    _append_text(segments, message[pos:])
    return segments


def _append_text(segments: list[dict[str, object]], raw: str) -> None:
    if not raw:
        return
    text = unescape(raw)
    if segments and segments[-1]["type"] == "text":
        previous = segments[-1]["data"]
        assert isinstance(previous, dict)
        previous["text"] = str(previous["text"]) + text
    else:
        segments.append({"type": "text", "data": {"text": text}})


def encode(segments: Iterable[Mapping[str, object]]) -> str:
    """Render array-format segments as a CQ-code string (values converted with ``str``)."""
    parts: list[str] = []
    for segment in segments:
        kind = str(segment["type"])
        data = segment.get("data") or {}
        assert isinstance(data, Mapping)
        if kind == "text":
            parts.append(escape(str(data.get("text", ""))))
            continue
        params = "".join(f",{k}={escape(str(v), param=True)}" for k, v in data.items())
        parts.append(f"[CQ:{kind}{params}]")
    return "".join(parts)
