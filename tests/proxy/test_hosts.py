"""Forward-auth's trust rules and cross-host sessions, at the gateway itself (SECURITY-TESTS
E38-E43): which headers name the original URL (`forward_auth.mode`), failing closed when no
trusted URL is known, `sessions.cookie_domain` checks, the one-time host tickets of
/oauth2/session, redirect-loop detection, and sign-out from a cross-site link.

Requests come from 127.0.0.1 (a trusted proxy by default) and say which host they are for in
X-Forwarded-Host, as an app host's proxy would.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gateway.errors import ConfigError
from gateway.settings_loader import settings_from_dict
from tests.helpers import (
    Browser,
    GatewayServer,
    RedisServer,
    forwarded,
    free_port,
    make_settings,
)

APP = "app.other-domain.test"
POLICIES = [{"path": "/admin", "groups": ["admins"]}]


@pytest.fixture(scope="module")
def hosts_gateway(redis_server: RedisServer) -> Iterator[GatewayServer]:
    settings = make_settings(
        free_port(),
        redis_server.url,
        forward_auth={"allowed_hosts": [APP, "tools.other-domain.test"], "policies": POLICIES},
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


async def signed_in(gateway: GatewayServer) -> Browser:
    email = f"hosts-{secrets.token_hex(4)}@example.com"
    await gateway.add_user(email, email_verified=True)
    browser = Browser(gateway.url)
    await browser.login_for_code(email)
    return browser


def on(host: str, path: str = "/") -> dict[str, str]:
    """The headers of a request for `host` arriving through its proxy."""
    return forwarded(f"https://{host}{path}")


async def test_a_client_x_original_url_never_moves_the_policy(hosts_gateway: GatewayServer) -> None:
    # Caddy and Traefik pass the client's own headers to the auth endpoint: in the default
    # `forwarded` mode X-Original-URL is ignored, whatever it says.
    browser = await signed_in(hosts_gateway)
    try:
        admin = forwarded("https://app.example/admin/x")
        for extra in ({}, {"X-Original-URL": "https://app.example/hello"}):
            answer = await browser.http.get("/oauth2/auth", headers={**admin, **extra})
            assert answer.status_code == 403, extra
        ok = await browser.http.get("/oauth2/auth", headers=forwarded("https://app.example/hi"))
        assert ok.status_code == 202
    finally:
        await browser.aclose()


async def test_original_mode_reads_only_x_original_url(redis_server: RedisServer) -> None:
    settings = make_settings(
        free_port(), redis_server.url, forward_auth={"mode": "original", "policies": POLICIES}
    )
    gateway = GatewayServer(settings).start()
    browser = await signed_in(gateway)
    try:
        nginx = {"X-Original-URL": "https://app.example/admin/x", "X-Original-Method": "GET"}
        assert (await browser.http.get("/oauth2/auth", headers=nginx)).status_code == 403
        moved = {**nginx, **forwarded("https://app.example/hello")}
        assert (await browser.http.get("/oauth2/auth", headers=moved)).status_code == 403
        # X-Forwarded-* alone names nothing in this mode: with policies, that is a refusal.
        alone = await browser.http.get("/oauth2/auth", headers=forwarded("https://a.example/"))
        assert alone.status_code == 403
    finally:
        await browser.aclose()
        gateway.stop()


async def test_policies_fail_closed_without_a_trusted_url(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The test client (127.0.0.1) is not among the trusted proxies here: with policies set,
    # nothing it says can name the URL, and the answer is 403, never the identity headers.
    settings = make_settings(
        free_port(),
        redis_server.url,
        forward_auth={"trusted_proxies": ["10.0.0.0/8"], "policies": POLICIES},
    )
    gateway = GatewayServer(settings).start()
    browser = await signed_in(gateway)
    caplog.set_level(logging.WARNING, logger="cognate.proxy")
    try:
        for _ in range(3):
            answer = await browser.http.get("/oauth2/auth", headers=on("app.example", "/x"))
            assert answer.status_code == 403
            assert "trusted_proxies" in answer.text
            assert "x-auth-request-email" not in answer.headers
        warnings = [r for r in caplog.records if "forward-auth refused" in r.getMessage()]
        assert len(warnings) == 1  # once per peer, not once per request
        metrics = (await browser.http.get("/metrics")).text
        assert "cognate_forward_auth_unknown_url_total 3.0" in metrics
    finally:
        await browser.aclose()
        gateway.stop()


@pytest.mark.parametrize(
    ("domain", "problem"),
    [
        ("com", "public suffix"),
        ("co.uk", "public suffix"),
        ("github.io", "public suffix"),
        ("10.0.0.1", "address"),
        ("other.example", "does not contain"),
        ("a..example", "not a domain"),
    ],
)
def test_cookie_domain_must_be_a_registrable_parent_of_the_issuer(
    domain: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_dict(
            {
                "issuer": "https://auth.example.com",
                "secret_key": "s" * 32,
                "sessions": {"cookie_domain": domain},
            }
        )
    assert "sessions.cookie_domain" in str(raised.value) and problem in str(raised.value)


def test_a_shared_cookie_is_secure_prefixed_with_the_domain() -> None:
    from starlette.responses import Response

    from gateway.ui.pages import Pages

    settings = settings_from_dict(
        {
            "issuer": "https://auth.example.com",
            "secret_key": "s" * 32,
            "sessions": {"cookie_domain": ".Example.COM"},
        }
    )
    assert settings.sessions.cookie_domain == "example.com"
    pages = Pages(settings)
    response = Response()
    pages.set_cookie(response, "cognate_session", "sid.secret")
    pages.set_cookie(response, "cognate_session", "host.only", host_only=True)
    pages.set_cookie(response, "cognate_csrf", "b")
    shared, own, csrf = response.headers.getlist("set-cookie")
    assert shared.startswith("__Secure-cognate_session=sid.secret;")
    assert "Domain=example.com" in shared and "Secure" in shared and "HttpOnly" in shared
    assert own.startswith("__Host-cognate_session=host.only;") and "Domain" not in own
    assert csrf.startswith("__Host-cognate_csrf=") and "Domain" not in csrf


async def test_https_pages_send_hsts() -> None:
    from starlette.requests import Request

    from gateway.ui.pages import Pages

    request = Request(
        {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    )
    secure = Pages(
        settings_from_dict({"issuer": "https://auth.example.com", "secret_key": "s" * 32})
    )
    plain = Pages(settings_from_dict({"issuer": "http://127.0.0.1:9", "secret_key": "s" * 32}))
    page = secure.render(request, "logged_out.html")
    assert page.headers["strict-transport-security"].startswith("max-age=")
    assert "strict-transport-security" not in plain.render(request, "logged_out.html").headers


async def ticket_for(
    browser: Browser, app_host: httpx.AsyncClient, host: str, path: str = "/page"
) -> str:
    """The ticket a signed-in browser gets for an app on `host`, the way it travels: the app
    host's /oauth2/start binds the browser there (`app_host`: its cookie jar on that host),
    then the gateway's /oauth2/start hands over a ticket for that binding."""
    start = await app_host.get(
        "/oauth2/start", params={"rd": f"https://{host}{path}"}, headers=on(host)
    )
    assert start.status_code == 303, start.text
    assert "cognate_bind=" in start.headers["set-cookie"]
    answer = await browser.http.get(start.headers["location"])
    assert answer.status_code == 303, answer.text
    landing = urlsplit(answer.headers["location"])
    assert (landing.hostname, landing.path) == (host, "/oauth2/session")
    return parse_qs(landing.query)["ticket"][0]


