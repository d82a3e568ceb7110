"""The one list of what is wired: routers (in dispatch order), commands, ticks and web routes.

Handler modules never import each other; they are composed here and nowhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from bot.commands import Command
from bot.dispatch import Router
from bot.reports import ReportBuilder
from bot.scheduler import Tick
from handlers import commands, status

ROUTERS: tuple[Router, ...] = (commands.router,)

COMMANDS: tuple[Command, ...] = (*commands.COMMANDS,)

TICKS: tuple[Tick, ...] = ()

# Lifecycle contexts (aiohttp cleanup_ctx) of handler services, started in this order.
CONTEXTS: tuple[Callable[[web.Application], AsyncIterator[None]], ...] = ()

# `sopbot report KIND` and the API share these builders.
REPORTS: dict[str, ReportBuilder] = {}


def web_routes() -> list[web.RouteDef]:
    return [*status.routes()]
