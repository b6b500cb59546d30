"""A single-page app on its own origin, in real Chromium, with the stock `oidc-client-ts`
(pinned, installed from the npm registry by this module's fixture; its browser bundle served
by the app). The field topology of FIELD-TESTS.md: the gateway on https://auth.example.test,
the app on https://app.example.test (`--host-resolver-rules` maps both to loopback), TLS from a
throw-away CA that Chromium trusts through an NSS database in a throw-away HOME.

The journey: signinRedirect → hosted sign-in → callback (code + PKCE at the token endpoint
across origins) → userinfo (a CORS preflight for the bearer header) → refresh (signinSilent
with the refresh token) → signoutRedirect; then the session-bound refresh token is dead, and a
page on an origin the client does not list cannot read its answers at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from tests.e2e.test_browser import example_test_chromium
from tests.helpers import PASSWORD, AppServer, GatewayServer, RedisServer, free_port, make_settings
from tests.npm import node_modules
from tests.tls import Pki, make_pki

NPM_PACKAGE, NPM_VERSION = "oidc-client-ts", "3.5.0"
HOSTS = ["auth.example.test", "app.example.test", "other.example.test"]
CLIENT = "spa-e2e"


@pytest.fixture(scope="session")
def oidc_client_ts() -> Path:
    """The library's browser bundle (global `oidc`), installed once per version."""
    package = node_modules(NPM_PACKAGE, NPM_VERSION) / NPM_PACKAGE
    return package / "dist" / "browser" / "oidc-client-ts.min.js"


@pytest.fixture(scope="module")
def tls() -> Pki:
    """A CA, one server certificate for every test host, and Chromium's trust in the CA."""
    return make_pki(HOSTS)


def over_tls(server: AppServer, tls: Pki) -> None:
    """Serve https with the test certificate (uvicorn reads these when it starts)."""
    server.server.config.ssl_certfile = str(tls.cert)
    server.server.config.ssl_keyfile = str(tls.key)


@dataclass(frozen=True)
class Topology:
    gateway: GatewayServer
    auth: str  # the issuer, https://auth.example.test:<port>
    app: str  # https://app.example.test:<port>
    other: str  # the same app server under a name the client does not list


SPA_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>SPA</title>
<script src="/oidc-client-ts.min.js"></script>
<script>
const mgr = new oidc.UserManager({
  authority: %(auth)s, client_id: %(client)s,
  redirect_uri: %(app)s + "/callback", post_logout_redirect_uri: %(app)s + "/",
  response_type: "code", scope: "openid email", loadUserInfo: true,
  automaticSilentRenew: false,
});
async function call(endpoint, init) {
  const metadata = await mgr.metadataService.getMetadata();
  const answer = await fetch(metadata[endpoint], init);
  return {status: answer.status, body: await answer.json()};
}
function tokens(user) {
  return {access_token: user.access_token, refresh_token: user.refresh_token,
          id_token: user.id_token, profile: user.profile, scope: user.scope};
}
window.app = {
  signIn: () => mgr.signinRedirect(),
  callback: async () => tokens(await mgr.signinRedirectCallback()),
  refresh: async () => tokens(await mgr.signinSilent()),
  userinfo: (token) => call("userinfo_endpoint", {headers: {Authorization: "Bearer " + token}}),
  refreshWith: (token) => call("token_endpoint", {method: "POST", body: new URLSearchParams(
    {grant_type: "refresh_token", client_id: %(client)s, refresh_token: token})}),
  signOut: () => mgr.signoutRedirect(),
  signOutCallback: async () => { await mgr.signoutRedirectCallback(); return "done"; },
};
</script></head><body>SPA</body></html>
"""


@pytest.fixture(scope="module")
def topology(redis_server: RedisServer, tls: Pki, oidc_client_ts: Path) -> Iterator[Topology]:
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
                "redirect_uris": [f"{app}/callback"],
                "post_logout_redirect_uris": [f"{app}/"],
            }
        ],
    )
    page = SPA_PAGE % {
        "auth": json.dumps(auth),
        "app": json.dumps(app),
        "client": json.dumps(CLIENT),
    }

    async def spa(request: Request) -> Response:
        return HTMLResponse(page)

    async def bundle(request: Request) -> Response:
        return FileResponse(oidc_client_ts, media_type="text/javascript")

    app_server = AppServer(
        Starlette(
            routes=[
                Route("/", spa),
                Route("/callback", spa),
                Route("/oidc-client-ts.min.js", bundle),
            ]
        ),
        port=app_port,
    )
    gateway = GatewayServer(settings)
    for server in (gateway, app_server):
        over_tls(server, tls)
        server.start()
    yield Topology(gateway, auth, app, f"https://other.example.test:{app_port}")
    gateway.stop()
    app_server.stop()


@pytest.fixture
async def chromium(tls: Pki) -> AsyncIterator[Browser]:
    async with example_test_chromium(tls.home) as browser:
        yield browser


async def signed_in(page: Page, topology: Topology, email: str) -> dict[str, Any]:
    await page.goto(f"{topology.app}/")
    async with page.expect_navigation(url=f"{topology.auth}/login**"):
        await page.evaluate("() => { app.signIn(); }")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    async with page.expect_navigation(url=f"{topology.app}/callback**"):
        await page.click("button[type=submit]")
    return dict(await page.evaluate("app.callback()"))


async def test_oidc_client_ts_journey_across_origins(chromium: Browser, topology: Topology) -> None:
    email = "spa-user@example.com"
    await topology.gateway.add_user(email, email_verified=True)
    page = await chromium.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    user = await signed_in(page, topology, email)
    assert user["profile"]["email"] == email  # from userinfo (loadUserInfo) and the ID token
    assert user["refresh_token"] and user["scope"] == "openid email"
    info = await page.evaluate("t => app.userinfo(t)", user["access_token"])
    assert info == {
        "status": 200,
        "body": {"email": email, "email_verified": True, "sub": user["profile"]["sub"]},
    }

    refreshed = await page.evaluate("app.refresh()")
    assert refreshed["access_token"] != user["access_token"]
    assert refreshed["refresh_token"] != user["refresh_token"]
    assert (await page.evaluate("t => app.userinfo(t)", refreshed["access_token"]))["status"] == 200

    # A page on an origin the client does not list cannot read the answers at all.
    other = await chromium.new_page()
    await other.goto(f"{topology.other}/")
    blocked = await other.evaluate(
        "t => app.userinfo(t).then(() => 'read', e => e.name)", refreshed["access_token"]
    )
    assert blocked == "TypeError"  # fetch's answer to a CORS refusal
    await other.close()

    # Back at the registered post-logout URI, as registered (a query only with a state).
    back = re.compile(rf"^{re.escape(topology.app)}/(\?.*)?$")
    async with page.expect_navigation(url=back):
        await page.evaluate("() => { app.signOut(); }")
    assert await page.evaluate("app.signOutCallback()") == "done"
    # The refresh token had no offline_access: it ended with the session, and the app can
    # read why (the error answer carries CORS headers too).
    dead = await page.evaluate("t => app.refreshWith(t)", refreshed["refresh_token"])
    assert dead["status"] == 400 and dead["body"]["error"] == "invalid_grant"
    gone = await page.evaluate("t => app.userinfo(t)", refreshed["access_token"])
    assert gone["status"] == 401 and gone["body"]["error"] == "invalid_token"
    assert [p for p in problems if "CORS" in p and topology.app in p] == []
