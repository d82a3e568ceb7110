"""Matterbridge REST API gateway (see ``gateway`` for its limits)."""

from bot.gateway.matterbridge.gateway import MatterbridgeGateway, synthesized_id

__all__ = ["MatterbridgeGateway", "synthesized_id"]
