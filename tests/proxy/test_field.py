"""Forward-auth in the field topology (shared/FIELD-TESTS.md, SECURITY-TESTS E40-E43): the
gateway on https://auth.example.test, apps on other hosts behind nginx, Caddy and Traefik run
from the exact files in deploy/, real Chromium, TLS from a local CA.

Per proxy: the sign-in journey across domains (a host-bound session through /oauth2/session),
single sign-on to a second app host, route policies, sign-out on one host ending the session on
the other; and a spoofing matrix — every header a client could send to pose as someone, or to
move the URL a policy is decided on, and a forged cookie — none of which may reach the app or
lift a policy.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, async_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.e2e.test_browser import CHROMIUM
from tests.helpers import (
    PASSWORD,
    AppServer,
    GatewayServer,
    RedisServer,
    free_port,
    make_settings,
    tampered,
)
from tests.proxy.field import (
    CHROMIUM_FLAGS,
    NAMES,
    Proxy,
    client,
    start_proxy,
)
from tests.tls import Pki, make_pki

KINDS = ["nginx", "caddy", "traefik"]
APP = "app.other-domain.test"
TOOLS = "tools.other-domain.test"
COOKIE = "__Host-cognate_session"


async def echo(request: Request) -> JSONResponse:
    """The sample app: every header it received."""
    return JSONResponse({"path": request.url.path, "headers": dict(request.headers.items())})


@dataclass
class Field:
    pki: Pki
    browser_side: GatewayServer  # the replica browsers reach (TLS, the issuer's port)
    proxy_side: GatewayServer  # the replica the proxies forward to (plain http)
    app: AppServer
    proxies: dict[tuple[str, str], Proxy] = field(default_factory=dict)

    def proxy(self, kind: str, host: str) -> Proxy:
        key = (kind, host)
        if key not in self.proxies:
            self.proxies[key] = start_proxy(
                kind, host, free_port(), [self.proxy_side.port], self.app.port, self.pki
            )
        return self.proxies[key]


def field_settings(port: int, redis_url: str, **overrides: object) -> object:
    return make_settings(
        port,
        redis_url,
        issuer=f"https://auth.example.test:{port}",
        forward_auth={
            "allowed_hosts": [APP, TOOLS, "app.example.test"],
            "policies": [{"path": "/admin", "groups": ["admins"]}],
        },
        **overrides,
    )


def start_field(redis_server: RedisServer, pki: Pki, **overrides: object) -> Field:
    port = free_port()
    settings = field_settings(port, redis_server.url, **overrides)
    browser_side = GatewayServer(settings, port=port, tls=(str(pki.cert), str(pki.key))).start()  # type: ignore[arg-type]
    proxy_side = GatewayServer(settings, port=free_port()).start()  # type: ignore[arg-type]
    app = AppServer(Starlette(routes=[Route("/{path:path}", echo)])).start()
    return Field(pki, browser_side, proxy_side, app)


def stop_field(topology: Field) -> None:
    for proxy in topology.proxies.values():
        proxy.stop()
    topology.app.stop()
    topology.proxy_side.stop()
    topology.browser_side.stop()


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki(NAMES)


@pytest.fixture(scope="module")
def topology(redis_server: RedisServer, pki: Pki) -> Iterator[Field]:
    made = start_field(redis_server, pki)
    yield made
    stop_field(made)


@pytest.fixture
async def chromium(pki: Pki) -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), "scripts/test.sh installs Debian's chromium"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS,
            env={"HOME": str(pki.home)},  # its NSS database trusts the test CA
        )
        yield browser
        await browser.close()


async def new_user(gateway: GatewayServer, **kw: object) -> str:
    email = f"field-{secrets.token_hex(4)}@example.com"
    await gateway.add_user(email, email_verified=True, **kw)
    return email


def shown(text: str) -> dict[str, object]:
    """The echo app's JSON as Chromium shows it."""
    return json.loads(text)  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", KINDS)
