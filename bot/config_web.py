"""Dashboard logins in config: ``[[web.users]]`` entries and the demo accounts.

A ``WebUser`` is a username with an argon2 password hash (make one with
``python -m bot.webauth hash`` or ``sopbot hash-password``), linked to a roster operator by
``operator_id``: the operator's role and team decide what the login sees. ``role`` overrides it
(e.g. an ``admin`` login for a project lead who is not on the roster).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import Field, field_validator

from bot.config_types import Section

WebRole = Literal["", "admin", "supervisor", "guide", "operator", "specialist"]

DEMO_PASSWORD = "sopbot-demo"


class WebUser(Section):
    username: str = Field(min_length=1, max_length=64)
    password_hash: str = Field(min_length=1)
    operator_id: str = ""
    role: WebRole = ""
    name: str = ""

    @field_validator("password_hash")
    @classmethod
    def _argon2(cls, v: str) -> str:
        if not v.startswith("$argon2"):
            raise ValueError("expected an argon2 hash; make one with `python -m bot.webauth hash`")
        return v


def demo_web(web: Any, operators: Iterable[Any]) -> dict[str, Any]:
    """``[web]`` additions for ``sopbot demo``: an admin, each supervisor and one guide, all with
    ``DEMO_PASSWORD``; a fresh session secret. Keeps configured users when there are some."""
    if web.users:
        return {}
    from bot.webauth import hash_password

    digest = hash_password(DEMO_PASSWORD)
    users: list[dict[str, Any]] = [
        {"username": "admin", "password_hash": digest, "role": "admin", "name": "Admin"}
    ]
    guide_added = False
    for op in operators:
        if op.role == "supervisor" or (op.role == "guide" and not guide_added):
            guide_added = guide_added or op.role == "guide"
            users.append({"username": op.id, "password_hash": digest, "operator_id": op.id})
    out: dict[str, Any] = {"users": users}
    if not web.session_secret.get_secret_value():
        out["session_secret"] = secrets.token_urlsafe(32)
    return out


def demo_logins(web: Any) -> str:
    """One banner line naming the demo logins."""
    names = ", ".join(u.username for u in web.users)
    return f"dashboard logins: {names} (password {DEMO_PASSWORD})"
