"""URLs that `urllib.parse` cannot even split (an IDNA-invalid host such as one holding U+FF0F,
a port that is no number) are simply not registered: the normal error page, never a 500."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest

from tests.helpers import Browser, code_flow_params, redeem

UNPARSEABLE = [
    "https://app.example.com\uff0fcb",  # NFKC turns U+FF0F into "/": urlsplit raises
    "http://127.0.0.1\uff0f@evil.example/callback",
    "http://127.0.0.1:99999/callback",  # loopback with an impossible port
    "http://127.0.0.1:port/callback",
    "http://[::1/callback",  # unbalanced bracket
]


@pytest.mark.parametrize("uri", UNPARSEABLE)
@pytest.mark.parametrize("client_id", ["web", "native"])
async def test_unparseable_redirect_uri_is_the_error_page(
    http: httpx.AsyncClient, uri: str, client_id: str
) -> None:
    query = urlencode(code_flow_params(client_id=client_id, redirect_uri=uri))
    response = await http.get(f"/oauth2/authorize?{query}")
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert "Invalid redirect address" in response.text


@pytest.mark.parametrize("uri", UNPARSEABLE)
async def test_unparseable_post_logout_redirect_uri_is_the_error_page(
    browser: Browser, http: httpx.AsyncClient, user: str, uri: str
) -> None:
    code, verifier, _ = await browser.login_for_code(user)
    hint = (await redeem(http, code, verifier)).json()["id_token"]
    for params in (
        {"id_token_hint": hint, "post_logout_redirect_uri": uri},
        {"client_id": "web", "post_logout_redirect_uri": uri},
        {"post_logout_redirect_uri": uri},
    ):
        for response in (
            await browser.http.get("/oauth2/logout?" + urlencode(params)),
            await browser.http.post("/oauth2/logout", data=params),
        ):
            assert response.status_code == 400, response.text
            assert "location" not in response.headers
    assert user in (await browser.http.get("/")).text  # still signed in
