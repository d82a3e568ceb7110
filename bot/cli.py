"""The ``sopbot`` command line.

    sopbot run --config PATH [--simulate-from ISO8601 --speed N [--simulate-epoch UNIX_SECONDS]]
    sopbot demo [--config PATH] [--speed N] [--port N] [--seed N]
    sopbot check-config PATH
    sopbot db upgrade [--config PATH]
    sopbot report sla|sop [--config PATH] --from DATE --to DATE [--as-of ISO] [--format F]
    sopbot import-customers CSV --config PATH [--platform P]

Configuration problems print one line naming the file and the key and exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.clock import Clock, SimulatedClock, SystemClock
from bot.config import AppConfig, load_config
from bot.errors import ConfigError
from bot.logs import config_secrets, setup_logging

EXIT_CONFIG = 2
log = logging.getLogger("sopbot.cli")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sopbot", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the bot with a config file")
    run.add_argument("--config", required=True, type=Path)
    run.add_argument(
        "--simulate-from",
        metavar="ISO8601",
        help="run on a simulated clock starting at this instant (e.g. 2026-11-23T09:00+08:00)",
    )
    run.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    run.add_argument(
        "--simulate-epoch",
        type=float,
        metavar="UNIX_SECONDS",
        help="unix time at which the simulated clock reads --simulate-from: processes given the "
        "same three values share one simulated timeline (also across restarts)",
    )

    demo = sub.add_parser("demo", help="run against the built-in simulator (no external service)")
    demo.add_argument("--config", type=Path, help="optional config for [bot] and [web] settings")
    demo.add_argument("--speed", type=float, default=240.0, help="simulated seconds per second")
    demo.add_argument("--port", type=int, help="web port (default from config, 8780)")
    demo.add_argument("--seed", type=int, help="simulator seed (default from config, 7)")
    demo.add_argument("--data-dir", type=Path, help="where the demo database lives")

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("path", type=Path)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply schema migrations")
    up.add_argument("--config", type=Path)

    report = sub.add_parser("report", help="print SLA or SOP reports from the store")
    report.add_argument("kind", choices=["sla", "sop"])
    report.add_argument("--config", type=Path)
    report.add_argument("--from", dest="start", required=True, help="first local date, YYYY-MM-DD")
    report.add_argument("--to", dest="end", required=True, help="last local date, YYYY-MM-DD")
    report.add_argument("--as-of", help="evaluate as of this instant (ISO 8601); default now")
    report.add_argument("--format", choices=["table", "csv", "json"], default="table")
    report.add_argument("--basis", choices=["business", "calendar"], default="business")
    report.add_argument("--lenient", action="store_true", help="count every link, not only strict")
    report.add_argument("--view", default="", help="report-specific view (e.g. operators)")
    report.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="filter rows, e.g. --filter group=123 --filter operator=li (repeatable)",
    )
    imp = sub.add_parser(
        "import-customers",
        help="bind customers to guides from a CSV: guide,customer_id,added_date,last_purchase",
    )
    imp.add_argument("csv", type=Path)
    imp.add_argument("--config", required=True, type=Path)
    imp.add_argument("--platform", default="onebot11", help="platform of the customer ids")
    return p


def _secrets(cfg: AppConfig) -> list[str]:
    # Every SecretStr of every section (WeCom, Matterbridge, web sessions...), not a fixed list.
    return config_secrets(cfg)


def _serve(cfg: AppConfig, clock: Clock, *, banner: str | None = None) -> None:
    from aiohttp import web

    from bot.app import create_app
    from bot.eventloop import new_event_loop

    loop, kind = new_event_loop(cfg.bot.event_loop)
    asyncio.set_event_loop(loop)
    app = create_app(cfg, clock=clock)
    log.info("event loop: %s", kind)
    if banner:
        print(banner, flush=True)
    web.run_app(
        app,
        loop=loop,
        host=cfg.web.host,
        port=cfg.web.port,
        print=None,
        access_log=None,
        shutdown_timeout=10.0,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    setup_logging(cfg.bot.log_level, cfg.bot.log_format, _secrets(cfg))
    clock: Clock = SystemClock()
    if args.simulate_from:
        try:
            start = datetime.fromisoformat(args.simulate_from)
        except ValueError:
            print(
                f"sopbot: --simulate-from: not an ISO 8601 time: {args.simulate_from}",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        if start.tzinfo is None:
            start = start.replace(tzinfo=ZoneInfo(cfg.bot.timezone))
        if not args.speed > 0:
            print("sopbot: --speed must be positive", file=sys.stderr)
            return EXIT_CONFIG
        if args.simulate_epoch is not None and not math.isfinite(args.simulate_epoch):
            print("sopbot: --simulate-epoch must be a finite unix time", file=sys.stderr)
            return EXIT_CONFIG
        clock = SimulatedClock(start, args.speed, epoch=args.simulate_epoch)
    elif args.speed != 1.0:
        print("sopbot: --speed needs --simulate-from", file=sys.stderr)
        return EXIT_CONFIG
    elif args.simulate_epoch is not None:
        print("sopbot: --simulate-epoch needs --simulate-from", file=sys.stderr)
        return EXIT_CONFIG
    url = f"http://{cfg.web.host}:{cfg.web.port}/"
    _serve(cfg, clock, banner=f"sopbot running: web and OneBot endpoint at {url}")
    return 0


def demo_config(base: AppConfig, seed: int, data_dir: Path | None, port: int | None) -> AppConfig:
    """The demo roster and groups come from the simulator's cast, like a real config's would."""
    from bot.config_web import demo_web
    from bot.gateway.simulator import demo_cast

    sim = base.gateway.simulator.model_copy(update={"enabled": True, "seed": seed})
    cast = demo_cast(seed, sim.groups, sim.customers_per_group)
    bot = base.bot
    if data_dir is not None or not base.bot.database_url:
        bot = bot.model_copy(
            update={"data_dir": data_dir or base.bot.data_dir / "demo", "database_url": ""}
        )
    web = base.web if port is None else base.web.model_copy(update={"port": port})
    return AppConfig.model_validate(
        {
            **base.model_dump(exclude={"operators", "groups", "bot", "web", "gateway"}),
            "bot": bot.model_dump(),
            "web": {
                **web.model_dump(),
                "api_token": web.api_token.get_secret_value(),
                **demo_web(web, cast.operators()),
            },
            "gateway": {
                "onebot": {
                    **base.gateway.onebot.model_dump(),
                    "access_token": base.gateway.onebot.access_token.get_secret_value(),
                    "secret": base.gateway.onebot.secret.get_secret_value(),
                },
                "simulator": sim.model_dump(),
            },
            "operators": [o.model_dump() for o in cast.operators()],
            "groups": [g.model_dump() for g in cast.groups()],
        }
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from bot.config_web import demo_logins

    base = load_config(args.config) if args.config else AppConfig()
    seed = args.seed if args.seed is not None else base.gateway.simulator.seed
    cfg = demo_config(base, seed, args.data_dir, args.port)
    setup_logging(cfg.bot.log_level, "text", _secrets(cfg))
    tz = ZoneInfo(cfg.bot.timezone)
    # Start the simulated day at 08:30 local time today, so a working day plays in minutes.
    today = SystemClock().now().astimezone(tz).date()
    start = datetime.combine(today, time(8, 30), tz)
    clock = SimulatedClock(start, args.speed)
    minutes = timedelta(hours=14).total_seconds() / args.speed / 60
    url = f"http://{cfg.web.host}:{cfg.web.port}/"
    banner = (
        f"sopbot demo: web UI at {url}  (metrics {url}metrics)\n"
        f"  simulated clock from {start.isoformat()} at {args.speed:g}x: "
        f"a 14-hour working day plays in about {minutes:.0f} minutes\n"
        f"  {demo_logins(cfg.web)}\n"
        f"  database: {cfg.bot.resolved_database_url()}\n"
        f"  press Ctrl+C to stop"
    )
    _serve(cfg, clock, banner=banner)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.path)
    print(
        f"{args.path}: ok ({len(cfg.operators)} operators, {len(cfg.groups)} groups, "
        f"gateway onebot={cfg.gateway.onebot.mode if cfg.gateway.onebot.enabled else 'off'}, "
        f"database={'sqlite' if 'sqlite' in cfg.bot.resolved_database_url() else 'postgresql'})"
    )
    return 0


def _cmd_db(args: argparse.Namespace) -> int:
    from bot.store.db import upgrade_blocking

    cfg = load_config(args.config) if args.config else AppConfig()
    setup_logging(cfg.bot.log_level, "text", _secrets(cfg))
    upgrade_blocking(cfg.bot.resolved_database_url())
    print("database schema is up to date")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    import asyncio

    from bot.app import run_report
    from bot.reports import ReportRequest, render

    cfg = load_config(args.config) if args.config else AppConfig()
    setup_logging("WARNING", "text", _secrets(cfg))
    tz = ZoneInfo(cfg.bot.timezone)
    try:
        start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
        as_of = datetime.fromisoformat(args.as_of) if args.as_of else SystemClock().now()
        filters = dict(f.split("=", 1) for f in args.filter)
    except ValueError as exc:
        print(f"sopbot report: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=tz)
    if end < start:
        print("sopbot report: --to is before --from", file=sys.stderr)
        return EXIT_CONFIG
    request = ReportRequest(
        start=start,
        end=end,
        as_of=as_of,
        basis=args.basis,
        strict=not args.lenient,
        view=args.view,
        filters=filters,
    )
    tables = asyncio.run(run_report(cfg, args.kind, request))
    print(render(tables, args.format))
    return 0


def _cmd_import_customers(args: argparse.Namespace) -> int:
    import asyncio

    from bot.store.tasks import CsvError, import_customers

    cfg = load_config(args.config)
    setup_logging("WARNING", "text", _secrets(cfg))
    try:
        new, total = asyncio.run(import_customers(cfg, args.csv, args.platform))
    except CsvError as exc:
        print(f"sopbot import-customers: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{total} customers in {args.csv}: {new} new, {total - new} already known (updated)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {
        "run": _cmd_run,
        "demo": _cmd_demo,
        "check-config": _cmd_check,
        "db": _cmd_db,
        "report": _cmd_report,
        "import-customers": _cmd_import_customers,
    }
    try:
        return commands[args.command](args)
    except ConfigError as exc:
        print(exc.one_line(), file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
