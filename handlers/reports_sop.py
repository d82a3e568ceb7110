"""The ``sop`` report (``sopbot report sop`` and the compliance API share it).

Views: ``guides``, ``stores``, ``days``, ``steps``, ``missed``; empty = all five tables.
Filters: ``store=…``, ``guide=…``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import AppConfig
from bot.reports import ReportRequest, ReportTable
from bot.store.tasks import compliance_tables


async def build(engine: AsyncEngine, cfg: AppConfig, request: ReportRequest) -> list[ReportTable]:
    return await compliance_tables(engine, cfg, request)


REPORTS = {"sop": build}
