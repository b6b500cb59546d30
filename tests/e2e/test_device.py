"""The device authorization grant end to end: a terminal client polls the token endpoint while
a person in real Chromium opens `verification_uri_complete`, checks the code, the application
and its scopes, approves, and signs in with password and TOTP — the ordinary sign-in, whose
end is the approval. The poller behaves as RFC 8628 clients do (waits `interval`, adds 5 s on
slow_down); the assertions are about what it receives, not about timing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pyotp
import pytest
from playwright.async_api import Browser

from tests.e2e.test_browser import ARTIFACTS, chromium  # noqa: F401 (the fixture)
from tests.helpers import PASSWORD, GatewayServer, RedisServer, free_port
from tests.op.test_device import DEVICE, device_settings


@pytest.fixture(scope="module")
def gw(redis_server: RedisServer) -> Iterator[GatewayServer]:
    settings = device_settings(free_port(), redis_server.url, device={"interval": 1})
    server = GatewayServer(settings).start()
    yield server
    server.stop()


async def poll_until_done(
    http: httpx.AsyncClient, start: dict[str, Any], polled: asyncio.Event
) -> list[Any]:
    """What a device does: poll every `interval` seconds until tokens or a final error
    (`polled` is set after the first answer)."""
    interval = int(start["interval"])
    answers: list[Any] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        await asyncio.sleep(interval)
        answer = await http.post(
            "/oauth2/token",
            data={"grant_type": DEVICE, "device_code": start["device_code"], "client_id": "cli"},
        )
        body = answer.json()
        answers.append(body)
        polled.set()
        if answer.status_code == 200 or body["error"] not in ("authorization_pending", "slow_down"):
            return answers
        if body["error"] == "slow_down":
            interval += 5
    raise AssertionError("the device never got an answer")


async def test_a_terminal_polls_while_the_user_approves_in_chromium_with_totp(
    chromium: Browser,  # noqa: F811
    gw: GatewayServer,
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    email = "device-owner@example.com"
    user = await gw.add_user(email, email_verified=True)
    secret = await gw.call(lambda s: s.mfa.begin(user.user_id))
    assert await gw.call(lambda s: s.mfa.confirm(user.user_id, pyotp.TOTP(secret).now()))

    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as http:
        start = (
            await http.post(
                "/oauth2/device_authorization",
                data={"client_id": "cli", "scope": "openid email offline_access"},
            )
        ).json()
        polled = asyncio.Event()
        poller = asyncio.create_task(poll_until_done(http, start, polled))

        page = await chromium.new_page()
        await page.goto(start["verification_uri_complete"])
        assert await page.title() == "Connect a device · Cognate"
        assert (await page.inner_text("#user-code")).strip() == start["user_code"]
        assert "Cognate CLI" in await page.inner_text("main")
        scopes = await page.locator("#device-scopes li").all_inner_texts()
        assert scopes == ["openid", "email", "offline_access"]
        await page.screenshot(path=str(ARTIFACTS / "device-confirm.png"))
        await asyncio.wait_for(polled.wait(), 30)  # the device is waiting before anyone approves
        await page.click("#approve")
        await page.wait_for_url(f"{gw.url}/login?flow=**")
        assert "Cognate CLI" in await page.inner_text("main")
        await page.fill("#email", email)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{gw.url}/login/mfa?**")
        assert not poller.done()  # no tokens before the second factor
        # The next step's code: this step's was spent on enrollment (each code works once).
        await page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
        await page.click("text=Verify")
        await page.wait_for_url(f"{gw.url}/device?result=approved&proof=*")
        assert "Device connected" in await page.inner_text("h1")
        await page.screenshot(path=str(ARTIFACTS / "device-approved.png"))

        answers = await asyncio.wait_for(poller, 60)
        assert answers[0] == {
            "error": "authorization_pending",
            "error_description": "the user has not yet approved the request",
        }
        tokens = answers[-1]
        assert {"access_token", "id_token", "refresh_token"} <= tokens.keys()
        assert tokens["scope"] == "openid email offline_access"
        claims = await http.get(
            "/oauth2/userinfo", headers={"authorization": f"Bearer {tokens['access_token']}"}
        )
        assert claims.json()["email"] == email
        # The refresh token works like any other (rotation included).
        refreshed = await http.post(
            "/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": "cli",
            },
        )
        assert refreshed.status_code == 200 and refreshed.json()["refresh_token"]
        # The session's amr says how the user signed in: password and a second factor.
        session_id = next(
            c["value"] for c in await page.context.cookies() if c["name"] == "cognate_session"
        )
        session = await gw.call(lambda s: s.sessions.load(session_id))
        assert session is not None and "mfa" in session.amr


async def test_a_user_types_the_code_and_denies_in_chromium(
    chromium: Browser,  # noqa: F811
    gw: GatewayServer,
) -> None:
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as http:
        start = (await http.post("/oauth2/device_authorization", data={"client_id": "cli"})).json()
        page = await chromium.new_page()
        await page.goto(start["verification_uri"])
        # Typed as people type it: lower case, no dash.
        await page.fill("#user_code", start["user_code"].replace("-", "").lower())
        await page.click("button[type=submit]")
        assert (await page.inner_text("#user-code")).strip() == start["user_code"]
        await page.click("#deny")
        await page.wait_for_url(f"{gw.url}/device?result=denied&proof=*")
        assert "Request denied" in await page.inner_text("h1")
        answer = await http.post(
            "/oauth2/token",
            data={"grant_type": DEVICE, "device_code": start["device_code"], "client_id": "cli"},
        )
        assert answer.status_code == 400 and answer.json()["error"] == "access_denied"
