"""Roster: roles come from our staff list, never from the payload."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.events import ChatMessage, ChatType
from bot.roster import ActorRole, Roster
from tests.conftest import make_config

T = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def _msg(
    sender: str, *, account: str = "777", is_self: bool = False, role: str = "member"
) -> ChatMessage:
    return ChatMessage(
        platform="onebot11",
        account_id=account,
        chat_type=ChatType.GROUP,
        chat_id="5001",
        message_id="1",
        sender_id=sender,
        text="hi",
        sent_at=T,
        received_at=T,
        is_self=is_self,
        platform_role=role,
    )


def test_roles_from_roster(tmp_path: Path) -> None:
    """Staff by user id, configured bots as bots, everyone else a customer (even a QQ admin)."""
    roster = Roster.from_config(make_config(tmp_path))
    assert roster.classify(_msg("9002")).role is ActorRole.OPERATOR
    assert roster.classify(_msg("9002")).operator is not None
    assert roster.classify(_msg("9999")).role is ActorRole.BOT
    assert roster.classify(_msg("12345", role="admin")).role is ActorRole.CUSTOMER


def test_self_messages(tmp_path: Path) -> None:
    """Our own account is the bot, unless a guide runs their own account through the gateway."""
    roster = Roster.from_config(make_config(tmp_path))
    assert roster.classify(_msg("777", is_self=True)).role is ActorRole.BOT
    guide = roster.classify(_msg("9003", account="9003", is_self=True))
    assert guide.role is ActorRole.OPERATOR
    assert guide.operator is not None
    assert guide.operator.id == "wang"


def test_groups_and_owners(tmp_path: Path) -> None:
    """Monitored groups and their owners come from config."""
    roster = Roster.from_config(make_config(tmp_path))
    assert roster.is_monitored("onebot11", "5001")
    assert not roster.is_monitored("onebot11", "404")
    assert roster.owners("onebot11", "5002") == ("li", "wang")
