"""The hosted sign-in in a real browser: Debian's Chromium driven by Playwright (launched with
`executable_path`; no browser is downloaded). It catches what HTTP clients cannot: CSP
form-action applied to the redirect after a POST, and the Origin a browser really sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.async_api import Browser, async_playwright

from tests.helpers import PASSWORD, GatewayServer, code_flow_params

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


async def test_totp_enrollment_and_sign_in_in_chromium(
    chromium: Browser, gateway: GatewayServer
) -> None:
    # Sign in, turn on two-step sign-in from the account page (QR shown; the key typed into an
    # "app", pyotp), sign out, sign in again with password and code: the app gets its code.
    import re
    import secrets
    import time

    import pyotp

    ARTIFACTS.mkdir(exist_ok=True)
    email = f"totp-{secrets.token_hex(3)}@example.com"
    await gateway.add_user(email, email_verified=True)
    page = await chromium.new_page()

    async def app(route: object) -> None:
        await route.fulfill(status=200, body="app", content_type="text/plain")  # type: ignore[attr-defined]

    await page.route("https://app.example.com/**", app)

    async def sign_in_with_password() -> None:
        await page.goto(f"{gateway.url}/oauth2/authorize?{urlencode(code_flow_params())}")
        await page.fill("#email", email)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")

    await sign_in_with_password()
    await page.wait_for_url("https://app.example.com/**")
    await page.goto(f"{gateway.url}/")
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

    await page.goto(f"{gateway.url}/oauth2/logout")
    await page.click("button[type=submit]")  # confirm sign-out
    await sign_in_with_password()
    await page.wait_for_url(f"{gateway.url}/login/mfa?**")
    await page.screenshot(path=str(ARTIFACTS / "mfa-code.png"))
    # The next step's code: this step's was spent on enrollment (each code works once).
    await page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
    async with page.expect_request("https://app.example.com/**") as back:
        await page.click("button[type=submit]")
    assert parse_qs(urlsplit((await back.value).url).query)["code"][0]
