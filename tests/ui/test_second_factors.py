"""Second factors beyond the authenticator app: codes by e-mail (through a real SMTP server, in
the user's language), and step-up for a client whose access policy demands MFA — asked, not
refused, with a new session ID once passed (SECURITY-TESTS E39)."""

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
from tests.mail import Mailbox, code_in, smtp_settings

STRICT_CB = "https://strict.example.com/cb"


@pytest.fixture(scope="module")
def gateway_with_mail(
    redis_server: RedisServer, mailbox: tuple[Mailbox, int]
) -> Iterator[GatewayServer]:
    base = make_settings(free_port(), redis_server.url)
    clients = [c.model_dump() for c in base.clients] + [
        {
            "client_id": "strict",
            "client_secret": "strict-secret-0123456789",
            "redirect_uris": [STRICT_CB],
            "access": {"mfa": True},
        }
    ]
    settings = make_settings(
        int(str(base.issuer).rsplit(":", 1)[1]),
        redis_server.url,
        clients=clients,
        email=smtp_settings(mailbox[1]),
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


async def id_token_amr(
    gateway: GatewayServer,
    http: httpx.AsyncClient,
    done: httpx.Response,
    verifier: str,
    auth: tuple[str, str] | None = None,
    redirect_uri: str = "https://app.example.com/cb",
) -> set[str]:
    kwargs = {"auth": auth, "redirect_uri": redirect_uri} if auth else {}
    tokens = (await redeem(http, location_query(done)["code"], verifier, **kwargs)).json()  # type: ignore[arg-type]
    keys = KeySet.import_key_set(httpx.get(f"{gateway.url}/.well-known/jwks.json").json())
    return set(jwt.decode(tokens["id_token"], keys).claims["amr"])


async def test_codes_by_email_as_the_second_factor_in_the_users_language(
    gateway_with_mail: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    gateway, box = gateway_with_mail, mailbox[0]
    email = f"otp-{secrets.token_hex(3)}@example.com"
    user = await gateway.add_user(email, email_verified=True)
    await gateway.call(lambda s: s.users.set_attribute(user.user_id, "locale", "fr-FR"))
    first = Browser(gateway.url)
    await first.login_for_code(email)
    page = await first.http.get("/account/mfa")
    assert "Use codes sent by e-mail" in page.text
    on = await first.http.post("/account/mfa", data={**form_fields(page.text), "action": "email"})
    assert on.status_code == 200
    assert len(re.findall(r"<code>([A-Z0-9]{5}-[A-Z0-9]{5})</code>", on.text)) == 10
    await first.aclose()

    browser = Browser(gateway.url)
    try:
        verifier, challenge = pkce_pair()
        start = await browser.authorize(**code_flow_params(code_challenge=challenge))
        answer = await browser.sign_in(start, email)
        assert answer.headers["location"].startswith("/login/mfa?")
        page = await browser.http.get(answer.headers["location"])
        assert "E-mail me a code at o•••@example.com" in page.text
        fields = form_fields(page.text)
        sent = await browser.http.post("/login/mfa", data={**fields, "action": "email"})
        assert sent.status_code == 200 and "We sent a code" in sent.text
        message = await box.next_for(email)
        assert message["Subject"].startswith("Votre code de connexion")  # the user's language
        code = code_in(message)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        refused = await browser.http.post("/login/mfa", data={**fields, "code": wrong})
        assert refused.status_code == 401
        done = await browser.http.post("/login/mfa", data={**fields, "code": code})
        assert done.status_code == 303 and "code=" in done.headers["location"], done.text
        assert {"pwd", "otp", "mfa"} <= await id_token_amr(gateway, browser.http, done, verifier)
    finally:
        await browser.aclose()


async def test_a_client_that_demands_mfa_steps_the_session_up(
    gateway_with_mail: GatewayServer,
) -> None:
    gateway = gateway_with_mail
    email = f"step-{secrets.token_hex(3)}@example.com"
    await gateway.add_user(email, email_verified=True)
    browser = Browser(gateway.url)
    try:
        await browser.login_for_code(email)  # the web client: the password is enough
        before = browser.http.cookies.get("cognate_session")
        assert before

        strict = {"client_id": "strict", "redirect_uri": STRICT_CB}
        silent = await browser.authorize(**code_flow_params(**strict, prompt="none"))
        assert location_query(silent)["error"] == "login_required"

        verifier, challenge = pkce_pair()
        start = await browser.authorize(**code_flow_params(**strict, code_challenge=challenge))
        assert start.headers["location"].startswith("/login/mfa?")  # no password asked again
        page = await browser.http.get(start.headers["location"])
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
        assert secret, "no factor yet: enrollment first"
        codes = await browser.http.post(
            "/login/mfa",
            data={**form_fields(page.text), "code": pyotp.TOTP(secret.group(1)).now()},
        )
        assert "recovery-codes" in codes.text
        done = await browser.http.post("/login/mfa", data=form_fields(codes.text))
        assert done.status_code == 303 and done.headers["location"].startswith(STRICT_CB)
        assert "code=" in done.headers["location"]
        amr = await id_token_amr(
            gateway,
            browser.http,
            done,
            verifier,
            auth=("strict", "strict-secret-0123456789"),
            redirect_uri=STRICT_CB,
        )
        assert {"pwd", "otp", "mfa"} <= amr

        # A new session ID after the second factor; the one before it is over (no fixation).
        after = browser.http.cookies.get("cognate_session")
        assert after and after != before
        assert await gateway.call(lambda s: s.sessions.load(before)) is None
        async with httpx.AsyncClient(base_url=gateway.url) as old:
            old.cookies.set("cognate_session", before)
            assert (await old.get("/oauth2/auth")).status_code == 401

        # The stepped-up session now gets codes for the strict client at once.
        again = await browser.authorize(**code_flow_params(**strict))
        assert (
            again.headers["location"].startswith(STRICT_CB) and "code=" in again.headers["location"]
        )
    finally:
        await browser.aclose()


async def test_the_second_factor_page_is_rate_limited(gateway_with_mail: GatewayServer) -> None:
    gateway = gateway_with_mail
    email = f"limit-{secrets.token_hex(3)}@example.com"
    await gateway.add_user(email, email_verified=True)
    user = await gateway.call(lambda s: s.users.by_email(email))
    # Enroll through the real API: begin → confirm with a code of its secret.
    secret = await gateway.call(lambda s: s.mfa.begin(user.user_id))
    assert await gateway.call(lambda s: s.mfa.confirm(user.user_id, pyotp.TOTP(secret).now()))
    browser = Browser(gateway.url)
    try:
        start = await browser.authorize(**code_flow_params())
        answer = await browser.sign_in(start, email)
        page = await browser.http.get(answer.headers["location"])
        fields = form_fields(page.text)
        statuses = []
        for _ in range(gateway.settings.rate_limits.login_per_account + 1):
            r = await browser.http.post("/login/mfa", data={**fields, "code": "000000"})
            statuses.append(r.status_code)
        assert statuses[0] == 401 and statuses[-1] == 429
        assert int(r.headers["retry-after"]) > 0
        # Even the right code waits out the limit (no guessing past it).
        late = await browser.http.post(
            "/login/mfa", data={**fields, "code": pyotp.TOTP(secret).at(time.time() + 30)}
        )
        assert late.status_code == 429
    finally:
        await browser.aclose()
