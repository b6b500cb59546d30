"""Forward-auth through real nginx with the shipped config, and /oauth2/auth directly
(SECURITY-TESTS E38, E41, E42, E43)."""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.helpers import (
    PASSWORD,
    Browser,
    GatewayServer,
    form_fields,
    forwarded,
    free_port,
    make_settings,
    tampered,
)
from tests.proxy.conftest import Stack


async def sign_in_through_nginx(stack: Stack, path: str, email: str) -> httpx.AsyncClient:
    """A browser asks nginx for `path`, is sent to sign in, and comes back."""
    browser = httpx.AsyncClient(timeout=30, verify=stack.tls)
    start = await browser.get(stack.url + path)
    assert start.status_code == 303, start.text
    login = start.headers["location"]
    assert urlsplit(login).path == "/login"
    page = await browser.get(login)
    done = await browser.post(
        login.split("/login")[0] + "/login",
        data={**form_fields(page.text), "email": email, "password": PASSWORD},
    )
    assert done.status_code == 303
    assert done.headers["location"] == stack.url + path
    return browser


async def test_nginx_sign_in_identity_headers_and_logout_on_every_replica(stack: Stack) -> None:
    email = f"nginx-{secrets.token_hex(3)}@example.com"
    await stack.replicas[0].add_user(email, email_verified=True)
    # The query string survives the round trip through sign-in unescaped-by-hand.
    browser = await sign_in_through_nginx(stack, "/hello?a=1&b=two%20words", email)
    # Twice, so both replicas behind nginx answer the subrequest at least once.
    for _ in range(2):
        page = await browser.get(
            stack.url + "/hello",
            headers={
                "X-Auth-Request-User": "admin",
                "X-Auth-Request-Email": "admin@evil.example",
                "X-Cognate-Assertion": "forged",
            },
        )
        assert page.status_code == 200
        seen = page.json()
        assert seen["x-auth-request-email"] == email  # the forged headers were overwritten
        assert seen["x-auth-request-user"] == email
        assert seen["x-auth-request-identity-id"].startswith("us-east-1:")
        # The app can verify who is calling: a JWT from the gateway's key set, for its origin.
        keys = KeySet.import_key_set(
            httpx.get(f"{stack.replicas[0].url}/.well-known/jwks.json").json()
        )
        claims = jwt.decode(seen["x-cognate-assertion"], keys).claims
        assert claims["aud"] == stack.url and claims["email"] == email
        assert claims["sub"] == seen["x-auth-request-identity-id"]
        assert claims["exp"] - claims["iat"] <= 60
    # A route policy: /admin needs the admins group.
    assert (await browser.get(stack.url + "/admin/panel")).status_code == 403
    # Sign out through nginx: the old cookie is refused on every replica.
    cookie = browser.cookies["cognate_session"]
    out = await browser.get(stack.url + "/oauth2/sign_out")
    assert out.status_code == 200
    for replica in stack.replicas:
        # Both replicas had the session in their in-process cache (60 s): the logout's
        # message evicts it everywhere within moments, not at the cache's expiry.
        async with httpx.AsyncClient(
            cookies={"cognate_session": cookie},
            headers=forwarded(stack.url + "/hello"),  # what nginx says it asks about
        ) as replay:
            assert await eventually_status(replay, f"{replica.url}/oauth2/auth", 401)
    replay_nginx = httpx.AsyncClient(cookies={"cognate_session": cookie}, verify=stack.tls)
    assert (await replay_nginx.get(stack.url + "/hello")).status_code == 303  # to sign-in
    await replay_nginx.aclose()
    await browser.aclose()


