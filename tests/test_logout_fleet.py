"""Ending sessions everywhere: back-channel logout tokens to clients (OIDC Back-Channel Logout
1.0) and `cognate sessions revoke` / `users disable` taking effect on every replica
(SECURITY-TESTS E43)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import StoreUnavailable
from gateway.grants import Authorization
from gateway.services import build_services
from gateway.store.memory import MemoryStore
from tests.helpers import (
    AppServer,
    Browser,
    GatewayServer,
    RedisServer,
    code_flow_params,
    free_port,
    location_query,
    make_settings,
    redeem,
)

ROOT = Path(__file__).parent.parent


class Receiver:
    """A client's back-channel logout endpoint, recording each logout token."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.server = AppServer(Starlette(routes=[Route("/bcl", self.receive, methods=["POST"])]))

    async def receive(self, request: Request) -> Response:
        self.tokens.append(str((await request.form())["logout_token"]))
        return Response(status_code=200)


@pytest.fixture(scope="module")
def fleet(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayServer, GatewayServer, Receiver, Path]]:
    receiver = Receiver()
    receiver.server.start()
    port = free_port()
    base = make_settings(port, redis_server.url)
    clients = [c.model_dump(exclude_none=True) for c in base.clients]
    clients[0]["backchannel_logout_uri"] = f"{receiver.server.url}/bcl"
    settings = make_settings(port, redis_server.url, clients=clients, store=base.store.model_dump())
    one, two = GatewayServer(settings), GatewayServer(settings, port=free_port())
    one.start()
    two.start()
    config = tmp_path_factory.mktemp("fleet") / "gateway.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude_none=True)))
    yield one, two, receiver, config
    one.stop()
    two.stop()
    receiver.server.stop()


async def signed_in(gateway: GatewayServer, email: str) -> tuple[Browser, dict[str, str]]:
    await gateway.add_user(email, email_verified=True)
    browser = Browser(gateway.url)
    code, verifier, _ = await browser.login_for_code(email, scope="openid email offline_access")
    tokens = (await redeem(browser.http, code, verifier)).json()
    return browser, tokens


async def still_signed_in(browser: Browser, base_url: str) -> bool:
    cookie = browser.http.cookies["cognate_session"]
    async with httpx.AsyncClient(base_url=base_url, cookies={"cognate_session": cookie}) as h:
        answer = await h.get("/oauth2/authorize?" + urlencode(code_flow_params(prompt="none")))
    return "code" in location_query(answer)


def verify(token: str, gateway: GatewayServer) -> tuple[dict, dict]:  # type: ignore[type-arg]
    keys = KeySet.import_key_set(httpx.get(f"{gateway.url}/.well-known/jwks.json").json())
    decoded = jwt.decode(token, keys)
    return dict(decoded.header), dict(decoded.claims)


async def test_sign_out_sends_a_logout_token(
    fleet: tuple[GatewayServer, GatewayServer, Receiver, Path],
) -> None:
    one, _, receiver, _ = fleet
    browser, tokens = await signed_in(one, "bcl@example.com")
    receiver.tokens.clear()
    hint = tokens["id_token"]
    out = await browser.http.get("/oauth2/logout?" + urlencode({"id_token_hint": hint}))
    assert out.status_code == 200
    await one.call(lambda s: s.logout.drain())
    assert len(receiver.tokens) == 1
    header, claims = verify(receiver.tokens[0], one)
    _, id_claims = verify(hint, one)
    assert header["typ"] == "logout+jwt"
    assert claims["iss"] == one.url and claims["aud"] == "web"
    assert claims["sub"] == id_claims["sub"] and claims["sid"] == id_claims["sid"]
    assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"]
    assert "nonce" not in claims
    await browser.aclose()


def cognate(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


async def test_revoke_ends_everything_on_every_replica(
    fleet: tuple[GatewayServer, GatewayServer, Receiver, Path],
) -> None:
    one, two, receiver, config = fleet
    browser, tokens = await signed_in(one, "revoked@example.com")
    assert await still_signed_in(browser, one.url) and await still_signed_in(browser, two.url)
    receiver.tokens.clear()
    result = cognate(config, "sessions", "revoke", "--user", "revoked@example.com")
    assert result.returncode == 0, result.stderr
    assert "ended 1 session(s), revoked 1 token family" in result.stdout
    for replica in (one, two):
        assert not await still_signed_in(browser, replica.url)
        async with httpx.AsyncClient(base_url=replica.url) as http:
            info = await http.get(
                "/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
            )
            assert info.status_code == 401
            refresh = await http.post(
                "/oauth2/token",
                auth=("web", "web-secret-0123456789"),
                data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            )
            assert refresh.json()["error"] == "invalid_grant"
    assert len(receiver.tokens) == 1  # the CLI told the client too
    await browser.aclose()


async def test_disabling_a_user_ends_their_sessions(
    fleet: tuple[GatewayServer, GatewayServer, Receiver, Path],
) -> None:
    one, two, _, config = fleet
    browser, _ = await signed_in(one, "disabled@example.com")
    assert cognate(config, "users", "disable", "disabled@example.com").returncode == 0
    assert not await still_signed_in(browser, two.url)
    await browser.aclose()


class _PublishLost(MemoryStore):
    """A store that keeps every write but cannot tell the other replicas (PUBLISH fails)."""

    async def publish(self, channel: str, message: bytes) -> None:
        raise StoreUnavailable("redis: connection lost")


async def test_ending_an_identity_ends_everything_even_when_the_replicas_cannot_be_told() -> None:
    services = build_services(make_settings(free_port(), "memory://"), store=_PublishLost())
    identity = "eu-west-1:0000"
    cookies = [
        (
            await services.sessions.create(
                identity_id=identity, connector_id="local", subject="u", amr=["pwd"], profile={}
            )
        )[1]
        for _ in range(2)
    ]
    who = Authorization(identity, "web", ["openid"], 1, None, ["pwd"], {})
    families = [(await services.grants.create_grant(who, 3600, True))[0].gid for _ in range(2)]
    with pytest.raises(StoreUnavailable):  # the caller is told, and may try again
        await services.logout.end_identity(identity)
    for cookie in cookies:  # but nothing of the identity is left standing
        assert await services.sessions.load(cookie) is None
    for gid in families:
        assert not await services.grants.grant_alive(gid)
    await services.logout.close()
