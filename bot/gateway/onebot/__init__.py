"""OneBot v11 gateway (QQ via NapCat / LLBot): reverse WS, forward WS and HTTP POST transports.

The lead wires it as::

    gw = OneBotGateway(sink=intake.put, clock=clock, metrics=metrics, access_token=token)
    app.add_routes(gw.routes())
    # cleanup_ctx: await gw.start(); yield; await gw.stop()
"""

from bot.gateway.backoff import Backoff
from bot.gateway.onebot.gateway import OneBotGateway
from bot.gateway.onebot.parse import PLATFORM
from bot.gateway.onebot.server import HTTP_PATH, WS_PATH

__all__ = ["HTTP_PATH", "PLATFORM", "WS_PATH", "Backoff", "OneBotGateway"]
