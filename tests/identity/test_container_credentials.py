"""Sidecar mode's container-credentials endpoint, driven by botocore's own container provider
(`AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`), with
moto_server as STS behind the recording front."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.credentials import ContainerProvider
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.helpers import GatewayServer, RedisServer, free_port, make_settings
from tests.identity.conftest import DEVELOPER, POOL, StsFront, pool_settings


@pytest.fixture
def workload(
    redis_server: RedisServer, idp: GatewayServer, sts: StsFront, tmp_path: Path
) -> Iterator[tuple[GatewayServer, Path]]:
    port = free_port()
    token_file = tmp_path / "run" / "aws-token"
    settings = make_settings(
        port,
        redis_server.url,
        identity_pools=pool_settings(f"http://127.0.0.1:{port}", idp.url, sts.server.url),
        sidecar={
            "upstream": "http://127.0.0.1:9",
            "credentials": {
                "identity_pool": POOL,
                "developer_provider": DEVELOPER,
                "workload": "billing-app",
                "token_path": str(token_file),
            },
        },
    )
    server = GatewayServer(settings).start()
    yield server, token_file
    server.stop()


async def test_the_aws_sdk_gets_role_credentials_for_the_workload(
    workload: tuple[GatewayServer, Path], sts: StsFront, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, token_file = workload
    assert token_file.is_file() and len(token_file.read_text()) >= 32
    monkeypatch.setenv(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{gateway.url}/_cognate/aws/credentials"
    )
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token_file))
    sts.reset()
    credentials = await asyncio.to_thread(lambda: ContainerProvider().load())
    assert credentials is not None
    frozen = credentials.get_frozen_credentials()
    assert frozen.access_key.startswith("ASIA") and frozen.token
    # What the gateway asked STS for: the pool's role, a web-identity token for the workload's
    # identity in the pool, a session named after the workload.
    call = sts.requests[-1]
    assert call["Action"] == "AssumeRoleWithWebIdentity"
    assert call["RoleSessionName"] == "billing-app"
    keys = KeySet.import_key_set(httpx.get(f"{gateway.url}/.well-known/jwks.json").json())
    claims = jwt.decode(call["WebIdentityToken"], keys).claims
    assert claims["aud"] == POOL and claims["sub"].startswith("us-east-1:")
    assert DEVELOPER in claims["amr"]


async def test_a_wrong_or_missing_token_gets_nothing(
    workload: tuple[GatewayServer, Path],
) -> None:
    gateway, _ = workload
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        for headers in ({}, {"Authorization": "guess"}):
            answer = await client.get("/_cognate/aws/credentials", headers=headers)
            assert answer.status_code == 401
            assert "AccessKeyId" not in answer.text
