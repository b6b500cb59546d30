"""Passkeys over HTTP with a software authenticator: registration on the account page,
passwordless sign-in, passkey as the second factor, and what must be refused (another origin,
a replayed answer, a counter going backwards, no user verification for passwordless, another
account's passkey as a second factor). The browser test (tests/e2e) uses Chromium's own virtual
authenticator."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from html import unescape
from urllib.parse import urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.helpers import (
    Browser,
    GatewayServer,
    RedisServer,
    code_flow_params,
    form_fields,
    free_port,
    location_query,
    make_settings,
    pkce_pair,
    redeem,
)
from tests.ui.soft_authenticator import SoftAuthenticator


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer) -> Iterator[GatewayServer]:
    """On `localhost`: a WebAuthn RP ID must be a domain name."""
    port = free_port()
    server = GatewayServer(
        make_settings(port, redis_server.url, issuer=f"http://localhost:{port}")
    ).start()
    yield server
    server.stop()


def test_no_passkeys_on_an_ip_address_issuer() -> None:
    from gateway.users.passkeys import Passkeys

    assert not Passkeys(None, "http://127.0.0.1:8080", "x").enabled  # type: ignore[arg-type]
    assert Passkeys(None, "https://auth.example.com", "x").enabled  # type: ignore[arg-type]


def test_origins_that_may_run_a_ceremony_lie_within_the_relying_party_id() -> None:
    from gateway.users.passkeys import Passkeys

    keys = Passkeys(None, "https://auth.example.com", "x", rp_id="example.com")  # type: ignore[arg-type]
    candidates = [
        "https://app.example.com",  # a subdomain: yes
        "https://example.com",  # the RP ID itself: yes
        "http://app.example.com",  # not a secure context: no
        "https://badexample.com",  # not a subdomain, only a longer name: no
        "https://example.com.evil.test",  # no
        "http://app.localhost:3000",  # outside example.com: no
    ]
    assert keys.origins_with(candidates) == (
        "https://auth.example.com",
        "https://app.example.com",
        "https://example.com",
    )
    local = Passkeys(None, "http://localhost:8080", "x")  # type: ignore[arg-type]
    assert local.origins_with(["http://app.localhost:3000"]) == (
        "http://localhost:8080",
        "http://app.localhost:3000",
    )


def options_in(html: str) -> str:
    found = re.search(r'data-options="([^"]*)"', html)
    assert found, "the page offers a passkey ceremony"
    return unescape(found.group(1))


def authenticator_for(gateway: GatewayServer) -> SoftAuthenticator:
    parts = urlsplit(gateway.url)
    return SoftAuthenticator(origin=f"{parts.scheme}://{parts.netloc}", rp_id=str(parts.hostname))


async def signed_in_with_passkey(gateway: GatewayServer) -> tuple[Browser, str, SoftAuthenticator]:
    """A new account, signed in with its password, with one passkey registered."""
    email = f"pk-{secrets.token_hex(3)}@example.com"
    await gateway.add_user(email, email_verified=True)
    browser = Browser(gateway.url)
    await browser.login_for_code(email)
    page = await browser.http.get("/account/passkeys")
    assert page.status_code == 200 and "No passkeys yet" in page.text
    key = authenticator_for(gateway)
    added = await browser.http.post(
        "/account/passkeys",
        data={
            **form_fields(page.text),
            "action": "add",
            "credential": key.create(options_in(page.text)),
            "name": "Laptop",
        },
    )
    assert added.status_code == 200, added.text
    assert "Laptop" in added.text and "No passkeys yet" not in added.text
    return browser, email, key


async def passwordless(
    browser: Browser, key: SoftAuthenticator, **answer: object
) -> tuple[httpx.Response, str]:
    verifier, challenge = pkce_pair()
    first = await browser.authorize(**code_flow_params(code_challenge=challenge, prompt="login"))
    page = await browser.http.get(first.headers["location"])
    credential = key.get(options_in(page.text), **answer)  # type: ignore[arg-type]
    done = await browser.http.post(
        "/login/passkey", data={**form_fields(page.text), "credential": credential}
    )
    return done, verifier


async def test_passwordless_sign_in_with_a_registered_passkey(gateway: GatewayServer) -> None:
    browser, _, key = await signed_in_with_passkey(gateway)
    await browser.aclose()
    fresh = Browser(gateway.url)
    try:
        done, verifier = await passwordless(fresh, key)
        assert done.status_code == 303 and "code=" in done.headers["location"], done.text
        tokens = (await redeem(fresh.http, location_query(done)["code"], verifier)).json()
        keys = KeySet.import_key_set(httpx.get(f"{gateway.url}/.well-known/jwks.json").json())
        amr = set(jwt.decode(tokens["id_token"], keys).claims["amr"])
        assert {"hwk", "mfa"} <= amr and "pwd" not in amr
    finally:
        await fresh.aclose()


async def test_passkey_answers_that_must_be_refused(gateway: GatewayServer) -> None:
    browser, _, key = await signed_in_with_passkey(gateway)
    try:
        # Registration signed for another origin: refused, nothing kept.
        page = await browser.http.get("/account/passkeys")
        other = authenticator_for(gateway)
        phished = await browser.http.post(
            "/account/passkeys",
            data={
                **form_fields(page.text),
                "action": "add",
                "credential": other.create(options_in(page.text), origin="https://evil.example"),
            },
        )
        assert phished.status_code == 400 and phished.text.count("<li>") == 1

        # Passwordless without user verification (presence only): refused.
        fresh = Browser(gateway.url)
        done, _ = await passwordless(fresh, key, user_verified=False)
        assert done.status_code == 401

        # Signed for another origin: refused.
        done, _ = await passwordless(fresh, key, origin="https://evil.example")
        assert done.status_code == 401

        # A counter that does not move forward (a cloned authenticator): refused.
        done, _ = await passwordless(fresh, key)
        assert done.status_code == 303
        done, _ = await passwordless(fresh, key, advance=0)
        assert done.status_code == 401

        # The same answer twice: the challenge was spent by the first.
        first = await fresh.authorize(**code_flow_params(prompt="login"))
        page = await fresh.http.get(first.headers["location"])
        answer = key.get(options_in(page.text))
        fields = {**form_fields(page.text), "credential": answer}
        assert (await fresh.http.post("/login/passkey", data=fields)).status_code == 303
        second = await fresh.authorize(**code_flow_params(prompt="login"))
        page = await fresh.http.get(second.headers["location"])
        replayed = {**form_fields(page.text), "credential": answer}
        assert (await fresh.http.post("/login/passkey", data=replayed)).status_code == 401
        await fresh.aclose()
    finally:
        await browser.aclose()


async def test_a_passkey_is_a_second_factor_of_its_own_account_only(
    gateway: GatewayServer,
) -> None:
    owner, email, key = await signed_in_with_passkey(gateway)
    await owner.aclose()
    stranger, _, stranger_key = await signed_in_with_passkey(gateway)
    await stranger.aclose()

    async def password_then_passkey(authenticator: SoftAuthenticator) -> httpx.Response:
        browser = Browser(gateway.url)
        first = await browser.authorize(**code_flow_params())
        answer = await browser.sign_in(first, email)
        assert answer.headers["location"].startswith("/login/mfa?")  # a passkey is a factor
        assert "cognate_session" not in browser.http.cookies
        page = await browser.http.get(answer.headers["location"])
        fields = form_fields(page.text)
        done = await browser.http.post(
            "/login/mfa", data={**fields, "credential": authenticator.get(options_in(page.text))}
        )
        await browser.aclose()
        return done

    assert (await password_then_passkey(stranger_key)).status_code == 401
    done = await password_then_passkey(key)
    assert done.status_code == 303 and "code=" in done.headers["location"]


async def test_removing_a_passkey_stops_it_signing_in(gateway: GatewayServer) -> None:
    browser, _, key = await signed_in_with_passkey(gateway)
    try:
        page = await browser.http.get("/account/passkeys")
        credential_id = re.search(r'name="id" value="([^"]+)"', page.text)
        assert credential_id
        removed = await browser.http.post(
            "/account/passkeys",
            data={
                "_csrf": form_fields(page.text)["_csrf"],
                "action": "remove",
                "id": credential_id.group(1),
            },
        )
        assert removed.status_code == 200 and "No passkeys yet" in removed.text
        fresh = Browser(gateway.url)
        done, _ = await passwordless(fresh, key)
        assert done.status_code == 401
        await fresh.aclose()
    finally:
        await browser.aclose()


def test_check_config_warns_of_app_origins_that_cannot_use_passkeys() -> None:
    from gateway.settings_loader import settings_from_dict
    from gateway.users.passkeys import setup_warnings

    def settings(origins: list[str], **pool: object) -> object:
        client = {"client_id": "app", "token_endpoint_auth_method": "none", "grant_types": []}
        return settings_from_dict(
            {
                "issuer": "https://auth.example.com",
                "secret_key": "s" * 32,
                "user_pool": pool,
                "clients": [{**client, "allowed_origins": origins}],
            }
        )

    apps = ["https://app.example.com", "https://www.example.org"]
    assert setup_warnings(settings(apps, passkey_relying_party_id="example.com")) == [  # type: ignore[arg-type]
        "clients[0].allowed_origins: https://www.example.org is outside the passkey relying "
        "party ID example.com (or not https), so that page cannot use passkeys; serve the app "
        "under it, or set user_pool.passkey_relying_party_id to a parent domain of the "
        "issuer's host and the app's"
    ]
    (warning,) = setup_warnings(settings(["https://app.example.com"]))  # type: ignore[arg-type]
    assert "outside the passkey relying party ID auth.example.com" in warning
    assert setup_warnings(settings(apps, passkeys=False)) == []  # type: ignore[arg-type]
