"""Chat commands for staff: parsing and a registry, with zh and en aliases.

Staff write to the bot privately: ``/done moments 2``, ``完成 朋友圈 2``, ``我的问题``, ``help``.
A leading ``/`` or ``#`` is optional; Chinese names may run into their argument (``完成朋友圈``).
Handler modules declare ``COMMANDS``; ``handlers/__init__.py`` joins them into one registry.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bot.config import OperatorConfig
from bot.events import ChatMessage

_SPLIT = re.compile(r"[\s\u3000,，]+")


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What a command body gets: who asked, in which language, and the injected dependencies."""

    operator: OperatorConfig
    msg: ChatMessage
    args: tuple[str, ...]
    lang: str
    deps: dict[str, Any] = field(default_factory=dict)

    def dep(self, name: str) -> Any:
        return self.deps[name]


CommandFunc = Callable[[CommandContext], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Command:
    names: tuple[str, ...]  # first is the canonical English name
    summary_zh: str
    summary_en: str
    func: CommandFunc
    usage: str = ""
    roles: frozenset[str] | None = None  # None = every staff role

    def summary(self, lang: str) -> str:
        return self.summary_en if lang == "en" else self.summary_zh


@dataclass(frozen=True, slots=True)
class Parsed:
    command: Command | None
    name: str
    args: tuple[str, ...]


class CommandRegistry:
    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._commands: list[Command] = []
        self._by_name: dict[str, Command] = {}
        for c in commands:
            self.add(c)

    def add(self, command: Command) -> None:
        for name in command.names:
            key = name.lower()
            if key in self._by_name:
                raise ValueError(f"command name {name!r} is registered twice")
            self._by_name[key] = command
        self._commands.append(command)

    @property
    def commands(self) -> tuple[Command, ...]:
        return tuple(self._commands)

    def parse(self, text: str) -> Parsed | None:
        """Split ``text`` into a command and its arguments; None if it is empty."""
        body = text.strip()
        if not body:
            return None
        body = body.lstrip("/#／＃").strip()
        parts = [p for p in _SPLIT.split(body) if p]
        if not parts:
            return None
        head, rest = parts[0], parts[1:]
        cmd = self._by_name.get(head.lower())
        if cmd is None:
            # Chinese names often run into the argument: 完成朋友圈 → 完成 + 朋友圈.
            for name in sorted(self._by_name, key=len, reverse=True):
                if head.lower().startswith(name) and len(head) > len(name) and not name.isascii():
                    cmd = self._by_name[name]
                    rest = [head[len(name) :], *rest]
                    break
        return Parsed(cmd, head, tuple(rest))

    def help_text(self, lang: str, role: str) -> str:
        lines = ["可用命令：" if lang != "en" else "Commands:"]
        for c in self._commands:
            if c.roles is not None and role not in c.roles:
                continue
            names = " / ".join(c.names)
            usage = f" {c.usage}" if c.usage else ""
            lines.append(f"· {names}{usage} — {c.summary(lang)}")
        return "\n".join(lines)
