"""Routers and the dispatcher (aiogram-style, small).

Handler modules own a local ``Router`` and decorate functions on it; ``handlers/__init__.py`` lists
the routers and ``bot/app.py`` includes them in order. Handlers declare what they need by parameter
name (``event``, ``session``, ``clock``, ``gateway``, ...): the dispatcher passes only those.
A handler exception is logged once with its router's name and counted; other handlers still run.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.metrics import Metrics

log = logging.getLogger("sopbot.dispatch")

Filter = Callable[[Any], bool]
HandlerFunc = Callable[..., Awaitable[Any]]
F = TypeVar("F", bound=HandlerFunc)


@dataclass(frozen=True, slots=True)
class _Registration:
    event_type: type[Any]
    filters: tuple[Filter, ...]
    func: HandlerFunc
    params: frozenset[str]
    takes_kwargs: bool


class Router:
    def __init__(self, name: str) -> None:
        self.name = name
        self._regs: list[_Registration] = []

    def register(self, func: HandlerFunc, event_type: type[Any], *filters: Filter) -> None:
        sig = inspect.signature(func)
        params = frozenset(
            p.name
            for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        )
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        self._regs.append(_Registration(event_type, filters, func, params, takes_kwargs))

    def on(self, event_type: type[Any], *filters: Filter) -> Callable[[F], F]:
        def deco(func: F) -> F:
            self.register(func, event_type, *filters)
            return func

        return deco

    @property
    def registrations(self) -> tuple[_Registration, ...]:
        return tuple(self._regs)


class Dispatcher:
    def __init__(self, metrics: Metrics | None = None, **deps: Any) -> None:
        self._routers: list[Router] = []
        self._deps = deps
        self._metrics = metrics
        # event type → [(router name, registration)], so feed() does no per-event type scan.
        self._plan: dict[type[Any], list[tuple[str, _Registration]]] = {}

    def include(self, *routers: Router) -> None:
        for router in routers:
            if router in self._routers:
                raise ValueError(f"router {router.name!r} is already included")
            self._routers.append(router)
        self._plan.clear()

    @property
    def deps(self) -> dict[str, Any]:
        """The injectable dependencies (shared with ticks)."""
        return self._deps

    def provide(self, **deps: Any) -> None:
        """Add or replace injectable dependencies (e.g. once the gateway hub exists)."""
        self._deps.update(deps)

    def _handlers_for(self, event_type: type[Any]) -> list[tuple[str, _Registration]]:
        plan = self._plan.get(event_type)
        if plan is None:
            plan = [
                (router.name, reg)
                for router in self._routers
                for reg in router.registrations
                if issubclass(event_type, reg.event_type)
            ]
            self._plan[event_type] = plan
        return plan

    def _kwargs(self, reg: _Registration, event: Any, extra: dict[str, Any]) -> dict[str, Any]:
        if reg.takes_kwargs:
            return {**self._deps, **extra, "event": event}
        kwargs: dict[str, Any] = {}
        for name in reg.params:
            if name == "event":
                kwargs[name] = event
            elif name in extra:
                kwargs[name] = extra[name]
            elif name in self._deps:
                kwargs[name] = self._deps[name]
        return kwargs

    async def feed(
        self,
        event: Any,
        *,
        reraise: Callable[[Exception], bool] | None = None,
        **extra: Any,
    ) -> int:
        """Run every matching handler for ``event``; return how many ran without error.

        ``reraise``: errors it accepts propagate to the caller instead (the intake aborts a batch
        whose store went away, rather than commit it without one handler's writes).
        """
        ran = 0
        for router_name, reg in self._handlers_for(type(event)):
            if reg.filters and not all(f(event) for f in reg.filters):
                continue
            try:
                await reg.func(**self._kwargs(reg, event, extra))
                ran += 1
            except Exception as exc:
                if reraise is not None and reraise(exc):
                    raise
                # Routed and logged once here; the next handler and the next event still run.
                log.exception("handler %s.%s failed", router_name, reg.func.__name__)
                if self._metrics is not None:
                    self._metrics.handler_errors.labels(router=router_name).inc()
        return ran