async def test_a_ticket_works_once_on_its_own_host_only(hosts_gateway: GatewayServer) -> None:
    browser = await signed_in(hosts_gateway)
    try:
        async with httpx.AsyncClient(base_url=hosts_gateway.url) as app_host:
            ticket = await ticket_for(browser, app_host, APP)
            # Through another host: refused, and the ticket is spent.
            other = await app_host.get(
                "/oauth2/session", params={"ticket": ticket}, headers=on("tools.other-domain.test")
            )
            assert other.status_code == 400 and "set-cookie" not in other.headers
            again = await app_host.get(
                "/oauth2/session", params={"ticket": ticket}, headers=on(APP)
            )
            assert again.status_code == 400
            # A fresh one, on its own host: a host-only session cookie, then the page.
            ticket = await ticket_for(browser, app_host, APP)
            landed = await app_host.get(
                "/oauth2/session", params={"ticket": ticket}, headers=on(APP)
            )
            assert landed.status_code == 303
            assert landed.headers["location"] == f"https://{APP}/page"
            assert "Domain" not in landed.headers["set-cookie"]
            cookie = landed.cookies["cognate_session"]
            replay = await app_host.get(
                "/oauth2/session", params={"ticket": ticket}, headers=on(APP)
            )
            assert replay.status_code == 400  # single use
            jar = {"Cookie": f"cognate_session={cookie}"}
            here = await app_host.get("/oauth2/auth", headers={**jar, **on(APP, "/x")})
            assert here.status_code == 202
            # The host's session is worthless on another host, and at the gateway's pages.
            tools = on("tools.other-domain.test", "/x")
            assert (await app_host.get("/oauth2/auth", headers={**jar, **tools})).status_code == 401
            account = await app_host.get("/oauth2/userinfo", headers=jar)
            assert account.status_code == 401
            # oauth2-proxy's cookie userinfo through the app host's proxy: that host's session.
            mine = await app_host.get("/oauth2/userinfo", headers={**jar, **on(APP)})
            assert mine.status_code == 200 and mine.json()["identityId"].startswith("us-")
    finally:
        await browser.aclose()


