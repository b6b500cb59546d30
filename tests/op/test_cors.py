"""CORS at the token, userinfo and revocation endpoints: a client's own origins only (by default
a public client's redirect URI origins), never `*`, never credentials, always `Vary: Origin`.
(The journey in a real browser is tests/e2e/test_spa.py.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.errors import ConfigError
from tests.helpers import WEB, Browser, make_settings, redeem

SPA = "https://spa.example.com"
SPA_CB = "https://spa.example.com/cb"
EVIL = "https://evil.example"


async def spa_tokens(browser: Browser, http: httpx.AsyncClient, user: str) -> dict[str, Any]:
    code, verifier, _ = await browser.login_for_code(user, client_id="spa", redirect_uri=SPA_CB)
    answer = await redeem(http, code, verifier, auth=None, client_id="spa", redirect_uri=SPA_CB)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def allowed(response: httpx.Response, origin: str) -> bool:
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers.get("access-control-allow-origin") != "*"
    assert "Origin" in response.headers.get("vary", "")
    return response.headers.get("access-control-allow-origin") == origin


@pytest.mark.parametrize(
    ("path", "method"),
    [("/oauth2/token", "POST"), ("/oauth2/userinfo", "GET"), ("/oauth2/revoke", "POST")],
)
async def test_preflight_answers_registered_origins_only(
    http: httpx.AsyncClient, path: str, method: str
) -> None:
    def asking(origin: str) -> dict[str, str]:
        return {
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        }

    ok = await http.options(path, headers=asking(SPA))
    assert ok.status_code == 204 and allowed(ok, SPA)
    assert method in ok.headers["access-control-allow-methods"]
    assert "authorization" in ok.headers["access-control-allow-headers"].lower()
    assert int(ok.headers["access-control-max-age"]) > 0
    evil = await http.options(path, headers=asking(EVIL))
    assert not allowed(evil, EVIL) and "access-control-allow-methods" not in evil.headers


async def test_answers_carry_the_clients_own_origin_only(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    tokens = await spa_tokens(browser, http, user)
    refresh = {"grant_type": "refresh_token", "client_id": "spa"}
    fresh = await http.post(
        "/oauth2/token",
        data={**refresh, "refresh_token": tokens["refresh_token"]},
        headers={"Origin": SPA},
    )
    assert fresh.status_code == 200 and allowed(fresh, SPA)
    rotated = fresh.json()
    bearer = {"Authorization": f"Bearer {rotated['access_token']}"}
    info = await http.get("/oauth2/userinfo", headers={**bearer, "Origin": SPA})
    assert info.status_code == 200 and allowed(info, SPA)
    elsewhere = await http.get("/oauth2/userinfo", headers={**bearer, "Origin": EVIL})
    assert elsewhere.status_code == 200 and not allowed(elsewhere, EVIL)
    # An error for the client is readable by its page too (the app must see invalid_grant).
    replay = await http.post(
        "/oauth2/token",
        data={**refresh, "refresh_token": tokens["refresh_token"]},
        headers={"Origin": SPA},
    )
    assert replay.json()["error"] == "invalid_grant" and allowed(replay, SPA)
    revoked = await http.post(
        "/oauth2/revoke",
        data={"client_id": "spa", "token": rotated["refresh_token"]},
        headers={"Origin": SPA},
    )
    assert revoked.status_code == 200 and allowed(revoked, SPA)


async def test_a_confidential_client_without_origins_gets_none(
    browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    """web is confidential and lists no allowed_origins: even the SPA's origin may not read
    web's answers."""
    code, verifier, _ = await browser.login_for_code(user)
    answer = await http.post(
        "/oauth2/token",
        auth=WEB,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": "https://app.example.com/cb",
        },
        headers={"Origin": SPA},
    )
    assert answer.status_code == 200 and not allowed(answer, SPA)
    bearer = {"Authorization": f"Bearer {answer.json()['access_token']}", "Origin": SPA}
    info = await http.get("/oauth2/userinfo", headers=bearer)
    assert info.status_code == 200 and not allowed(info, SPA)


async def test_introspection_is_no_browser_endpoint(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "/oauth2/introspect", auth=WEB, data={"token": "x"}, headers={"Origin": SPA}
    )
    assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize(
    "origin",
    ["*", "https://app.example.com/", "https://app.example.com/cb", "app.example.com", "ftp://x"],
)
def test_allowed_origins_must_be_origins(origin: str) -> None:
    client = {"client_id": "c", "token_endpoint_auth_method": "none", "scope": "openid"}
    with pytest.raises(ConfigError, match="is not an origin"):
        make_settings(1, "redis://127.0.0.1:1/0", clients=[{**client, "allowed_origins": [origin]}])


def test_origin_defaults() -> None:
    settings = make_settings(
        1,
        "redis://127.0.0.1:1/0",
        clients=[
            {
                "client_id": "spa",
                "token_endpoint_auth_method": "none",
                "redirect_uris": [
                    "https://spa.example.com:8443/cb",
                    "https://spa.example.com:8443/b",
                ],
            },
            {
                "client_id": "bff",
                "client_secret": "bff-secret-0123456789",
                "redirect_uris": ["https://bff.example.com/cb"],
            },
            {
                "client_id": "bff-with-origins",
                "client_secret": "bff-secret-0123456789",
                "redirect_uris": ["https://bff.example.com/cb"],
                "allowed_origins": ["https://admin.example.com"],
            },
        ],
    )
    origins = {c.client_id: c.cors_origins for c in settings.clients}
    assert origins == {
        "spa": {"https://spa.example.com:8443"},
        "bff": frozenset(),
        "bff-with-origins": {"https://admin.example.com"},
    }
