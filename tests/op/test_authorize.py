"""The authorization endpoint: SECURITY-TESTS A1-A3, A6 (request side), A8, A9, A15."""

from __future__ import annotations

import base64
import json
import time as real_time
from urllib.parse import urlencode

import httpx
import pytest

from tests.helpers import Browser, code_flow_params, location_query, redeem

BASE = code_flow_params()


def authorize_url(**changes: str | None) -> str:
    return "/oauth2/authorize?" + urlencode(code_flow_params(**changes))


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://app.example.com/cb?extra=1",  # extra query
        "https://APP.example.com/cb",  # case
        "https://app.example.com/CB",
        "https://app.example.com/cb/",  # trailing slash
        "https://app.example.com/cb#frag",  # fragment
        "https://user@app.example.com/cb",  # user-info
        "https://app.example.com:8443/cb",  # port
        "https://app.example.com.evil.com/cb",  # suffix
        "http://app.example.com/cb",  # scheme
        "https://evil.example/cb",
    ],
)
async def test_redirect_uri_must_match_exactly(http: httpx.AsyncClient, redirect_uri: str) -> None:
    response = await http.get(authorize_url(redirect_uri=redirect_uri))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "Invalid redirect address" in response.text


async def test_loopback_redirect_port_may_vary_only_the_port(http: httpx.AsyncClient) -> None:
    ok = await http.get(
        authorize_url(client_id="native", redirect_uri="http://127.0.0.1:53124/callback")
    )
    assert ok.status_code == 303 and ok.headers["location"].startswith("/login?flow=")
    for bad in (
        "http://127.0.0.1:53124/other",
        "http://localhost:53124/callback",
        "http://127.0.0.1:53124/callback?x=1",
        "http://127.0.0.2:53124/callback",
    ):
        response = await http.get(authorize_url(client_id="native", redirect_uri=bad))
        assert response.status_code == 400, bad
        assert "location" not in response.headers


async def test_several_registered_uris_and_none_sent(http: httpx.AsyncClient) -> None:
    response = await http.get(authorize_url(redirect_uri=None))
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_single_registered_uri_may_be_omitted_only_without_openid(
    http: httpx.AsyncClient,
) -> None:
    oauth = await http.get(authorize_url(client_id="spa", redirect_uri=None, scope="email"))
    assert oauth.status_code == 303
    assert oauth.headers["location"].startswith("/login?flow=")
    # OIDC Core §3.1.2.1: an OpenID request must name its redirect_uri.
    oidc = await http.get(authorize_url(client_id="spa", redirect_uri=None))
    assert oidc.status_code == 400
    assert "location" not in oidc.headers


async def test_unknown_client_is_an_error_page(http: httpx.AsyncClient) -> None:
    response = await http.get(authorize_url(client_id="nobody"))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "Unknown application" in response.text


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"response_type": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "id_token token"}, "unsupported_response_type"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"max_age": "soon"}, "invalid_request"),
        ({"request": "eyJ..."}, "request_not_supported"),
        ({"request_uri": "https://app.example.com/r/1"}, "request_uri_not_supported"),
        ({"response_mode": "fragment"}, "invalid_request"),
    ],
)
async def test_bad_requests_go_back_with_error_state_and_iss(
    http: httpx.AsyncClient, gateway: object, changes: dict[str, str | None], error: str
) -> None:
    response = await http.get(authorize_url(**changes))
    assert response.status_code == 303
    assert response.headers["location"].startswith("https://app.example.com/cb?")
    query = location_query(response)
    assert query["error"] == error
    assert query["state"] == "s-123"
    assert query["iss"] == str(http.base_url).rstrip("/")


async def test_public_client_without_pkce_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.get(
        authorize_url(
            client_id="spa",
            redirect_uri="https://spa.example.com/cb",
            code_challenge=None,
            code_challenge_method=None,
        )
    )
    assert location_query(response)["error"] == "invalid_request"


async def test_repeated_parameter_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.get(authorize_url() + "&scope=openid")
    assert location_query(response)["error"] == "invalid_request"


async def test_service_client_cannot_use_code_flow(http: httpx.AsyncClient) -> None:
    # "service" has no redirect URIs, so this cannot redirect: it is an error page.
    response = await http.get(authorize_url(client_id="service"))
    assert response.status_code == 400 and "location" not in response.headers


async def test_prompt_none_without_session_is_login_required(http: httpx.AsyncClient) -> None:
    response = await http.get(authorize_url(prompt="none"))
    query = location_query(response)
    assert query["error"] == "login_required"
    assert query["state"] == "s-123"
    assert "iss" in query


async def test_state_is_echoed_exactly_and_iss_is_present(browser: Browser, user: str) -> None:
    state = "weird state/with+chars&=?"
    code, _, done = await browser.login_for_code(user, state=state)
    query = location_query(done)
    assert query["state"] == state
    assert query["iss"] == browser.base_url
    assert code


async def test_session_skips_login_and_prompt_none_succeeds(browser: Browser, user: str) -> None:
    await browser.login_for_code(user)
    again = await browser.authorize(**{**BASE, "prompt": "none"})
    assert again.status_code == 303
    assert "code" in location_query(again)


async def test_prompt_login_and_max_age_force_sign_in(browser: Browser, user: str) -> None:
    await browser.login_for_code(user)
    forced = await browser.authorize(**{**BASE, "prompt": "login"})
    assert forced.headers["location"].startswith("/login?flow=")
    # max_age=0: any existing authentication is too old
    aged = await browser.authorize(**{**BASE, "max_age": "0"})
    assert aged.headers["location"].startswith("/login?flow=")


class Clock:
    """A module's `time`, `offset` seconds ahead of the real one (the gateway runs in this
    process: patching a module's clock moves the server's clock for that module)."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def time(self) -> float:
        return real_time.time() + self.offset

    def monotonic(self) -> float:
        return real_time.monotonic()


async def auth_time_after_sign_in(browser: Browser, user: str, **params: str) -> int:
    code, verifier, _ = await browser.login_for_code(user, **params)
    tokens = (await redeem(browser.http, code, verifier)).json()
    claims = tokens["id_token"].split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["auth_time"])


@pytest.mark.parametrize("params", [{"prompt": "login"}, {"max_age": "60"}])
async def test_forced_sign_in_gives_a_fresh_auth_time(
    browser: Browser, user: str, monkeypatch: pytest.MonkeyPatch, params: dict[str, str]
) -> None:
    """SECURITY-TESTS A8: two minutes after the first sign-in, prompt=login (or max_age=60)
    is a new sign-in, and the ID token's auth_time says so."""
    first = await auth_time_after_sign_in(browser, user)
    later = Clock(120)
    monkeypatch.setattr("gateway.op.authorize.time", later)
    monkeypatch.setattr("gateway.sessions.time", later)
    # Without the forcing parameter the session answers: same auth_time, no sign-in.
    silent = await browser.authorize(**{**BASE, "prompt": "none", "max_age": "600"})
    assert "code" in location_query(silent)
    forced = await browser.authorize(**{**BASE, **params})
    assert forced.headers["location"].startswith("/login?flow="), forced.headers["location"]
    second = await auth_time_after_sign_in(browser, user, **params)
    assert second >= first + 120


async def test_login_page_has_frame_ancestors_none(browser: Browser) -> None:
    first = await browser.authorize(**BASE)
    page = await browser.http.get(first.headers["location"])
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"


async def test_credential_post_answers_303(browser: Browser, user: str) -> None:
    first = await browser.authorize(**BASE)
    done = await browser.sign_in(first, user)
    assert done.status_code == 303
