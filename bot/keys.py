"""Typed application keys (aiohttp ``AppKey``): the only way app state is read."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.config import AppConfig
from bot.dispatch import Dispatcher
from bot.gateway.hub import GatewayHub
from bot.intake import Intake
from bot.metrics import Metrics
from bot.roster import Roster

CONFIG = web.AppKey("config", AppConfig)
CLOCK = web.AppKey("clock", Clock)
METRICS = web.AppKey("metrics", Metrics)
ROSTER = web.AppKey("roster", Roster)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
HUB = web.AppKey("gateway_hub", GatewayHub)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
INTAKE = web.AppKey("intake", Intake)