async def test_signing_out_on_an_app_host_ends_every_host(hosts_gateway: GatewayServer) -> None:
    browser = await signed_in(hosts_gateway)
    try:
        async with httpx.AsyncClient(base_url=hosts_gateway.url) as app_host:
            cookies = {}
            for host in (APP, "tools.other-domain.test"):
                landed = await app_host.get(
                    "/oauth2/session",
                    params={"ticket": await ticket_for(browser, app_host, host)},
                    headers=on(host),
                )
                cookies[host] = landed.cookies["cognate_session"]
            out = await app_host.get(
                "/oauth2/sign_out",
                headers={"Cookie": f"cognate_session={cookies[APP]}", **on(APP)},
            )
            assert out.status_code == 200 and "signed out" in out.text.lower()
            for host, cookie in cookies.items():
                check = await app_host.get(
                    "/oauth2/auth", headers={"Cookie": f"cognate_session={cookie}", **on(host)}
                )
                assert check.status_code == 401, host
        mine = forwarded(f"{hosts_gateway.url}/x")
        assert (await browser.http.get("/oauth2/auth", headers=mine)).status_code == 401
    finally:
        await browser.aclose()


async def test_a_ticket_works_only_in_the_browser_it_was_made_for(
    hosts_gateway: GatewayServer,
) -> None:
    # Login CSRF: an attacker mints a ticket with his own session and sends the link to a
    # victim. Opened in the victim's browser it must not sign the victim in as the attacker.
    attacker = await signed_in(hosts_gateway)
    url = hosts_gateway.url
    try:
        async with (
            httpx.AsyncClient(base_url=url) as attacker_app,
            httpx.AsyncClient(base_url=url) as victim_app,
        ):
            ticket = await ticket_for(attacker, attacker_app, APP)
            opened = await victim_app.get(
                "/oauth2/session", params={"ticket": ticket}, headers=on(APP)
            )
            assert opened.status_code == 400 and "set-cookie" not in opened.headers
            # Nor when the victim's browser holds a binding of its own on that host.
            own = await victim_app.get(
                "/oauth2/start", params={"rd": f"https://{APP}/"}, headers=on(APP)
            )
            assert own.status_code == 303 and victim_app.cookies.get("cognate_bind")
            ticket = await ticket_for(attacker, attacker_app, APP)
            opened = await victim_app.get(
                "/oauth2/session", params={"ticket": ticket}, headers=on(APP)
            )
            assert opened.status_code == 400 and "cognate_session" not in opened.cookies
            # The attacker's own browser still can (the binding is the only difference).
            ticket = await ticket_for(attacker, attacker_app, APP)
            mine = await attacker_app.get(
                "/oauth2/session", params={"ticket": ticket}, headers=on(APP)
            )
            assert mine.status_code == 303
    finally:
        await attacker.aclose()


async def test_a_binding_from_a_link_never_takes_a_victims_session(
    hosts_gateway: GatewayServer,
) -> None:
    # The attacker registers a binding of his own on the app host, then has a signed-in
    # victim open the gateway's /oauth2/start with it and an rd on another port of that
    # host, where he listens: the victim's session must not leave for it.
    victim = await signed_in(hosts_gateway)
    try:
        async with httpx.AsyncClient(base_url=hosts_gateway.url) as attacker_app:
            start = await attacker_app.get(
                "/oauth2/start", params={"rd": f"https://{APP}/x"}, headers=on(APP)
            )
            bind = parse_qs(urlsplit(start.headers["location"]).query)["bind"][0]
        for rd in (f"https://{APP}:9999/z", f"http://{APP}/z"):
            lured = await victim.http.get("/oauth2/start", params={"rd": rd, "bind": bind})
            assert lured.status_code == 400, (rd, lured.headers.get("location"))
            assert "ticket" not in lured.headers.get("location", "")
        # A bind value nobody registered is never taken from a link either.
        forged = await victim.http.get(
            "/oauth2/start", params={"rd": f"https://{APP}/x", "bind": "f" * 43}
        )
        assert forged.status_code == 303
        assert forged.headers["location"].startswith(f"https://{APP}/oauth2/start?")
    finally:
        await victim.aclose()


async def test_a_start_at_the_gateway_binds_on_the_app_host_first(
    hosts_gateway: GatewayServer,
) -> None:
    browser = await signed_in(hosts_gateway)
    try:
        answer = await browser.http.get("/oauth2/start", params={"rd": f"https://{APP}/x"})
        assert answer.status_code == 303
        assert answer.headers["location"].startswith(f"https://{APP}/oauth2/start?rd=")
    finally:
        await browser.aclose()


