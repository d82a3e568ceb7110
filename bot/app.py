"""Composition root: the only module that knows every concrete part and wires them together.

``create_app(cfg)`` returns an aiohttp application that owns the whole process lifecycle through
``cleanup_ctx``: database (migrations applied on start), roster sync, intake writer, gateways.
Teardown runs in reverse: gateways stop taking events, intake flushes, the engine closes.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

from aiohttp import web

import handlers
from bot import web as infra_web
from bot.clock import Clock, SystemClock
from bot.commands import CommandRegistry
from bot.config import AppConfig
from bot.delivery import Delivery
from bot.dispatch import Dispatcher
from bot.errors import SopbotError
from bot.events import CardClick, InboundEvent
from bot.gateway.backoff import Backoff
from bot.gateway.hub import GatewayHub
from bot.gateway.matterbridge import MatterbridgeGateway
from bot.gateway.onebot import OneBotGateway
from bot.gateway.simulator import SimulatorGateway, demo_cast
from bot.gateway.wecom import WeComGateway
from bot.intake import Intake
from bot.keys import CLOCK, CONFIG, DISPATCHER, ENGINE, HUB, INTAKE, METRICS, ROSTER, SESSIONS
from bot.metrics import Metrics
from bot.outbox import OutboxDispatcher, OutboxRow
from bot.ratelimit import RateLimiter
from bot.reports import ReportRequest, ReportTable
from bot.roster import Roster
from bot.scheduler import Tick, TickRunner
from bot.store.db import exclusive, make_engine, session_factory, upgrade
from bot.store.roster_sync import sync_roster
from bot.wecom_verification import WeComVerification

log = logging.getLogger("sopbot.app")

ONEBOT = web.AppKey("onebot_gateway", OneBotGateway)
TICKS = web.AppKey("tick_runner", TickRunner)
OUTBOX = web.AppKey("outbox_dispatcher", OutboxDispatcher)
SIMULATOR = web.AppKey("simulator_gateway", SimulatorGateway)
WECOM = web.AppKey("wecom_gateway", WeComGateway)
MATTERBRIDGE = web.AppKey("matterbridge_gateway", MatterbridgeGateway)


async def run_report(cfg: AppConfig, kind: str, request: ReportRequest) -> list[ReportTable]:
    """Build a report straight from the store (the CLI's ``sopbot report``)."""
    builder = handlers.REPORTS.get(kind)
    if builder is None:
        raise SopbotError(f"no {kind} report is available")
    engine = make_engine(cfg.bot.resolved_database_url())
    try:
        await upgrade(engine)
        return await builder(engine, cfg, request)
    finally:
        await engine.dispose()


def instance_id(cfg: AppConfig) -> str:
    return cfg.bot.instance_id or f"{socket.gethostname()}-{os.getpid()}"


def create_app(
    cfg: AppConfig,
    *,
    clock: Clock | None = None,
    simulator_start: date | None = None,
) -> web.Application:
    app = web.Application(middlewares=[infra_web.api_auth], client_max_size=2 << 20)
    clock = clock or SystemClock()
    metrics = Metrics()
    roster = Roster.from_config(cfg)
    hub = GatewayHub()
    delivery = Delivery(hub, roster)
    dispatcher = Dispatcher(
        metrics,
        cfg=cfg,
        clock=clock,
        roster=roster,
        gateway=hub,
        delivery=delivery,
        commands=CommandRegistry(handlers.COMMANDS),
    )
    dispatcher.provide(metrics=metrics)
    dispatcher.include(*handlers.ROUTERS)
    app[CONFIG], app[CLOCK], app[METRICS] = cfg, clock, metrics
    app[ROSTER], app[HUB], app[DISPATCHER] = roster, hub, dispatcher

    async def sink(event: InboundEvent) -> None:
        await app[INTAKE].put(event)

    onebot_cfg = cfg.gateway.onebot
    if onebot_cfg.enabled:
        onebot = OneBotGateway(
            sink=sink,
            clock=clock,
            metrics=metrics,
            access_token=onebot_cfg.access_token.get_secret_value() or None,
            secret=onebot_cfg.secret.get_secret_value() or None,
            mode=onebot_cfg.mode,
            url=onebot_cfg.url or None,
            action_timeout=onebot_cfg.action_timeout,
            max_frame_bytes=onebot_cfg.max_frame_bytes,
            backoff=Backoff(cap=onebot_cfg.reconnect_max_delay),
            keep_raw=cfg.intake.store_raw,
        )
        app[ONEBOT] = onebot
        hub.add(onebot)
        app.add_routes(onebot.routes())

        async def _close_sockets(_app: web.Application) -> None:
            # Close reverse-WS connections at shutdown's start, so their handlers end now and
            # aiohttp does not wait out its shutdown timeout before running cleanup.
            await onebot.stop()

        app.on_shutdown.append(_close_sockets)
    sim_cfg = cfg.gateway.simulator
    if sim_cfg.enabled:
        simulator = SimulatorGateway(
            sink=sink,
            clock=clock,
            metrics=metrics,
            cast=demo_cast(sim_cfg.seed, sim_cfg.groups, sim_cfg.customers_per_group),
            seed=sim_cfg.seed,
            account_id=sim_cfg.account_id,
            start_day=simulator_start,
        )
        app[SIMULATOR] = simulator
        hub.add(simulator)
    wecom_cfg = cfg.gateway.wecom
    if wecom_cfg.enabled:

        async def card_sink(click: CardClick) -> None:
            # Card clicks are not chat: they skip the intake and go straight to the handlers.
            await dispatcher.feed(click)

        wecom = WeComGateway.from_config(
            wecom_cfg, sink=sink, clock=clock, metrics=metrics, card_sink=card_sink
        )
        app[WECOM] = wecom
        hub.add(wecom)
        app.add_routes(wecom.routes())
        # The SOP verification port (source "api"); the engine exists once the app starts.
        dispatcher.provide(
            verification=WeComVerification(
                wecom.sop, roster, lambda: app[ENGINE], tz=cfg.bot.timezone
            )
        )
    mb_cfg = cfg.gateway.matterbridge
    if mb_cfg.enabled:
        matterbridge = MatterbridgeGateway.from_config(
            mb_cfg, sink=sink, clock=clock, metrics=metrics
        )
        app[MATTERBRIDGE] = matterbridge
        hub.add(matterbridge)
        app.add_routes(matterbridge.routes())

    app.add_routes(infra_web.routes())
    app.add_routes(handlers.web_routes())
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_intake)
    # Handler services (engines, timers) start after the store and before ticks and gateways;
    # they expose themselves to handlers with ``app[DISPATCHER].provide(name=...)``.
    app.cleanup_ctx.extend(handlers.CONTEXTS)
    # Then what a crash left unhandled is replayed, before ticks run and gateways deliver.
    app.cleanup_ctx.extend((_replay, _scheduler, _gateways))
    app.on_startup.append(_settle_heap)
    return app


