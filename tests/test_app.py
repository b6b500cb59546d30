"""App-level behaviour: unexpected errors never leak a traceback; health; request ids."""

from __future__ import annotations

import httpx

from tests.helpers import GatewayServer


async def test_unexpected_error_is_a_plain_500_page(
    gateway: GatewayServer, http: httpx.AsyncClient
) -> None:
    sessions = gateway.services.sessions
    original = sessions.load

    async def explode(cookie: str | None) -> None:
        raise RuntimeError("secret internals: do not show")

    sessions.load = explode  # type: ignore[method-assign]
    try:
        response = await http.get("/")
    finally:
        sessions.load = original  # type: ignore[method-assign]
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert "Traceback" not in response.text and "secret internals" not in response.text


async def test_healthz_and_request_id(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert response.status_code == 200 and response.text == "ok"
    assert response.headers["x-request-id"] == "abc-123"
    too_long = "x" * 200  # an id we would not want to copy into every log line
    generated = await http.get("/healthz", headers={"X-Request-Id": too_long})
    assert generated.headers["x-request-id"] != too_long
    assert len(generated.headers["x-request-id"]) == 32
