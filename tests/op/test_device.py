"""The device authorization grant (RFC 8628) over HTTP, against real Redis: the authorization
response, polling errors (authorization_pending, slow_down, expired_token, access_denied), a
device code used by another client, user-code guessing limits, and races: two approvals and
polls racing an approval issue tokens at most once. Time is moved with the device store's
clock, never waited for. The sign-in in real Chromium is in tests/e2e/test_device.py."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pyotp
import pytest

from tests.helpers import (
    Browser,
    GatewayServer,
    RedisServer,
    form_fields,
    free_port,
    make_settings,
)

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")
GUESSES = 4


def device_settings(port: int, redis_url: str, **overrides: Any) -> Any:
    settings = make_settings(port, redis_url, **overrides)
    clients = [
        *[c.model_dump(exclude_none=True) for c in settings.clients],
        {
            "client_id": "cli",
            "client_name": "Cognate CLI",
            "token_endpoint_auth_method": "none",
            "grant_types": [DEVICE, "refresh_token"],
            "scope": "openid email offline_access",
        },
        {
            "client_id": "tv",
            "client_secret": "tv-secret-0123456789",
            "grant_types": [DEVICE],
            "scope": "openid email",
        },
        {  # demands a second factor
            "client_id": "tv-mfa",
            "token_endpoint_auth_method": "none",
            "grant_types": [DEVICE],
            "scope": "openid email",
            "access": {"mfa": True},
        },
        {  # staff only
            "client_id": "tv-staff",
            "token_endpoint_auth_method": "none",
            "grant_types": [DEVICE],
            "scope": "openid email",
            "access": {"email_domains": ["staff.example.com"]},
        },
    ]
    return make_settings(port, redis_url, clients=clients, **overrides)


@pytest.fixture(scope="module")
def gw(redis_server: RedisServer) -> Iterator[GatewayServer]:
    port = free_port()
    settings = device_settings(port, redis_server.url)
    server = GatewayServer(settings).start()
    yield server
    server.stop()


@pytest.fixture
async def http(gw: GatewayServer) -> AsyncIterator[httpx.AsyncClient]:
    gw.services.device.clock = time.time
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        yield client
    gw.services.device.clock = time.time


def at(gw: GatewayServer, offset: float) -> None:
    """Move the device store's clock `offset` seconds from now."""
    base = time.time()
    gw.services.device.clock = lambda: base + offset


