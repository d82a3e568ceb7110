"""Config sections of the WeCom (企业微信) and Matterbridge gateways: [gateway.wecom],
[gateway.matterbridge]. Both are off by default; secrets are ``SecretStr`` so they can come from
``SOPBOT_GATEWAY_WECOM_*`` / ``SOPBOT_GATEWAY_MATTERBRIDGE_TOKEN``."""

from __future__ import annotations

from datetime import time

from pydantic import Field, SecretStr, field_validator, model_validator

from bot.config_types import Duration, Section


class WeComSection(Section):
    enabled: bool = False
    corp_id: str = ""
    agent_id: int = Field(default=0, ge=0)
    app_secret: SecretStr = SecretStr("")
    contact_secret: SecretStr = SecretStr("")
    callback_token: SecretStr = SecretStr("")
    encoding_aes_key: SecretStr = SecretStr("")
    robot_webhook_key: SecretStr = SecretStr("")
    base_url: str = "https://qyapi.weixin.qq.com"
    callback_path: str = "/wecom/callback"
    request_timeout: Duration = 10.0
    max_retries: int = Field(default=3, ge=0, le=10)
    retry_max_delay: Duration = 8.0
    messages_per_member_per_minute: float = Field(default=30.0, ge=0)
    messages_per_member_per_hour: float = Field(default=1000.0, ge=0)
    calls_per_api_per_minute: float = Field(default=10_000.0, ge=0)
    duplicate_check_interval: Duration = 1800.0
    replay_window: Duration = 300.0
    # SOP verification (handlers/sop_verify.py): how often today's Moments / group-send results
    # are polled, and the local time yesterday's behaviour data (chat counts) is fetched.
    verify_every: Duration = Field(default=900.0, ge=60.0)
    behaviour_at: time = time(9, 30)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> WeComSection:
        if not self.enabled:
            return self
        if not self.corp_id:
            raise ValueError("corp_id: required when [gateway.wecom] is enabled")
        if not self.app_secret.get_secret_value():
            raise ValueError("app_secret: required when [gateway.wecom] is enabled")
        if not self.agent_id:
            raise ValueError("agent_id: required when [gateway.wecom] is enabled")
        key = self.encoding_aes_key.get_secret_value()
        if key and len(key) != 43:
            raise ValueError("encoding_aes_key: must be the 43-character EncodingAESKey")
        return self


class MatterbridgeSection(Section):
    enabled: bool = False
    url: str = "http://127.0.0.1:4242"
    token: SecretStr = SecretStr("")
    gateway: str = ""
    username: str = "sopbot"
    reconnect_max_delay: Duration = 60.0

    @model_validator(mode="after")
    def _gateway_when_enabled(self) -> MatterbridgeSection:
        if self.enabled and not self.gateway:
            raise ValueError("gateway: required when [gateway.matterbridge] is enabled")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url: must start with http:// or https://")
        return self
