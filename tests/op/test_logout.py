"""RP-initiated logout: SECURITY-TESTS A14, and the session really ends."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import httpx

from tests.helpers import Browser, code_flow_params, form_fields, location_query, redeem


async def signed_in(browser: Browser, http: httpx.AsyncClient, user: str) -> dict[str, str]:
    code, verifier, _ = await browser.login_for_code(user)
    return dict((await redeem(http, code, verifier)).json())


async def test_logout_with_hint_redirects_to_registered_uri_and_ends_session(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    t = await signed_in(browser, http, user)
    r = await browser.http.get(
        "/oauth2/logout?"
        + urlencode(
            {
                "id_token_hint": t["id_token"],
                "post_logout_redirect_uri": "https://app.example.com/bye",
                "state": "xyz",
            }
        )
    )
    assert r.status_code == 303
    assert r.headers["location"].startswith("https://app.example.com/bye?")
    assert location_query(r) == {"state": "xyz"}
    # The session is gone: prompt=none now says login_required.
    again = await browser.authorize(**code_flow_params(prompt="none"))
    assert location_query(again)["error"] == "login_required"


async def test_unregistered_post_logout_uri_is_not_followed(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    t = await signed_in(browser, http, user)
    for uri in (
        "https://evil.example/bye",
        "https://app.example.com/bye/",
        "https://app.example.com/bye?x=1",
    ):
        r = await browser.http.get(
            "/oauth2/logout?"
            + urlencode({"id_token_hint": t["id_token"], "post_logout_redirect_uri": uri})
        )
        assert r.status_code == 400, uri
        assert "location" not in r.headers


async def test_tampered_hint_is_an_error_page(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    t = await signed_in(browser, http, user)
    header, payload, signature = t["id_token"].split(".")
    tampered = f"{header}.{payload[:-4]}AAAA.{signature}"
    r = await browser.http.get(
        "/oauth2/logout?"
        + urlencode(
            {"id_token_hint": tampered, "post_logout_redirect_uri": "https://app.example.com/bye"}
        )
    )
    assert r.status_code == 400
    assert "location" not in r.headers
    # and the user is still signed in
    home = await browser.http.get("/")
    assert user in home.text


async def test_redirect_without_client_is_refused(browser: Browser) -> None:
    r = await browser.http.get(
        "/oauth2/logout?" + urlencode({"post_logout_redirect_uri": "https://app.example.com/bye"})
    )
    assert r.status_code == 400 and "location" not in r.headers


async def test_logout_without_hint_asks_for_confirmation(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    await signed_in(browser, http, user)
    page = await browser.http.get("/oauth2/logout")
    assert page.status_code == 200 and "Sign out?" in page.text
    assert user in (await browser.http.get("/")).text  # nothing happened yet
    # Without the CSRF token the POST is refused...
    refused = await browser.http.post("/oauth2/logout", data={"_csrf": "forged"})
    assert refused.status_code == 403
    # ... with it, the session ends.
    fields = form_fields(page.text)
    done = await browser.http.post("/oauth2/logout", data=fields)
    assert done.status_code == 200 and "signed out" in done.text
    assert user not in (await browser.http.get("/")).text
    cookie_header = done.headers.get("set-cookie", "")
    assert re.search(r"cognate_session=\"?\"?;", cookie_header)
