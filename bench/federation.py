"""Upstream OIDC callback completions per second on one worker, against a local IdP.

Each request is what a browser does coming back from the IdP: `GET /login/{id}/callback?code&
state&iss` for its own pending flow. The gateway checks the state against the browser's flow,
redeems the code at the IdP (HTTP), verifies the ES256 ID token against the IdP's JWKS, merges
userinfo (HTTP), resolves the identity, starts a session, issues an authorization code and
redirects (303). Flows are minted beforehand, one per request, as the edge benchmark does for
password sign-in. The IdP (bench/idp_app.py) runs in its own process on the other core.

SAML ACS validations are measured by bench/saml.py.

    python bench/federation.py [--duration 5] [--connections 8]
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    BASELINE,
    Environment,
    group_main,
    pending_flow,
    pinned,
    wait_ready,
    wrk,
)
from gateway.connectors import OidcPending  # noqa: E402
from gateway.login import upstream  # noqa: E402
from gateway.services import build_services  # noqa: E402
from gateway.settings_loader import load_settings  # noqa: E402
from tests.helpers import free_port  # noqa: E402

IDP_PORT = free_port()
IDP = f"http://127.0.0.1:{IDP_PORT}"


def settings_text(port: int, redis_url: str, sts_url: str, store_timeout: float = 2.0) -> str:
    return f"""
issuer: http://127.0.0.1:{port}
secret_key: bench-secret-key-{"x" * 32}
store: {{url: "{redis_url}", prefix: bench-fed, socket_timeout: {store_timeout}}}
log_level: warning
clients:
  - client_id: web
    client_secret: web-secret-0123456789
    redirect_uris: [https://app.example.com/cb]
connectors:
  - {{id: local, type: local}}
  - id: idp
    type: oidc
    name: Bench IdP
    issuer: {IDP}
    client_id: bench-client
    client_secret: bench-secret-0123456789
"""


async def mint_callbacks(settings_path: Path, count: int, folder: Path) -> str:
    """One pending flow per callback, each already sent to the IdP (state, nonce and PKCE on
    the flow); writes the callback paths and returns the browser's CSRF cookie value."""
    services = build_services(load_settings(settings_path))
    connector: Any = services.connectors["idp"]
    browser = secrets.token_urlsafe(24)
    binding = services.flows.browser_binding(browser)
    sem = asyncio.Semaphore(64)

    async def one() -> str:
        async with sem:
            flow = await pending_flow(services, binding)
            begun = await upstream.start(services, flow, connector)
            # bench/idp_app.py takes the nonce as the code (see its docstring).
            pending = begun.pending
            assert isinstance(pending, OidcPending)  # noqa: S101 - the bench's IdP is OIDC
            query = {"code": pending.nonce, "state": pending.state, "iss": IDP}
            return "/login/idp/callback?" + urlencode(query)

    paths = await asyncio.gather(*(one() for _ in range(count)))
    (folder / "callbacks.txt").write_text("\n".join(paths) + "\n")
    await connector.close()
    services.users.hasher.close()
    await services.store.close()
    return browser


def run(duration: int, connections: int, baseline: bool = True) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    idp = subprocess.Popen(  # noqa: S603
        pinned([sys.executable, str(ROOT / "bench" / "idp_app.py"), "--port", str(IDP_PORT)], 1),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"{IDP}/jwks")
        with Environment(settings_text) as env:
            browser = asyncio.run(mint_callbacks(env.settings_path, duration * 2500, env.folder))
            if baseline:
                results[BASELINE] = wrk(env.baseline, duration, connections)
            print("running: OIDC callbacks", file=sys.stderr)
            results["upstream OIDC callback (code, ID token, userinfo)"] = wrk(
                env.gateway,
                duration,
                connections,
                [
                    str(ROOT / "bench" / "get_paths.lua"),
                    str(env.folder / "callbacks.txt"),
                    f"cognate_csrf={browser}",
                ],
            )
    finally:
        idp.terminate()
        idp.wait(timeout=20)
    return results


if __name__ == "__main__":
    raise SystemExit(group_main(__doc__ or "", "federation", run))
