"""WeCom client on the fake qyapi: tokens, retries, typed errors, rate limits, partial sends."""

from __future__ import annotations

import pytest

from bot.errors import NetworkError
from bot.gateway.wecom.errors import (
    InvalidCredential,
    InvalidRecipient,
    RateLimited,
    SystemBusy,
    TokenInvalid,
)
from tests.fakes.onebot import counter
from tests.fakes.wecom import SAMPLES, FakeTime, FakeWeCom, wecom_gateway

pytestmark = pytest.mark.integration


async def test_token_cached_and_refreshed_before_expiry() -> None:
    """One gettoken serves many calls; a new one is fetched shortly before expires_in."""
    fake, t = FakeWeCom(), FakeTime()
    async with wecom_gateway(fake, t) as (gw, _, _):
        await gw.send_private_text("zhangsan", "一")
        await gw.send_private_text("zhangsan", "二")
        assert gw.client.tokens_fetched == 1
        t.now += 7200 - 300 - 1  # still inside the refresh margin
        await gw.send_private_text("lisi", "三")
        assert gw.client.tokens_fetched == 1
        t.now += 2
        await gw.send_private_text("lisi", "四")
        assert gw.client.tokens_fetched == 2
        assert len(fake.delivered) == 4


@pytest.mark.parametrize("how", ["expired_42001", "unknown_40014"])
async def test_token_expiry_mid_run_refreshes_once(how: str) -> None:
    """A token WeCom stops accepting (42001/40014) is replaced and the call retried once."""
    fake, t = FakeWeCom(), FakeTime()
    async with wecom_gateway(fake, t) as (gw, _, _):
        await gw.send_private_text("zhangsan", "before")
        if how == "expired_42001":
            fake.expire_tokens()
        else:
            fake.tokens.clear()
        sent = await gw.send_private_text("zhangsan", "after")
        assert sent.message_id.startswith("msg-")
        assert gw.client.tokens_fetched == 2
        assert [c.body["text"]["content"] for c in fake.api_calls("send") if c.body] == [
            "before",
            "after",
            "after",
        ]


async def test_token_rejected_twice_raises() -> None:
    """A second token refusal in a row is not retried again."""
    fake, t = FakeWeCom(), FakeTime()
    fake.fail["message/send"] = [42001, 42001]
    async with wecom_gateway(fake, t) as (gw, _, metrics):
        with pytest.raises(TokenInvalid):
            await gw.send_private_text("zhangsan", "x")
        assert len(fake.api_calls("send")) == 2
        assert counter(metrics, "sopbot_sends_failed_total", platform="wecom") == 1


async def test_system_busy_retried_with_capped_backoff() -> None:
    """errcode -1 is retried with doubling delays; success after two failures."""
    fake, t = FakeWeCom(), FakeTime()
    fake.fail["message/send"] = [-1, -1]
    async with wecom_gateway(fake, t) as (gw, _, _):
        await gw.send_private_text("zhangsan", "x")
        assert t.sleeps == [0.5, 1.0]
        assert len(fake.delivered) == 1


async def test_system_busy_gives_up_after_retries() -> None:
    """When -1 persists the typed error surfaces after max retries; delays stay capped."""
    fake, t = FakeWeCom(), FakeTime()
    fake.fail["message/send"] = [-1] * 10
    async with wecom_gateway(fake, t) as (gw, _, _):
        with pytest.raises(SystemBusy):
            await gw.send_private_text("zhangsan", "x")
        assert t.sleeps == [0.5, 1.0, 2.0]
        assert len(fake.api_calls("send")) == 4


async def test_transport_errors_and_5xx_retried() -> None:
    """A dropped connection and an HTTP 502 are retried; persistent failure → NetworkError."""
    fake, t = FakeWeCom(), FakeTime()
    fake.disconnect["message/send"] = 1
    fake.http_fail["message/send"] = [502]
    async with wecom_gateway(fake, t) as (gw, _, _):
        await gw.send_private_text("zhangsan", "x")
        assert len(t.sleeps) == 2
        fake.http_fail["message/send"] = [503] * 10
        with pytest.raises(NetworkError):
            await gw.send_private_text("zhangsan", "y")


@pytest.mark.parametrize("errcode", [45009, 45033])
async def test_rate_limit_errors_are_typed_and_not_hammered(errcode: int) -> None:
    """WeCom's frequency limits raise RateLimited at once (the outbox retries later)."""
    fake, t = FakeWeCom(), FakeTime()
    fake.fail["message/send"] = [errcode]
    async with wecom_gateway(fake, t) as (gw, _, _):
        with pytest.raises(RateLimited) as err:
            await gw.send_private_text("zhangsan", "x")
        assert err.value.errcode == errcode
        assert len(fake.api_calls("send")) == 1
        assert t.sleeps == []


async def test_wrong_secret_is_invalid_credential() -> None:
    """A secret WeCom does not know is a configuration error, not retried."""
    fake, t = FakeWeCom(), FakeTime()
    async with wecom_gateway(fake, t, app_secret="wrong") as (gw, _, _):
        with pytest.raises(InvalidCredential):
            await gw.send_private_text("zhangsan", "x")


async def test_partial_failure_sample() -> None:
    """The documented message/send answer is parsed field by field (invaliduser etc.)."""
    fake, t = FakeWeCom(partial_failure=True), FakeTime()
    async with wecom_gateway(fake, t) as (gw, _, _):
        result = await gw.send_markdown(["zhangsan", "userid1", "userid2"], "**提醒**")
    assert result.msgid == SAMPLES["message_send"]["msgid"]
    assert result.response_code == "xyzxyz"
    assert result.invalid_users == ("userid1", "userid2")
    assert result.invalid_parties == ("1", "2")
    assert result.invalid_tags == ("3", "4")
    assert result.unlicensed_users == ("userid3", "userid4")


async def test_invalid_only_recipient_raises() -> None:
    """If every recipient is in invaliduser the send failed: InvalidRecipient."""
    fake, t = FakeWeCom(invalid_users={"ghost"}), FakeTime()
    async with wecom_gateway(fake, t) as (gw, _, _):
        with pytest.raises(InvalidRecipient) as err:
            await gw.send_private_text("ghost", "x")
        assert err.value.users == ("ghost",)
        result = await gw.send_markdown(["ghost", "zhangsan"], "y")
        assert result.invalid_users == ("ghost",)
        assert len(fake.delivered) == 1


async def test_member_limits_per_minute_and_per_hour() -> None:
    """Messages to one member wait for its minute and hour buckets; others are not held up."""
    fake, t = FakeWeCom(), FakeTime()
    async with wecom_gateway(fake, t, member_per_minute=2, member_per_hour=3) as (gw, _, _):
        await gw.send_private_text("zhangsan", "1")
        await gw.send_private_text("zhangsan", "2")
        assert t.sleeps == []
        await gw.send_private_text("lisi", "other member")
        assert t.sleeps == []
        await gw.send_private_text("zhangsan", "3")
        assert t.sleeps == [30.0]  # 2/min → one token per 30 s
        await gw.send_private_text("zhangsan", "4")
        assert sum(t.sleeps) >= 1200 - 31  # 3/h → one token per 20 min
        assert len(fake.delivered) == 5


async def test_api_call_limit() -> None:
    """Calls per API path per minute are bounded by a token bucket."""
    fake, t = FakeWeCom(), FakeTime()
    async with wecom_gateway(fake, t, calls_per_api_per_minute=2) as (gw, _, _):
        for i in range(3):
            await gw.send_private_text(f"user{i}", "x")
        assert t.sleeps == [30.0]
