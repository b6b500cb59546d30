"""The `oauth2` connector with the github preset, against a GitHub Enterprise stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.federation.conftest import Federation, start_upstream_login
from tests.federation.fake_github import Account
from tests.helpers import Browser


@pytest.fixture
async def browser(federation: Federation) -> AsyncIterator[Browser]:
    federation.github.account = Account()
    b = Browser(federation.rp.url)
    yield b
    await b.aclose()


async def through_github(federation: Federation, browser: Browser) -> httpx.Response:
    to_github = await start_upstream_login(browser, "github")
    location = to_github.headers["location"]
    assert location.startswith(f"{federation.github.server.url}/login/oauth/authorize?")
    assert "code_challenge=" in location and "scope=read%3Auser+user%3Aemail+read%3Aorg" in location
    async with httpx.AsyncClient() as outside:
        back = await outside.get(location)
    return await browser.http.get(back.headers["location"].removeprefix(browser.base_url))


async def session_profile(federation: Federation, browser: Browser) -> dict:  # type: ignore[type-arg]
    session = await federation.rp.call(
        lambda s: s.sessions.load(browser.http.cookies["cognate_session"])
    )
    return {"subject": session.subject, "connector": session.connector_id, **session.profile}


async def test_github_sign_in_uses_primary_verified_email_and_teams(
    federation: Federation, browser: Browser
) -> None:
    done = await through_github(federation, browser)
    assert done.status_code == 303, done.text
    profile = await session_profile(federation, browser)
    assert profile["subject"] == "4242" and profile["connector"] == "github"
    assert profile["email"] == "octo@example.com" and profile["email_verified"] is True
    assert profile["groups"] == ["acme", "acme/admins"]
    assert profile["preferred_username"] == "octocat"


async def test_unverified_primary_email_stays_unverified(
    federation: Federation, browser: Browser
) -> None:
    federation.github.account = Account(
        id=77, emails=[{"email": "new@example.com", "primary": True, "verified": False}]
    )
    done = await through_github(federation, browser)
    assert done.status_code == 303
    profile = await session_profile(federation, browser)
    assert profile["email"] == "new@example.com" and profile["email_verified"] is False


async def test_missing_account_id_is_refused(federation: Federation, browser: Browser) -> None:
    federation.github.account = Account(id=None)
    done = await through_github(federation, browser)
    assert done.status_code == 400 and "did not say who you are" in done.text


async def test_rejected_code_is_a_clear_error(federation: Federation, browser: Browser) -> None:
    to_github = await start_upstream_login(browser, "github")
    state = to_github.headers["location"].split("state=")[1].split("&")[0]
    done = await browser.http.get(f"/login/github/callback?code=forged&state={state}")
    assert done.status_code == 400 and "returned no access token" in done.text
