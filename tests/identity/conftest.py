"""Servers for the identity-pool tests: moto_server as STS, a recording and fault-injecting
front for it, a second gateway as an external OpenID Provider, and a gateway with pools."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.helpers import (
    AppServer,
    Browser,
    GatewayServer,
    RedisServer,
    form_fields,
    free_port,
    make_settings,
    redeem,
)

POOL = "us-east-1:11111111-2222-4333-8444-555555555555"
CLOSED_POOL = "us-east-1:99999999-2222-4333-8444-555555555555"
ACCOUNT = "123456789012"
AUTH_ROLE = f"arn:aws:iam::{ACCOUNT}:role/cognate-authenticated"
UNAUTH_ROLE = f"arn:aws:iam::{ACCOUNT}:role/cognate-guest"
ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/cognate-admins"
DEVELOPER = "login.cognate.test"
ADMIN_KEY = ("AKIACOGNATETEST0001", "admin-secret-key-for-tests-0123456789")


@pytest.fixture(scope="session")
def moto_sts() -> Iterator[str]:
    port = free_port()
    binary = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    assert binary, "moto[server] is a dev dependency"
    proc = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],  # noqa: S603
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


class StsFront:
    """Records every STS request, injects queued faults, forwards the rest to moto."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.requests: list[dict[str, str]] = []
        self.faults: list[tuple[int, str] | tuple[int, str, str]] = []  # status, code[, text]
        self.server = AppServer(Starlette(routes=[Route("/", self.handle, methods=["POST"])]))

    async def handle(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.requests.append(form)
        if self.faults:
            status, code, *text = self.faults.pop(0)
            body = (
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
                f"<Message>{text[0] if text else 'injected'}</Message></Error></ErrorResponse>"
            )
            return Response(body, status, media_type="text/xml")
        async with httpx.AsyncClient() as http:
            answer = await http.post(self.upstream, data=form)
        return Response(answer.content, answer.status_code, media_type="text/xml")

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()


@pytest.fixture(scope="session")
def sts(moto_sts: str) -> Iterator[StsFront]:
    front = StsFront(moto_sts)
    front.server.start()
    yield front
    front.server.stop()


@pytest.fixture(scope="session")
def idp(redis_server: RedisServer) -> Iterator[GatewayServer]:
    """Another Cognate instance playing an external OpenID Provider."""
    server = GatewayServer(make_settings(free_port(), redis_server.url)).start()
    yield server
    server.stop()


def pool_settings(own_url: str, idp_url: str, sts_url: str) -> list[dict[str, Any]]:
    return [
        {
            "id": POOL,
            "name": "Test pool",
            "allow_unauthenticated": True,
            "providers": [
                {"type": "cognate", "client_ids": ["web", "spa"]},
                {"type": "oidc", "issuer": idp_url, "client_ids": ["web"]},
                {"type": "developer", "name": DEVELOPER},
            ],
            "roles": {"authenticated": AUTH_ROLE, "unauthenticated": UNAUTH_ROLE},
            "role_mappings": {
                own_url.removeprefix("http://"): {
                    "type": "Rules",
                    "ambiguous_role_resolution": "Deny",
                    "rules": [
                        {
                            "claim": "email_verified",
                            "match_type": "Equals",
                            "value": "true",
                            "role_arn": AUTH_ROLE,
                        }
                    ],
                },
                idp_url.removeprefix("http://"): {
                    "type": "Rules",
                    "ambiguous_role_resolution": "AuthenticatedRole",
                    "rules": [
                        {
                            "claim": "email",
                            "match_type": "StartsWith",
                            "value": "admin",
                            "role_arn": ADMIN_ROLE,
                        }
                    ],
                },
            },
            "principal_tags": {idp_url.removeprefix("http://"): {"email": "email"}},
            "session_policy": '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
            '"Action": "s3:*", "Resource": "arn:aws:s3:::bucket/${cognate:identity_id}/*"}]}',
            "sts": {"endpoint": sts_url, "retries": 3},
            "cors_origins": ["https://spa.example.com"],
        },
        {
            "id": CLOSED_POOL,
            "name": "No guests",
            "providers": [{"type": "cognate"}],
            "roles": {"authenticated": AUTH_ROLE},
            "sts": {"endpoint": sts_url},
        },
    ]


@pytest.fixture(scope="session")
def pools(redis_server: RedisServer, idp: GatewayServer, sts: StsFront) -> Iterator[GatewayServer]:
    port = free_port()
    settings = make_settings(
        port,
        redis_server.url,
        identity_pools=pool_settings(f"http://127.0.0.1:{port}", idp.url, sts.server.url),
        admin_keys=[{"access_key_id": ADMIN_KEY[0], "secret_access_key": ADMIN_KEY[1]}],
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


def client(gateway: GatewayServer, key: tuple[str, str] = ADMIN_KEY, **config: Any) -> Any:
    return boto3.client(
        "cognito-identity",
        endpoint_url=gateway.url,
        region_name="us-east-1",
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(**{"retries": {"total_max_attempts": 1}, **config}),
    )


async def id_token(gateway: GatewayServer, email: str) -> str:
    """Sign `email` in at `gateway` through its hosted page and return the ID token."""
    browser = Browser(gateway.url)
    try:
        code, verifier, _ = await browser.login_for_code(email)
        response = await redeem(browser.http, code, verifier)
        return str(response.json()["id_token"])
    finally:
        await browser.aclose()


__all__ = ["form_fields"]
