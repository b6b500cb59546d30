"""The whole path — hosted sign-in, code exchange, GetId, credentials — on Redis Cluster and
Sentinel, with two gateway replicas sharing the store (keys, sessions, identities)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from tests.helpers import GatewayServer, free_port, make_settings
from tests.identity.conftest import (
    ADMIN_KEY,
    AUTH_ROLE,
    POOL,
    StsFront,
    client,
    id_token,
    pool_settings,
)


@pytest.fixture(params=["cluster", "sentinel"])
def replicas(
    request: pytest.FixtureRequest, sts: StsFront, idp: GatewayServer
) -> Iterator[tuple[GatewayServer, GatewayServer]]:
    url = request.getfixturevalue(f"redis_{request.param}").url
    issuer_port = free_port()
    # Two replicas of one issuer (as behind a load balancer), sharing the store.
    settings = make_settings(
        issuer_port,
        url,
        store={"url": url, "prefix": f"scale{secrets.token_hex(3)}"},
        identity_pools=pool_settings(f"http://127.0.0.1:{issuer_port}", idp.url, sts.server.url),
        admin_keys=[{"access_key_id": ADMIN_KEY[0], "secret_access_key": ADMIN_KEY[1]}],
    )
    servers = [GatewayServer(settings), GatewayServer(settings, port=free_port())]
    for server in servers:
        server.start()
    yield servers[0], servers[1]
    for server in servers:
        server.stop()


async def test_sign_in_to_credentials_across_replicas(
    replicas: tuple[GatewayServer, GatewayServer], sts: StsFront
) -> None:
    one, two = replicas
    email = f"scale-{secrets.token_hex(4)}@example.com"
    await one.add_user(email, email_verified=True)
    token = await id_token(one, email)  # signed in and redeemed on replica one
    provider = one.url.removeprefix("http://")
    # Replica two verifies replica one's token (shared keys) and resolves the same identity.
    api_two, api_one = client(two), client(one)
    identity = api_two.get_id(IdentityPoolId=POOL, Logins={provider: token})["IdentityId"]
    assert api_one.get_id(IdentityPoolId=POOL, Logins={provider: token})["IdentityId"] == identity
    sts.reset()
    creds = api_two.get_credentials_for_identity(IdentityId=identity, Logins={provider: token})
    assert creds["IdentityId"] == identity and sts.requests[-1]["RoleArn"] == AUTH_ROLE
    again = api_one.get_credentials_for_identity(IdentityId=identity, Logins={provider: token})
    assert again["Credentials"]["AccessKeyId"] == creds["Credentials"]["AccessKeyId"]
    assert len(sts.requests) == 1  # the cache is shared, not per replica


async def test_parallel_first_logins_on_both_replicas_make_one_identity(
    replicas: tuple[GatewayServer, GatewayServer], idp: GatewayServer
) -> None:
    one, two = replicas
    email = f"race-{secrets.token_hex(4)}@example.com"
    await idp.add_user(email, email_verified=True)
    token = await id_token(idp, email)
    provider = idp.url.removeprefix("http://")
    apis = [client(one), client(two)]
    answers = await asyncio.gather(
        *(
            asyncio.to_thread(apis[i % 2].get_id, IdentityPoolId=POOL, Logins={provider: token})
            for i in range(100)
        )
    )
    assert len({a["IdentityId"] for a in answers}) == 1
