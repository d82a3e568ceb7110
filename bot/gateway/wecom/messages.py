"""Payload builders for WeCom app messages (``/cgi-bin/message/send``) and their answers.

Every outbound message turns on ``enable_duplicate_check`` (WeCom drops an identical request
within ``duplicate_check_interval`` seconds) and carries our idempotency key in the payload, so a
retried reminder is byte-identical to the first attempt — and dropped by WeCom — while two
different reminders with the same words stay distinct. Template cards also derive their
``task_id`` from that key. Sizes follow the official limits (text/markdown ≤ 2048 bytes UTF-8).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.events import card_task_id as card_task_id  # noqa: PLC0414 - re-exported

Json = dict[str, Any]

DUPLICATE_CHECK_INTERVAL = 1800
IDEMPOTENCY_FIELD = "sopbot_idempotency_key"  # ignored by WeCom, makes retries identical
TEXT_MAX_BYTES = 2048
MARKDOWN_MAX_BYTES = 2048
TASK_ID_MAX = 128
ELLIPSIS = "…"


def fit_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes on a character boundary, ``…`` marking it."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    room = limit - len(ELLIPSIS.encode())
    return raw[:room].decode(errors="ignore") + ELLIPSIS


def _envelope(
    agent_id: int,
    touser: Sequence[str],
    msgtype: str,
    idempotency_key: str | None,
    duplicate_check_interval: int,
) -> Json:
    if not touser:
        raise ValueError("an app message needs at least one recipient")
    payload: Json = {
        "touser": "|".join(touser),
        "msgtype": msgtype,
        "agentid": agent_id,
        "safe": 0,
        "enable_id_trans": 0,
        "enable_duplicate_check": 1,
        "duplicate_check_interval": duplicate_check_interval,
    }
    if idempotency_key:
        payload[IDEMPOTENCY_FIELD] = idempotency_key
    return payload


def text_message(
    agent_id: int,
    touser: Sequence[str],
    content: str,
    *,
    idempotency_key: str | None = None,
    duplicate_check_interval: int = DUPLICATE_CHECK_INTERVAL,
) -> Json:
    payload = _envelope(agent_id, touser, "text", idempotency_key, duplicate_check_interval)
    payload["text"] = {"content": fit_utf8(content, TEXT_MAX_BYTES)}
    return payload


def markdown_message(
    agent_id: int,
    touser: Sequence[str],
    content: str,
    *,
    idempotency_key: str | None = None,
    duplicate_check_interval: int = DUPLICATE_CHECK_INTERVAL,
) -> Json:
    payload = _envelope(agent_id, touser, "markdown", idempotency_key, duplicate_check_interval)
    payload["markdown"] = {"content": fit_utf8(content, MARKDOWN_MAX_BYTES)}
    return payload


@dataclass(frozen=True, slots=True)
class CardButton:
    """A template-card button; ``style`` 1 = primary (blue), 2 = grey."""

    text: str
    key: str
    style: int = 1


DONE_KEY = "done"
SNOOZE_KEY = "snooze"


def sop_buttons(lang: str = "zh-CN") -> tuple[CardButton, CardButton]:
    """完成 / 稍后提醒 (Done / Remind me later)."""
    if lang.startswith("en"):
        return CardButton("Done", DONE_KEY, 1), CardButton("Remind me later", SNOOZE_KEY, 2)
    return CardButton("完成", DONE_KEY, 1), CardButton("稍后提醒", SNOOZE_KEY, 2)


def button_card_message(
    agent_id: int,
    touser: Sequence[str],
    *,
    idempotency_key: str,
    title: str,
    desc: str = "",
    fields: Iterable[tuple[str, str]] = (),
    buttons: Sequence[CardButton] | None = None,
    lang: str = "zh-CN",
    duplicate_check_interval: int = DUPLICATE_CHECK_INTERVAL,
) -> Json:
    """A ``button_interaction`` template card; clicks come back as ``template_card_event``."""
    payload = _envelope(
        agent_id, touser, "template_card", idempotency_key, duplicate_check_interval
    )
    payload["template_card"] = {
        "card_type": "button_interaction",
        "main_title": {"title": fit_utf8(title, 108), "desc": fit_utf8(desc, 132)},
        "horizontal_content_list": [
            {"keyname": fit_utf8(k, 15), "value": fit_utf8(v, 78)} for k, v in fields
        ][:6],
        "task_id": card_task_id(idempotency_key),
        "button_list": [
            {"text": b.text, "style": b.style, "key": b.key}
            for b in (buttons if buttons is not None else sop_buttons(lang))
        ][:6],
    }
    return payload


def update_card_buttons(
    agent_id: int, userids: Sequence[str], response_code: str, replace_name: str
) -> Json:
    """``/cgi-bin/message/update_template_card`` body greying out every button of one card."""
    return {
        "userids": list(userids),
        "agentid": agent_id,
        "response_code": response_code,
        "button": {"replace_name": fit_utf8(replace_name, 60)},
    }


def _split(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value if str(v))
    if isinstance(value, str | int):
        return tuple(p for p in str(value).split("|") if p)
    return ()


@dataclass(frozen=True, slots=True)
class SendResult:
    """What ``message/send`` said: ids, and who could not be reached (partial failure)."""

    msgid: str
    response_code: str = ""
    invalid_users: tuple[str, ...] = ()
    invalid_parties: tuple[str, ...] = ()
    invalid_tags: tuple[str, ...] = ()
    unlicensed_users: tuple[str, ...] = ()

    @property
    def unreached(self) -> tuple[str, ...]:
        return self.invalid_users + self.unlicensed_users


def parse_send_result(data: Json) -> SendResult:
    return SendResult(
        msgid=str(data.get("msgid") or ""),
        response_code=str(data.get("response_code") or ""),
        invalid_users=_split(data.get("invaliduser")),
        invalid_parties=_split(data.get("invalidparty")),
        invalid_tags=_split(data.get("invalidtag")),
        unlicensed_users=_split(data.get("unlicenseduser")),
    )
