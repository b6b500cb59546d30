"""The token endpoint: SECURITY-TESTS A4-A7, A10, A11."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpx
import pytest
import redis.asyncio as redis_async

from tests.helpers import WEB, Browser, GatewayServer, redeem


async def userinfo_status(http: httpx.AsyncClient, access_token: str) -> int:
    response = await http.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {access_token}"}
    )
    return response.status_code


async def test_code_exchange_returns_tokens_no_store(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    code, verifier, _ = await browser.login_for_code(user, scope="openid email offline_access")
    response = await redeem(http, code, verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert {"access_token", "id_token", "refresh_token", "expires_in"} <= body.keys()
    assert body["scope"] == "openid email offline_access"


async def test_code_reuse_fails_and_revokes_first_tokens(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    code, verifier, _ = await browser.login_for_code(user)
    first = await redeem(http, code, verifier)
    assert first.status_code == 200
    tokens = first.json()
    assert await userinfo_status(http, tokens["access_token"]) == 200
    second = await redeem(http, code, verifier)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert await userinfo_status(http, tokens["access_token"]) == 401
    refreshed = await http.post(
        "/oauth2/token",
        auth=WEB,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert refreshed.json()["error"] == "invalid_grant"


async def test_fifty_parallel_redemptions_have_exactly_one_winner(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    code, verifier, _ = await browser.login_for_code(user)
    responses = await asyncio.gather(*(redeem(http, code, verifier) for _ in range(50)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 1, statuses
    assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code != 200)
    winner = next(r for r in responses if r.status_code == 200).json()
    # The losers were code reuse: what the winner got is revoked.
    assert await userinfo_status(http, winner["access_token"]) == 401


async def test_code_bound_to_client_and_redirect_uri(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    code, verifier, _ = await browser.login_for_code(user)
    other_uri = await redeem(http, code, verifier, redirect_uri="https://app.example.com/cb2")
    assert other_uri.json()["error"] == "invalid_grant"
    missing_uri = await http.post(
        "/oauth2/token",
        auth=WEB,
        data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
    )
    assert missing_uri.json()["error"] == "invalid_grant"
    other_client = await redeem(http, code, verifier, auth=None, client_id="spa")
    assert other_client.json()["error"] == "invalid_grant"
    # None of the failures consumed the code: the rightful client can still use it.
    assert (await redeem(http, code, verifier)).status_code == 200


async def test_unknown_and_garbage_codes(http: httpx.AsyncClient) -> None:
    for code in ("nope", "x" * 43, ""):
        response = await redeem(http, code, "v" * 43)
        assert response.status_code == 400
        assert response.json()["error"] in ("invalid_grant", "invalid_request")


async def test_a_code_past_its_lifetime_is_invalid_grant(
    browser: Browser, http: httpx.AsyncClient, gateway: GatewayServer, user: str
) -> None:
    """SECURITY-TESTS A5: a code lives `tokens.code_ttl` in the store, and not a moment more."""
    code, verifier, _ = await browser.login_for_code(user)
    key = gateway.services.grants._code_key(code)
    r = redis_async.Redis.from_url(gateway.settings.store.url)
    try:
        assert 0 < await r.ttl(key) <= gateway.settings.tokens.code_ttl
        # The store's clock moves past the code's lifetime (no sleeping through it).
        assert await r.pexpireat(key, int(time.time() * 1000) - 1)
    finally:
        await r.aclose()
    response = await redeem(http, code, verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "verifier",
    [None, "", "wrong-" + "v" * 43, "short", "v" * 129, "bad chars!" + "v" * 40],
)
async def test_pkce_verifier_must_match(
    browser: Browser, http: httpx.AsyncClient, user: str, verifier: str | None
) -> None:
    code, _, _ = await browser.login_for_code(user)
    response = await redeem(http, code, verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_public_client_exchange_with_pkce(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    code, verifier, _ = await browser.login_for_code(
        user, client_id="spa", redirect_uri="https://spa.example.com/cb"
    )
    response = await redeem(
        http, code, verifier, auth=None, client_id="spa", redirect_uri="https://spa.example.com/cb"
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("auth", "form"),
    [
        (("web", "wrong-secret-0123456789"), {}),
        (None, {"client_id": "web"}),  # no secret
        (None, {"client_id": "web", "client_secret": "wrong"}),  # post, wrong
        (("nobody", "whatever-secret-123"), {}),  # unknown client
        (("spa", "a-secret-for-a-public-client"), {}),  # public with secret
    ],
)
async def test_bad_client_authentication_is_401_with_challenge(
    http: httpx.AsyncClient, auth: tuple[str, str] | None, form: dict[str, str]
) -> None:
    response = await http.post(
        "/oauth2/token", auth=auth, data={"grant_type": "client_credentials", **form}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_two_auth_methods_at_once_is_invalid_request(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/oauth2/token",
        auth=WEB,
        data={"grant_type": "client_credentials", "client_secret": WEB[1]},
    )
    assert response.json()["error"] == "invalid_request"


async def test_malformed_basic_header(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/oauth2/token",
        headers={"Authorization": "Basic !!!"},
        data={"grant_type": "client_credentials"},
    )
    assert response.status_code == 401


async def test_urlencoded_basic(http: httpx.AsyncClient) -> None:
    raw = base64.b64encode(b"service:service-secret-0123456789").decode()
    basic = await http.post(
        "/oauth2/token",
        headers={"Authorization": f"Basic {raw}"},
        data={"grant_type": "client_credentials"},
    )
    assert basic.status_code == 200


async def test_unsupported_grants(http: httpx.AsyncClient) -> None:
    for grant in ("password", "implicit"):
        response = await http.post(
            "/oauth2/token", auth=WEB, data={"grant_type": grant, "username": "a", "password": "b"}
        )
        assert response.json()["error"] == "unsupported_grant_type"
    # The device grant exists (RFC 8628), but only for clients registered for it.
    device = await http.post(
        "/oauth2/token",
        auth=WEB,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "x"},
    )
    assert device.json()["error"] == "unauthorized_client"


async def test_token_endpoint_refuses_json_bodies(http: httpx.AsyncClient) -> None:
    response = await http.post("/oauth2/token", auth=WEB, json={"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# -- refresh tokens ---------------------------------------------------------------------------


async def tokens_for(
    browser: Browser,
    http: httpx.AsyncClient,
    user: str,
    scope: str = "openid email profile offline_access",
) -> dict[str, Any]:
    code, verifier, _ = await browser.login_for_code(user, scope=scope)
    response = await redeem(http, code, verifier)
    assert response.status_code == 200
    return dict(response.json())


async def refresh(
    http: httpx.AsyncClient, token: str, auth: tuple[str, str] | None = WEB, **extra: str
) -> httpx.Response:
    return await http.post(
        "/oauth2/token",
        auth=auth,
        data={"grant_type": "refresh_token", "refresh_token": token, **extra},
    )


async def test_refresh_rotates(browser: Browser, http: httpx.AsyncClient, user: str) -> None:
    first = await tokens_for(browser, http, user)
    response = await refresh(http, first["refresh_token"])
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert "id_token" in second
    third = await refresh(http, second["refresh_token"])
    assert third.status_code == 200


async def test_refresh_reuse_revokes_the_family(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    first = await tokens_for(browser, http, user)
    second = (await refresh(http, first["refresh_token"])).json()
    reuse = await refresh(http, first["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    # The whole family is gone: the newest refresh token and access token too.
    assert (await refresh(http, second["refresh_token"])).json()["error"] == "invalid_grant"
    assert await userinfo_status(http, second["access_token"]) == 401


async def test_parallel_refresh_of_one_token_has_at_most_one_winner(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    first = await tokens_for(browser, http, user)
    responses = await asyncio.gather(*(refresh(http, first["refresh_token"]) for _ in range(20)))
    assert [r.status_code for r in responses].count(200) <= 1


async def test_refresh_of_another_client_is_refused(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    first = await tokens_for(browser, http, user)
    response = await refresh(http, first["refresh_token"], auth=None, client_id="spa")
    assert response.json()["error"] in ("invalid_grant", "unauthorized_client")
    assert (await refresh(http, first["refresh_token"])).status_code == 200


async def test_refresh_cannot_widen_scope_but_may_narrow(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    first = await tokens_for(browser, http, user, scope="openid email offline_access")
    wider = await refresh(http, first["refresh_token"], scope="openid email profile")
    assert wider.json()["error"] == "invalid_scope"
    narrower = await refresh(http, first["refresh_token"], scope="openid")
    assert narrower.status_code == 200 and narrower.json()["scope"] == "openid"


async def test_refresh_after_absolute_lifetime_is_refused(
    gateway: GatewayServer, browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    from dataclasses import replace

    first = await tokens_for(browser, http, user)

    async def expire(services: Any) -> None:
        grants = services.grants
        gid = grants.gid_of(first["refresh_token"])
        raw, grant = await grants.load_grant(gid)
        await services.store.put(
            grants._grant_key(gid),
            grants._seal_grant(replace(grant, expires=grant.created - 1)),
            ttl=60,
        )

    await gateway.call(expire)
    response = await refresh(http, first["refresh_token"])
    assert response.json()["error"] == "invalid_grant"


async def test_forged_refresh_token_with_known_gid_does_not_revoke(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    first = await tokens_for(browser, http, user)
    gid = first["refresh_token"].split(".")[0]
    forged = await refresh(http, f"{gid}.made-up-secret")
    assert forged.json()["error"] == "invalid_grant"
    assert (await refresh(http, first["refresh_token"])).status_code == 200


# -- client_credentials -----------------------------------------------------------------------

SERVICE = ("service", "service-secret-0123456789")


async def test_client_credentials_issues_only_an_access_token(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/oauth2/token",
        auth=SERVICE,
        data={"grant_type": "client_credentials", "scope": "reports.read"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["scope"] == "reports.read"
    assert "id_token" not in body and "refresh_token" not in body


async def test_client_credentials_scope_limits(http: httpx.AsyncClient) -> None:
    for scope in ("reports.delete", "openid", "reports.read offline_access"):
        response = await http.post(
            "/oauth2/token", auth=SERVICE, data={"grant_type": "client_credentials", "scope": scope}
        )
        assert response.json()["error"] == "invalid_scope", scope


async def test_client_credentials_refused_for_public_and_unallowed_clients(
    http: httpx.AsyncClient,
) -> None:
    public = await http.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "client_id": "spa"}
    )
    assert public.json()["error"] in ("unauthorized_client", "invalid_client")
    web = await http.post("/oauth2/token", auth=WEB, data={"grant_type": "client_credentials"})
    assert web.json()["error"] == "unauthorized_client"
