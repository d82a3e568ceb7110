"""The one list of what is wired: routers (in dispatch order), commands, ticks and web routes.

Handler modules never import each other; they are composed here and nowhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from bot.commands import Command
from bot.dispatch import Router
from bot.reports import ReportBuilder
from bot.scheduler import Tick
from handlers import (
    alerts,
    api_sla,
    api_sop,
    commands,
    commands_sla,
    commands_sop,
    dashboard,
    digests,
    openapi,
    questions,
    reports_sla,
    reports_sop,
    sop_completion,
    sop_plan,
    sop_verify,
    status,
    wecom_cards,
    wecom_contacts,
)

ROUTERS: tuple[Router, ...] = (
    commands.router,
    questions.router,
    *sop_completion.ROUTERS,
    *wecom_cards.ROUTERS,
    *wecom_contacts.ROUTERS,
)

COMMANDS: tuple[Command, ...] = (
    *commands.COMMANDS,
    *commands_sla.COMMANDS,
    *commands_sop.COMMANDS,
)

TICKS: tuple[Tick, ...] = (*questions.TICKS, *sop_plan.TICKS, *digests.TICKS, *sop_verify.TICKS)

# Lifecycle contexts (aiohttp cleanup_ctx) of handler services, started in this order.
CONTEXTS: tuple[Callable[[web.Application], AsyncIterator[None]], ...] = (
    questions.context,
    alerts.context,
    reports_sla.context,
    sop_plan.sop_context,
    dashboard.context,
    sop_verify.verify_context,  # after sop_plan: verifies the tasks it materializes
)

# `sopbot report KIND` and the API share these builders.
REPORTS: dict[str, ReportBuilder] = {"sla": reports_sla.build, **reports_sop.REPORTS}


def web_routes() -> list[web.AbstractRouteDef]:
    return [
        # The dashboard owns "/" (login required); the old status page is admin-only now.
        *dashboard.routes(),
        web.get("/status", dashboard.guard("admin")(status.status_page)),
        *api_sla.routes(reports_sla.build),
        *api_sop.routes(),
        *openapi.routes(OPENAPI_PATHS, (api_sla.OPENAPI_SCHEMAS,)),
    ]


# OpenAPI path items merged by handlers/openapi.py.
OPENAPI_PATHS: tuple[dict[str, Any], ...] = (api_sla.OPENAPI_PATHS, api_sop.OPENAPI_PATHS)