SWITCH_INTERVAL = 0.0005  # seconds (CPython's default: 0.005)


async def _settle_heap(_app: web.Application) -> None:
    """After start-up, move everything alive so far out of the garbage collector's view.

    Modules, config, SQLAlchemy metadata and the reloaded live questions live as long as the
    process; a full collection would otherwise walk them all again and again, pausing the event
    loop (and every event waiting in the intake) for tens of milliseconds each time.
    """
    gc.collect()
    gc.freeze()
    # Every event allocates a few hundred short-lived objects (frames, rows, effects), nearly all
    # freed by reference counting: at the default threshold (700) the young generation was
    # collected every few events, ~12% of the event loop's time at 10,000 events/s. Cycles are
    # still collected, just in fewer, larger passes.
    gc.set_threshold(50_000, 20, 100)
    # SQLite runs in worker threads that give the GIL up around every row step and then wait
    # to get it back from the busy event loop: at the default 5 ms switch interval a statement
    # returning a thousand rows could take 200 ms instead of 2. A shorter interval bounds that
    # wait at a small cost in switches.
    sys.setswitchinterval(SWITCH_INTERVAL)


async def _database(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    engine = make_engine(cfg.bot.resolved_database_url())
    sessions = session_factory(engine)
    # Several processes starting at once on a new database take turns here.
    async with exclusive(engine, "startup"):
        await upgrade(engine)
        async with sessions() as session:
            await sync_roster(session, cfg, app[CLOCK].now())
    app[ENGINE], app[SESSIONS] = engine, sessions
    app[DISPATCHER].provide(sessions=sessions, engine=engine)
    yield
    await engine.dispose()


async def _intake(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    intake = Intake(
        engine=app[ENGINE],
        sessions=app[SESSIONS],
        dispatcher=app[DISPATCHER],
        roster=app[ROSTER],
        clock=app[CLOCK],
        metrics=app[METRICS],
        queue_size=cfg.intake.queue_size,
        batch_size=cfg.intake.batch_size,
        flush_interval=cfg.intake.flush_interval,
        store_raw=cfg.intake.store_raw,
    )
    app[INTAKE] = intake
    app[DISPATCHER].provide(intake=intake)
    await intake.start()
    yield
    await intake.stop()


async def _replay(app: web.Application) -> AsyncIterator[None]:
    """SQLite: messages stored before a crash whose handlers never committed run now, before
    any new event arrives (the handler services are loaded from the store by now). PostgreSQL
    replays per account as accounts come online (``Intake.replay_at_start``)."""
    await app[INTAKE].replay_at_start()
    yield


async def _replay_left_behind(intake: Intake) -> int:
    return await intake.replay_left_behind()


def _address(value: Any) -> tuple[str, str, str] | None:
    """An outbox row's explicit (platform, account, user) address, if it has a valid one."""
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value):
        return value[0], value[1], value[2]
    return None


REPLAY_EVERY = 60.0  # seconds between looks for messages a dead process left unhandled


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    cfg, clock = app[CONFIG], app[CLOCK]
    delivery: Delivery = app[DISPATCHER].deps["delivery"]

    async def send(row: OutboxRow) -> None:
        await delivery.send(
            row.recipient_id,
            row.text,
            idempotency_key=row.key,
            kind=row.kind,
            lang=cfg.bot.language,
            to=_address(row.payload.get("to")),
        )

    outbox = OutboxDispatcher(
        engine=app[ENGINE],
        clock=clock,
        sender=send,
        owner=instance_id(cfg),
        limiter=RateLimiter(
            total_per_s=cfg.delivery.total_per_second,
            per_key=cfg.delivery.per_recipient_per_minute,
        ),
        lease=timedelta(seconds=cfg.delivery.lease),
        max_attempts=cfg.delivery.max_attempts,
    )
    app[OUTBOX] = outbox
    # Alerts hand their rows to the outbox at once; reminders and digests wait for the tick.
    app[DISPATCHER].provide(outbox_kick=outbox.kick)
    ticks = (
        Tick("outbox", cfg.delivery.every, outbox.run_once),
        Tick("intake-replay", REPLAY_EVERY, _replay_left_behind),
        *handlers.TICKS,
    )
    runner = TickRunner(ticks, app[DISPATCHER].deps, app[ENGINE])
    app[TICKS] = runner
    runner.start()
    yield
    await runner.stop()


async def _gateways(app: web.Application) -> AsyncIterator[None]:
    started: list[OneBotGateway | SimulatorGateway | WeComGateway | MatterbridgeGateway] = []
    for key in (ONEBOT, SIMULATOR, WECOM, MATTERBRIDGE):
        gateway = app.get(key)
        if gateway is not None:
            await gateway.start()
            started.append(gateway)
    log.info("gateways started: %s", ", ".join(g.platform for g in started) or "none")
    yield
    # Stop intake at the edge first; the intake context (torn down after us) flushes what came in.
    for gateway in reversed(started):
        await gateway.stop()
