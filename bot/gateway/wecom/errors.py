"""Typed WeCom errors, chosen from the ``errcode`` every qyapi response carries.

All are ``ActionFailed`` (so callers that only know the gateway port still catch them);
``action`` is the API path without the ``/cgi-bin/`` prefix, ``code`` the errcode.
"""

from __future__ import annotations

from bot.errors import ActionFailed

SYSTEM_BUSY = -1
INVALID_CREDENTIAL = 40001  # wrong secret
INVALID_CORP_ID = 40013
INVALID_TOKEN = 40014
TOKEN_EXPIRED = 42001
API_FREQ_LIMIT = 45009
API_MINUTE_LIMIT = 45011
API_CONCURRENCY_LIMIT = 45033
ALL_RECIPIENTS_INVALID = 81013

TOKEN_ERRCODES = frozenset({INVALID_TOKEN, TOKEN_EXPIRED})
RATE_ERRCODES = frozenset({API_FREQ_LIMIT, API_MINUTE_LIMIT, API_CONCURRENCY_LIMIT})


class WeComError(ActionFailed):
    """qyapi answered ``errcode != 0``."""

    def __init__(self, action: str, errcode: int, errmsg: str = "") -> None:
        self.errcode = errcode
        super().__init__(action, errcode, errmsg)


class SystemBusy(WeComError):
    """``-1``: retried with backoff by the client; raised once retries are spent."""


class TokenInvalid(WeComError):
    """``40014`` / ``42001``: the client refreshes the token and retries once."""


class RateLimited(WeComError):
    """``45009`` / ``45011`` / ``45033``: WeCom's own frequency limit; try again later."""


class InvalidCredential(WeComError):
    """``40001`` / ``40013``: secret or corp id is wrong; a configuration problem."""


class InvalidRecipient(WeComError):
    """Nobody could receive the message (``81013``, or ``invaliduser`` covering everyone)."""

    def __init__(self, action: str, errcode: int, errmsg: str, users: tuple[str, ...]) -> None:
        self.users = users
        super().__init__(action, errcode, errmsg)


class RemindCapReached(ActionFailed):
    """``remind_groupmsg_send`` is capped at 3 per 群发 per 24 h; refused before calling WeCom."""

    def __init__(self, msgid: str, retry_after: float) -> None:
        self.msgid = msgid
        self.retry_after = retry_after
        super().__init__("externalcontact/remind_groupmsg_send", "remind_cap", msgid)


def error_for(action: str, errcode: int, errmsg: str) -> WeComError:
    """The most specific error class for ``errcode``."""
    if errcode == SYSTEM_BUSY:
        return SystemBusy(action, errcode, errmsg)
    if errcode in TOKEN_ERRCODES:
        return TokenInvalid(action, errcode, errmsg)
    if errcode in RATE_ERRCODES:
        return RateLimited(action, errcode, errmsg)
    if errcode in (INVALID_CREDENTIAL, INVALID_CORP_ID):
        return InvalidCredential(action, errcode, errmsg)
    if errcode == ALL_RECIPIENTS_INVALID:
        return InvalidRecipient(action, errcode, errmsg, ())
    return WeComError(action, errcode, errmsg)
