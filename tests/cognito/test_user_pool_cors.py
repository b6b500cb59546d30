"""CORS on the user-pool API (Amplify calls it from the page): an answer names the page's origin
only when the app client the call is about allows it — the ClientId of InitiateAuth and its
kind, the access token's client for GetUser and the other signed-in operations, which carry
no ClientId. Preflights (no body: no client to ask) are answered for every registered origin."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import GatewayServer, RedisServer, free_port, make_settings

PASSWORD = "correct horse battery"
SHOP, BLOG = "https://shop.example.test", "https://blog.example.test"


@pytest.fixture(scope="module")
def pool(redis_server: RedisServer) -> Iterator[GatewayServer]:
    port = free_port()
    flows = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    clients = [c.model_dump() for c in make_settings(port, redis_server.url).clients] + [
        {
            "client_id": client_id,
            "token_endpoint_auth_method": "none",
            "grant_types": ["refresh_token"],
            "explicit_auth_flows": flows,
            "allowed_origins": [origin],
        }
        for client_id, origin in (("shop", SHOP), ("blog", BLOG))
    ]
    settings = make_settings(
        port, redis_server.url, clients=clients, user_pool={"id": "eu-west-1_CorsPool1"}
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


def call(operation: str, body: dict[str, object], origin: str) -> tuple[str, dict[str, str]]:
    return (
        json.dumps(body),
        {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"AWSCognitoIdentityProviderService.{operation}",
            "Origin": origin,
        },
    )


async def test_an_answer_names_only_the_origins_of_the_client_it_is_about(
    pool: GatewayServer,
) -> None:
    email = f"cors{uuid.uuid4().hex[:8]}@example.com"
    await pool.add_user(email, PASSWORD, email_verified=True)
    sign_in = {
        "AuthFlow": "USER_PASSWORD_AUTH",
        "ClientId": "shop",
        "AuthParameters": {"USERNAME": email, "PASSWORD": PASSWORD},
    }
    async with httpx.AsyncClient(base_url=pool.url) as http:
        body, headers = call("InitiateAuth", sign_in, SHOP)
        signed_in = await http.post("/", content=body, headers=headers)
        assert signed_in.status_code == 200
        assert signed_in.headers["access-control-allow-origin"] == SHOP
        token = signed_in.json()["AuthenticationResult"]["AccessToken"]
        body, headers = call("InitiateAuth", sign_in, BLOG)  # blog's page, shop's client
        elsewhere = await http.post("/", content=body, headers=headers)
        assert "access-control-allow-origin" not in elsewhere.headers

        # No ClientId in these operations: the token's client decides, whatever is added.
        for extra in ({}, {"ClientId": "blog"}):
            for origin, named in ((SHOP, True), (BLOG, False)):
                body, headers = call("GetUser", {"AccessToken": token, **extra}, origin)
                answer = await http.post("/", content=body, headers=headers)
                assert answer.status_code == 200, answer.text
                allowed = answer.headers.get("access-control-allow-origin")
                assert allowed == (origin if named else None), (extra, origin)
                assert answer.headers["vary"] == "Origin"

        preflight = await http.options(
            "/",
            headers={
                "Origin": BLOG,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-amz-target,x-amz-user-agent",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == BLOG
        assert uuid.UUID(preflight.headers["x-amzn-requestid"]).version == 4
