"""Reaching a member of staff privately: pick the platform and user id for an operator.

WeCom when the operator has a ``wecom_user_id`` and a WeCom gateway is running; otherwise a
private message through OneBot (or the simulator) to their first platform user id. Never a group.

``send`` passes the outbox idempotency key on (WeCom's duplicate check then drops a re-sent
reminder). An SOP reminder (``CARD_KINDS``) to a platform with button cards (WeCom) is followed
by a card sent with the same key: title = the reminder's first line, one field per progress
line, buttons 完成 / 稍后提醒. The text comes first so suggested content and links stay
copyable; a click names the card by ``bot.events.card_task_id(key)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from bot.errors import GatewayError, NotConnected
from bot.gateway.base import SentMessage
from bot.gateway.hub import GatewayHub
from bot.roster import Roster

_PRIVATE_PLATFORMS = ("onebot11", "simulator")

# Outbox kinds of reminders to a guide that get a 完成 / 稍后提醒 card on platforms with cards.
CARD_KINDS = frozenset({"sop_slot", "sop_nudge", "sop_urge", "sop_snooze"})
_MAX_FIELDS = 6


@runtime_checkable
class ButtonCards(Protocol):
    """A gateway that can send a card with 完成 / 稍后提醒 buttons (WeCom template cards)."""

    async def send_card(
        self,
        user_ids: Sequence[str],
        *,
        idempotency_key: str,
        title: str,
        desc: str = "",
        fields: Iterable[tuple[str, str]] = (),
        lang: str = "zh-CN",
    ) -> object: ...


def card_layout(text: str, lang: str = "zh-CN") -> tuple[str, str, list[tuple[str, str]]]:
    """(title, description, fields) of the card that follows reminder ``text``."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    title = lines[0] if lines else ""
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line.startswith("·") or len(fields) >= _MAX_FIELDS:
            continue
        body = line[1:].strip()
        for sep in (": ", "：", " "):  # "Moments: 1 of 3", "c1：欢迎问候", "朋友圈 已完成 1/3"
            name, found, rest = body.partition(sep)
            if found and name.strip() and rest.strip():
                fields.append((name.strip(), rest.strip()))
                break
    if lang.lower().startswith("en"):
        desc = "Tap Done when the items above are done, or be reminded in 30 minutes."
    else:
        desc = "做完上面的任务点「完成」，或30分钟后再提醒"
    return title, desc, fields


class Delivery:
    def __init__(self, hub: GatewayHub, roster: Roster) -> None:
        self._hub = hub
        self._roster = roster

    def route(self, operator_id: str) -> tuple[str, str]:
        """(platform, user id) to reach ``operator_id`` now; GatewayError if there is none."""
        op = self._roster.operator(operator_id)
        if op is None:
            raise GatewayError(f"unknown operator {operator_id!r}")
        platforms = self._hub.platforms
        if op.wecom_user_id and "wecom" in platforms:
            return "wecom", op.wecom_user_id
        if op.onebot_user_ids:
            online = self._hub.online()
            for platform in _PRIVATE_PLATFORMS:
                if platform in platforms and online.get(platform):
                    return platform, op.onebot_user_ids[0]
        raise NotConnected(f"no online gateway can reach operator {operator_id!r}")

    async def send(
        self,
        operator_id: str,
        text: str,
        *,
        idempotency_key: str | None = None,
        kind: str = "",
        lang: str = "zh-CN",
        to: Sequence[str] | None = None,
    ) -> SentMessage:
        """``to``: (platform, account id, user id) to answer where a message came from (a
        command's answer) instead of the operator's usual route."""
        account_id: str | None = None
        if to is not None:
            platform, account_id, user_id = to
            if platform not in self._hub.platforms:
                raise GatewayError(f"no {platform} gateway to answer on")
        else:
            platform, user_id = self.route(operator_id)
        sent = await self._hub.send_private_text(
            platform, user_id, text, account_id=account_id, idempotency_key=idempotency_key
        )
        gateway = self._hub.get(platform)
        if idempotency_key and kind in CARD_KINDS and isinstance(gateway, ButtonCards):
            title, desc, fields = card_layout(text, lang)
            await gateway.send_card(
                [user_id],
                idempotency_key=idempotency_key,
                title=title,
                desc=desc,
                fields=fields,
                lang=lang,
            )
        return sent
