"""WeCom (企业微信) gateway: app messages, group robot, SOP verification APIs, callbacks."""

from bot.events import CardClick
from bot.gateway.wecom.client import RetryPolicy, WeComClient
from bot.gateway.wecom.gateway import ROBOT_GROUP, WeComGateway
from bot.gateway.wecom.sop_api import WeComSopApi

__all__ = ["ROBOT_GROUP", "CardClick", "RetryPolicy", "WeComClient", "WeComGateway", "WeComSopApi"]
