"""npm `aws-amplify` v6 (pinned) in Debian's Chromium, bundled with npm `esbuild`, on a page of
its own origin — what Cognito web apps run. The field topology of FIELD-TESTS.md: the gateway
on https://auth.example.test, the app on https://app.example.test (`--host-resolver-rules` maps
both to loopback), TLS from a throw-away CA that Chromium trusts through a throw-away HOME.

Amplify is pointed at the gateway with its own two keys, `Auth.Cognito.userPoolEndpoint` and
`Auth.Cognito.identityPoolEndpoint`. The journey: signUp → confirmSignUp (the e-mailed code) →
signIn (Amplify's default USER_SRP_AUTH) → setUpTOTP / verifyTOTPSetup / updateMFAPreference →
signOut → signIn → confirmSignIn with a TOTP code → fetchAuthSession with an identity pool (AWS
credentials from moto's STS) → a forced refresh → signOut. A page on an origin the app client
does not allow cannot read a single answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.async_api import Browser, Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.e2e.test_browser import example_test_chromium
from tests.helpers import AppServer, GatewayServer, RedisServer, free_port, make_settings
from tests.identity.conftest import AUTH_ROLE, StsFront, moto_sts  # noqa: F401 (the fixture)
from tests.mail import Mailbox, code_in, smtp_settings
from tests.npm import node_modules
from tests.tls import make_pki

AMPLIFY, ESBUILD = ("aws-amplify", "6.22.1"), "esbuild@0.28.2"
HOSTS = ["auth.example.test", "app.example.test", "other.example.test"]
CLIENT = "amplify-web"
POOL_ID = "us-east-1_AmplifyT1"
IDENTITY_POOL = "us-east-1:aaaaaaaa-2222-4333-8444-555555555555"
PASSWORD = "correct horse battery"

# The app's code: Amplify's own functions, each answer made JSON (errors by their name).
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
  signUp: safe((email, password) => auth.signUp({
    username: email, password, options: { userAttributes: { email } } })),
  confirmSignUp: safe((email, code) =>
    auth.confirmSignUp({ username: email, confirmationCode: code })),
  signIn: safe((email, password) => auth.signIn({ username: email, password })),
  confirmSignIn: safe((code) => auth.confirmSignIn({ challengeResponse: code })),
  setUpTOTP: safe(async () => {
    const setup = await auth.setUpTOTP();
    return { secret: setup.sharedSecret, uri: setup.getSetupUri("Cognate").toString() };
  }),
  verifyTOTPSetup: safe((code) => auth.verifyTOTPSetup({ code })),
  updateMFAPreference: safe((preference) => auth.updateMFAPreference(preference)),
  fetchMFAPreference: safe(() => auth.fetchMFAPreference()),
  getCurrentUser: safe(() => auth.getCurrentUser()),
  fetchAuthSession: safe(async (options) => {
    const s = await auth.fetchAuthSession(options);
    return {
      idToken: s.tokens?.idToken?.toString(), accessToken: s.tokens?.accessToken?.toString(),
      identityId: s.identityId, credentials: s.credentials, userSub: s.userSub,
    };
  }),
  signOut: safe((options) => auth.signOut(options)),
  userPool: async (endpoint, operation, body) => {  // a raw call, as the app could make it
    const answer = await fetch(endpoint, { method: "POST", body: JSON.stringify(body), headers: {
      "X-Amz-Target": "AWSCognitoIdentityProviderService." + operation,
      "Content-Type": "application/x-amz-json-1.1" } });
    return { status: answer.status, body: await answer.json() };
  },
  storedRefreshToken: () => {  // where Amplify keeps it (localStorage, its default)
    const key = Object.keys(localStorage).find((k) => k.endsWith(".refreshToken"));
    return key ? localStorage.getItem(key) : null;
  },
};
"""


@pytest.fixture(scope="module")
def bundle() -> Path:
    """Amplify and the app's code in one browser script, built once per version pair."""
    modules = node_modules(*AMPLIFY, ESBUILD)
    out = modules.parent / f"cognate-app-{hashlib.sha256(ENTRY.encode()).hexdigest()[:12]}.js"
    if not out.exists():
        esbuild = modules / ".bin" / "esbuild"
        subprocess.run(  # noqa: S603
            [str(esbuild), "--bundle", "--format=iife", "--platform=browser", "--minify"]
            + ["--sourcefile=app.js", "--loader=js", f"--outfile={out}"],
            input=ENTRY.encode(),
            cwd=modules.parent,  # where esbuild resolves the imports
            check=True,
            capture_output=True,
            timeout=300,
        )
    return out


@pytest.fixture(scope="module")
def sts(moto_sts: str) -> Iterator[StsFront]:  # noqa: F811 - moto_sts is the fixture
    """moto's STS behind a front that records what the gateway asked."""
    front = StsFront(moto_sts)
    front.server.start()
    yield front
    front.server.stop()


@dataclass(frozen=True)
class Topology:
    gateway: GatewayServer
    auth: str  # the issuer and both endpoints, https://auth.example.test:<port>
    app: str  # https://app.example.test:<port>, the app client's allowed origin
    other: str  # the same page under a name the client does not allow
    home: Path  # a HOME whose NSS database trusts the test CA (for Chromium)


