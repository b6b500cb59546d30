"""Brute-force limits on password sign-in (SECURITY-TESTS D32): per account and per IP,
429 + Retry-After, checked before hashing, the same for unknown accounts, never permanent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.text import Phrase, wait_of
from gateway.ui.i18n import translator
from tests.helpers import (
    PASSWORD,
    Browser,
    GatewayServer,
    RedisServer,
    code_flow_params,
    form_fields,
    free_port,
    make_settings,
)


@pytest.fixture
def limited(redis_server: RedisServer) -> Iterator[GatewayServer]:
    settings = make_settings(
        free_port(),
        redis_server.url,
        rate_limits={"login_per_account": 3, "login_per_ip": 8, "window": "10m"},
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


async def attempt(browser: Browser, email: str, password: str) -> tuple[int, str, str]:
    first = await browser.authorize(**code_flow_params())
    page = await browser.http.get(first.headers["location"])
    answer = await browser.http.post(
        "/login", data={**form_fields(page.text), "email": email, "password": password}
    )
    return answer.status_code, answer.headers.get("retry-after", ""), answer.text


async def test_account_limit_then_429_even_with_the_right_password(
    limited: GatewayServer,
) -> None:
    await limited.add_user("victim@example.com")
    browser = Browser(limited.url)
    try:
        for _ in range(3):
            assert (await attempt(browser, "victim@example.com", "guess-guess"))[0] == 401
        status, retry_after, text = await attempt(browser, "victim@example.com", PASSWORD)
        assert status == 429 and "Too many attempts" in text
        assert 0 < int(retry_after) <= 600  # the window ends: no permanent lock-out
        # The page says when, as Retry-After does (not "a few minutes" whatever the window).
        assert f"Try again in {wait_of(int(retry_after))}." in text
        # Case and spacing do not make a fresh counter.
        assert (await attempt(browser, " VICTIM@example.com", PASSWORD))[0] == 429
    finally:
        await browser.aclose()


async def test_unknown_accounts_are_limited_alike(limited: GatewayServer) -> None:
    browser = Browser(limited.url)
    try:
        statuses = [
            (await attempt(browser, "ghost@example.com", "guess-guess"))[0] for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
    finally:
        await browser.aclose()


async def test_ip_limit_spans_accounts(limited: GatewayServer) -> None:
    await limited.add_user("other@example.com")
    browser = Browser(limited.url)
    try:
        for i in range(8):  # 8 accounts, 1 failure each: under every account limit
            assert (await attempt(browser, f"spray-{i}@example.com", "guess-guess"))[0] == 401
        assert (await attempt(browser, "other@example.com", PASSWORD))[0] == 429
    finally:
        await browser.aclose()


async def test_limited_attempts_cost_no_hashing(limited: GatewayServer) -> None:
    browser = Browser(limited.url)
    for _ in range(3):
        await attempt(browser, "victim@example.com", "guess-guess")
    calls = {"n": 0}
    hasher = limited.services.users.hasher
    original = hasher.verify

    async def counting(stored: str | None, password: str) -> bool:
        calls["n"] += 1
        return await original(stored, password)

    hasher.verify = counting  # type: ignore[method-assign]
    try:
        assert (await attempt(browser, "victim@example.com", PASSWORD))[0] == 429
        assert calls["n"] == 0
    finally:
        hasher.verify = original  # type: ignore[method-assign]
        await browser.aclose()


async def test_behind_a_proxy_each_client_has_its_own_ip_limit(
    limited: GatewayServer,
) -> None:
    # The gateway behind its ingress (127.0.0.1 is a trusted proxy by default): every sign-in
    # arrives from the proxy's address, so the limit must count the client that
    # X-Forwarded-For names, or one attacker locks every user out.
    await limited.add_user("bystander@example.com")
    attacker, bystander = Browser(limited.url), Browser(limited.url)
    attacker.http.headers["X-Forwarded-For"] = "203.0.113.9"
    # A client's own invented entries to the left do not move it off its address.
    bystander.http.headers["X-Forwarded-For"] = "203.0.113.9, 198.51.100.7"
    try:
        for i in range(8):
            assert (await attempt(attacker, f"spray-{i}@example.com", "guess-guess"))[0] == 401
        assert (await attempt(attacker, "spray-x@example.com", "guess-guess"))[0] == 429
        assert (await attempt(bystander, "bystander@example.com", PASSWORD))[0] == 303
    finally:
        await attacker.aclose()
        await bystander.aclose()


async def test_x_forwarded_for_from_an_untrusted_peer_counts_for_nothing(
    redis_server: RedisServer,
) -> None:
    settings = make_settings(
        free_port(),
        redis_server.url,
        rate_limits={"login_per_account": 3, "login_per_ip": 4, "window": "10m"},
        forward_auth={"trusted_proxies": ["10.0.0.0/8"]},  # the test client is not a proxy
    )
    gateway = GatewayServer(settings).start()
    browser = Browser(gateway.url)
    try:
        for i in range(4):
            browser.http.headers["X-Forwarded-For"] = f"203.0.113.{i}"  # a fresh "address"
            assert (await attempt(browser, f"spray-{i}@example.com", "guess-guess"))[0] == 401
        assert (await attempt(browser, "spray-x@example.com", "guess-guess"))[0] == 429
    finally:
        await browser.aclose()
        gateway.stop()


async def test_an_ipv6_client_is_counted_by_its_slash_64(limited: GatewayServer) -> None:
    # Every address of one /64 is one client: fresh /128s are no fresh counters.
    browser = Browser(limited.url)
    try:
        for n in range(8):
            browser.http.headers["X-Forwarded-For"] = f"2001:db8:1:2::{n + 1:x}"
            assert (await attempt(browser, f"v6-{n}@example.com", "guess-guess"))[0] == 401
        browser.http.headers["X-Forwarded-For"] = "2001:db8:1:2:ffff::9"
        assert (await attempt(browser, "v6-x@example.com", "guess-guess"))[0] == 429
        browser.http.headers["X-Forwarded-For"] = "2001:db8:1:3::1"  # another /64
        assert (await attempt(browser, "v6-y@example.com", "guess-guess"))[0] == 401
    finally:
        await browser.aclose()


def test_the_wait_is_said_in_the_readers_words() -> None:
    waits = {1: "a second", 45: "45 seconds", 60: "a minute", 61: "2 minutes", 900: "15 minutes"}
    assert {seconds: str(wait_of(seconds)) for seconds in waits} == waits
    assert str(wait_of(3660)) == "61 minutes" and str(wait_of(7201)) == "3 hours"
    french = translator("fr")
    said = Phrase("Too many attempts. Try again in %(wait)s.", wait=wait_of(300))
    assert french(said) == "Trop de tentatives. Réessayez dans 5 minutes."
    assert french(Phrase("Too many attempts. Try again in %(wait)s.", wait=wait_of(1))) == (
        "Trop de tentatives. Réessayez dans une seconde."
    )
