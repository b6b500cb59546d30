"""`id_token_hint` at the authorization endpoint (OIDC Core §3.1.2.1) and at logout: only an
ID token this gateway issued to the client counts; a hint naming someone other than the
signed-in user never gets a code for the wrong person."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.helpers import Browser, GatewayServer, code_flow_params, location_query, redeem, tampered


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def signed_in(browser: Browser, http: httpx.AsyncClient, user: str) -> dict[str, Any]:
    code, verifier, _ = await browser.login_for_code(user)
    return dict((await redeem(http, code, verifier)).json())


def id_token(gateway: GatewayServer, sub: str, client_id: str = "web", age: int = 0) -> str:
    """A real ID token of this gateway, minted `age` seconds ago."""
    return gateway.services.tokens.id_token(
        sub=sub,
        client_id=client_id,
        auth_time=int(time.time()) - age,
        nonce=None,
        sid=None,
        access_token=None,
        amr=["pwd"],
        profile={},
        now=int(time.time()) - age,
    )


async def authorize(browser: Browser, hint: str, **extra: str) -> httpx.Response:
    return await browser.authorize(**code_flow_params(id_token_hint=hint, **extra))


async def test_hint_for_another_user_with_prompt_none_is_login_required(
    browser: Browser, http: httpx.AsyncClient, gateway: GatewayServer, user: str
) -> None:
    await signed_in(browser, http, user)
    bob = id_token(gateway, "us-east-1:00000000-0000-4000-8000-00000000b0b0")
    answer = await authorize(browser, bob, prompt="none")
    assert answer.status_code == 303
    query = location_query(answer)
    assert query["error"] == "login_required" and "code" not in query


async def test_hint_for_another_user_signs_in_again(
    browser: Browser, http: httpx.AsyncClient, gateway: GatewayServer, user: str
) -> None:
    await signed_in(browser, http, user)
    bob = id_token(gateway, "us-east-1:00000000-0000-4000-8000-00000000b0b0")
    answer = await authorize(browser, bob)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?flow=")


async def test_own_hint_even_expired_gets_a_code(
    browser: Browser, http: httpx.AsyncClient, gateway: GatewayServer, user: str
) -> None:
    tokens = await signed_in(browser, http, user)
    hint = id_token(gateway, claims(tokens["id_token"])["sub"], age=86400)  # long expired
    answer = await authorize(browser, hint, prompt="none")
    assert "code" in location_query(answer), answer.headers["location"]


def logout_token(gateway: GatewayServer, sub: str) -> str:
    return gateway.services.tokens.logout_token(client_id="web", sub=sub, sid=None)


@pytest.mark.parametrize("kind", ["junk", "tampered", "other client", "logout token"])
async def test_hint_that_is_no_id_token_for_this_client_is_refused(
    browser: Browser, http: httpx.AsyncClient, gateway: GatewayServer, user: str, kind: str
) -> None:
    tokens = await signed_in(browser, http, user)
    sub = claims(tokens["id_token"])["sub"]
    hint = {
        "junk": "not-a-token",
        "tampered": tampered(tokens["id_token"]),
        "other client": id_token(gateway, sub, client_id="spa"),
        "logout token": logout_token(gateway, sub),
    }[kind]
    answer = await authorize(browser, hint, prompt="none")
    query = location_query(answer)
    assert query["error"] == "invalid_request" and "code" not in query


async def test_logout_token_is_no_hint_at_logout(
    browser: Browser, http: httpx.AsyncClient, gateway: GatewayServer, user: str
) -> None:
    tokens = await signed_in(browser, http, user)
    hint = logout_token(gateway, claims(tokens["id_token"])["sub"])
    answer = await browser.http.get(
        "/oauth2/logout?"
        + urlencode(
            {"id_token_hint": hint, "post_logout_redirect_uri": "https://app.example.com/bye"}
        )
    )
    assert answer.status_code == 400 and "location" not in answer.headers
    assert user in (await browser.http.get("/")).text  # still signed in


async def test_logout_token_is_no_login_token(gateway: GatewayServer) -> None:
    """The identity pools' `cognate` provider takes ID tokens, never a logout token."""
    token = logout_token(gateway, "us-east-1:00000000-0000-4000-8000-00000000b0b0")
    with pytest.raises(ValueError, match="login token"):
        await gateway.call(lambda s: s.tokens.verify_own_jwt(token))
