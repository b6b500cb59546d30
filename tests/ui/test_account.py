"""The account page's password change: the current password is checked (and rate-limited),
the policy applies, every other session and token ends, this browser gets a fresh session."""

from __future__ import annotations

import secrets

from gateway.text import wait_of
from tests.helpers import WEB, Browser, GatewayServer, form_fields


async def test_change_password_ends_the_other_sessions(gateway: GatewayServer) -> None:
    email = f"chg-{secrets.token_hex(3)}@example.com"
    await gateway.add_user(email, email_verified=True)
    here, elsewhere = Browser(gateway.url), Browser(gateway.url)
    try:
        await here.login_for_code(email)
        code, verifier, _ = await elsewhere.login_for_code(email)
        from tests.helpers import redeem

        tokens = (await redeem(elsewhere.http, code, verifier)).json()
        old_cookie = here.http.cookies["cognate_session"]
        page = await here.http.get("/account/password")
        assert page.status_code == 200
        wrong = await here.http.post(
            "/account/password",
            data={**form_fields(page.text), "current": "not it", "password": "a new long one"},
        )
        assert wrong.status_code == 400 and "The current password is not right." in wrong.text
        assert "The password the" not in wrong.text
        weak = await here.http.post(
            "/account/password",
            data={
                **form_fields(page.text),
                "current": "correct horse battery staple",
                "password": "password1",
            },
        )
        assert weak.status_code == 400 and "most common passwords" in weak.text
        done = await here.http.post(
            "/account/password",
            data={
                **form_fields(page.text),
                "current": "correct horse battery staple",
                "password": "a brand new passphrase",
            },
        )
        assert done.status_code == 200 and "password is changed" in done.text
        # This browser: a new session (new id), still signed in.
        assert here.http.cookies["cognate_session"] != old_cookie
        assert (await here.http.get("/oauth2/auth")).status_code == 202
        # The other browser and its refresh token: gone.
        assert (await elsewhere.http.get("/oauth2/auth")).status_code == 401
        refreshed = await elsewhere.http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=WEB,
        )
        assert refreshed.status_code == 400
        # The new password works; the old one does not.
        again = Browser(gateway.url)
        code, _, _ = await again.login_for_code(email, password="a brand new passphrase")
        assert code
        await again.aclose()
    finally:
        await here.aclose()
        await elsewhere.aclose()


async def test_password_change_needs_a_session_and_csrf(gateway: GatewayServer) -> None:
    anonymous = Browser(gateway.url)
    try:
        assert (await anonymous.http.get("/account/password")).status_code == 401
    finally:
        await anonymous.aclose()
    email = f"csrf-{secrets.token_hex(3)}@example.com"
    await gateway.add_user(email, email_verified=True)
    browser = Browser(gateway.url)
    try:
        await browser.login_for_code(email)
        forged = await browser.http.post(
            "/account/password", data={"current": "x", "password": "y" * 12, "_csrf": "no"}
        )
        assert forged.status_code == 403
    finally:
        await browser.aclose()


async def test_see_and_end_sessions_from_the_account_page(gateway: GatewayServer) -> None:
    email = f"sess-{secrets.token_hex(3)}@example.com"
    await gateway.add_user(email, email_verified=True)
    laptop, phone = Browser(gateway.url), Browser(gateway.url)
    stranger = Browser(gateway.url)
    try:
        laptop.http.headers["User-Agent"] = "Laptop Browser/1.0"
        phone.http.headers["User-Agent"] = "Phone Browser/2.0"
        await laptop.login_for_code(email)
        await phone.login_for_code(email)
        page = await laptop.http.get("/account/sessions")
        assert page.status_code == 200
        assert "Laptop Browser/1.0" in page.text and "Phone Browser/2.0" in page.text
        assert page.text.count("End this session") == 1  # not the current one
        fields = form_fields(page.text)
        phone_sid = phone.http.cookies["cognate_session"].split(".")[0]
        assert fields["sid"] == phone_sid
        # Only one's own sessions, and never the current one this way.
        other_email = f"other-{secrets.token_hex(3)}@example.com"
        await gateway.add_user(other_email, email_verified=True)
        await stranger.login_for_code(other_email)
        stranger_sid = stranger.http.cookies["cognate_session"].split(".")[0]
        foreign = await laptop.http.post("/account/sessions", data={**fields, "sid": stranger_sid})
        assert foreign.status_code == 404
        assert (await stranger.http.get("/oauth2/auth")).status_code == 202
        ended = await laptop.http.post("/account/sessions", data=fields)
        assert ended.status_code == 200 and "That session is ended" in ended.text
        assert (await phone.http.get("/oauth2/auth")).status_code == 401
        assert (await laptop.http.get("/oauth2/auth")).status_code == 202
    finally:
        await laptop.aclose()
        await phone.aclose()
        await stranger.aclose()


async def test_wrong_current_passwords_are_limited_and_the_page_says_until_when(
    gateway: GatewayServer,
) -> None:
    email = f"lim-{secrets.token_hex(3)}@example.com"
    await gateway.add_user(email, email_verified=True)
    browser = Browser(gateway.url)
    try:
        await browser.login_for_code(email)
        page = await browser.http.get("/account/password")
        guess = {**form_fields(page.text), "current": "not it", "password": "a new long one"}
        answers = [await browser.http.post("/account/password", data=guess) for _ in range(11)]
        assert answers[0].status_code == 400 and answers[-1].status_code == 429
        # Retry-After as on every other limited page, and the same wait in words.
        retry_after = int(answers[-1].headers["retry-after"])
        assert f"Try again in {wait_of(retry_after)}." in answers[-1].text
    finally:
        await browser.aclose()