async def test_a_host_that_drops_its_cookie_ends_in_a_page_not_a_loop(
    hosts_gateway: GatewayServer,
) -> None:
    browser = await signed_in(hosts_gateway)
    try:
        statuses = []
        for _ in range(8):
            answer = await browser.http.get("/oauth2/start", params={"rd": f"https://{APP}/"})
            statuses.append(answer.status_code)
        assert statuses[:5] == [303] * 5
        assert statuses[-1] == 508
        assert APP in answer.text and "/oauth2/" in answer.text
    finally:
        await browser.aclose()


async def test_a_cross_site_get_cannot_sign_anyone_out(hosts_gateway: GatewayServer) -> None:
    browser = await signed_in(hosts_gateway)
    try:
        linked = await browser.http.get(
            "/oauth2/sign_out", params={"rd": "/"}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert linked.status_code == 200 and 'action="/oauth2/sign_out"' in linked.text
        mine = forwarded(f"{hosts_gateway.url}/x")
        still = await browser.http.get("/oauth2/auth", headers=mine)
        assert still.status_code == 202  # still signed in
        confirmed = await browser.http.post("/oauth2/sign_out", data={"rd": "/"})
        assert confirmed.status_code == 303
        assert (await browser.http.get("/oauth2/auth", headers=mine)).status_code == 401
        again = await signed_in(hosts_gateway)
        typed = await again.http.get("/oauth2/sign_out", headers={"Sec-Fetch-Site": "none"})
        assert typed.status_code == 200 and "signed out" in typed.text.lower()
        assert (await again.http.get("/oauth2/auth", headers=mine)).status_code == 401
        await again.aclose()
    finally:
        await browser.aclose()


@pytest.mark.parametrize("path", ["/oauth2/start", "/oauth2/sign_out"])
async def test_an_unparseable_rd_is_not_allowed(hosts_gateway: GatewayServer, path: str) -> None:
    browser = await signed_in(hosts_gateway)
    try:
        answer = await browser.http.get(
            path, params={"rd": "https://a\uff0fb.example/x"}, headers={"Sec-Fetch-Site": "none"}
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == f"{hosts_gateway.url}/"
    finally:
        await browser.aclose()


def test_check_config_warns_when_policies_meet_loopback_only_proxies(tmp_path: Path) -> None:
    from tests.test_cli import cognate

    base = "issuer: https://auth.example.com\nsecret_key: " + "s" * 32 + "\n"
    policies = "forward_auth:\n  policies: [{path: /admin, groups: [admins]}]\n"
    risky = tmp_path / "risky.yaml"
    risky.write_text(base + policies)
    result = cognate("check-config", str(risky))
    assert result.returncode == 0, result.stderr
    assert "trusted_proxies is loopback only" in result.stdout
    fine = tmp_path / "fine.yaml"
    fine.write_text(base + policies + "  trusted_proxies: [10.0.0.5/32]\n")
    assert "loopback only" not in cognate("check-config", str(fine)).stdout


@pytest.mark.parametrize(
    "entry", ["https://app.example.com", "app.example.com:8443", "app.example.com/x", "a b"]
)
def test_allowed_hosts_are_host_names(entry: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_dict(
            {
                "issuer": "https://auth.example.com",
                "secret_key": "s" * 32,
                "forward_auth": {"allowed_hosts": [entry]},
            }
        )
    assert "forward_auth.allowed_hosts" in str(raised.value)
    assert "without scheme, port or path" in str(raised.value)


@pytest.mark.parametrize(
    "rd",
    [
        f"https://{APP}:18443.evil.example/",  # a "port" that is another host
        f"https://{APP}:99999/",
        f"https://{APP}:0/",
    ],
)
async def test_a_malformed_port_gets_no_ticket(hosts_gateway: GatewayServer, rd: str) -> None:
    browser = await signed_in(hosts_gateway)
    try:
        answer = await browser.http.get("/oauth2/start", params={"rd": rd})
        assert answer.status_code == 303
        assert answer.headers["location"] == f"{hosts_gateway.url}/"
    finally:
        await browser.aclose()


async def test_no_trailing_slash_redirect_downgrades_to_http(
    hosts_gateway: GatewayServer,
) -> None:
    async with httpx.AsyncClient(base_url=hosts_gateway.url) as http:
        answer = await http.get("/oauth2/start/", headers=on(APP))
        assert answer.status_code == 404  # never a 307 built from the plain-http hop
        assert "location" not in answer.headers


def test_a_spaced_cookie_is_removed_as_it_is_read() -> None:
    from gateway.cookies import without_cookies

    names = {"__Host-cognate_session"}
    assert without_cookies("__Host-cognate_session = s.x; theme=dark", names) == "theme=dark"
