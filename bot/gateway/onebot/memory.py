"""What the gateway remembers between events: recent message authors and groups per account.

Authors let a reply to a message we have seen resolve ``reply_to_sender_id`` (and drop QQ's
automatic ``@`` from the text) without a ``get_msg`` round trip; groups let a send pick an
account that is actually in the target group. Both are bounded and in memory only.
"""

from __future__ import annotations

from collections import OrderedDict

from bot.events import ChatMessage, ChatType, MemberChange, MemberChangeKind

RECENT_MESSAGES = 10_000


class AccountMemory:
    def __init__(self, capacity: int = RECENT_MESSAGES) -> None:
        self._capacity = capacity
        # Insertion-ordered: the oldest entry is the first; a re-seen key is moved to the end.
        # (The chat type member itself is the key part: a StrEnum hashes as its value.) An
        # OrderedDict: finding a plain dict's first key after many deletions at its front scans
        # the deleted slots (~4 µs a message at capacity), popitem(last=False) does not.
        self._authors: OrderedDict[tuple[str, str, str, str], str] = OrderedDict()
        self._groups: dict[str, set[str]] = {}

    def reply_sender(
        self, account_id: str, chat_type: ChatType, chat_id: str, message_id: str
    ) -> str | None:
        """Author of a message seen on this account, if still remembered."""
        return self._authors.get((account_id, chat_type, chat_id, message_id))

    def remember(
        self, account_id: str, chat_type: ChatType, chat_id: str, message_id: str, sender: str
    ) -> None:
        key = (account_id, chat_type, chat_id, message_id)
        authors = self._authors
        if authors.pop(key, None) is None and len(authors) >= self._capacity:
            authors.popitem(last=False)
        authors[key] = sender

    def note_message(self, msg: ChatMessage) -> None:
        self.remember(msg.account_id, msg.chat_type, msg.chat_id, msg.message_id, msg.sender_id)
        if msg.chat_type == "group":
            self._groups.setdefault(msg.account_id, set()).add(msg.chat_id)

    def note_member(self, change: MemberChange) -> None:
        """Track the account's own joins and leaves (``kick_me`` included)."""
        if change.chat_id is None or change.user_id != change.account_id:
            return
        groups = self._groups.setdefault(change.account_id, set())
        if change.kind is MemberChangeKind.GROUP_JOIN:
            groups.add(change.chat_id)
        elif change.kind is MemberChangeKind.GROUP_LEAVE:
            groups.discard(change.chat_id)

    def groups_of(self, account_id: str) -> list[str]:
        return sorted(self._groups.get(account_id, ()))

    def in_group(self, account_id: str, group_id: str) -> bool:
        return group_id in self._groups.get(account_id, ())
