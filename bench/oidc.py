"""OpenID Provider throughput: discovery, JWKS, client_credentials, code exchange, refresh,
and panva's node oidc-provider doing the same client_credentials grant as a peer.

Starts a private redis-server, the gateway (one worker, as `cognate serve` runs it) and a bare
Starlette app, then drives each with wrk on loopback (server and wrk pinned to different cores
when `taskset` exists) and prints req/s, p50, p99 and the ratio to the bare app.

The peer (bench/peer: oidc-provider pinned in package.json and package-lock.json, installed
with `npm ci`) issues ES256 JWT access tokens to the same client with client_secret_basic, runs
as one process pinned to the gateway's core, and is driven by the same wrk script in the same
run; the table prints the gateway's ratio to it. A non-2xx answer from either fails the run.

Codes and refresh tokens are single-use, so they are minted beforehand straight into the store
with the gateway's own code (one per request wrk will send); the run reports any non-2xx answer.

    python bench/oidc.py [--duration 5] [--connections 8]

Needs `wrk` (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    Environment,
    Scenario,
    need_wrk,
    pinned,
    report,
    run_scenarios,
    wait_ready,
    wrk,
)
from gateway.crypto import s256_challenge  # noqa: E402
from gateway.grants import Authorization, CodeRecord  # noqa: E402
from gateway.services import build_services  # noqa: E402
from gateway.settings_loader import load_settings  # noqa: E402
from tests.helpers import free_port  # noqa: E402

VERIFIER = "v" * 64
WEB_AUTH = "Basic " + base64.b64encode(b"web:web-secret-0123456789").decode()
SERVICE_AUTH = "Basic " + base64.b64encode(b"service:service-secret-0123456789").decode()


def write_settings(path: Path, port: int, redis_url: str, id_token_alg: str = "RS256") -> None:
    path.write_text(f"""
issuer: http://127.0.0.1:{port}
keys: {{id_token_alg: {id_token_alg}}}
secret_key: bench-secret-key-{"x" * 32}
store: {{url: "{redis_url}", prefix: bench}}
log_level: warning
clients:
  - client_id: web
    client_secret: web-secret-0123456789
    redirect_uris: [https://app.example.com/cb]
  - client_id: service
    client_secret: service-secret-0123456789
    grant_types: [client_credentials]
    scope: reports.read
""")


async def mint(settings_path: Path, codes: int, refreshes: int, folder: Path) -> None:
    """Single-use inputs for the code and refresh benchmarks, written as wrk body files."""
    services = build_services(load_settings(settings_path))
    auth = Authorization(
        sub="us-east-1:00000000-0000-4000-8000-000000000000",
        client_id="web",
        scope=["openid", "email"],
        auth_time=int(time.time()),
        sid=None,
        amr=["pwd"],
        profile={"email": "bench@example.com"},
        nonce="n",
    )
    record = CodeRecord(
        authorization=auth,
        redirect_uri="https://app.example.com/cb",
        code_challenge=s256_challenge(VERIFIER),
    )
    sem = asyncio.Semaphore(64)

    async def one_code() -> str:
        async with sem:
            return await services.grants.issue_code(record, ttl=600)

    async def one_refresh() -> str:
        async with sem:
            _, token = await services.grants.create_grant(auth, 3600, with_refresh=True)
            return str(token)

    code_list = await asyncio.gather(*(one_code() for _ in range(codes)))
    (folder / "codes.txt").write_text(
        "\n".join(
            urlencode(
                {
                    "grant_type": "authorization_code",
                    "code": c,
                    "code_verifier": VERIFIER,
                    "redirect_uri": "https://app.example.com/cb",
                }
            )
            for c in code_list
        )
        + "\n"
    )
    refresh_list = await asyncio.gather(*(one_refresh() for _ in range(refreshes)))
    (folder / "refresh.txt").write_text(
        "\n".join(
            urlencode({"grant_type": "refresh_token", "refresh_token": r}) for r in refresh_list
        )
        + "\n"
    )
    (folder / "cc.txt").write_text("grant_type=client_credentials\n")
    services.users.hasher.close()
    await services.store.close()


PEER = ROOT / "bench" / "peer"
PEER_NAME = "node oidc-provider client_credentials (peer)"
CC_NAME = "client_credentials (ES256 JWT)"


@contextmanager
def node_peer() -> Iterator[str]:
    """panva's oidc-provider on a free port, pinned to the gateway's core; yields its URL."""
    if not shutil.which("node"):
        raise SystemExit("node is needed for the peer benchmark (Debian: apt-get install nodejs)")
    if not (PEER / "node_modules" / "oidc-provider").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEER, check=True)
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603
        pinned(["node", str(PEER / "oidc_provider.mjs"), str(port)], 0),
        env={**os.environ, "NODE_ENV": "production"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/.well-known/openid-configuration")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def run(
    duration: int, connections: int, id_token_alg: str = "RS256", baseline: bool = True
) -> dict[str, dict[str, Any]]:
    """The OP scenarios (and the baseline unless `baseline` is False)."""

    def settings(port: int, redis_url: str, sts_url: str) -> str:
        path = Path(tempfile.mkdtemp()) / "s.yaml"
        write_settings(path, port, redis_url, id_token_alg)
        return path.read_text()

    with Environment(settings) as env:
        budget = duration * 6000  # more single-use inputs than the gateway can consume
        print(f"minting {budget} codes and {budget} refresh tokens…", file=sys.stderr)
        asyncio.run(mint(env.settings_path, budget, budget, env.folder))
        lua = str(ROOT / "bench" / "bodies.lua")
        gw, folder = env.gateway, env.folder
        scenarios: list[Scenario] = [
            ("discovery", f"{gw}/.well-known/openid-configuration", None),
            ("JWKS", f"{gw}/.well-known/jwks.json", None),
            (CC_NAME, gw, [lua, str(folder / "cc.txt"), SERVICE_AUTH]),
            (
                "code exchange (PKCE, ID+access+refresh)",
                gw,
                [lua, str(folder / "codes.txt"), WEB_AUTH],
            ),
            ("refresh (rotation)", gw, [lua, str(folder / "refresh.txt"), WEB_AUTH]),
        ]
        results = run_scenarios(env, scenarios, duration, connections, baseline)
    with node_peer() as peer:
        body = Path(tempfile.mkdtemp(prefix="cognate-peer-")) / "cc.txt"
        body.write_text("grant_type=client_credentials&scope=reports.read")
        post = [
            str(ROOT / "bench" / "post.lua"),
            "/token",
            str(body),
            f"Authorization: {SERVICE_AUTH}",
            "Content-Type: application/x-www-form-urlencoded",
        ]
        print(f"running: {PEER_NAME}", file=sys.stderr)
        results[PEER_NAME] = wrk(peer, duration, connections, post)
    failed = {name: r["errors"] for name, r in results.items() if r["errors"]}
    if failed:
        raise SystemExit(f"non-2xx answers, the run does not count: {failed}")
    ratio = results[CC_NAME]["rps"] / results[PEER_NAME]["rps"]
    print(f"client_credentials: {ratio:.2f}x node oidc-provider (same run)", file=sys.stderr)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--id-token-alg",
        choices=["RS256", "ES256"],
        default="RS256",
        help="ID token algorithm (RS256 is the OIDC default and costs the most)",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "oidc.json")
    args = parser.parse_args()
    need_wrk()
    results = run(args.duration, args.connections, args.id_token_alg)
    report(
        results,
        args.json,
        {
            "connections": args.connections,
            "duration_s": args.duration,
            "id_token_alg": args.id_token_alg,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
