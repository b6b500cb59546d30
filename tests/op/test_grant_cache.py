"""The grants' liveness cache (`gateway.grants.LivenessCache`): a replica that found a grant in
force answers token checks (introspection, the user-pool API's GetUser) without a store read
for a few seconds, and forgets it on every replica the moment it is revoked, signed out or its
session ends elsewhere — told over pub/sub, as the session cache is. While it cannot hear
revocations the cache is off."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.grants import Authorization, Grant, LivenessCache
from tests.helpers import WEB, Browser, GatewayServer, RedisServer, free_port, make_settings, redeem
from tests.op.test_session_bound import claims, introspect, sign_out

COGNITO = {
    "Content-Type": "application/x-amz-json-1.1",
    "X-Amz-Target": "AWSCognitoIdentityProviderService.GetUser",
}


@pytest.fixture(scope="module")
def replicas(redis_server: RedisServer) -> Iterator[tuple[GatewayServer, GatewayServer]]:
    """Two replicas of one issuer on one Redis, caching for a minute (longer than any test)."""
    settings = make_settings(free_port(), redis_server.url, sessions={"cache_ttl": 60})
    one, two = GatewayServer(settings), GatewayServer(settings, port=free_port())
    one.start()
    two.start()
    yield one, two
    one.stop()
    two.stop()


_users = iter(range(1_000_000))


async def signed_in(gateway: GatewayServer, scope: str) -> tuple[Browser, dict[str, Any]]:
    email = f"cached{next(_users)}@example.com"
    await gateway.add_user(email, email_verified=True)
    browser = Browser(gateway.url)
    code, verifier, _ = await browser.login_for_code(email, scope=scope)
    answer = await redeem(browser.http, code, verifier)
    assert answer.status_code == 200, answer.text
    return browser, answer.json()


async def get_user(http: httpx.AsyncClient, access_token: str) -> int:
    answer = await http.post(
        "/", headers=COGNITO, content=json.dumps({"AccessToken": access_token})
    )
    return answer.status_code


async def eventually(check: Any, within: float = 2.0) -> bool:
    """Whether `check()` comes true within `within` seconds (pub/sub delivery is async)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_a_cached_grant_is_checked_without_a_store_read(
    replicas: tuple[GatewayServer, GatewayServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = replicas
    browser, tokens = await signed_in(one, "openid email")
    async with httpx.AsyncClient(base_url=two.url) as other:
        assert await introspect(other, tokens["access_token"])  # found in force: remembered
        reads: list[str] = []
        real_get = two.services.store.get

        async def counted(key: str) -> Any:
            reads.append(key)
            return await real_get(key)

        monkeypatch.setattr(two.services.store, "get", counted)
        assert await introspect(other, tokens["access_token"])
        assert await get_user(other, tokens["access_token"]) == 200
        assert not [k for k in reads if ":grant:" in k or ":session:" in k], reads
    await browser.aclose()


async def test_sign_out_and_a_session_ended_elsewhere_reach_the_other_replicas_cache(
    replicas: tuple[GatewayServer, GatewayServer],
) -> None:
    one, two = replicas
    async with httpx.AsyncClient(base_url=two.url) as other:
        browser, tokens = await signed_in(one, "openid email")
        access = tokens["access_token"]
        assert await introspect(other, access) and await get_user(other, access) == 200
        await sign_out(browser, tokens["id_token"])  # at the first replica
        assert await eventually(lambda: _inactive(other, access))
        assert await get_user(other, access) == 400  # NotAuthorizedException
        await browser.aclose()

        browser, tokens = await signed_in(one, "openid email")
        access = tokens["access_token"]
        assert await introspect(other, access)
        sid = claims(tokens["id_token"])["sid"]
        await one.call(lambda s: s.sessions.end(sid))  # an administrator, the account page
        assert await eventually(lambda: _inactive(other, access))
        await browser.aclose()


async def test_a_revoked_offline_grant_is_forgotten_everywhere(
    replicas: tuple[GatewayServer, GatewayServer],
) -> None:
    one, two = replicas
    browser, tokens = await signed_in(one, "openid offline_access")  # bound to no session
    access = tokens["access_token"]
    async with httpx.AsyncClient(base_url=two.url) as other:
        assert await introspect(other, access)
        revoked = await browser.http.post(
            "/oauth2/revoke", auth=WEB, data={"token": tokens["refresh_token"]}
        )
        assert revoked.status_code == 200
        assert await eventually(lambda: _inactive(other, access))
    await browser.aclose()


async def _inactive(http: httpx.AsyncClient, token: str) -> bool:
    return not await introspect(http, token)


def _grant(session: str | None, expires_in: float = 3600) -> Grant:
    authorization = Authorization("eu-west-1:x", "web", ["openid"], 0, session, ["pwd"], {})
    now = int(time.time())
    return Grant("g1", authorization, now, int(now + expires_in), session=session)


def test_the_cache_counts_only_what_it_can_hear_about() -> None:
    cache = LivenessCache(ttl=60)
    cache.put(_grant(None), cache.generation)
    assert not cache.alive("g1", True)  # not subscribed yet: off
    cache.on()
    cache.put(_grant("s1"), cache.generation)
    assert cache.alive("g1", session_ends_heard=True)
    # Bound to a session, while session ends are not heard: a miss (ask the store).
    assert not cache.alive("g1", session_ends_heard=False)
    cache.put(_grant("s1"), cache.generation)
    cache.evict_session("s1")
    assert not cache.alive("g1", True)
    cache.put(_grant(None, expires_in=-1), cache.generation)  # ended: never remembered alive
    assert not cache.alive("g1", True)
    cache.put(_grant(None), cache.generation)
    cache.off()
    assert not cache.alive("g1", True) and not cache.enabled


def test_a_grant_read_before_a_revocation_or_a_session_end_is_not_remembered() -> None:
    cache = LivenessCache(ttl=60)
    cache.on()
    for ended in (lambda: cache.evict("g1"), lambda: cache.evict_session("s1"), cache.on):
        before = cache.generation  # a store read sets out; it finds the grant in force
        ended()  # meanwhile: revoked, its session ended, or the cache was off and back on
        cache.put(_grant("s1"), before)
        assert not cache.alive("g1", True)
    cache.put(_grant("s1"), cache.generation)
    assert cache.alive("g1", True)