@pytest.fixture(scope="module")
def topology(
    redis_server: RedisServer, mailbox: tuple[Mailbox, int], sts: StsFront, bundle: Path
) -> Iterator[Topology]:
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
            }
        ],
        email=smtp_settings(mailbox[1]),
        user_pool={"self_sign_up": True, "id": POOL_ID},
        identity_pools=[
            {
                "id": IDENTITY_POOL,
                "name": "Amplify app",
                "providers": [{"type": "cognate", "client_ids": [CLIENT]}],
                "roles": {"authenticated": AUTH_ROLE},
                "sts": {"endpoint": sts.server.url},
            }
        ],
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
    gateway = GatewayServer(settings)
    gateway.server.config.ssl_certfile = str(tls.cert)
    gateway.server.config.ssl_keyfile = str(tls.key)
    for server in (gateway, app_server):
        server.start()
    yield Topology(gateway, auth, app, f"https://other.example.test:{app_port}", tls.home)
    gateway.stop()
    app_server.stop()
    shutil.rmtree(tls.dir, ignore_errors=True)


@pytest.fixture
async def chromium(topology: Topology) -> AsyncIterator[Browser]:
    async with example_test_chromium(topology.home) as browser:
        yield browser


def amplify_config(topology: Topology) -> dict[str, Any]:
    """What an app passes to Amplify.configure to use Cognate (the keys a user must set)."""
    return {
        "Auth": {
            "Cognito": {
                "userPoolId": POOL_ID,
                "userPoolClientId": CLIENT,
                "identityPoolId": IDENTITY_POOL,
                "userPoolEndpoint": topology.auth,
                "identityPoolEndpoint": topology.auth,
                "loginWith": {"email": True},
            }
        }
    }


async def app_page(chromium: Browser, origin: str, topology: Topology) -> Page:
    page = await chromium.new_page()
    await page.goto(f"{origin}/")
    await page.evaluate("config => app.configure(config)", amplify_config(topology))
    return page


def payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


async def call(page: Page, name: str, *args: Any) -> Any:
    return await page.evaluate(f"args => app.{name}(...args)", list(args))


async def test_amplify_journey_sign_up_srp_totp_identity_pool_sign_out(
    chromium: Browser, topology: Topology, mailbox: tuple[Mailbox, int], sts: StsFront
) -> None:
    email = f"amplify{secrets.token_hex(4)}@example.com"
    page = await app_page(chromium, topology.app, topology)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    signed_up = await call(page, "signUp", email, PASSWORD)
    assert signed_up["isSignUpComplete"] is False, signed_up
    assert signed_up["nextStep"]["signUpStep"] == "CONFIRM_SIGN_UP"
    code = code_in(await mailbox[0].next_for(email))
    confirmed = await call(page, "confirmSignUp", email, code)
    assert confirmed["isSignUpComplete"] is True, confirmed

    signed_in = await call(page, "signIn", email, PASSWORD)
    assert signed_in == {"isSignedIn": True, "nextStep": {"signInStep": "DONE"}}

    setup = await call(page, "setUpTOTP")
    assert setup["uri"].startswith("otpauth://totp/"), setup
    totp = pyotp.TOTP(setup["secret"])
    assert await call(page, "verifyTOTPSetup", totp.at(time.time() - 30)) is None
    assert await call(page, "updateMFAPreference", {"totp": "PREFERRED"}) is None
    assert await call(page, "fetchMFAPreference") == {"enabled": ["TOTP"], "preferred": "TOTP"}
    assert await call(page, "signOut") is None

    asked = await call(page, "signIn", email, PASSWORD)
    assert asked["nextStep"]["signInStep"] == "CONFIRM_SIGN_IN_WITH_TOTP_CODE", asked
    wrong = await call(page, "confirmSignIn", "000000")
    assert wrong["error"] == "CodeMismatchException", wrong
    done = await call(page, "confirmSignIn", totp.now())
    assert done == {"isSignedIn": True, "nextStep": {"signInStep": "DONE"}}, done

    session = await call(page, "fetchAuthSession")
    assert "error" not in session, session
    claims = payload(session["idToken"])  # verified by tests/cognito/test_aws_jwt_verify.py
    assert claims["token_use"] == "id" and claims["email"] == email
    assert session["identityId"] == claims["sub"]
    assert {"accessKeyId", "secretAccessKey", "sessionToken"} <= set(session["credentials"])
    # From moto's STS (the gateway caches them: Amplify's setUpTOTP already fetched a session).
    assert [r["RoleArn"] for r in sts.requests] == [AUTH_ROLE]

    refreshed = await call(page, "fetchAuthSession", {"forceRefresh": True})
    assert "error" not in refreshed, refreshed
    assert refreshed["accessToken"] != session["accessToken"]

    refresh_token = await call(page, "storedRefreshToken")
    assert refresh_token
    assert await call(page, "signOut") is None
    after = await call(page, "fetchAuthSession")
    assert after.get("idToken") is None, after
    assert (await call(page, "getCurrentUser"))["error"] == "UserUnAuthenticatedException"
    # Amplify's sign-out revoked the refresh token (RevokeToken): it refreshes nothing now.
    dead = await call(
        page,
        "userPool",
        topology.auth,
        "GetTokensFromRefreshToken",
        {"ClientId": CLIENT, "RefreshToken": refresh_token},
    )
    assert dead["status"] == 400 and dead["body"]["__type"] == "NotAuthorizedException", dead
    assert [p for p in problems if "CORS" in p] == []


async def test_a_page_on_an_origin_the_client_does_not_allow_reads_nothing(
    chromium: Browser, topology: Topology
) -> None:
    page = await app_page(chromium, topology.other, topology)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    refused = await call(page, "signIn", "someone@example.com", PASSWORD)
    # fetch's answer to a CORS refusal: Amplify sees no service answer at all.
    assert refused["error"] == "NetworkError", refused
    assert any("CORS" in p and topology.other in p for p in problems), problems
