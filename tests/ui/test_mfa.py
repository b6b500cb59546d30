"""Two-step sign-in with TOTP: enrollment on the account page (QR, key, confirmation, recovery
codes), the second step at sign-in with no session before it (SECURITY-TESTS D36, D39), code
reuse and drift (D35), single-use recovery codes, and pools that require MFA."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator

import httpx
import pyotp
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


@pytest.fixture(scope="module")
def gateways(redis_server: RedisServer) -> Iterator[dict[str, GatewayServer]]:
    optional = GatewayServer(make_settings(free_port(), redis_server.url)).start()
    required = GatewayServer(
        make_settings(free_port(), redis_server.url, user_pool={"mfa": "required"})
    ).start()
    yield {"optional": optional, "required": required}
    optional.stop()
    required.stop()


def code_at(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


async def enroll(browser: Browser) -> tuple[str, list[str]]:
    """Turn TOTP on from the account page; returns the secret and the recovery codes."""
    page = await browser.http.get("/account/mfa")
    assert page.status_code == 200 and "Set up an authenticator app" in page.text
    setup = await browser.http.post(
        "/account/mfa", data={**form_fields(page.text), "action": "begin"}
    )
    assert setup.status_code == 200
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', setup.text)
    assert secret and 'src="data:image/svg+xml' in setup.text  # the QR code, and the key
    wrong = await browser.http.post(
        "/account/mfa", data={**form_fields(setup.text), "action": "confirm", "code": "000000"}
    )
    assert wrong.status_code == 400  # a wrong code does not turn it on ...
    # ... and keeps the secret the app already scanned: the same key, a second try, no rescan.
    kept = re.search(r'id="totp-secret">([A-Z2-7]+)<', wrong.text)
    assert kept and kept.group(1) == secret.group(1) and "not right" in wrong.text
    done = await browser.http.post(
        "/account/mfa",
        data={**form_fields(wrong.text), "action": "confirm", "code": code_at(secret.group(1))},
    )
    assert done.status_code == 200, done.text
    codes = re.findall(r"<code>([A-Z0-9]{5}-[A-Z0-9]{5})</code>", done.text)
    assert len(codes) == 10
    return secret.group(1), codes


async def password_step(gateway: GatewayServer, email: str) -> tuple[Browser, str, str]:
    """A new browser past the password: (browser, PKCE verifier, the MFA page URL)."""
    browser = Browser(gateway.url)
    verifier, challenge = pkce_pair()
    first = await browser.authorize(**code_flow_params(code_challenge=challenge))
    answer = await browser.sign_in(first, email)
    assert answer.status_code == 303, answer.text
    return browser, verifier, answer.headers["location"]


async def test_enroll_then_sign_in_with_a_code(gateways: dict[str, GatewayServer]) -> None:
    gateway = gateways["optional"]
    email = f"mfa-{secrets.token_hex(3)}@example.com"
    await gateway.add_user(email, email_verified=True)
    first = Browser(gateway.url)
    await first.login_for_code(email)  # optional MFA, none yet: the password is enough
    secret, recovery = await enroll(first)
    await first.aclose()

    browser, verifier, mfa_url = await password_step(gateway, email)
    try:
        assert mfa_url.startswith("/login/mfa?flow=")
        # Password done, second factor not: nothing that needs a session works yet.
        assert "cognate_session" not in browser.http.cookies
        assert (await browser.http.get("/oauth2/auth")).status_code == 401
        assert (await browser.http.get("/account/mfa")).status_code == 401
        again = await browser.authorize(**code_flow_params())
        assert again.headers["location"].startswith("/login?")  # back to sign-in, no code
        page = await browser.http.get(mfa_url)
        assert "Enter your code" in page.text
        wrong = await browser.http.post(
            "/login/mfa", data={**form_fields(page.text), "code": "123456"}
        )
        assert wrong.status_code == 401
        code = code_at(secret, 1)  # one step ahead: within the ±1 window
        done = await browser.http.post("/login/mfa", data={**form_fields(page.text), "code": code})
        assert done.status_code == 303 and "code=" in done.headers["location"], done.text
        tokens = (await redeem(browser.http, location_query(done)["code"], verifier)).json()
        keys = KeySet.import_key_set(httpx.get(f"{gateway.url}/.well-known/jwks.json").json())
        assert {"pwd", "otp", "mfa"} <= set(jwt.decode(tokens["id_token"], keys).claims["amr"])
        # The same code again, in another sign-in inside its window: refused.
        other, _, other_url = await password_step(gateway, email)
        page = await other.http.get(other_url)
        reused = await other.http.post("/login/mfa", data={**form_fields(page.text), "code": code})
        assert reused.status_code == 401
        # Two steps away is outside the window.
        late = await other.http.post(
            "/login/mfa", data={**form_fields(page.text), "code": code_at(secret, 3)}
        )
        assert late.status_code == 401
        # A recovery code works once.
        first_use = await other.http.post(
            "/login/mfa", data={**form_fields(page.text), "code": recovery[0].lower()}
        )
        assert first_use.status_code == 303
        await other.aclose()
        third, _, third_url = await password_step(gateway, email)
        page = await third.http.get(third_url)
        second_use = await third.http.post(
            "/login/mfa", data={**form_fields(page.text), "code": recovery[0]}
        )
        assert second_use.status_code == 401
        await third.aclose()
    finally:
        await browser.aclose()


async def test_removing_mfa_needs_a_code(gateways: dict[str, GatewayServer]) -> None:
    gateway = gateways["optional"]
    email = f"rm-{secrets.token_hex(3)}@example.com"
    await gateway.add_user(email, email_verified=True)
    browser = Browser(gateway.url)
    try:
        await browser.login_for_code(email)
        secret, _ = await enroll(browser)
        page = await browser.http.get("/account/mfa")
        refused = await browser.http.post(
            "/account/mfa", data={**form_fields(page.text), "action": "remove", "code": "999999"}
        )
        assert refused.status_code == 400
        removed = await browser.http.post(
            "/account/mfa",
            data={**form_fields(page.text), "action": "remove", "code": code_at(secret, 1)},
        )
        assert removed.status_code == 200 and "Turned off" in removed.text
        # And the next sign-in is the password alone again.
        again = Browser(gateway.url)
        code, _, _ = await again.login_for_code(email)
        assert code
        await again.aclose()
    finally:
        await browser.aclose()


async def test_a_pool_that_requires_mfa_enrolls_at_first_sign_in(
    gateways: dict[str, GatewayServer],
) -> None:
    gateway = gateways["required"]
    email = f"req-{secrets.token_hex(3)}@example.com"
    await gateway.add_user(email, email_verified=True)
    browser, verifier, mfa_url = await password_step(gateway, email)
    try:
        page = await browser.http.get(mfa_url)
        assert "Set up two-step sign-in" in page.text
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
        assert secret
        shown = await browser.http.post(
            "/login/mfa", data={**form_fields(page.text), "code": code_at(secret.group(1))}
        )
        assert shown.status_code == 200
        assert len(re.findall(r"<code>[A-Z0-9]{5}-[A-Z0-9]{5}</code>", shown.text)) == 10
        assert "cognate_session" not in browser.http.cookies  # still no session
        done = await browser.http.post("/login/mfa", data=form_fields(shown.text))
        assert done.status_code == 303 and "code=" in done.headers["location"]
        assert (
            await redeem(browser.http, location_query(done)["code"], verifier)
        ).status_code == 200
    finally:
        await browser.aclose()


async def test_the_mfa_secret_is_sealed_at_rest(gateways: dict[str, GatewayServer]) -> None:
    gateway = gateways["optional"]
    email = f"seal-{secrets.token_hex(3)}@example.com"
    await gateway.add_user(email, email_verified=True)
    browser = Browser(gateway.url)
    try:
        await browser.login_for_code(email)
        secret, _ = await enroll(browser)
        user = await gateway.call(lambda s: s.users.by_email(email))
        raw = await gateway.call(lambda s: s.store.get(s.store.key("mfa", user.user_id)))
        assert raw and secret.encode() not in raw
    finally:
        await browser.aclose()


async def test_mfa_off_means_no_enrollment(redis_server: RedisServer) -> None:
    gateway = GatewayServer(
        make_settings(free_port(), redis_server.url, user_pool={"mfa": "off"})
    ).start()
    browser = Browser(gateway.url)
    try:
        email = f"off-{secrets.token_hex(3)}@example.com"
        await gateway.add_user(email, email_verified=True)
        await browser.login_for_code(email)
        assert (await browser.http.get("/account/mfa")).status_code == 404
        tried = await browser.http.post("/account/mfa", data={"action": "begin"})
        assert tried.status_code == 404
        user = await gateway.call(lambda s: s.users.by_email(email))
        assert await gateway.call(lambda s: s.mfa.get(user.user_id)) is None
    finally:
        await browser.aclose()
        gateway.stop()
