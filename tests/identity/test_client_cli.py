"""`cognate login` and `cognate aws-credentials` as a user runs them (subprocesses of the
installed `cognate`), with the stock AWS CLI as the peer: login runs the device flow while the
user approves at /device; the AWS CLI's `credential_process` then gets credentials from the
identity pool (moto's STS behind it) and `aws sts get-caller-identity` names the user's role
session. Lives with the identity-pool tests for their STS fixtures."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    Browser,
    GatewayServer,
    RedisServer,
    form_fields,
    free_port,
    make_settings,
)
from tests.identity.conftest import AUTH_ROLE, POOL, StsFront

BIN = Path(sys.executable).parent
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def gw(redis_server: RedisServer, sts: StsFront) -> Iterator[GatewayServer]:
    port = free_port()
    base = make_settings(port, redis_server.url)
    settings = make_settings(
        port,
        redis_server.url,
        clients=[
            *[c.model_dump(exclude_none=True) for c in base.clients],
            {
                "client_id": "cognate-cli",
                "client_name": "Cognate CLI",
                "token_endpoint_auth_method": "none",
                "grant_types": [DEVICE, "refresh_token"],
                "scope": "openid email offline_access",
            },
        ],
        device={"interval": 1},
        identity_pools=[
            {
                "id": POOL,
                "name": "Terminals",
                "providers": [{"type": "cognate", "client_ids": ["cognate-cli"]}],
                "roles": {"authenticated": AUTH_ROLE},
                "sts": {"endpoint": sts.server.url},
            }
        ],
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


def user_env(home: Path) -> dict[str, str]:
    """A clean user environment: its own HOME and cache, no AWS keys of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}


async def approve(gw: GatewayServer, email: str, user_code: str) -> None:
    """The user, in a browser that is signed in, approves the code at /device."""
    browser = Browser(gw.url)
    try:
        await browser.login_for_code(email)
        page = await browser.http.get("/device", params={"user_code": user_code})
        assert page.status_code == 200, page.text
        done = await browser.http.post(
            "/device", data={**form_fields(page.text), "decision": "approve"}
        )
        assert done.headers["location"].startswith("/device?result=approved&proof=")
    finally:
        await browser.aclose()


async def test_login_then_the_aws_cli_uses_credential_process(
    gw: GatewayServer, sts: StsFront, moto_sts: str, tmp_path: Path
) -> None:
    email = "terminal-user@example.com"
    await gw.add_user(email, email_verified=True)
    env = user_env(tmp_path)
    login = await asyncio.create_subprocess_exec(
        str(BIN / "cognate"),
        "login",
        "--issuer",
        gw.url,
        "--client-id",
        "cognate-cli",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert login.stderr is not None
    first = (await asyncio.wait_for(login.stderr.readline(), 30)).decode()
    found = re.search(r"open (\S+) and enter the code ([A-Z]{4}-[A-Z]{4})", first)
    assert found and found.group(1) == f"{gw.url}/device", first
    await approve(gw, email, found.group(2))
    assert await asyncio.wait_for(login.wait(), 60) == 0
    cache = tmp_path / ".cache" / "cognate"
    saved = cache / "login.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert json.loads(saved.read_text())["refresh_token"]

    config = tmp_path / "aws-config"
    config.write_text(
        "[default]\nregion = us-east-1\n"
        f"credential_process = {BIN / 'cognate'} aws-credentials --pool {POOL}\n"
    )
    env |= {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no")}
    sts.reset()
    refresh_tokens = [json.loads(saved.read_text())["refresh_token"]]
    for _ in range(2):
        aws = await asyncio.create_subprocess_exec(
            str(BIN / "aws"),
            "sts",
            "get-caller-identity",
            "--endpoint-url",
            moto_sts,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(aws.communicate(), 60)
        assert aws.returncode == 0, err.decode()
        caller = json.loads(out)
        assert caller["Arn"].endswith(f":assumed-role/cognate-authenticated/{email}"), caller
        refresh_tokens.append(json.loads(saved.read_text())["refresh_token"])
    # The first run refreshed (and kept the rotated token); the second used cached credentials.
    assert refresh_tokens[1] != refresh_tokens[0] and refresh_tokens[2] == refresh_tokens[1]
    assumed = [r for r in sts.requests if r.get("Action") == "AssumeRoleWithWebIdentity"]
    assert len(assumed) == 1 and assumed[0]["RoleArn"] == AUTH_ROLE
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600  # still, after the rewrite


async def test_aws_credentials_without_login_says_so(tmp_path: Path) -> None:
    run = await asyncio.create_subprocess_exec(
        str(BIN / "cognate"),
        "aws-credentials",
        "--pool",
        POOL,
        env=user_env(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await run.communicate()
    assert run.returncode == 1 and out == b""
    assert "not signed in" in err.decode()


def test_login_at_an_address_that_is_not_an_issuer_says_so_in_one_line() -> None:
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    from tests.helpers import AppServer
    from tests.test_cli import cognate

    async def page(request: object) -> HTMLResponse:
        return HTMLResponse("<p>an app behind forward-auth</p>")

    site = AppServer(Starlette(routes=[Route("/{path:path}", page)])).start()
    try:
        result = cognate("login", "--issuer", site.url, "--client-id", "cli")
    finally:
        site.stop()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "not JSON" in result.stderr and "/.well-known/openid-configuration" in result.stderr
