"""Revocation (RFC 7009) and introspection (RFC 7662): SECURITY-TESTS A12."""

from __future__ import annotations

import httpx

from tests.helpers import Browser
from tests.op.test_token import SERVICE, WEB, redeem


async def user_tokens(browser: Browser, http: httpx.AsyncClient, user: str) -> dict[str, str]:
    code, verifier, _ = await browser.login_for_code(user, scope="openid email offline_access")
    return dict((await redeem(http, code, verifier)).json())


async def introspect(http: httpx.AsyncClient, token: str, auth: tuple[str, str] = SERVICE) -> dict:
    r = await http.post("/oauth2/introspect", auth=auth, data={"token": token})
    assert r.status_code == 200
    return dict(r.json())


async def test_revoke_unknown_token_is_200(http: httpx.AsyncClient) -> None:
    r = await http.post("/oauth2/revoke", auth=WEB, data={"token": "never-issued"})
    assert r.status_code == 200


async def test_revoke_needs_client_auth(http: httpx.AsyncClient) -> None:
    r = await http.post("/oauth2/revoke", auth=("web", "wrong-secret-000000"), data={"token": "x"})
    assert r.status_code == 401


async def test_revoking_refresh_token_ends_family(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    t = await user_tokens(browser, http, user)
    assert (await introspect(http, t["access_token"]))["active"] is True
    r = await http.post("/oauth2/revoke", auth=WEB, data={"token": t["refresh_token"]})
    assert r.status_code == 200
    assert (await introspect(http, t["access_token"]))["active"] is False
    assert (await introspect(http, t["refresh_token"]))["active"] is False


async def test_another_clients_token_is_not_revoked(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    t = await user_tokens(browser, http, user)
    for token in (t["access_token"], t["refresh_token"]):
        r = await http.post("/oauth2/revoke", auth=SERVICE, data={"token": token})
        assert r.status_code == 200
    assert (await introspect(http, t["access_token"]))["active"] is True
    assert (await introspect(http, t["refresh_token"]))["active"] is True


async def test_revoking_client_credentials_token(http: httpx.AsyncClient) -> None:
    token = (
        await http.post("/oauth2/token", auth=SERVICE, data={"grant_type": "client_credentials"})
    ).json()["access_token"]
    active = await introspect(http, token)
    assert active["active"] is True and active["client_id"] == "service"
    await http.post("/oauth2/revoke", auth=SERVICE, data={"token": token})
    assert await introspect(http, token) == {"active": False}


async def test_introspection_needs_authentication(http: httpx.AsyncClient) -> None:
    r = await http.post("/oauth2/introspect", data={"token": "x"})
    assert r.status_code == 401
    public = await http.post("/oauth2/introspect", data={"token": "x", "client_id": "spa"})
    assert public.status_code == 401


async def test_introspection_of_bad_tokens_says_only_inactive(http: httpx.AsyncClient) -> None:
    for token in ("", "garbage", "a.b.c", "0" * 32 + ".secret"):
        assert await introspect(http, token) == {"active": False}


async def test_introspection_of_active_user_token(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    t = await user_tokens(browser, http, user)
    body = await introspect(http, t["access_token"])
    assert body["active"] is True
    assert body["client_id"] == "web" and body["sub"].startswith("us-east-1:")
    assert set(body["scope"].split()) == {"openid", "email", "offline_access"}
    rt = await introspect(http, t["refresh_token"])
    assert rt["active"] is True and rt["token_type"] == "refresh_token"
