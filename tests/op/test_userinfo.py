"""UserInfo: SECURITY-TESTS A13."""

from __future__ import annotations

import time

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.helpers import Browser, GatewayServer, redeem


async def tokens(
    browser: Browser, http: httpx.AsyncClient, user: str, scope: str
) -> dict[str, str]:
    code, verifier, _ = await browser.login_for_code(user, scope=scope)
    return dict((await redeem(http, code, verifier)).json())


async def test_userinfo_get_and_post_release_claims_by_scope(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    t = await tokens(browser, http, user, "openid email")
    got = await http.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {t['access_token']}"}
    )
    assert got.status_code == 200
    body = got.json()
    assert body["email"] == user and body["email_verified"] is True
    assert "name" not in body  # profile scope not granted
    assert body["sub"].startswith("us-east-1:")
    posted = await http.post("/oauth2/userinfo", data={"access_token": t["access_token"]})
    assert posted.json() == body


async def test_userinfo_rejects_bad_tokens(
    gateway: GatewayServer, browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    t = await tokens(browser, http, user, "openid email")

    async def status(header: str | None) -> tuple[int, str]:
        headers = {"Authorization": header} if header else {}
        r = await http.get("/oauth2/userinfo", headers=headers)
        return r.status_code, r.headers.get("www-authenticate", "")

    # missing, wrong scheme, garbage, an ID token used as an access token
    for header in (None, f"Basic {t['access_token']}", "Bearer garbage", f"Bearer {t['id_token']}"):
        code, challenge = await status(header)
        assert code == 401, header
        assert challenge.startswith("Bearer"), header

    # a token signed by a key that is not ours, with our kid and claims
    foreign = ECKey.generate_key("P-256", private=True)
    header = {"alg": "ES256", "kid": gateway.services.keys.current("ES256").kid, "typ": "at+jwt"}
    now = int(time.time())
    forged = jwt.encode(
        header,
        {
            "iss": gateway.url,
            "sub": "x",
            "client_id": "web",
            "jti": "j",
            "iat": now,
            "exp": now + 60,
            "scope": "openid",
        },
        foreign,
    )
    assert (await status(f"Bearer {forged}"))[0] == 401

    # revoked
    revoke = await http.post(
        "/oauth2/revoke", auth=("web", "web-secret-0123456789"), data={"token": t["access_token"]}
    )
    assert revoke.status_code == 200
    assert (await status(f"Bearer {t['access_token']}"))[0] == 401


async def test_userinfo_rejects_expired_token(
    gateway: GatewayServer, browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    t = await tokens(browser, http, user, "openid")
    access, _ = gateway.services.tokens.access_token(
        sub="us-east-1:x",
        client_id="web",
        scope=frozenset({"openid"}),
        gid="0" * 32,
        now=int(time.time()) - 7200,
    )
    r = await http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert r.status_code == 401
    assert "expired" in r.json()["error_description"]
    assert t  # the fixture user's flow worked; only the forged-old token is refused


async def test_client_credentials_token_is_not_for_userinfo(http: httpx.AsyncClient) -> None:
    t = (
        await http.post(
            "/oauth2/token",
            auth=("service", "service-secret-0123456789"),
            data={"grant_type": "client_credentials"},
        )
    ).json()
    r = await http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {t['access_token']}"})
    assert r.status_code == 401
