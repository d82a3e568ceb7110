"""Typed errors raised at the boundaries of sopbot.

::

    SopbotError
    ├── ConfigError          bad configuration file or value (CLI exits with status 2)
    ├── GatewayError
    │   ├── NetworkError     transport failed (connection refused, closed, bad status)
    │   ├── NotConnected     no connected account can send right now (transient)
    │   ├── ApiTimeout       an action got no response in time
    │   └── ActionFailed     the implementation answered with a failure retcode / errcode
    ├── FrameRejected        an inbound frame could not be used (reason label for metrics)
    └── StoreError           the database refused a write we cannot retry
"""

from __future__ import annotations


class SopbotError(Exception):
    """Base class of every error sopbot raises on purpose."""


class ConfigError(SopbotError):
    """A configuration problem, located as precisely as we can."""

    def __init__(self, path: str, key: str, message: str, line: int | None = None) -> None:
        self.path = path
        self.key = key
        self.line = line
        self.message = message
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        key = f" [{self.key}]" if self.key else ""
        return f"config error: {where}:{key} {self.message}"


class GatewayError(SopbotError):
    """A gateway could not do what was asked."""


class NetworkError(GatewayError):
    """The transport failed."""


class NotConnected(GatewayError):
    """No connected account can send this right now; try again later."""


class ApiTimeout(GatewayError):
    """No response to an action within its timeout."""

    def __init__(self, action: str, timeout: float) -> None:
        self.action = action
        self.timeout = timeout
        super().__init__(f"action {action} got no response within {timeout:g}s")


class ActionFailed(GatewayError):
    """The remote side answered with a failure."""

    def __init__(self, action: str, code: int | str, message: str = "") -> None:
        self.action = action
        self.code = code
        self.message = message
        super().__init__(f"action {action} failed: code={code} {message}".rstrip())


class FrameRejected(SopbotError):
    """An inbound frame was unusable; ``reason`` is a short metrics label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class StoreError(SopbotError):
    """A database operation failed in a way retrying will not fix."""
