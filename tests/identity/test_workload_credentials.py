"""A workload's exchanged token at the identity pool: a GitHub-Actions-shaped token becomes a
Cognate ID token (RFC 8693, `requested_token_type` id_token), which boto3's cognito-identity
client takes to GetId and GetCredentialsForIdentity; moto's STS (the only stand-in: AWS
itself) receives a RoleSessionName naming the workload."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from botocore.exceptions import ClientError
from joserfc import jws

from tests.helpers import GatewayServer, RedisServer, free_port, make_settings
from tests.identity.conftest import AUTH_ROLE, POOL, StsFront, client
from tests.workload_issuer import WorkloadIssuer

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AUD = "https://cognate.example.test"


@pytest.fixture(scope="module")
def github() -> Iterator[WorkloadIssuer]:
    issuer = WorkloadIssuer().start()
    yield issuer
    issuer.stop()


@pytest.fixture(scope="module")
def workloads(
    redis_server: RedisServer, github: WorkloadIssuer, sts: StsFront
) -> Iterator[GatewayServer]:
    port = free_port()
    base = make_settings(port, redis_server.url)
    settings = make_settings(
        port,
        redis_server.url,
        clients=[
            *[c.model_dump(exclude_none=True) for c in base.clients],
            {
                "client_id": "ci",
                "token_endpoint_auth_method": "none",
                "grant_types": [EXCHANGE],
                # As the README's workload example: only the identity pool reads these.
                "id_token_signed_response_alg": "ES256",
            },
        ],
        token_exchange={
            "trust": [
                {
                    "name": "github-main",
                    "issuer": github.issuer,
                    "audience": AUD,
                    "claims": {"repository": "org/*", "ref": "refs/heads/main"},
                }
            ]
        },
        identity_pools=[
            {
                "id": POOL,
                "name": "Workloads",
                "providers": [{"type": "cognate", "client_ids": ["ci"]}],
                "roles": {"authenticated": AUTH_ROLE},
                "sts": {"endpoint": sts.server.url},
            }
        ],
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


async def test_exchanged_token_gets_aws_credentials_named_after_the_workload(
    workloads: GatewayServer, github: WorkloadIssuer, sts: StsFront
) -> None:
    async with httpx.AsyncClient(base_url=workloads.url) as http:
        answer = await http.post(
            "/oauth2/token",
            data={
                "grant_type": EXCHANGE,
                "client_id": "ci",
                "subject_token": github.github(AUD, repository="org/deployer"),
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "requested_token_type": "urn:ietf:params:oauth:token-type:id_token",
            },
        )
    assert answer.status_code == 200, answer.text
    id_token = answer.json()["access_token"]
    assert jws.extract_compact(id_token.encode()).headers()["alg"] == "ES256"
    sts.reset()
    api = client(workloads)
    logins = {workloads.url.removeprefix("http://"): id_token}
    identity = api.get_id(IdentityPoolId=POOL, Logins=logins)["IdentityId"]
    creds = api.get_credentials_for_identity(IdentityId=identity, Logins=logins)
    assert creds["IdentityId"] == identity
    assert creds["Credentials"]["AccessKeyId"] and creds["Credentials"]["SessionToken"]
    sent = sts.requests[-1]
    assert sent["Action"] == "AssumeRoleWithWebIdentity" and sent["RoleArn"] == AUTH_ROLE
    assert sent["RoleSessionName"] == "repo-org-deployer-ref-refs-heads-main"
    # An access token from the same exchange is not an ID token: no login, no STS call.
    async with httpx.AsyncClient(base_url=workloads.url) as http:
        access = await http.post(
            "/oauth2/token",
            data={
                "grant_type": EXCHANGE,
                "client_id": "ci",
                "subject_token": github.github(AUD, repository="org/deployer"),
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            },
        )
    sts.reset()
    with pytest.raises(ClientError) as caught:
        api.get_credentials_for_identity(
            IdentityId=identity,
            Logins={workloads.url.removeprefix("http://"): access.json()["access_token"]},
        )
    assert caught.value.response["Error"]["Code"] == "NotAuthorizedException"
    assert sts.requests == []
