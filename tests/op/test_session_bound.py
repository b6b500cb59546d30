"""Refresh tokens and the SSO session: without `offline_access` a token family ends with the
session it came from (RP-initiated logout, a session ended elsewhere), with its access tokens,
on every replica; with `offline_access` it survives a sign-out until revoked or expired."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import redis.asyncio as redis_async

from tests.helpers import WEB, Browser, GatewayServer, RedisServer, free_port, make_settings, redeem


@pytest.fixture(scope="module")
def replicas(redis_server: RedisServer) -> Iterator[tuple[GatewayServer, GatewayServer]]:
    """Two replicas of one issuer on one Redis."""
    settings = make_settings(free_port(), redis_server.url)
    one, two = GatewayServer(settings), GatewayServer(settings, port=free_port())
    one.start()
    two.start()
    yield one, two
    one.stop()
    two.stop()


@pytest.fixture
async def other(
    replicas: tuple[GatewayServer, GatewayServer],
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the second replica (the one the user did not sign out at)."""
    async with httpx.AsyncClient(base_url=replicas[1].url, timeout=30) as client:
        yield client


_users = iter(range(1_000_000))


async def signed_in(gateway: GatewayServer, scope: str) -> tuple[Browser, dict[str, Any]]:
    email = f"bound{next(_users)}@example.com"
    await gateway.add_user(email, email_verified=True)
    browser = Browser(gateway.url)
    code, verifier, _ = await browser.login_for_code(email, scope=scope)
    answer = await redeem(browser.http, code, verifier)
    assert answer.status_code == 200, answer.text
    return browser, answer.json()


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def refresh(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post(
        "/oauth2/token", auth=WEB, data={"grant_type": "refresh_token", "refresh_token": token}
    )


async def userinfo(http: httpx.AsyncClient, access_token: str) -> int:
    answer = await http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    return answer.status_code


async def introspect(http: httpx.AsyncClient, token: str) -> bool:
    answer = await http.post("/oauth2/introspect", auth=WEB, data={"token": token})
    return bool(answer.json()["active"])


async def sign_out(browser: Browser, id_token: str) -> None:
    out = await browser.http.get("/oauth2/logout?" + urlencode({"id_token_hint": id_token}))
    assert out.status_code == 200 and "signed out" in out.text


async def test_rp_logout_ends_session_bound_tokens_on_every_replica(
    replicas: tuple[GatewayServer, GatewayServer], other: httpx.AsyncClient
) -> None:
    browser, tokens = await signed_in(replicas[0], "openid email")
    assert "refresh_token" in tokens
    assert await userinfo(other, tokens["access_token"]) == 200  # in force before
    rotated = (await refresh(other, tokens["refresh_token"])).json()
    await sign_out(browser, tokens["id_token"])
    answer = await refresh(other, rotated["refresh_token"])
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    for access in (tokens["access_token"], rotated["access_token"]):
        assert await userinfo(other, access) == 401
        assert not await introspect(other, access)
    assert not await introspect(other, rotated["refresh_token"])
    await browser.aclose()


async def test_offline_access_survives_logout(
    replicas: tuple[GatewayServer, GatewayServer], other: httpx.AsyncClient
) -> None:
    browser, tokens = await signed_in(replicas[0], "openid email offline_access")
    await sign_out(browser, tokens["id_token"])
    assert await userinfo(other, tokens["access_token"]) == 200
    answer = await refresh(other, tokens["refresh_token"])
    assert answer.status_code == 200, answer.text
    assert await userinfo(other, answer.json()["access_token"]) == 200
    assert await introspect(other, answer.json()["refresh_token"])
    await browser.aclose()


async def test_a_session_ended_elsewhere_ends_its_tokens(
    replicas: tuple[GatewayServer, GatewayServer], other: httpx.AsyncClient
) -> None:
    """The account page's "end this session", SAML single logout and the session's timeouts
    all end the session record; the tokens follow without being told."""
    one = replicas[0]
    browser, tokens = await signed_in(one, "openid email")
    offline_browser, offline = await signed_in(one, "openid offline_access")
    for ending in (tokens, offline):
        sid = claims(ending["id_token"])["sid"]
        await one.call(lambda s, sid=sid: s.sessions.end(sid))
    assert await userinfo(other, tokens["access_token"]) == 401
    assert (await refresh(other, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await refresh(other, offline["refresh_token"])).status_code == 200
    await browser.aclose()
    await offline_browser.aclose()


async def test_a_refresh_restarts_the_session_idle_timeout(
    replicas: tuple[GatewayServer, GatewayServer], other: httpx.AsyncClient
) -> None:
    one = replicas[0]
    browser, tokens = await signed_in(one, "openid email")
    key = f"{one.settings.store.prefix}:session:{claims(tokens['id_token'])['sid']}"
    r = redis_async.Redis.from_url(one.settings.store.url)
    try:
        await r.expire(key, 60)  # as if the browser had been idle for almost idle_timeout
        assert (await refresh(other, tokens["refresh_token"])).status_code == 200
        assert await r.ttl(key) > one.settings.sessions.idle_timeout - 60
    finally:
        await r.aclose()
    await browser.aclose()
