"""Identity-pool throughput: GetId for a known login and cached GetCredentialsForIdentity.

Same harness as `bench/oidc.py`: private redis-server, the gateway with one worker, a bare
Starlette app as the baseline, wrk on another core. STS is moto_server (the credentials are
cached after the first call, so it is touched once). The login is a real ID token of the gateway,
obtained through its hosted sign-in page.

    python bench/identity.py [--duration 5] [--connections 8]
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Environment, Scenario, group_main, run_scenarios  # noqa: E402
from tests.helpers import Browser, redeem  # noqa: E402

POOL = "us-east-1:11111111-2222-4333-8444-555555555555"
TARGET = "X-Amz-Target: AWSCognitoIdentityService."
JSON = "Content-Type: application/x-amz-json-1.1"


def settings_text(port: int, redis_url: str, sts_url: str) -> str:
    return f"""
issuer: http://127.0.0.1:{port}
secret_key: bench-secret-key-{"x" * 32}
store: {{url: "{redis_url}", prefix: bench-id}}
log_level: warning
clients:
  - client_id: web
    client_secret: web-secret-0123456789
    redirect_uris: [https://app.example.com/cb]
identity_pools:
  - id: {POOL}
    name: bench
    providers: [{{type: cognate, client_ids: [web]}}]
    roles: {{authenticated: "arn:aws:iam::123456789012:role/bench"}}
    sts: {{endpoint: "{sts_url}"}}
"""


async def login(url: str, settings_path: Path) -> str:
    """Create a user and sign in through the hosted page: a real ID token."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "users",
        "create",
        "bench@example.com",
        "--password-stdin",
        "--verified",
        "-c",
        str(settings_path),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    await proc.communicate(b"bench password 123\n")
    browser = Browser(url)
    code, verifier, _ = await browser.login_for_code(
        "bench@example.com", password="bench password 123"
    )
    tokens = (await redeem(browser.http, code, verifier)).json()
    await browser.aclose()
    return str(tokens["id_token"])


def run(duration: int, connections: int, baseline: bool = True) -> dict[str, dict[str, Any]]:
    """The identity-pool scenarios (and the baseline unless `baseline` is False)."""
    import httpx

    with Environment(settings_text, sts=True) as env:
        gw = env.gateway
        token = asyncio.run(login(gw, env.settings_path))
        provider = gw.removeprefix("http://")
        headers = {
            "X-Amz-Target": "AWSCognitoIdentityService.GetId",
            "Content-Type": "application/x-amz-json-1.1",
        }
        get_id = {"IdentityPoolId": POOL, "Logins": {provider: token}}
        identity = httpx.post(gw, json=get_id, headers=headers).json()["IdentityId"]
        creds = {"IdentityId": identity, "Logins": {provider: token}}
        first = httpx.post(
            gw,
            json=creds,
            headers={
                **headers,
                "X-Amz-Target": "AWSCognitoIdentityService.GetCredentialsForIdentity",
            },
        )
        assert first.status_code == 200, first.text  # warms the credential cache
        (env.folder / "getid.json").write_text(json.dumps(get_id))
        (env.folder / "creds.json").write_text(json.dumps(creds))
        lua = str(ROOT / "bench" / "post.lua")
        scenarios: list[Scenario] = [
            (
                "GetId (known login, RS256 ID token)",
                gw,
                [lua, "/", str(env.folder / "getid.json"), TARGET + "GetId", JSON],
            ),
            (
                "GetCredentialsForIdentity (cached)",
                gw,
                [
                    lua,
                    "/",
                    str(env.folder / "creds.json"),
                    TARGET + "GetCredentialsForIdentity",
                    JSON,
                ],
            ),
        ]
        return run_scenarios(env, scenarios, duration, connections, baseline)


if __name__ == "__main__":
    raise SystemExit(group_main(__doc__ or "", "identity", run))