async def start(http: httpx.AsyncClient, **form: str) -> dict[str, Any]:
    answer = await http.post(
        "/oauth2/device_authorization", data={"client_id": "cli", "scope": "openid email", **form}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body: dict[str, Any] = answer.json()
    return body


async def poll(
    http: httpx.AsyncClient, device_code: str, client_id: str = "cli", **kw: Any
) -> httpx.Response:
    return await http.post(
        "/oauth2/token",
        data={"grant_type": DEVICE, "device_code": device_code, "client_id": client_id},
        **kw,
    )


async def signed_in(gw: GatewayServer, email: str) -> Browser:
    """A browser with an SSO session for `email` (signed in through the hosted page)."""
    await gw.add_user(email, email_verified=True)
    browser = Browser(gw.url)
    await browser.login_for_code(email)
    return browser


async def confirm_page(browser: Browser, user_code: str) -> httpx.Response:
    page = await browser.http.get("/device", params={"user_code": user_code})
    assert page.status_code == 200, page.text
    return page


async def decide(browser: Browser, page: httpx.Response, decision: str) -> httpx.Response:
    return await browser.http.post("/device", data={**form_fields(page.text), "decision": decision})


async def test_discovery_and_the_authorization_response(
    gw: GatewayServer, http: httpx.AsyncClient
) -> None:
    meta = (await http.get("/.well-known/openid-configuration")).json()
    assert meta["device_authorization_endpoint"] == f"{gw.url}/oauth2/device_authorization"
    assert DEVICE in meta["grant_types_supported"]
    body = await start(http)
    assert USER_CODE.match(body["user_code"])
    assert body["verification_uri"] == f"{gw.url}/device"
    assert body["verification_uri_complete"] == f"{gw.url}/device?user_code={body['user_code']}"
    assert body["expires_in"] == 600 and body["interval"] == 5
    assert len(body["device_code"]) >= 40
    # Only a keyed hash of the device code is a key; the code itself is nowhere in Redis.

    async def stored(services: Any) -> list[tuple[str, bytes | None]]:
        keys = [k async for k in services.store.scan(services.store.key("device"))]
        return [(k, await services.store.get(k)) for k in keys]

    records = await gw.call(stored)
    assert records
    for key, raw in records:
        assert body["device_code"] not in key
        assert raw is not None and body["device_code"].encode() not in raw


async def test_clients_without_the_grant_and_bad_authentication_are_refused(
    http: httpx.AsyncClient,
) -> None:
    refused = await http.post(
        "/oauth2/device_authorization", data={"client_id": "spa", "scope": "openid"}
    )
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    no_secret = await http.post("/oauth2/device_authorization", data={"client_id": "tv"})
    assert no_secret.status_code == 401 and no_secret.json()["error"] == "invalid_client"
    wrong_scope = await http.post(
        "/oauth2/device_authorization", data={"client_id": "cli", "scope": "openid admin"}
    )
    assert wrong_scope.json()["error"] == "invalid_scope"
    confidential = await http.post(
        "/oauth2/device_authorization",
        data={"scope": "openid"},
        auth=("tv", "tv-secret-0123456789"),
    )
    assert confidential.status_code == 200
    assert USER_CODE.match(confidential.json()["user_code"])


async def test_pending_then_slow_down_adds_five_seconds(
    gw: GatewayServer, http: httpx.AsyncClient
) -> None:
    body = await start(http)
    at(gw, 0)
    first = await poll(http, body["device_code"])
    assert first.status_code == 400 and first.json()["error"] == "authorization_pending"
    again = await poll(http, body["device_code"])  # at once: too fast
    assert again.json()["error"] == "slow_down"
    at(gw, 6)  # more than the original 5 s, less than the 10 s it is now
    assert (await poll(http, body["device_code"])).json()["error"] == "slow_down"
    at(gw, 6 + 16)  # past the 15 s the second slow_down made it
    assert (await poll(http, body["device_code"])).json()["error"] == "authorization_pending"


async def test_expired_codes(gw: GatewayServer, http: httpx.AsyncClient) -> None:
    body = await start(http)
    browser = await signed_in(gw, "expiry@example.com")
    page = await confirm_page(browser, body["user_code"])
    at(gw, 601)
    expired = await poll(http, body["device_code"])
    assert expired.status_code == 400 and expired.json()["error"] == "expired_token"
    # Nor can the user approve it any more.
    late = await decide(browser, page, "approve")
    assert late.status_code == 400 and "not valid" in late.text
    await browser.aclose()


async def test_a_device_code_used_by_another_client(
    gw: GatewayServer, http: httpx.AsyncClient
) -> None:
    body = await start(http)
    stolen = await poll(http, body["device_code"], "tv", auth=("tv", "tv-secret-0123456789"))
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    unknown = await poll(http, body["device_code"] + "x")
    assert unknown.json()["error"] == "invalid_grant"


async def test_deny(gw: GatewayServer, http: httpx.AsyncClient) -> None:
    body = await start(http)
    browser = await signed_in(gw, "denier@example.com")
    page = await confirm_page(browser, body["user_code"])
    assert "Cognate CLI" in page.text and body["user_code"] in page.text
    assert "<li>openid</li>" in page.text and "<li>email</li>" in page.text
    denied = await decide(browser, page, "deny")
    assert denied.status_code == 303 and denied.headers["location"].startswith(
        "/device?result=denied&proof="
    )
    answer = await poll(http, body["device_code"])
    assert answer.status_code == 400 and answer.json()["error"] == "access_denied"
    # The user code was single use.
    again = await browser.http.get("/device", params={"user_code": body["user_code"]})
    assert again.status_code == 400 and "not valid" in again.text
    await browser.aclose()


async def test_approve_issues_tokens_once_whatever_races(
    gw: GatewayServer, http: httpx.AsyncClient
) -> None:
    body = await start(http, scope="openid email offline_access")
    browser = await signed_in(gw, "racer@example.com")
    page = await confirm_page(browser, body["user_code"])
    at(gw, 0)
    # Two approvals (a double click) and ten polls, all at once.
    results = await asyncio.gather(
        decide(browser, page, "approve"),
        decide(browser, page, "approve"),
        *[poll(http, body["device_code"]) for _ in range(10)],
    )
    approvals, polls = results[:2], list(results[2:])
    assert sorted(a.status_code for a in approvals) == [303, 400]
    assert any(
        (a.headers.get("location") or "").startswith("/device?result=approved&proof=")
        for a in approvals
    )
    at(gw, 60)
    polls += await asyncio.gather(*[poll(http, body["device_code"]) for _ in range(10)])
    won = [p for p in polls if p.status_code == 200]
    assert len(won) == 1, [p.json() for p in polls]
    tokens = won[0].json()
    assert {"access_token", "id_token", "refresh_token"} <= tokens.keys()
    user = await http.get(
        "/oauth2/userinfo", headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert user.json()["email"] == "racer@example.com"
    losers = {p.json()["error"] for p in polls if p.status_code != 200}
    assert losers <= {"authorization_pending", "slow_down", "invalid_grant"}
    at(gw, 120)
    assert (await poll(http, body["device_code"])).json()["error"] == "invalid_grant"
    await browser.aclose()


async def test_approving_without_a_session_signs_in_first(
    gw: GatewayServer, http: httpx.AsyncClient
) -> None:
    body = await start(http)
    email = "fresh-device@example.com"
    await gw.add_user(email, email_verified=True)
    browser = Browser(gw.url)
    page = await confirm_page(browser, body["user_code"])
    to_login = await decide(browser, page, "approve")
    assert to_login.status_code == 303 and to_login.headers["location"].startswith("/login?flow=")
    login = await browser.http.get(to_login.headers["location"])
    assert "Cognate CLI" in login.text
    done = await browser.http.post(
        "/login",
        data={
            **form_fields(login.text),
            "email": email,
            "password": "correct horse battery staple",
        },
    )
    assert done.status_code == 303 and done.headers["location"].startswith(
        "/device?result=approved&proof="
    )
    assert "cognate_session" in browser.http.cookies
    tokens = await poll(http, body["device_code"])
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "openid email" and tokens.json()["id_token"]
    await browser.aclose()


async def test_user_code_guessing_is_limited_per_ip(redis_server: RedisServer) -> None:
    port = free_port()
    server = GatewayServer(
        device_settings(port, redis_server.url, device={"guesses_per_ip": GUESSES})
    ).start()
    browser = Browser(server.url)
    try:
        body = await start(browser.http)
        for guess in ("BBBB-BBBB", "CCCC-CCCC", "not a code", "DDDDDDDD")[:GUESSES]:
            wrong = await browser.http.get("/device", params={"user_code": guess})
            assert wrong.status_code == 400 and "not valid" in wrong.text
        # Now even the right code is refused from this address, until the window ends.
        limited = await browser.http.get("/device", params={"user_code": body["user_code"]})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert body["user_code"] not in limited.text
    finally:
        await browser.aclose()
        server.stop()


async def test_device_codes_per_client_are_limited(redis_server: RedisServer) -> None:
    port = free_port()
    server = GatewayServer(
        device_settings(port, redis_server.url, device={"codes_per_client": 2})
    ).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            await start(http)
            await start(http)
            third = await http.post(
                "/oauth2/device_authorization", data={"client_id": "cli", "scope": "openid"}
            )
            assert third.status_code == 429 and third.json()["error"] == "slow_down"
            assert int(third.headers["retry-after"]) > 0
    finally:
        server.stop()


async def test_redis_down_fails_closed() -> None:
    # SECURITY-TESTS G48: no answer from the store means no tokens and no approval, as 503s.
    redis = RedisServer()
    redis.start()
    port = free_port()
    store = {"url": redis.url, "prefix": "dev-faults", "socket_timeout": 0.5}
    server = GatewayServer(device_settings(port, redis.url, store=store)).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            body = await start(http)
            redis.stop()
            polled = await poll(http, body["device_code"])
            assert polled.status_code == 503
            assert polled.json()["error"] == "temporarily_unavailable"
            asked = await http.post("/oauth2/device_authorization", data={"client_id": "cli"})
            assert asked.status_code == 503
            page = await http.get("/device", params={"user_code": body["user_code"]})
            assert page.status_code == 503
    finally:
        server.stop()
        redis.stop()


async def test_a_client_that_demands_mfa_steps_a_password_session_up(
    gw: GatewayServer, http: httpx.AsyncClient
) -> None:
    email = "step-up-device@example.com"
    browser = await signed_in(gw, email)  # password only: no second factor yet
    user = await gw.call(lambda s: s.users.by_email(email))
    secret = await gw.call(lambda s: s.mfa.begin(user.user_id))
    assert await gw.call(lambda s: s.mfa.confirm(user.user_id, pyotp.TOTP(secret).now()))
    body = await start(http, client_id="tv-mfa")
    page = await confirm_page(browser, body["user_code"])
    to_mfa = await decide(browser, page, "approve")
    assert to_mfa.status_code == 303 and to_mfa.headers["location"].startswith("/login/mfa?")
    at(gw, 0)
    # Password done, second factor not: the device is not approved.
    assert (await poll(http, body["device_code"], "tv-mfa")).json()["error"] == (
        "authorization_pending"
    )
    mfa = await browser.http.get(to_mfa.headers["location"])
    code = pyotp.TOTP(secret).at(time.time() + 30)  # this step's code went on enrolment
    done = await browser.http.post("/login/mfa", data={**form_fields(mfa.text), "code": code})
    assert done.status_code == 303 and done.headers["location"].startswith(
        "/device?result=approved&proof="
    )
    at(gw, 30)
    tokens = await poll(http, body["device_code"], "tv-mfa")
    assert tokens.status_code == 200, tokens.text
    await browser.aclose()


async def test_a_client_access_policy_refuses_the_user(
    gw: GatewayServer, http: httpx.AsyncClient
) -> None:
    browser = await signed_in(gw, "not-staff@example.com")
    body = await start(http, client_id="tv-staff")
    page = await confirm_page(browser, body["user_code"])
    refused = await decide(browser, page, "approve")
    assert refused.status_code == 303 and refused.headers["location"].startswith(
        "/device?result=refused&proof="
    )
    answer = await poll(http, body["device_code"], "tv-staff")
    assert answer.status_code == 400 and answer.json()["error"] == "access_denied"
    entries = [f for _, f in await gw.call(lambda s: s.audit.read("0", 10_000))]
    assert any(e["event"] == "device.refused" and e["client_id"] == "tv-staff" for e in entries)
    await browser.aclose()


async def test_one_address_cannot_use_up_a_clients_device_codes(
    redis_server: RedisServer,
) -> None:
    # From one IP (behind the trusted proxy), only its own share; everyone else still gets
    # codes, so `cognate login` is not blocked for all by one client of the public CLI.
    port = free_port()
    device = {"codes_per_client": 10, "codes_per_ip": 3}
    server = GatewayServer(device_settings(port, redis_server.url, device=device)).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            ask = {"client_id": "cli", "scope": "openid"}
            flood = {"X-Forwarded-For": "203.0.113.7"}
            answers = [
                (await http.post("/oauth2/device_authorization", data=ask, headers=flood))
                for _ in range(5)
            ]
            assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
            other = {"X-Forwarded-For": "198.51.100.8"}
            fine = await http.post("/oauth2/device_authorization", data=ask, headers=other)
            assert fine.status_code == 200
    finally:
        server.stop()


async def test_a_result_page_needs_the_browser_that_decided(gw: GatewayServer) -> None:
    # A link to /device?result=approved from anywhere (a phishing page) must not say "Device
    # connected": the result page shows only for the proof the decision handed this browser.
    async with httpx.AsyncClient(base_url=gw.url) as stranger:
        for result in ("approved", "denied", "refused"):
            page = await stranger.get("/device", params={"result": result, "proof": "x" * 43})
            assert page.status_code == 200
            assert "Device connected" not in page.text and "Request denied" not in page.text
            assert 'name="user_code"' in page.text  # the code form instead


async def test_the_device_pages_speak_french(gw: GatewayServer, http: httpx.AsyncClient) -> None:
    french = {"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}
    form = await http.get("/device", headers=french)
    assert '<html lang="fr">' in form.text
    assert "<title>Connecter un appareil" in form.text
    assert "Saisissez le code qu’affiche votre appareil." in form.text
    # Straight into the store: this module's other tests spend this address's device codes.
    _, record = await gw.call(lambda s: s.device.start("cli", ["openid", "email"]))
    code = record.user_code
    confirm = await http.get("/device", params={"user_code": code}, headers=french)
    assert confirm.status_code == 200
    for text in (
        "Cognate CLI demande à se connecter en votre nom sur un appareil.",
        "Vérifiez que ce code est bien celui qu’affiche votre appareil :",
        ">Approuver</button>",
        ">Refuser</button>",
    ):
        assert text in confirm.text, text
    assert "Approve" not in confirm.text and "Deny" not in confirm.text
