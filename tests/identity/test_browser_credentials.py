"""GET /credentials: AWS credentials for a signed-in browser session (no SDK needed)."""

from __future__ import annotations

import secrets

from joserfc import jwt

from tests.helpers import Browser, GatewayServer
from tests.identity.conftest import AUTH_ROLE, POOL, StsFront
from tests.identity.test_cognito_api import jwks


async def signed_in(gateway: GatewayServer, verified: bool = True) -> tuple[Browser, str]:
    email = f"browser-{secrets.token_hex(4)}@example.com"
    await gateway.add_user(email, email_verified=verified)
    browser = Browser(gateway.url)
    await browser.login_for_code(email)
    return browser, email


async def test_signed_in_browser_gets_credentials(pools: GatewayServer, sts: StsFront) -> None:
    browser, email = await signed_in(pools)
    sts.reset()
    try:
        response = await browser.http.get(
            f"/credentials?pool={POOL}", headers={"Origin": "https://spa.example.com"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"} <= set(body)
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["access-control-allow-origin"] == "https://spa.example.com"
        assert sts.requests[-1]["RoleArn"] == AUTH_ROLE
        assert sts.requests[-1]["RoleSessionName"] == email
        claims = jwt.decode(sts.requests[-1]["WebIdentityToken"], jwks(pools)).claims
        assert claims["sub"] == body["IdentityId"] and claims["aud"] == POOL
        # Another origin gets no CORS grant.
        other = await browser.http.get(
            f"/credentials?pool={POOL}", headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
    finally:
        await browser.aclose()


async def test_not_signed_in_or_denied(pools: GatewayServer, sts: StsFront) -> None:
    stranger = Browser(pools.url)
    try:
        assert (await stranger.http.get(f"/credentials?pool={POOL}")).status_code == 401
    finally:
        await stranger.aclose()
    browser, _ = await signed_in(pools, verified=False)  # the pool's rules deny unverified users
    sts.reset()
    try:
        response = await browser.http.get(f"/credentials?pool={POOL}")
        assert response.status_code == 403
        assert response.json()["error"] == "NotAuthorizedException"
        assert sts.requests == []
        unknown = await browser.http.get("/credentials?pool=us-east-1:nope")
        assert unknown.status_code == 404
    finally:
        await browser.aclose()
