"""SECURITY-TESTS F45 (duration): the credentials' lifetime asked of STS is bounded to what IAM
allows any role, 900 s to 43,200 s (settings refuse anything else), what is configured is
exactly what STS is asked for and what the caller gets, and a role whose own maximum is lower
gets one hour (STS says so; every role allows an hour) instead of an error."""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.errors import ConfigError
from tests.helpers import GatewayServer, RedisServer, free_port, make_settings
from tests.identity.conftest import CLOSED_POOL, StsFront, client, id_token, pool_settings


def with_duration(duration: Any, sts_url: str = "http://127.0.0.1:1/") -> list[dict[str, Any]]:
    pools = pool_settings("http://127.0.0.1:1", "http://127.0.0.1:2", sts_url)
    for pool in pools:
        pool["sts"] = {**pool["sts"], "duration": duration}
    return pools


@pytest.mark.parametrize("duration", [1, 899, "14m", 43201, "13h"])
def test_durations_outside_what_iam_allows_are_refused(duration: Any) -> None:
    with pytest.raises(ConfigError, match="between 900 s"):
        make_settings(free_port(), "redis://127.0.0.1:1/0", identity_pools=with_duration(duration))


@pytest.mark.parametrize(("duration", "seconds"), [(900, 900), ("15m", 900), ("12h", 43200)])
def test_the_bounds_themselves_are_allowed(duration: Any, seconds: int) -> None:
    settings = make_settings(
        free_port(), "redis://127.0.0.1:1/0", identity_pools=with_duration(duration)
    )
    assert {pool.sts.duration for pool in settings.identity_pools} == {seconds}


@pytest.fixture(scope="module")
def short_pools(redis_server: RedisServer, sts: StsFront) -> Iterator[GatewayServer]:
    """Identity pools whose credentials last the shortest time IAM allows."""
    port = free_port()
    pools = with_duration(900, sts.server.url)
    server = GatewayServer(make_settings(port, redis_server.url, identity_pools=pools)).start()
    yield server
    server.stop()


async def signed_in(gateway: GatewayServer) -> tuple[Any, str, dict[str, str]]:
    """A new user's boto3 client, identity in CLOSED_POOL and logins (an ID token)."""
    email = f"user-{secrets.token_hex(4)}@example.com"
    await gateway.add_user(email, email_verified=True)
    logins = {gateway.url.removeprefix("http://"): await id_token(gateway, email)}
    api = client(gateway)
    return api, api.get_id(IdentityPoolId=CLOSED_POOL, Logins=logins)["IdentityId"], logins


async def test_the_configured_duration_is_what_sts_is_asked_for(
    short_pools: GatewayServer, sts: StsFront
) -> None:
    api, identity, logins = await signed_in(short_pools)
    sts.reset()
    answer = api.get_credentials_for_identity(IdentityId=identity, Logins=logins)
    assert [r["DurationSeconds"] for r in sts.requests] == ["900"]
    left = answer["Credentials"]["Expiration"] - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(seconds=800) < left <= datetime.timedelta(seconds=900)


@pytest.fixture(scope="module")
def long_pools(redis_server: RedisServer, sts: StsFront) -> Iterator[GatewayServer]:
    """Identity pools asking for the longest credentials IAM allows any role."""
    pools = with_duration("12h", sts.server.url)
    server = GatewayServer(make_settings(free_port(), redis_server.url, identity_pools=pools))
    yield server.start()
    server.stop()


async def test_a_role_with_a_lower_maximum_gets_an_hour(
    long_pools: GatewayServer, sts: StsFront
) -> None:
    api, identity, logins = await signed_in(long_pools)
    sts.reset()
    # What AWS answers for a DurationSeconds above the role's MaxSessionDuration.
    sts.faults.append(
        (
            400,
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        )
    )
    answer = api.get_credentials_for_identity(IdentityId=identity, Logins=logins)
    assert [r["DurationSeconds"] for r in sts.requests] == ["43200", "3600"]
    assert answer["Credentials"]["AccessKeyId"]


async def test_the_shortest_credentials_are_still_cached_for_half_their_life(
    short_pools: GatewayServer, sts: StsFront
) -> None:
    """Cached credentials renew 15 minutes before they expire (SDKs ask again from then on),
    or half-way through a shorter life: 15-minute ones are kept for 7.5 minutes, not never."""
    api, identity, logins = await signed_in(short_pools)
    sts.reset()
    first = api.get_credentials_for_identity(IdentityId=identity, Logins=logins)
    again = api.get_credentials_for_identity(IdentityId=identity, Logins=logins)
    assert len(sts.requests) == 1
    assert again["Credentials"]["AccessKeyId"] == first["Credentials"]["AccessKeyId"]


def test_cached_credentials_keep_what_sdks_need_left() -> None:
    from gateway.credentials.vendor import refresh_margin

    # botocore refreshes from 15 minutes before expiry: no cached answer has less left.
    assert refresh_margin(3600) == refresh_margin(43200) == 15 * 60
    assert refresh_margin(900) == 450 and refresh_margin(1200) == 600
