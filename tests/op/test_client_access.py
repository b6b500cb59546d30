"""Per-client access policies: the forward-auth policy language decides who may sign in to an
OIDC client (SSO for internal tools with access rules and no code of their own)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.helpers import (
    Browser,
    GatewayServer,
    RedisServer,
    code_flow_params,
    forwarded,
    free_port,
    location_query,
    make_settings,
)


@pytest.fixture(scope="module")
def staff_only(redis_server: RedisServer) -> Iterator[GatewayServer]:
    settings = make_settings(free_port(), redis_server.url)
    clients = [c.model_dump() for c in settings.clients]
    clients[0]["access"] = {"email_domains": ["staff.example"]}
    gateway = GatewayServer(
        make_settings(
            int(settings.issuer.rsplit(":", 1)[1]),
            redis_server.url,
            clients=clients,
            forward_auth={"policies": [{"path": "/vault", "mfa": True}]},
        )
    ).start()
    yield gateway
    gateway.stop()


async def test_only_users_the_client_policy_allows_get_a_code(staff_only: GatewayServer) -> None:
    inside = f"ada-{secrets.token_hex(3)}@staff.example"
    outside = f"eve-{secrets.token_hex(3)}@example.com"
    for email in (inside, outside):
        await staff_only.add_user(email, email_verified=True)
    allowed = Browser(staff_only.url)
    refused = Browser(staff_only.url)
    try:
        code, _, _ = await allowed.login_for_code(inside)
        assert code
        answer = await refused.sign_in(await refused.authorize(**code_flow_params()), outside)
        query = location_query(answer)
        assert "code" not in query
        assert query["error"] == "access_denied"
        assert query["error_description"] == (
            "the rule for application web allows only e-mail domains staff.example"
        )
        # Another client without a policy still signs the same user in (same session).
        _, _, spa = await refused.login_for_code(
            outside, client_id="spa", redirect_uri="https://spa.example.com/cb"
        )
        assert "code" in location_query(spa)
    finally:
        await allowed.aclose()
        await refused.aclose()


async def test_a_route_can_require_a_second_factor(staff_only: GatewayServer) -> None:
    email = f"pwd-{secrets.token_hex(3)}@staff.example"
    await staff_only.add_user(email, email_verified=True)
    browser = Browser(staff_only.url)
    try:
        await browser.login_for_code(email)
        answer = await browser.http.get(
            "/oauth2/auth", headers=forwarded("http://tools.example/vault/keys")
        )
        assert answer.status_code == 403  # a password alone is one factor
        assert "requires a sign-in with a second factor" in answer.text
        elsewhere = await browser.http.get(
            "/oauth2/auth", headers=forwarded("http://tools.example/wiki")
        )
        assert elsewhere.status_code == 202
    finally:
        await browser.aclose()
