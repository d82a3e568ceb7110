"""Who is staff: platform user ids → operators, from the configured roster.

The sender's role is decided here, never taken from the payload (a QQ group "admin" may be a
customer; a guide may be logged in as the bot account itself and post as ``message_sent``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from bot.config import AppConfig, GroupConfig, OperatorConfig
from bot.events import ChatMessage


class ActorRole(StrEnum):
    CUSTOMER = "customer"
    OPERATOR = "operator"
    BOT = "bot"


@dataclass(frozen=True, slots=True)
class Actor:
    role: ActorRole
    operator: OperatorConfig | None = None


# Platforms whose user ids are OneBot/QQ numbers share the onebot_user_ids roster column.
_ONEBOT_PLATFORMS = frozenset({"onebot11", "simulator"})


class Roster:
    def __init__(self, operators: Iterable[OperatorConfig], groups: Iterable[GroupConfig]) -> None:
        self._by_id: dict[str, OperatorConfig] = {}
        self._by_user: dict[tuple[str, str], OperatorConfig] = {}
        for op in operators:
            self._by_id[op.id] = op
            for uid in op.onebot_user_ids:
                for platform in _ONEBOT_PLATFORMS:
                    self._by_user[(platform, uid)] = op
            if op.wecom_user_id:
                self._by_user[("wecom", op.wecom_user_id)] = op
        self._groups = {(g.platform, g.id): g for g in groups}

    @classmethod
    def from_config(cls, cfg: AppConfig) -> Roster:
        return cls(cfg.operators, cfg.groups)

    def operator(self, operator_id: str) -> OperatorConfig | None:
        return self._by_id.get(operator_id)

    @property
    def operators(self) -> tuple[OperatorConfig, ...]:
        return tuple(self._by_id.values())

    def by_user(self, platform: str, user_id: str) -> OperatorConfig | None:
        return self._by_user.get((platform, user_id))

    def group(self, platform: str, chat_id: str) -> GroupConfig | None:
        return self._groups.get((platform, chat_id))

    def is_monitored(self, platform: str, chat_id: str) -> bool:
        group = self._groups.get((platform, chat_id))
        return bool(group and group.monitored)

    def owners(self, platform: str, chat_id: str) -> tuple[str, ...]:
        group = self._groups.get((platform, chat_id))
        return group.owners if group else ()

    def classify(self, msg: ChatMessage) -> Actor:
        """Resolve the sender of ``msg`` to customer, operator or bot."""
        if msg.is_self or msg.sender_id == msg.account_id:
            # Our own account spoke. If a guide runs their own account through the gateway, the
            # account id is in the roster and the message is theirs; otherwise it is the bot.
            owner = self._by_user.get((msg.platform, msg.account_id))
            if owner is not None and not owner.is_bot:
                return Actor(ActorRole.OPERATOR, owner)
            return Actor(ActorRole.BOT, owner)
        op = self._by_user.get((msg.platform, msg.sender_id))
        if op is None:
            return Actor(ActorRole.CUSTOMER)
        if op.is_bot:
            return Actor(ActorRole.BOT, op)
        return Actor(ActorRole.OPERATOR, op)
