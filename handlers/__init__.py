"""The one list of what is wired: routers (in dispatch order) and web routes."""

from __future__ import annotations

from aiohttp import web

from bot.dispatch import Router
from handlers import status

ROUTERS: tuple[Router, ...] = ()


def web_routes() -> list[web.RouteDef]:
    return [*status.routes()]
