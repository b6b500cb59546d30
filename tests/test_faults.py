"""Redis outages fail closed (SECURITY-TESTS G48, G49) and recovery needs no restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import (
    Browser,
    GatewayServer,
    RedisServer,
    code_flow_params,
    forwarded,
    free_port,
    make_settings,
    redeem,
)

SERVICE = ("service", "service-secret-0123456789")


@pytest.fixture
def outage() -> Iterator[tuple[RedisServer, GatewayServer]]:
    redis = RedisServer()
    redis.start()
    settings = make_settings(
        free_port(),
        redis.url,
        store={"url": redis.url, "prefix": "faults", "socket_timeout": 0.5, "connect_timeout": 0.5},
        identity_pools=[
            {
                "id": "us-east-1:11111111-2222-4333-8444-000000000000",
                "name": "f",
                "allow_unauthenticated": True,
                "roles": {"unauthenticated": "arn:aws:iam::123456789012:role/guest"},
            }
        ],
    )
    gateway = GatewayServer(settings).start()
    yield redis, gateway
    gateway.stop()
    redis.stop()


async def test_redis_down_fails_closed_everywhere(
    outage: tuple[RedisServer, GatewayServer],
) -> None:
    redis, gateway = outage
    await gateway.add_user("fault@example.com")
    browser = Browser(gateway.url)
    code, verifier, _ = await browser.login_for_code("fault@example.com")
    tokens = (await redeem(browser.http, code, verifier)).json()
    fresh = Browser(gateway.url)
    first = await fresh.authorize(**code_flow_params())
    login_page = await fresh.http.get(first.headers["location"])

    redis.stop()
    try:
        http = browser.http
        refresh = await http.post(
            "/oauth2/token",
            auth=("web", "web-secret-0123456789"),
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
        assert refresh.status_code == 503
        assert refresh.json()["error"] == "temporarily_unavailable"
        assert "retry-after" in refresh.headers

        userinfo = await http.get(
            "/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert userinfo.status_code == 503

        redeemed = await redeem(http, "whatever", verifier)
        assert redeemed.status_code == 503

        authorize = await browser.authorize(**code_flow_params())
        assert authorize.status_code == 503 and "Traceback" not in authorize.text

        from tests.helpers import form_fields

        login = await fresh.http.post(
            "/login",
            data={
                **form_fields(login_page.text),
                "email": "fault@example.com",
                "password": "correct horse battery staple",
            },
        )
        assert login.status_code == 503
        assert "Temporarily unavailable" in login.text
        assert "location" not in login.headers  # no code, no session, no new identity
    finally:
        redis.start()
    # Same process, Redis back: service resumes without a restart.
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        ok = await http.post(
            "/oauth2/token", auth=SERVICE, data={"grant_type": "client_credentials"}
        )
        assert ok.status_code == 200
    await browser.aclose()
    await fresh.aclose()


async def test_a_sign_in_whose_writes_fail_hands_out_nothing(
    outage: tuple[RedisServer, GatewayServer],
) -> None:
    """A sign-in sends its audit entry, session and code in one pipeline. When one of those
    writes fails (here the audit stream's key holds a string), the browser gets a 503 and
    neither a session cookie nor a code, even though the writes after it landed."""
    import redis as redis_sync

    from tests.helpers import PASSWORD, form_fields

    redis, gateway = outage
    await gateway.add_user("batch@example.com")
    browser = Browser(gateway.url)
    first = await browser.authorize(**code_flow_params())
    page = await browser.http.get(first.headers["location"])
    raw = redis_sync.Redis.from_url(redis.url)
    audit_key = "faults:audit"
    raw.delete(audit_key)
    raw.set(audit_key, "not a stream")
    try:
        login = await browser.http.post(
            "/login",
            data={**form_fields(page.text), "email": "batch@example.com", "password": PASSWORD},
        )
        assert login.status_code == 503 and "Temporarily unavailable" in login.text
        assert "location" not in login.headers
        assert "cognate_session=" not in login.headers.get("set-cookie", "")
        assert raw.keys("faults:code:*")  # it was written, and nobody knows it
    finally:
        raw.delete(audit_key)
        raw.close()
    again = Browser(gateway.url)
    try:
        code, _, _ = await again.login_for_code("batch@example.com")
        assert code
    finally:
        await again.aclose()
        await browser.aclose()


async def test_identity_pool_api_fails_closed_and_mints_nothing(
    outage: tuple[RedisServer, GatewayServer],
) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    redis, gateway = outage
    pool = gateway.settings.identity_pools[0].id
    api = boto3.client(
        "cognito-identity",
        endpoint_url=gateway.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"total_max_attempts": 1}),
    )
    before = api.get_id(IdentityPoolId=pool)["IdentityId"]  # guests allowed: the store works
    redis.stop()
    try:
        for _ in range(3):
            try:
                api.get_id(IdentityPoolId=pool)
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "InternalErrorException"
                assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            else:
                raise AssertionError("an identity ID was handed out without being stored")
    finally:
        redis.start()
    after = api.get_id(IdentityPoolId=pool)["IdentityId"]
    assert after != before


async def test_forward_auth_cache_goes_off_with_redis(
    outage: tuple[RedisServer, GatewayServer],
) -> None:
    # A replica that cannot hear logouts from the others must not answer from its cache:
    # with Redis down, a session cached a moment ago fails closed (401, what proxies act on:
    # SECURITY-TESTS G48), never a stale 202.
    redis, gateway = outage
    await gateway.add_user("cached@example.com")
    browser = Browser(gateway.url)
    await browser.login_for_code("cached@example.com")
    assert (await browser.http.get("/oauth2/auth")).status_code == 202  # now cached
    assert gateway.services.sessions.cache.enabled
    redis.stop()
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while gateway.services.sessions.cache.enabled:
            assert asyncio.get_running_loop().time() < deadline, "the cache stayed on"
            await asyncio.sleep(0.05)
        assert (await browser.http.get("/oauth2/auth")).status_code == 401
        redirect_mode = await browser.http.get(
            "/oauth2/auth?redirect=1", headers=forwarded("http://app.example/page")
        )
        assert redirect_mode.status_code == 401  # no trip to a sign-in that cannot work
    finally:
        redis.start()
    # Back: the subscription returns, and with it the cache.
    deadline = asyncio.get_running_loop().time() + 10
    while not gateway.services.sessions.cache.enabled:
        assert asyncio.get_running_loop().time() < deadline, "the cache never came back"
        await asyncio.sleep(0.05)
    # This Redis keeps nothing on disk, so the session is gone: a 401 at once — no stale
    # pooled connection turns the first request after the restart into a 503.
    assert (await browser.http.get("/oauth2/auth")).status_code == 401
    await browser.aclose()


async def test_rate_limits_fail_closed_when_the_store_cannot_count(
    outage: tuple[RedisServer, GatewayServer],
) -> None:
    # SECURITY-TESTS G48: a wrong password must be counted; if the counter cannot be written,
    # the answer is 503 — never an attempt that went uncounted.
    redis, gateway = outage
    await gateway.add_user("counted@example.com")
    browser = Browser(gateway.url)
    try:
        first = await browser.authorize(**code_flow_params())
        page = await browser.http.get(first.headers["location"])
        from tests.helpers import form_fields, writes_paused

        with writes_paused(redis.url):
            guess = await browser.http.post(
                "/login",
                data={
                    **form_fields(page.text),
                    "email": "counted@example.com",
                    "password": "x" * 9,
                },
            )
        assert guess.status_code == 503 and "Traceback" not in guess.text
    finally:
        await browser.aclose()
