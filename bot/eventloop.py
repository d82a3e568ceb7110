"""The event loop the bot runs on: uvloop where installed (``[bot] event_loop``)."""

from __future__ import annotations

import asyncio
import importlib


def new_event_loop(choice: str) -> tuple[asyncio.AbstractEventLoop, str]:
    """A new loop for ``choice`` ("auto", "asyncio" or "uvloop") and the name of what it is.

    "auto" takes uvloop when it can be imported: its loop, transports and WebSocket reads cost
    the intake a fraction of asyncio's (see benchmarks/RESULTS.md). The config check refuses
    "uvloop" where it is not installed, so an import failure here can only mean "auto".
    """
    if choice != "asyncio":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop, "uvloop"
    return asyncio.new_event_loop(), "asyncio"