async def test_cross_domain_sign_in_sso_policy_and_sign_out(
    kind: str, topology: Field, chromium: Browser
) -> None:
    app, tools = topology.proxy(kind, APP), topology.proxy(kind, TOOLS)
    email = await new_user(topology.proxy_side)
    context = await chromium.new_context()
    page = await context.new_page()
    try:
        wanted = app.url + "/hello?a=1&b=two%20words"
        await page.goto(wanted)
        assert urlsplit(page.url).hostname == "auth.example.test", page.url
        await page.fill("#email", email)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(wanted)
        seen = shown(await page.inner_text("body"))
        headers = seen["headers"]
        assert isinstance(headers, dict)
        assert headers["x-auth-request-email"] == email
        assert "cognate" not in headers.get("cookie", "")  # the app never sees the session
        cookies = {c["name"]: c for c in await context.cookies(app.url)}
        assert cookies[COOKIE]["secure"] and cookies[COOKIE]["httpOnly"]
        assert cookies[COOKIE]["domain"] == APP  # host-only, on the app's own host
        # A route policy: /admin needs the admins group.
        refused = await page.goto(app.url + "/admin/x")
        assert refused is not None and refused.status == 403
        # Single sign-on: the second app host signs in without a password.
        await page.goto(tools.url + "/")
        await page.wait_for_url(tools.url + "/")
        assert shown(await page.inner_text("body"))["headers"]["x-auth-request-email"] == email  # type: ignore[index]
        # Sign out on one app host: the other is signed out too.
        await page.goto(app.url + "/oauth2/sign_out")
        assert "signed out" in (await page.inner_text("h1")).lower()
        await page.goto(tools.url + "/")
        assert urlsplit(page.url).hostname == "auth.example.test"
        assert urlsplit(page.url).path == "/login"
    finally:
        await context.close()


async def host_session(
    topology: Field, host: str, groups: list[str] | None = None
) -> tuple[str, str]:
    """(email, cookie) of a session made for `host` the way /oauth2/session makes it."""
    email = f"spoof-{secrets.token_hex(4)}@example.com"

    async def make(services: object) -> str:
        sessions = services.sessions  # type: ignore[attr-defined]
        parent, _ = await sessions.create(
            identity_id=f"us-east-1:{secrets.token_hex(16)}",
            connector_id="local",
            subject=email,
            amr=["pwd"],
            profile={"email": email, "email_verified": True, "groups": groups or []},
        )
        made = await sessions.create_for_host(parent, host)
        return made[1]  # type: ignore[no-any-return]

    return email, await topology.proxy_side.call(make)


FORGED = {
    "X-Auth-Request-User": "admin",
    "X-Auth-Request-Email": "admin@evil.example",
    "X-Auth-Request-Preferred-Username": "admin",
    "X-Auth-Request-Groups": "admins",
    "X-Auth-Request-Identity-Id": "us-east-1:00000000-0000-0000-0000-000000000000",
    "X-Auth-Request-Access-Token": "forged-token",
    "X-Cognate-Assertion": "forged.assertion.value",
    "X-Original-Method": "POST",
    "X-Forwarded-Method": "POST",
    "X-Forwarded-Proto": "gopher",
    "X-Forwarded-For": "203.0.113.9",
}


