"""Federation fixtures: the scriptable fake OP, another Cognate as a well-behaved upstream OP
(on `localhost`, so its cookies stay apart from the RP's on 127.0.0.1), and the RP gateway."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.federation.fake_github import CLIENT_ID, CLIENT_SECRET, FakeGitHub
from tests.federation.fake_op import FakeOP
from tests.helpers import (
    Browser,
    GatewayServer,
    RedisServer,
    code_flow_params,
    free_port,
    make_settings,
)

RP_CLIENT_SECRET = "rp-client-secret-0123456789"
ENTRA_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def local_and_fake(issuer: str) -> list[dict[str, Any]]:
    """Connector settings: the local directory and the fake OP at `issuer`."""
    return [
        {"id": "local", "type": "local"},
        {
            "id": "fake",
            "type": "oidc",
            "name": "Fake IdP",
            "issuer": issuer,
            "client_id": "fake-client",
            "client_secret": "fake-secret-0123456789",
            "token_endpoint_auth_method": "client_secret_post",
        },
    ]


@pytest.fixture(scope="session")
def fake_op() -> Iterator[FakeOP]:
    op = FakeOP()
    op.server.start()
    yield op
    op.server.stop()


@pytest.fixture(scope="session")
def fake_github() -> Iterator[FakeGitHub]:
    github = FakeGitHub()
    github.server.start()
    yield github
    github.server.stop()


@dataclass
class Federation:
    rp: GatewayServer
    upstream: GatewayServer
    fake: FakeOP
    github: FakeGitHub


@pytest.fixture(scope="session")
def federation(
    redis_server: RedisServer, fake_op: FakeOP, fake_github: FakeGitHub
) -> Iterator[Federation]:
    rp_port, up_port = free_port(), free_port()
    upstream_settings = make_settings(
        up_port, redis_server.url, issuer=f"http://localhost:{up_port}"
    )
    clients = [c.model_dump() for c in upstream_settings.clients] + [
        {
            "client_id": "rp",
            "client_secret": RP_CLIENT_SECRET,
            "redirect_uris": [f"http://127.0.0.1:{rp_port}/login/upstream/callback"],
        }
    ]
    upstream = GatewayServer(
        make_settings(
            up_port, redis_server.url, issuer=f"http://localhost:{up_port}", clients=clients
        )
    )
    rp = GatewayServer(
        make_settings(
            rp_port,
            redis_server.url,
            connectors=[
                {"id": "local", "type": "local"},
                {
                    "id": "upstream",
                    "type": "oidc",
                    "name": "Upstream Cognate",
                    "issuer": f"http://localhost:{up_port}",
                    "client_id": "rp",
                    "client_secret": RP_CLIENT_SECRET,
                },
                {
                    "id": "fake",
                    "type": "oidc",
                    "name": "Fake IdP",
                    "issuer": fake_op.issuer,
                    "client_id": "fake-client",
                    "client_secret": "fake-secret-0123456789",
                    "token_endpoint_auth_method": "client_secret_post",
                    "timeout": 1.0,
                    "domains": ["fake.example"],
                },
                {
                    "id": "github",
                    "type": "oauth2",
                    "name": "GitHub",
                    "preset": "github",
                    "base_url": fake_github.server.url,
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                },
                {
                    "id": "entra",
                    "type": "oidc",
                    "name": "Entra ID",
                    "preset": "entra",
                    "issuer": f"{fake_op.issuer}/common/v2.0",
                    "client_id": "fake-client",
                    "client_secret": "fake-secret-0123456789",
                    "allowed_tenants": [ENTRA_TENANT],
                },
                {
                    "id": "fake-o2p",
                    "type": "oidc",
                    "name": "Fake IdP (oauth2-proxy callback)",
                    "issuer": fake_op.issuer,
                    "client_id": "fake-client",
                    "client_secret": "fake-secret-0123456789",
                    "token_endpoint_auth_method": "client_secret_post",
                    "oauth2_proxy_callback": True,
                },
                {
                    "id": "apple",
                    "type": "oidc",
                    "name": "Apple",
                    "preset": "apple",
                    "issuer": fake_op.issuer,  # Apple's is https://appleid.apple.com
                    "client_id": fake_op.apple_client_id,
                    "apple_team_id": fake_op.apple_team,
                    "apple_key_id": "KEY1234567",
                    "apple_private_key": fake_op.apple_key.as_pem(private=True).decode(),
                },
                {
                    "id": "broken",
                    "type": "oidc",
                    "name": "Broken IdP",
                    "issuer": f"http://127.0.0.1:{free_port()}",
                    "client_id": "x",
                    "client_secret": "x-secret-0123456789",
                },
            ],
        )
    )
    upstream.start()
    rp.start()
    yield Federation(rp, upstream, fake_op, fake_github)
    rp.stop()
    upstream.stop()


async def start_upstream_login(browser: Browser, connector: str, **params: str) -> httpx.Response:
    """Authorize at the RP, press the connector's button; returns the redirect to the IdP."""
    first = await browser.authorize(**code_flow_params(**params))
    assert first.status_code == 303, first.text
    page = await browser.http.get(first.headers["location"])
    from tests.helpers import form_fields

    fields = form_fields(page.text)
    started = await browser.http.post(
        f"/login/{connector}/start", data={"flow": fields["flow"], "_csrf": fields["_csrf"]}
    )
    assert started.status_code == 303, started.text
    return started
