"""User-pool groups with precedence and IAM roles, as in Cognito: members carry
`cognito:groups` (by precedence), `cognito:roles` and `cognito:preferred_role` in their ID
tokens, which an identity pool's Token role mapping turns into the role."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from gateway.credentials.roles import choose_role
from gateway.credentials.web_identity import provider_name
from gateway.settings import IdentityPoolSettings
from gateway.users.directory import InvalidAttribute
from tests.helpers import Browser, GatewayServer, RedisServer, free_port, make_settings, redeem

ADMINS = "arn:aws:iam::123456789012:role/admins"
ANALYSTS = "arn:aws:iam::123456789012:role/analysts"


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer) -> Iterator[GatewayServer]:
    server = GatewayServer(
        make_settings(
            free_port(),
            redis_server.url,
            user_pool={
                "groups": [
                    {"name": "analysts", "precedence": 20, "role_arn": ANALYSTS},
                    {"name": "admins", "precedence": 1, "role_arn": ADMINS},
                    {"name": "readers", "precedence": 5},
                ]
            },
        )
    ).start()
    yield server
    server.stop()


async def test_group_claims_and_the_token_role_mapping(gateway: GatewayServer) -> None:
    email = f"grp-{secrets.token_hex(3)}@example.com"
    user = await gateway.add_user(email, email_verified=True)
    await gateway.call(
        lambda s: s.users.set_groups(user.user_id, ["analysts", "admins", "readers"], [])
    )
    with pytest.raises(InvalidAttribute, match="no group nope"):
        await gateway.call(lambda s: s.users.set_groups(user.user_id, ["nope"], []))
    browser = Browser(gateway.url)
    try:
        code, verifier, _ = await browser.login_for_code(email)  # scope includes profile
        tokens = (await redeem(browser.http, code, verifier)).json()
    finally:
        await browser.aclose()
    keys = KeySet.import_key_set(httpx.get(f"{gateway.url}/.well-known/jwks.json").json())
    claims = jwt.decode(tokens["id_token"], keys).claims
    assert claims["cognito:groups"] == ["admins", "readers", "analysts"]  # by precedence
    assert claims["cognito:roles"] == [ADMINS, ANALYSTS]
    assert claims["cognito:preferred_role"] == ADMINS
    provider = provider_name(gateway.url)
    pool = IdentityPoolSettings.model_validate(
        {
            "id": "us-east-1:11111111-2222-4333-8444-999999999999",
            "name": "groups",
            "providers": [{"type": "cognate"}],
            "roles": {"authenticated": "arn:aws:iam::123456789012:role/everyone"},
            "role_mappings": {provider: {"type": "Token"}},
        }
    )
    assert choose_role(pool, provider, claims) == ADMINS
    assert choose_role(pool, provider, claims, custom_role_arn=ANALYSTS) == ANALYSTS
