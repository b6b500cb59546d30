"""The hosted sign-in in a real browser: Debian's Chromium driven by Playwright (launched with
`executable_path`; no browser is downloaded). It catches what HTTP clients cannot: CSP
form-action applied to the redirect after a POST, and the Origin a browser really sends."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
import pytest
from playwright.async_api import Browser, Page, Route, async_playwright

from tests.helpers import (
    PASSWORD,
    GatewayServer,
    RedisServer,
    code_flow_params,
    free_port,
    make_settings,
)
from tests.mail import Mailbox, code_in, smtp_settings

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent.parent / "artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.asynccontextmanager
async def example_test_chromium(home: Path) -> AsyncIterator[Browser]:
    """Debian's chromium through Playwright for the field topology's hosts: every
    `*.example.test` name on loopback, trusting the test CA in `home`'s NSS database."""
    assert Path(CHROMIUM).exists(), "scripts/test.sh installs Debian's chromium"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*FLAGS, "--host-resolver-rules=MAP *.example.test 127.0.0.1"],
            env={**os.environ, "HOME": str(home)},
        )
        yield browser
        await browser.close()


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), "scripts/test.sh installs Debian's chromium"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        await browser.close()


async def test_sign_in_in_chromium_reaches_the_app(
    chromium: Browser, gateway: GatewayServer, user: str
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = await chromium.new_page()
    csp_problems: list[str] = []

    async def app(route: object) -> None:  # the application's callback, served in-browser
        await route.fulfill(status=200, body="app", content_type="text/plain")  # type: ignore[attr-defined]

    await page.route("https://app.example.com/**", app)
    page.on("console", lambda m: csp_problems.append(m.text) if "Policy" in m.text else None)
    params = code_flow_params()
    await page.goto(f"{gateway.url}/oauth2/authorize?{urlencode(params)}")
    assert await page.title() == "Sign in · Cognate"
    await page.screenshot(path=str(ARTIFACTS / "sign-in.png"))
    await page.fill("#email", user)
    await page.fill("#password", "not the password")
    await page.click("button[type=submit]")
    assert "Incorrect email or password" in await page.inner_text("[role=alert]")
    await page.screenshot(path=str(ARTIFACTS / "sign-in-error.png"))
    await page.fill("#password", PASSWORD)
    async with page.expect_request("https://app.example.com/**") as back:
        await page.click("button[type=submit]")
    await page.wait_for_url("https://app.example.com/**")
    assert csp_problems == []
    query = parse_qs(urlsplit((await back.value).url).query)
    assert query["state"] == [params["state"]] and query["iss"] == [gateway.url]
    assert query["code"][0]


@pytest.fixture(scope="module")
def pool(redis_server: RedisServer, mailbox: tuple[Mailbox, int]) -> Iterator[GatewayServer]:
    """Open sign-up with mail through the loopback SMTP server, on `localhost`: WebAuthn needs a
    domain for its RP ID (an IP address cannot be one)."""
    port = free_port()
    settings = make_settings(
        port,
        redis_server.url,
        issuer=f"http://localhost:{port}",
        user_pool={"self_sign_up": True},
        email=smtp_settings(mailbox[1]),
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


async def app_page(page: Page) -> None:
    """The application's callback, served in the browser (app.example.com does not resolve)."""

    async def app(route: Route) -> None:
        await route.fulfill(status=200, body="app", content_type="text/plain")

    await page.route("https://app.example.com/**", app)


async def test_sign_up_verify_enroll_totp_and_sign_in_with_it(
    chromium: Browser, pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    # The whole journey of a new user: sign up, read the code from a real SMTP server, verify,
    # arrive at the app; turn on two-step sign-in (QR code, key typed into an "app": pyotp);
    # sign out; sign in again with password and code.
    ARTIFACTS.mkdir(exist_ok=True)
    email = f"journey-{secrets.token_hex(3)}@example.com"
    page = await chromium.new_page()
    await app_page(page)
    await page.goto(f"{pool.url}/oauth2/authorize?{urlencode(code_flow_params())}")
    await page.click("text=Create an account")
    assert await page.title() == "Create an account · Cognate"
    await page.fill("#email", email)
    await page.fill("#password", "a fine long password")
    await page.fill("#attr-name", "Journey Person")
    await page.screenshot(path=str(ARTIFACTS / "sign-up.png"))
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{pool.url}/signup/verify?**")
    code = code_in(await mailbox[0].next_for(email))
    await page.fill("#code", "000000" if code != "000000" else "111111")
    await page.click("text=Verify")
    assert "not right" in await page.inner_text("[role=alert]")
    await page.screenshot(path=str(ARTIFACTS / "verify-email-error.png"))
    await page.fill("#code", code)
    async with page.expect_request("https://app.example.com/**") as arrived:
        await page.click("text=Verify")
    assert parse_qs(urlsplit((await arrived.value).url).query)["code"][0]
    await page.wait_for_url("https://app.example.com/**")

    await page.goto(f"{pool.url}/")
    await page.screenshot(path=str(ARTIFACTS / "account.png"))
    await page.click("text=Two-step sign-in")
    await page.click("text=Set up an authenticator app")
    qr = page.locator("img[alt^='QR code']")
    assert (await qr.get_attribute("src") or "").startswith("data:image/svg+xml")
    assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")  # CSP let it render
    await page.screenshot(path=str(ARTIFACTS / "mfa-setup.png"))
    secret = (await page.inner_text("#totp-secret")).strip()
    await page.fill("#code", pyotp.TOTP(secret).now())
    await page.click("button[type=submit]")
    codes = await page.inner_text("#recovery-codes")
    assert len(re.findall(r"[A-Z0-9]{5}-[A-Z0-9]{5}", codes)) == 10
    await page.screenshot(path=str(ARTIFACTS / "mfa-recovery-codes.png"))

    await page.goto(f"{pool.url}/oauth2/logout")
    await page.screenshot(path=str(ARTIFACTS / "sign-out.png"))
    await page.click("button[type=submit]")  # confirm sign-out
    await page.goto(f"{pool.url}/oauth2/authorize?{urlencode(code_flow_params())}")
    await page.fill("#email", email)
    await page.fill("#password", "a fine long password")
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{pool.url}/login/mfa?**")
    await page.screenshot(path=str(ARTIFACTS / "mfa-code.png"))
    # The next step's code: this step's was spent on enrollment (each code works once).
    await page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
    async with page.expect_request("https://app.example.com/**") as back:
        await page.click("text=Verify")
    assert parse_qs(urlsplit((await back.value).url).query)["code"][0]


async def test_passkey_registration_and_passwordless_sign_in(
    chromium: Browser, pool: GatewayServer
) -> None:
    # Chromium's virtual authenticator (CDP WebAuthn domain) plays a platform authenticator
    # with user verification: the real navigator.credentials API, our passkey.js, our server.
    ARTIFACTS.mkdir(exist_ok=True)
    email = f"passkey-{secrets.token_hex(3)}@example.com"
    await pool.add_user(email, email_verified=True)
    context = await chromium.new_context()
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    await app_page(page)
    await page.goto(f"{pool.url}/oauth2/authorize?{urlencode(code_flow_params())}")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    async with page.expect_request("https://app.example.com/**"):
        await page.click("button[type=submit]")
    await page.wait_for_url("https://app.example.com/**")

    await page.goto(f"{pool.url}/account/passkeys")
    await page.fill("#passkey-name", "Virtual key")
    await page.click("#add-passkey")
    await page.wait_for_selector("text=Passkey “Virtual key” added.")
    await page.screenshot(path=str(ARTIFACTS / "passkeys.png"))

    await page.goto(f"{pool.url}/oauth2/logout")
    await page.click("button[type=submit]")
    await page.goto(f"{pool.url}/oauth2/authorize?{urlencode(code_flow_params())}")
    await page.screenshot(path=str(ARTIFACTS / "sign-in-passkey.png"))
    async with page.expect_request("https://app.example.com/**") as back:
        await page.click("#sign-in-passkey")  # no e-mail, no password
    assert parse_qs(urlsplit((await back.value).url).query)["code"][0]
    session = (
        await pool.call(
            lambda s: s.sessions.load(
                next(c["value"] for c in cookies if c["name"] == "cognate_session")
            )
        )
        if (cookies := await context.cookies())
        else None
    )
    assert session is not None and {"hwk", "mfa"} <= set(session.amr)
    await context.close()