@pytest.mark.parametrize("kind", KINDS)
async def test_spoofing_matrix(kind: str, topology: Field) -> None:
    app = topology.proxy(kind, APP)
    email, cookie = await host_session(topology, APP)
    with client(topology.pki, app) as http:
        jar = f"{COOKIE}={cookie}; app_pref=dark"
        answer = http.get(
            "/hello",
            headers={
                **FORGED,
                "Cookie": jar,
                "X-Original-URL": f"https://{APP}/admin/x",
                "X-Forwarded-Uri": "/admin/x",
                "X-Forwarded-Host": "evil.example",
            },
        )
        assert answer.status_code == 200, answer.text
        seen = answer.json()["headers"]
        assert seen["x-auth-request-email"] == email
        assert seen["x-auth-request-user"] == email
        assert seen.get("x-auth-request-groups", "") == ""
        assert seen["x-auth-request-identity-id"].startswith("us-east-1:")
        assert seen["x-auth-request-identity-id"] != FORGED["X-Auth-Request-Identity-Id"]
        assert seen.get("x-auth-request-access-token", "") == ""
        assert seen["x-cognate-assertion"] != FORGED["X-Cognate-Assertion"]
        assert seen.get("x-auth-request-preferred-username") in (None, "", email)
        for name in ("x-original-url", "x-original-method"):
            assert name not in seen, (name, seen)
        assert seen.get("x-forwarded-uri") in (None, "/hello")
        assert seen.get("x-forwarded-method") in (None, "GET")
        assert seen.get("x-forwarded-proto") in (None, "https")
        assert "evil.example" not in seen.get("x-forwarded-host", "")
        assert seen["cookie"] == "app_pref=dark"  # Cognate's cookie removed, the app's kept
        # The critical one: a client's X-Original-URL (or X-Forwarded-Uri) naming an allowed
        # page must not lift the policy on the page really asked for.
        for moved in (
            {"X-Original-URL": f"https://{APP}/hello"},
            {"X-Forwarded-Uri": "/hello", "X-Forwarded-Host": APP},
            {"X-Original-URL": f"https://{APP}/hello", "X-Forwarded-Uri": "/hello"},
        ):
            admin = http.get("/admin/x", headers={"Cookie": jar, **moved})
            assert admin.status_code == 403, (moved, admin.status_code)
        # A forged or tampered cookie never gets through.
        sid, secret = cookie.split(".")
        for bad in (f"{sid}.{tampered(secret)}", "garbage", f"{'f' * 32}.{secret}"):
            forged = http.get("/hello", headers={"Cookie": f"{COOKIE}={bad}"})
            assert forged.status_code in (302, 303), (bad, forged.status_code)
        # The check endpoint is not the client's to call through the app's host: refused, or
        # (Traefik) the app's own page of that name behind forward-auth, never Cognate's 202.
        check = http.get("/oauth2/auth", headers={"Cookie": jar})
        assert check.status_code in (404, 200), check.status_code
        assert check.status_code == 404 or check.json()["path"] == "/oauth2/auth"
    # The host-bound session is worthless on another host.
    tools = topology.proxy(kind, TOOLS)
    with client(topology.pki, tools) as http:
        elsewhere = http.get("/hello", headers={"Cookie": f"{COOKIE}={cookie}"})
        assert elsewhere.status_code in (302, 303)


async def test_cookie_domain_journey_needs_no_ticket(
    redis_server: RedisServer, pki: Pki, chromium: Browser
) -> None:
    shared = start_field(redis_server, pki, sessions={"cookie_domain": ".example.test"})
    try:
        app = shared.proxy("nginx", "app.example.test")
        email = await new_user(shared.proxy_side)
        context = await chromium.new_context()
        page = await context.new_page()
        visited: list[str] = []
        page.on("request", lambda r: visited.append(r.url))
        await page.goto(app.url + "/hello")
        await page.fill("#email", email)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(app.url + "/hello")
        headers = shown(await page.inner_text("body"))["headers"]
        assert headers["x-auth-request-email"] == email  # type: ignore[index]
        assert "cognate" not in headers.get("cookie", "")  # type: ignore[attr-defined]
        assert not [u for u in visited if "/oauth2/session" in u]  # the shared cookie did it
        cookies = {c["name"]: c for c in await context.cookies(app.url)}
        assert cookies["__Secure-cognate_session"]["domain"] == ".example.test"
        assert cookies["__Secure-cognate_session"]["secure"]
        await context.close()
    finally:
        stop_field(shared)
