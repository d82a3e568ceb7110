"""Dashboard logins: argon2 passwords, signed session cookies, CSRF tokens, login rate limits,
and who may see whose numbers.

* Sessions are a signed cookie (HMAC-SHA256 over a small JSON payload: user, expiry, session id);
  nothing is stored server-side, so several processes share logins given one ``session_secret``.
* The CSRF token is per session: HMAC(secret, "csrf:" + session id). Every form carries it and
  every POST is checked against it in constant time.
* Login attempts are limited per client IP and per username in a sliding window.
* Roles: ``admin`` sees all; ``supervisor`` sees their team (operators whose ``supervisor`` is
  them, recursively, and themselves); anyone else sees only their own numbers.

``python -m bot.webauth hash`` prints an argon2 hash for ``[[web.users]] password_hash``.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import json
import secrets
import sys
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bot.config import OperatorConfig
from bot.config_web import WebUser

_HASHER = PasswordHasher()
# Verified when the username is unknown, so a miss costs the same time as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(8))

ADMIN, SUPERVISOR, OWN = "admin", "supervisor", "own"
RANK = {OWN: 0, SUPERVISOR: 1, ADMIN: 2}


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; unknown users (``None``) still pay for one verify."""
    try:
        _HASHER.verify(password_hash or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return bool(password_hash)


# -- sessions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    username: str
    sid: str
    expires: float
    stamp: str = ""  # of the password hash it was issued for (``SessionCodec.stamp``)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Issues and checks signed session tokens and their CSRF tokens."""

    def __init__(self, secret: bytes, ttl: float) -> None:
        if len(secret) < 16:
            raise ValueError("session secret too short (need 16+ bytes)")
        self._secret = secret
        self.ttl = ttl

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())

    def stamp(self, password_hash: str | None) -> str:
        """A short keyed digest of a password hash: a session carries its user's, so changing
        the password in the config ends the sessions issued before."""
        return self._sign(f"pw:{password_hash or ''}")[:16]

    def issue(self, username: str, now: float, stamp: str = "") -> str:
        payload = {
            "u": username,
            "s": secrets.token_urlsafe(12),
            "e": int(now + self.ttl),
            "p": stamp,
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def read(self, token: str, now: float) -> Session | None:
        body, _, sig = token.partition(".")
        if not body or not sig or not hmac.compare_digest(sig, self._sign(body)):
            return None
        try:
            data = json.loads(_unb64(body))
            session = Session(
                str(data["u"]), str(data["s"]), float(data["e"]), str(data.get("p", ""))
            )
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > now else None

    def csrf(self, session: Session) -> str:
        return self._sign(f"csrf:{session.sid}")

    def csrf_ok(self, session: Session, token: str) -> bool:
        return bool(token) and hmac.compare_digest(token, self.csrf(session))


# -- rate limiting ---------------------------------------------------------------------------


class LoginLimiter:
    """Failed logins per IP and per username in a sliding ``window`` (seconds)."""

    def __init__(self, per_ip: int = 20, per_user: int = 5, window: float = 300.0) -> None:
        self.per_ip, self.per_user, self.window = per_ip, per_user, window
        self._fails: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def blocked(self, ip: str, username: str, now: float) -> bool:
        return (
            len(self._recent(("ip", ip), now)) >= self.per_ip
            or len(self._recent(("user", username.lower()), now)) >= self.per_user
        )

    def failed(self, ip: str, username: str, now: float) -> None:
        self._recent(("ip", ip), now).append(now)
        self._recent(("user", username.lower()), now).append(now)
        if len(self._fails) > 10_000:  # bound memory under a spray of random names
            self._fails = {k: v for k, v in self._fails.items() if v}

    def succeeded(self, username: str) -> None:
        self._fails.pop(("user", username.lower()), None)


# -- who sees what ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """A logged-in user: ``team`` is the operator ids whose numbers they see (None = all)."""

    username: str
    name: str
    level: str  # admin, supervisor, own
    operator_id: str
    team: frozenset[str] | None

    def sees(self, operator_id: str | None) -> bool:
        return self.team is None or (operator_id is not None and operator_id in self.team)

    def sees_any(self, operator_ids: Iterable[str | None]) -> bool:
        return self.team is None or any(o in self.team for o in operator_ids if o)

    def at_least(self, level: str) -> bool:
        return RANK[self.level] >= RANK[level]


def team_of(operator_id: str, operators: Sequence[OperatorConfig]) -> frozenset[str]:
    """``operator_id`` and everyone reporting to them, directly or through others."""
    reports: dict[str, list[str]] = {}
    for op in operators:
        if op.supervisor:
            reports.setdefault(op.supervisor, []).append(op.id)
    team, todo = {operator_id}, [operator_id]
    while todo:
        for sub in reports.get(todo.pop(), ()):
            if sub not in team:
                team.add(sub)
                todo.append(sub)
    return frozenset(team)


def principal_for(user: WebUser, operators: Sequence[OperatorConfig]) -> Principal | None:
    """The login's view, or None when it names an operator missing from the roster."""
    op = next((o for o in operators if o.id == user.operator_id), None)
    if user.operator_id and op is None:
        return None
    role = user.role or (op.role if op else "")
    name = user.name or (op.name if op else user.username)
    if role == ADMIN:
        return Principal(user.username, name, ADMIN, user.operator_id, None)
    if op is None:
        return None  # a non-admin login must be somebody on the roster
    if role == SUPERVISOR:
        return Principal(user.username, name, SUPERVISOR, op.id, team_of(op.id, operators))
    return Principal(user.username, name, OWN, op.id, frozenset({op.id}))


def find_user(users: Iterable[WebUser], username: str) -> WebUser | None:
    wanted = username.strip().lower()
    return next((u for u in users if u.username.lower() == wanted), None)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bot.webauth hash``: read a password (twice on a terminal), print its hash."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["hash"]:
        sys.stderr.write("usage: python -m bot.webauth hash  (password on stdin or prompted)\n")
        return 2
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            sys.stderr.write("passwords differ\n")
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        sys.stderr.write("empty password\n")
        return 1
    sys.stdout.write(hash_password(password) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