async def eventually_status(
    client: httpx.AsyncClient, url: str, status: int, within: float = 2.0
) -> bool:
    """Whether `url` answers `status` within `within` seconds (pub/sub delivery is async)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if (await client.get(url)).status_code == status:
            return True
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)


async def test_auth_endpoint_is_internal_at_nginx(stack: Stack) -> None:
    async with httpx.AsyncClient(verify=stack.tls) as client:
        assert (await client.get(stack.url + "/oauth2/auth")).status_code == 404


@pytest.mark.parametrize(
    "rd",
    [
        "//evil.example/",
        "/\\evil.example",
        "/%09/evil.example",
        "https://127.0.0.1@evil.example/",
        "javascript:alert(1)",
        "https://evil.example/",
    ],
)
async def test_start_never_redirects_off_site(gateway: GatewayServer, user: str, rd: str) -> None:
    browser = Browser(gateway.url)
    try:
        await browser.login_for_code(user)  # signed in: start redirects at once
        answer = await browser.http.get("/oauth2/start", params={"rd": rd})
        assert answer.status_code == 303
        assert answer.headers["location"] == f"{gateway.url}/"
    finally:
        await browser.aclose()


async def test_auth_answers(gateway: GatewayServer, user: str) -> None:
    browser = Browser(gateway.url)
    try:
        assert (await browser.http.get("/oauth2/auth")).status_code == 401
        await browser.login_for_code(user)
        ok = await browser.http.get("/oauth2/auth")
        assert ok.status_code == 202 and ok.headers["x-auth-request-email"] == user
        assert ok.headers["cache-control"] == "no-store"
        # The signed assertion is reused while half its lifetime is left, then re-signed.
        again = await browser.http.get("/oauth2/auth")
        assert again.headers["x-cognate-assertion"] == ok.headers["x-cognate-assertion"]
        tokens = gateway.services.tokens
        claims = {"audience": "https://app.example", "sub": "s", "email": None, "groups": []}
        first = tokens.identity_assertion(now=1_000_000, **claims)  # type: ignore[arg-type]
        assert tokens.identity_assertion(now=1_000_029, **claims) == first  # type: ignore[arg-type]
        assert tokens.identity_assertion(now=1_000_030, **claims) != first  # type: ignore[arg-type]
        info = await browser.http.get("/oauth2/userinfo")  # oauth2-proxy style, by cookie
        assert info.json()["email"] == user
        sid, secret = browser.http.cookies["cognate_session"].split(".")
        for forged in (f"{sid}.{tampered(secret)}", "nonsense", f"{'f' * 32}.{secret}"):
            async with httpx.AsyncClient(
                base_url=gateway.url, cookies={"cognate_session": forged}
            ) as other:
                assert (await other.get("/oauth2/auth")).status_code == 401
    finally:
        await browser.aclose()


async def test_redirect_mode_for_traefik_and_caddy(gateway: GatewayServer) -> None:
    forwarded = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "127.0.0.1",
        "X-Forwarded-Uri": "/reports?q=1",
        "X-Forwarded-Method": "GET",
    }
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        page = await http.get("/oauth2/auth?redirect=1", headers=forwarded)
        assert page.status_code == 302
        assert "rd=https%3A%2F%2F127.0.0.1%2Freports%3Fq%3D1" in page.headers["location"]
        post = await http.get(
            "/oauth2/auth?redirect=1", headers={**forwarded, "X-Forwarded-Method": "POST"}
        )
        assert post.status_code == 303
        api = await http.get(
            "/oauth2/auth?redirect=1", headers={**forwarded, "Accept": "application/json"}
        )
        assert api.status_code == 401


async def test_forwarded_headers_only_from_trusted_proxies(redis_server: object) -> None:
    # Here only 10.0.0.0/8 is trusted: the test client (127.0.0.1) is not a proxy.
    settings = make_settings(
        free_port(),
        redis_server.url,  # type: ignore[attr-defined]
        forward_auth={"trusted_proxies": ["10.0.0.0/8"]},
    )
    gateway = GatewayServer(settings).start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            page = await http.get(
                "/oauth2/auth?redirect=1",
                headers={
                    "X-Forwarded-Host": "evil.example",
                    "X-Forwarded-Uri": "/",
                    "X-Original-URL": "https://evil.example/",
                },
            )
            assert page.status_code == 401  # no trusted original URL: no redirect built from it
    finally:
        gateway.stop()


def test_header_values_lose_control_characters() -> None:
    from gateway.proxy import clean

    assert clean("ada\r\nX-Auth-Request-User: admin") == "adaX-Auth-Request-User: admin"
    assert "\n" not in clean("a\nb") and len(clean("x" * 5000)) == 1024


def test_cookies_on_https_are_host_prefixed_secure_httponly() -> None:
    from starlette.responses import Response

    from gateway.settings_loader import settings_from_dict
    from gateway.ui.pages import Pages

    pages = Pages(
        settings_from_dict({"issuer": "https://auth.example.com", "secret_key": "s" * 32})
    )
    response = Response()
    pages.set_cookie(response, "cognate_session", "sid.secret")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-cognate_session=sid.secret;")
    for attribute in ("HttpOnly", "Path=/", "SameSite=lax", "Secure"):
        assert attribute in cookie
    assert "Domain" not in cookie


@pytest.mark.parametrize(
    "path",
    [
        "/admin",
        "/admin/",
        "/admin/x",
        "/%61dmin/x",
        "//admin",
        "/x/../admin",
        "/./admin",
        "/%2561dmin",
        "/admin/./x",
        "/\\admin",
        "/Admin",
        "/ADMIN/x",
        "/admin;x",
        "/admin;jsessionid=x/secret",
        "/admin%3bx",
        "/admin.",
        "/admin%20",
        "/admin%00",
        "/public/..;/admin",
        "/admin%09",
        "/admin%0d",
        "/admin%1f",
        "/admin%7f",
        "/admin%a0",
        "/admin%c2%a0",
        "/admin%e3%80%80",
        "/%09admin",
        "/ADMIN%09/x",
        "/admin%ef%bc%8f",
        "/admin%c0%af",
    ],
)
def test_policies_match_the_path_the_app_will_serve(path: str) -> None:
    from gateway.policy import policy_for
    from gateway.settings import RoutePolicySettings

    policies = [RoutePolicySettings(path="/admin", groups=["admins"])]
    assert policy_for(policies, f"https://app.example.com{path}") is not None, path
    assert policy_for(policies, "https://app.example.com/administrator") is None
    assert policy_for(policies, "https://app.example.com/public") is None


def test_group_headers_hold_whole_names_only() -> None:
    from gateway.proxy import whole_groups

    many = [f"team-{n:04d}-readonly" for n in range(1000)]
    kept = whole_groups(many, 2048)
    assert 0 < len(kept) < 1000 and len(",".join(kept).encode()) <= 2048
    assert all(g in many for g in kept)  # every kept name is a real group, none cut short
    assert whole_groups(["admins,root", "ok", "bad\nname"], 100) == ["ok"]


async def test_cache_hits_answer_exactly_like_the_full_app(redis_server: object) -> None:
    # The hot path (gateway.proxy.fast) answers cache hits before Starlette; it must give the
    # same headers, and leave refusals, misses and ended sessions to the full application.
    settings = make_settings(
        free_port(),
        redis_server.url,  # type: ignore[attr-defined]
        forward_auth={
            "trusted_proxies": ["127.0.0.0/8"],
            "policies": [{"host": "*", "path": "/admin", "groups": ["admins"]}],
        },
    )
    gateway = GatewayServer(settings).start()
    email = f"fast-{secrets.token_hex(3)}@example.com"
    await gateway.add_user(email, email_verified=True)
    sessions = gateway.services.sessions
    loads = {"n": 0}
    original_load = sessions.load

    async def counting(*args: object, **kw: object) -> object:
        loads["n"] += 1
        return await original_load(*args, **kw)  # type: ignore[arg-type]

    sessions.load = counting  # type: ignore[method-assign]
    browser = Browser(gateway.url)
    try:
        await browser.login_for_code(email)
        app = forwarded("https://app.example/reports?q=1")
        first = await browser.http.get("/oauth2/auth", headers=app)  # a miss: the full app
        before = loads["n"]
        hit = await browser.http.get("/oauth2/auth", headers=app)  # a hit: the hot path
        assert loads["n"] == before, "the cache hit was answered without a store read"

        def identity(r: httpx.Response) -> dict[str, str]:
            return {k: v for k, v in r.headers.items() if k not in ("date", "x-request-id")}

        assert first.status_code == hit.status_code == 202
        assert identity(hit) == identity(first) and hit.headers["x-request-id"]
        keys = KeySet.import_key_set((await browser.http.get("/.well-known/jwks.json")).json())
        claims = jwt.decode(hit.headers["x-cognate-assertion"], keys).claims
        assert claims["aud"] == "https://app.example" and claims["email"] == email
        # A refusal is still explained by the full app, naming the rule.
        admin = await browser.http.get(
            "/oauth2/auth", headers=forwarded("https://app.example/admin/x")
        )
        assert admin.status_code == 403 and "/admin" in admin.text
        # Client-sent identity headers never come back; CR/LF cannot be smuggled in.
        spoofed = await browser.http.get(
            "/oauth2/auth", headers={**app, "X-Auth-Request-Email": "boss@example.com"}
        )
        assert spoofed.headers["x-auth-request-email"] == email
        # Signed out: the same cookie is refused at once (the cache was told).
        await browser.http.get("/oauth2/sign_out")
        cookie = first.request.headers["cookie"]
        async with httpx.AsyncClient(base_url=gateway.url) as stale:
            gone = await stale.get("/oauth2/auth", headers={**app, "Cookie": cookie})
        assert gone.status_code == 401
        metrics = (await browser.http.get("/metrics")).text
        assert 'route="/oauth2/auth",status="202"' in metrics
    finally:
        await browser.aclose()
        gateway.stop()
