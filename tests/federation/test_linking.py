"""Linking sign-in methods to one identity: explicitly from the account page (confirmed, CSRF,
the same session from start to end, never a login another identity owns), and automatically by
verified e-mail only where the pool enables it (SECURITY-TESTS B21)."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.federation.conftest import Federation, local_and_fake
from tests.federation.fake_op import Behaviour
from tests.helpers import Browser, GatewayServer, RedisServer, form_fields, make_settings


@pytest.fixture(autouse=True)
def good_manners(federation: Federation) -> None:
    federation.fake.reset()


async def signed_in_locally(federation: Federation) -> tuple[Browser, str]:
    """A browser signed in at the RP as a new local user; returns it and the identity ID."""
    email = f"link-{secrets.token_hex(4)}@example.com"
    await federation.rp.add_user(email, email_verified=True)
    browser = Browser(federation.rp.url)
    await browser.login_for_code(email)
    session = await federation.rp.call(
        lambda s: s.sessions.load(browser.http.cookies.get("cognate_session"))
    )
    return browser, session.identity_id


async def link_fake(federation: Federation, browser: Browser) -> httpx.Response:
    """Confirm linking the fake IdP and let it answer; returns the RP's answer."""
    confirm = await browser.http.get("/account/link/fake")
    assert confirm.status_code == 200 and "Link Fake IdP?" in confirm.text
    started = await browser.http.post("/account/link/fake", data=form_fields(confirm.text))
    assert started.status_code == 303, started.text
    assert started.headers["location"].startswith(federation.fake.issuer + "/authorize")
    async with httpx.AsyncClient() as idp:
        back = await idp.get(started.headers["location"])
    return await browser.http.get(back.headers["location"].removeprefix(federation.rp.url))


async def find(federation: Federation, connector: str, subject: str) -> str | None:
    return await federation.rp.call(lambda s: s.identities.find(connector, subject))  # type: ignore[no-any-return]


async def test_link_another_sign_in_from_the_account_page(federation: Federation) -> None:
    browser, identity_id = await signed_in_locally(federation)
    subject = f"linked-{secrets.token_hex(4)}"
    federation.fake.behaviour = Behaviour(subject=subject)
    try:
        home = await browser.http.get("/")
        assert 'href="/account/link/fake"' in home.text
        done = await link_fake(federation, browser)
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/?linked=fake"
        assert await find(federation, "fake", subject) == identity_id
        home = await browser.http.get("/")
        assert 'href="/account/link/fake"' not in home.text  # linked now
        # Signing in with the fake IdP now is signing in as the same person.
        other = Browser(federation.rp.url)
        try:
            from tests.federation.test_oidc_connector import through_fake

            assert (await through_fake(federation, other)).status_code == 303
            session = await federation.rp.call(
                lambda s: s.sessions.load(other.http.cookies.get("cognate_session"))
            )
            assert session.identity_id == identity_id
        finally:
            await other.aclose()
    finally:
        await browser.aclose()


async def test_a_login_owned_by_another_identity_is_not_taken(federation: Federation) -> None:
    first, first_id = await signed_in_locally(federation)
    second, second_id = await signed_in_locally(federation)
    subject = f"owned-{secrets.token_hex(4)}"
    federation.fake.behaviour = Behaviour(subject=subject)
    try:
        assert (await link_fake(federation, first)).status_code == 303
        refused = await link_fake(federation, second)
        assert refused.status_code == 409
        assert "already signs in as someone else" in refused.text
        assert await find(federation, "fake", subject) == first_id != second_id
    finally:
        await first.aclose()
        await second.aclose()


async def test_linking_needs_a_session_a_csrf_token_and_the_same_session(
    federation: Federation,
) -> None:
    anonymous = Browser(federation.rp.url)
    browser, identity_id = await signed_in_locally(federation)
    subject = f"switch-{secrets.token_hex(4)}"
    federation.fake.behaviour = Behaviour(subject=subject)
    try:
        assert (await anonymous.http.get("/account/link/fake")).status_code == 401
        assert (await browser.http.get("/account/link/nope")).status_code == 404
        forged = await browser.http.post("/account/link/fake", data={"_csrf": "forged"})
        assert forged.status_code == 403
        # The session changes between the start and the IdP's answer: no link.
        confirm = await browser.http.get("/account/link/fake")
        started = await browser.http.post("/account/link/fake", data=form_fields(confirm.text))
        await federation.rp.call(
            lambda s: s.sessions.end(browser.http.cookies.get("cognate_session"))
        )
        async with httpx.AsyncClient() as idp:
            back = await idp.get(started.headers["location"])
        done = await browser.http.get(back.headers["location"].removeprefix(federation.rp.url))
        assert done.status_code == 401
        assert await find(federation, "fake", subject) is None
    finally:
        await anonymous.aclose()
        await browser.aclose()


async def test_same_email_at_the_idp_is_another_identity_by_default(
    federation: Federation,
) -> None:
    email = f"same-{secrets.token_hex(4)}@example.com"
    await federation.rp.add_user(email, email_verified=True)
    local = Browser(federation.rp.url)
    fed = Browser(federation.rp.url)
    federation.fake.behaviour = Behaviour(subject=f"s-{secrets.token_hex(4)}", email=email)
    try:
        await local.login_for_code(email)
        from tests.federation.test_oidc_connector import through_fake

        assert (await through_fake(federation, fed)).status_code == 303
        ids = [
            (
                await federation.rp.call(
                    lambda s, b=b: s.sessions.load(b.http.cookies.get("cognate_session"))
                )
            ).identity_id
            for b in (local, fed)
        ]
        assert ids[0] != ids[1]
    finally:
        await local.aclose()
        await fed.aclose()


@pytest.mark.parametrize("verified", [True, False])
async def test_link_by_verified_email_when_the_pool_enables_it(
    federation: Federation, redis_server: RedisServer, verified: bool
) -> None:
    from tests.helpers import free_port

    port = free_port()
    gateway = GatewayServer(
        make_settings(
            port,
            redis_server.url,
            user_pool={"link_by_verified_email": True},
            connectors=local_and_fake(federation.fake.issuer),
        )
    ).start()
    email = f"auto-{secrets.token_hex(4)}@example.com"
    await gateway.add_user(email, email_verified=True)
    federation.fake.behaviour = Behaviour(
        subject=f"auto-{secrets.token_hex(4)}", email=email, email_verified=verified
    )
    local, fed = Browser(gateway.url), Browser(gateway.url)
    try:
        await local.login_for_code(email)
        from tests.federation.conftest import start_upstream_login

        to_idp = await start_upstream_login(fed, "fake")
        async with httpx.AsyncClient() as idp:
            back = await idp.get(to_idp.headers["location"])
        done = await fed.http.get(back.headers["location"].removeprefix(gateway.url))
        assert done.status_code == 303, done.text

        async def identity_of(b: Browser) -> str:
            session = await gateway.call(
                lambda s: s.sessions.load(b.http.cookies.get("cognate_session"))
            )
            return str(session.identity_id)

        same = await identity_of(local) == await identity_of(fed)
        assert same is verified  # an unverified e-mail never links anything
    finally:
        await local.aclose()
        await fed.aclose()
        gateway.stop()
