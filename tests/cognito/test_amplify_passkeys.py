"""npm `aws-amplify` v6 (pinned, as tests/cognito/test_amplify.py) registers, lists and deletes a
passkey in Debian's Chromium with its virtual authenticator, from a page on its own origin: the
gateway on https://auth.example.test, the app on https://app.example.test, and
`user_pool.passkey_relying_party_id: example.test`, the parent domain both live under — what an
app moving from Cognito needs for Amplify's associateWebAuthnCredential to work at all. The
passkey Amplify made then signs in on the hosted pages, in the same browser."""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.async_api import Browser, Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.cognito.test_amplify import AMPLIFY, ESBUILD, PASSWORD
from tests.e2e.test_browser import example_test_chromium
from tests.helpers import (
    AppServer,
    GatewayServer,
    RedisServer,
    free_port,
    make_settings,
    pkce_pair,
)
from tests.npm import node_modules
from tests.tls import make_pki

HOSTS = ["auth.example.test", "app.example.test"]
CLIENT = "amplify-passkeys"
POOL_ID = "us-east-1_AmplifyPk1"

ENTRY = """
import { Amplify } from "aws-amplify";
import * as auth from "aws-amplify/auth";
const plain = (value) => JSON.parse(JSON.stringify(value ?? null));
const safe = (run) => async (...args) => {
  try { return plain(await run(...args)); }
  catch (err) { return { error: err.name, message: err.message }; }
};
window.app = {
  configure: (config) => Amplify.configure(config),
  signIn: safe((email, password) => auth.signIn({ username: email, password })),
  associateWebAuthnCredential: safe(() => auth.associateWebAuthnCredential()),
  listWebAuthnCredentials: safe((input) => auth.listWebAuthnCredentials(input)),
  deleteWebAuthnCredential: safe((id) => auth.deleteWebAuthnCredential({ credentialId: id })),
};
"""


@pytest.fixture(scope="module")
def bundle() -> Path:
    modules = node_modules(*AMPLIFY, ESBUILD)
    out = modules.parent / f"cognate-app-{hashlib.sha256(ENTRY.encode()).hexdigest()[:12]}.js"
    if not out.exists():
        subprocess.run(  # noqa: S603
            [str(modules / ".bin" / "esbuild"), "--bundle", "--format=iife", "--minify"]
            + ["--platform=browser", "--sourcefile=app.js", "--loader=js", f"--outfile={out}"],
            input=ENTRY.encode(),
            cwd=modules.parent,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return out


@dataclass(frozen=True)
class Topology:
    gateway: GatewayServer
    auth: str
    app: str
    home: Path


@pytest.fixture(scope="module")
def topology(redis_server: RedisServer, bundle: Path) -> Iterator[Topology]:
    tls = make_pki(HOSTS)
    gateway_port, app_port = free_port(), free_port()
    auth = f"https://auth.example.test:{gateway_port}"
    app = f"https://app.example.test:{app_port}"
    settings = make_settings(
        gateway_port,
        redis_server.url,
        issuer=auth,
        clients=[
            {
                "client_id": CLIENT,
                "token_endpoint_auth_method": "none",
                "grant_types": ["refresh_token"],
                "allowed_origins": [app],
            },
            {  # the same app signing in through the hosted pages (OAuth)
                "client_id": "site",
                "token_endpoint_auth_method": "none",
                "redirect_uris": [f"{app}/cb"],
            },
        ],
        user_pool={"id": POOL_ID, "passkey_relying_party_id": "example.test"},
    )

    async def page(request: Request) -> Response:
        return HTMLResponse(
            '<!doctype html><meta charset="utf-8"><title>Amplify app</title>'
            '<script src="/app.js"></script><body>app</body>'
        )

    async def script(request: Request) -> Response:
        return Response(bundle.read_bytes(), media_type="text/javascript")

    app_server = AppServer(
        Starlette(routes=[Route("/", page), Route("/app.js", script)]),
        port=app_port,
        tls=(str(tls.cert), str(tls.key)),
    )
    gateway = GatewayServer(settings, tls=(str(tls.cert), str(tls.key)))
    for server in (gateway, app_server):
        server.start()
    yield Topology(gateway, auth, app, tls.home)
    gateway.stop()
    app_server.stop()
    shutil.rmtree(tls.dir, ignore_errors=True)


@pytest.fixture
async def chromium(topology: Topology) -> AsyncIterator[Browser]:
    async with example_test_chromium(topology.home) as browser:
        yield browser


async def app_page(chromium: Browser, topology: Topology) -> Page:
    """The app's page, with a platform authenticator that verifies its user (Touch ID's kind)."""
    context = await chromium.new_context()
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    await page.goto(f"{topology.app}/")
    await page.evaluate("config => app.configure(config)", amplify_config(topology))
    return page


def amplify_config(topology: Topology) -> dict[str, Any]:
    return {
        "Auth": {
            "Cognito": {
                "userPoolId": POOL_ID,
                "userPoolClientId": CLIENT,
                "userPoolEndpoint": topology.auth,
                "loginWith": {"email": True},
            }
        }
    }


async def call(page: Page, name: str, *args: Any) -> Any:
    return await page.evaluate(f"args => app.{name}(...args)", list(args))


async def test_amplify_registers_lists_and_deletes_a_passkey(
    chromium: Browser, topology: Topology
) -> None:
    email = f"amplifypk{secrets.token_hex(4)}@example.com"
    await topology.gateway.add_user(email, PASSWORD, email_verified=True)
    page = await app_page(chromium, topology)
    signed_in = await call(page, "signIn", email, PASSWORD)
    assert signed_in == {"isSignedIn": True, "nextStep": {"signInStep": "DONE"}}, signed_in

    assert await call(page, "associateWebAuthnCredential") is None
    listed = await call(page, "listWebAuthnCredentials")
    assert "error" not in listed, listed
    (credential,) = listed["credentials"]
    assert credential["relyingPartyId"] == "example.test"
    assert credential["authenticatorAttachment"] == "platform"
    assert credential["credentialId"] and credential["createdAt"]

    # The browser refuses a second passkey on the same authenticator (excludeCredentials).
    again = await call(page, "associateWebAuthnCredential")
    assert again["error"] == "PasskeyAlreadyExists", again

    # The passkey Amplify made signs in on the hosted pages (the gateway's own origin).
    _, challenge = pkce_pair()
    params = {
        "client_id": "site",
        "response_type": "code",
        "redirect_uri": f"{topology.app}/cb",
        "scope": "openid email",
        "state": "s-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    await page.goto(f"{topology.auth}/oauth2/authorize?{urlencode(params)}")
    async with page.expect_request(f"{topology.app}/cb?**") as back:
        await page.click("#sign-in-passkey")  # no e-mail, no password
    assert parse_qs(urlsplit((await back.value).url).query)["code"][0]
    await page.goto(f"{topology.app}/")
    await page.evaluate("config => app.configure(config)", amplify_config(topology))

    assert await call(page, "deleteWebAuthnCredential", credential["credentialId"]) is None
    assert (await call(page, "listWebAuthnCredentials"))["credentials"] == []
