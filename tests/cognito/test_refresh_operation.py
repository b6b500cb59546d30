"""GetTokensFromRefreshToken through stock boto3 `cognito-idp`: what Amplify v6 refreshes
with (REFRESH_TOKEN_AUTH as an operation of its own). A client with a secret sends the secret
itself; a revoked, foreign or mangled refresh token refreshes nothing."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.cognito.test_user_pool_api import (
    FLOWS,
    PASSWORD,
    error_of,
    idp,
    in_model,
    secret_hash,
)
from tests.helpers import GatewayServer, RedisServer, free_port, make_settings

SECRET = "backend-secret-0123456789"


@pytest.fixture(scope="module")
def pool(redis_server: RedisServer) -> Iterator[GatewayServer]:
    port = free_port()
    clients = [
        {"client_id": "app", "token_endpoint_auth_method": "none", "explicit_auth_flows": FLOWS,
         "grant_types": ["refresh_token"]},
        {"client_id": "other", "token_endpoint_auth_method": "none", "explicit_auth_flows": FLOWS,
         "grant_types": ["refresh_token"]},
        {"client_id": "backend", "client_secret": SECRET, "explicit_auth_flows": FLOWS,
         "grant_types": ["refresh_token"]},
        {"client_id": "norefresh", "token_endpoint_auth_method": "none", "grant_types": [],
         "explicit_auth_flows": ["ALLOW_USER_PASSWORD_AUTH"]},
    ]  # fmt: skip
    settings = make_settings(
        port, redis_server.url, clients=clients, user_pool={"id": "eu-west-1_Refresh01"}
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


async def signed_in(pool: GatewayServer, client_id: str = "app") -> dict[str, str]:
    email = f"r{secrets.token_hex(4)}@example.com"
    await pool.add_user(email, PASSWORD, email_verified=True)
    parameters = {"USERNAME": email, "PASSWORD": PASSWORD}
    if client_id == "backend":
        parameters["SECRET_HASH"] = secret_hash(email, client_id, SECRET)
    answer = idp(pool).initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH", ClientId=client_id, AuthParameters=parameters
    )
    return dict(answer["AuthenticationResult"])


async def test_new_tokens_for_a_live_refresh_token(pool: GatewayServer) -> None:
    client = idp(pool)
    first = await signed_in(pool)
    answer = client.get_tokens_from_refresh_token(
        ClientId="app", RefreshToken=first["RefreshToken"]
    )
    in_model("GetTokensFromRefreshToken", answer)
    result = answer["AuthenticationResult"]
    assert {"AccessToken", "IdToken", "ExpiresIn", "TokenType"} <= set(result)
    assert result["AccessToken"] != first["AccessToken"]
    assert client.get_user(AccessToken=result["AccessToken"])["Username"]

    # Another client's token, a mangled one, a revoked one: "Invalid Refresh Token".
    refused = ("NotAuthorizedException", "Invalid Refresh Token")
    call = client.get_tokens_from_refresh_token
    assert error_of(call, ClientId="other", RefreshToken=first["RefreshToken"]) == refused
    assert error_of(call, ClientId="app", RefreshToken=first["RefreshToken"] + "x") == refused
    client.revoke_token(ClientId="app", Token=first["RefreshToken"])
    assert error_of(call, ClientId="app", RefreshToken=first["RefreshToken"]) == refused
    assert error_of(call, ClientId="nope", RefreshToken="a.b")[0] == "ResourceNotFoundException"
    assert error_of(call, ClientId="norefresh", RefreshToken="a.b") == (
        "InvalidParameterException",
        "REFRESH_TOKEN_AUTH flow not enabled for this client",
    )


async def test_a_client_with_a_secret_sends_it(pool: GatewayServer) -> None:
    client = idp(pool)
    first = await signed_in(pool, "backend")
    token = first["RefreshToken"]
    bad = ("NotAuthorizedException", "Unable to verify secret hash for client backend")
    call = client.get_tokens_from_refresh_token
    assert error_of(call, ClientId="backend", RefreshToken=token) == bad
    assert error_of(call, ClientId="backend", RefreshToken=token, ClientSecret="x" * 25) == bad
    answer = call(ClientId="backend", RefreshToken=token, ClientSecret=SECRET)
    assert answer["AuthenticationResult"]["IdToken"]
