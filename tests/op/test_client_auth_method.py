"""A confidential client authenticates only with its registered `token_endpoint_auth_method`
(RFC 7591 §2): the right secret sent the other way is 401 `invalid_client`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.helpers import GatewayServer, RedisServer, free_port, make_settings

SECRET = "post-secret-0123456789"
BASIC_SECRET = "service-secret-0123456789"


@pytest.fixture(scope="module")
def gateway_with_post_client(redis_server: RedisServer) -> Iterator[GatewayServer]:
    port = free_port()
    base = make_settings(port, redis_server.url)
    clients = [c.model_dump(exclude_none=True) for c in base.clients] + [
        {
            "client_id": "poster",
            "client_secret": SECRET,
            "token_endpoint_auth_method": "client_secret_post",
            "grant_types": ["client_credentials"],
            "scope": "reports.read",
        }
    ]
    server = GatewayServer(make_settings(port, redis_server.url, clients=clients)).start()
    yield server
    server.stop()


@pytest.fixture
async def http(gateway_with_post_client: GatewayServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway_with_post_client.url) as client:
        yield client


async def token(
    http: httpx.AsyncClient, auth: tuple[str, str] | None = None, **form: str
) -> httpx.Response:
    return await http.post(
        "/oauth2/token", auth=auth, data={"grant_type": "client_credentials", **form}
    )


async def test_each_client_succeeds_with_its_registered_method(http: httpx.AsyncClient) -> None:
    post = await token(http, client_id="poster", client_secret=SECRET)
    assert post.status_code == 200, post.text
    basic = await token(http, auth=("service", BASIC_SECRET))
    assert basic.status_code == 200, basic.text


async def test_client_secret_post_client_cannot_use_basic(http: httpx.AsyncClient) -> None:
    answer = await token(http, auth=("poster", SECRET))
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert "client_secret_post" in answer.json()["error_description"]


async def test_client_secret_basic_client_cannot_use_post(http: httpx.AsyncClient) -> None:
    answer = await token(http, client_id="service", client_secret=BASIC_SECRET)
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert answer.headers["www-authenticate"].startswith("Basic")


async def test_the_rule_holds_at_revocation_and_introspection(http: httpx.AsyncClient) -> None:
    for path in ("/oauth2/revoke", "/oauth2/introspect"):
        answer = await http.post(
            path, data={"token": "t", "client_id": "service", "client_secret": BASIC_SECRET}
        )
        assert answer.status_code == 401, path
        assert answer.json()["error"] == "invalid_client"
