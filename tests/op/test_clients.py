"""Redirect-URI matching (`ClientRegistry.match_redirect_uri`) at a real authorization endpoint:
exact for every client, except the port of a native (public) client's loopback IP literal
(RFC 8252 §7.3)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlencode

import httpx
import pytest

from tests.helpers import GatewayServer, RedisServer, code_flow_params, free_port, make_settings


@pytest.fixture(scope="module")
def gw(redis_server: RedisServer) -> Iterator[GatewayServer]:
    port = free_port()
    base = make_settings(port, redis_server.url)
    settings = make_settings(
        port,
        redis_server.url,
        clients=[
            *[c.model_dump(exclude_none=True) for c in base.clients],
            {
                "client_id": "native6",
                "token_endpoint_auth_method": "none",
                "redirect_uris": ["http://[::1]/callback"],
            },
            {  # a web app under development on this machine, with its fixed port
                "client_id": "devweb",
                "client_secret": "devweb-secret-0123456789",
                "redirect_uris": ["http://127.0.0.1:8080/callback"],
            },
        ],
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


@pytest.fixture
async def http(gw: GatewayServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        yield client


async def accepted(http: httpx.AsyncClient, client_id: str, redirect_uri: str) -> bool:
    """Did the endpoint take `redirect_uri` (on to sign-in) rather than show its error page?"""
    query = urlencode(code_flow_params(client_id=client_id, redirect_uri=redirect_uri))
    answer = await http.get(f"/oauth2/authorize?{query}")
    if answer.status_code == 303 and answer.headers["location"].startswith("/login?flow="):
        return True
    assert answer.status_code == 400 and "location" not in answer.headers, answer.text
    assert "Invalid redirect address" in answer.text
    return False


@pytest.mark.parametrize(
    ("client_id", "redirect_uri"),
    [
        ("native", "http://127.0.0.1:53124/callback"),
        ("native", "http://127.0.0.1:1/callback"),
        ("native", "http://127.0.0.1/callback"),  # as registered
        ("native6", "http://[::1]:61000/callback"),
    ],
)
async def test_a_native_apps_loopback_port_may_be_any(
    http: httpx.AsyncClient, client_id: str, redirect_uri: str
) -> None:
    assert await accepted(http, client_id, redirect_uri)


@pytest.mark.parametrize(
    ("client_id", "redirect_uri"),
    [
        ("native", "http://127.0.0.1:/callback"),  # a colon and no port
        ("native", "http://127.0.0.1:0/callback"),  # no app listens on port 0
        ("native", "http://x@127.0.0.1:5000/callback"),  # user-info
        ("native", "http://127.0.0.1:5000/callback#x"),
        ("native", "http://127.0.0.1:5000/callback/"),
        ("native", "http://127.0.0.1:5000/CALLBACK"),
        ("native", "HTTP://127.0.0.1:5000/callback"),
        ("native", "https://127.0.0.1:5000/callback"),
        ("native", "http://localhost:5000/callback"),  # a name, not the literal registered
        ("native", "http://[::1]:5000/callback"),  # the other address family
        ("native6", "http://127.0.0.1:5000/callback"),
        ("native", "http://127.0.0.1:5000/callback?code=planted"),
    ],
)
async def test_only_the_port_of_a_loopback_uri_varies(
    http: httpx.AsyncClient, client_id: str, redirect_uri: str
) -> None:
    assert not await accepted(http, client_id, redirect_uri)


async def test_a_confidential_clients_loopback_uri_is_exact(http: httpx.AsyncClient) -> None:
    # A web client's address is fixed: another port is another local program, not this app.
    assert await accepted(http, "devweb", "http://127.0.0.1:8080/callback")
    assert not await accepted(http, "devweb", "http://127.0.0.1:8081/callback")
    assert not await accepted(http, "devweb", "http://127.0.0.1/callback")
