"""Strict requests at the OAuth endpoints: no repeated parameters (RFC 6749 §3.2), the
parameters RFC 7009 requires, one length limit for `state` and `nonce`, and OAuth JSON for
every refusal — a wrong method (405) and an oversized body (413) included."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.op.authorize import MAX_CLIENT_VALUE
from gateway.op.common import MAX_BODY
from tests.helpers import WEB, code_flow_params, location_query

SERVICE = ("service", "service-secret-0123456789")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == error


@pytest.mark.parametrize(
    ("path", "auth", "body"),
    [
        ("/oauth2/token", SERVICE, "grant_type=client_credentials&grant_type=client_credentials"),
        ("/oauth2/token", SERVICE, "grant_type=client_credentials&scope=reports.read&scope=x"),
        ("/oauth2/revoke", WEB, "token=first&token=second"),
        ("/oauth2/introspect", WEB, "token=first&token=second"),
        ("/oauth2/introspect", None, "client_id=web&client_id=web&client_secret=x&token=t"),
    ],
)
async def test_repeated_parameters_are_refused(
    http: httpx.AsyncClient, path: str, auth: tuple[str, str] | None, body: str
) -> None:
    response = await http.post(path, content=body, headers=FORM, auth=auth)
    assert_oauth_error(response, 400, "invalid_request")
    assert "repeated" in response.json()["error_description"]


async def test_revocation_requires_a_token(http: httpx.AsyncClient) -> None:
    for body in ("", "token=", "token_type_hint=refresh_token"):
        response = await http.post("/oauth2/revoke", content=body, headers=FORM, auth=WEB)
        assert_oauth_error(response, 400, "invalid_request")
        assert "token is required" in response.json()["error_description"]


@pytest.mark.parametrize("name", ["state", "nonce"])
async def test_state_and_nonce_share_one_length_limit(http: httpx.AsyncClient, name: str) -> None:
    longest = await http.get("/oauth2/authorize", params=code_flow_params(**{name: "s" * 2048}))
    assert longest.status_code == 303 and longest.headers["location"].startswith("/login?flow=")
    too_long = "s" * (MAX_CLIENT_VALUE + 1)
    refused = await http.get("/oauth2/authorize", params=code_flow_params(**{name: too_long}))
    assert refused.headers["location"].startswith("https://app.example.com/cb?")
    query = location_query(refused)
    assert query["error"] == "invalid_request" and "code" not in query
    assert query.get("state") != too_long  # never echoed back whole


async def test_a_60_kb_state_is_refused(http: httpx.AsyncClient) -> None:
    answer = await http.get("/oauth2/authorize", params=code_flow_params(state="s" * 60_000))
    assert location_query(answer)["error"] == "invalid_request"
    assert len(answer.headers["location"]) < 1000


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/oauth2/token", "POST"),
        ("PUT", "/oauth2/token", "POST"),
        ("DELETE", "/oauth2/revoke", "POST"),
        ("GET", "/oauth2/introspect", "POST"),
        ("PUT", "/oauth2/userinfo", "GET, HEAD, POST"),
    ],
)
async def test_wrong_method_is_oauth_json_405(
    http: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await http.request(method, path)
    assert_oauth_error(response, 405, "invalid_request")
    assert response.headers["allow"] == allow


async def chunks(size: int) -> AsyncIterator[bytes]:
    yield b"grant_type=client_credentials&pad="
    for _ in range(size // 4096):
        yield b"x" * 4096


@pytest.mark.parametrize("path", ["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect"])
async def test_oversized_body_is_oauth_json_413(http: httpx.AsyncClient, path: str) -> None:
    body = b"token=" + b"x" * MAX_BODY
    declared = await http.post(path, content=body, headers=FORM, auth=WEB)
    assert_oauth_error(declared, 413, "invalid_request")
    # A chunked body has no Content-Length: it is cut off once it passes the limit.
    streamed = await http.post(path, content=chunks(4 * MAX_BODY), headers=FORM, auth=WEB)
    assert "content-length" not in streamed.request.headers
    assert_oauth_error(streamed, 413, "invalid_request")


async def test_a_far_larger_body_is_still_oauth_json(http: httpx.AsyncClient) -> None:
    body = b"token=" + b"x" * (20 * MAX_BODY)
    response = await http.post("/oauth2/token", content=body, headers=FORM, auth=WEB)
    assert_oauth_error(response, 413, "invalid_request")


async def test_logout_state_has_the_same_limit(http: httpx.AsyncClient) -> None:
    response = await http.get("/oauth2/logout", params={"state": "s" * (MAX_CLIENT_VALUE + 1)})
    assert response.status_code == 400 and "location" not in response.headers
