"""OpenID Provider throughput: discovery, JWKS, client_credentials, code exchange, refresh.

Starts a private redis-server, the gateway (one worker, as `cognate serve` runs it) and a bare
Starlette app, then drives each with wrk on loopback (server and wrk pinned to different cores
when `taskset` exists) and prints req/s, p50, p99 and the ratio to the bare app.

Codes and refresh tokens are single-use, so they are minted beforehand straight into the store
with the gateway's own code (one per request wrk will send); the run reports any non-2xx answer.

    python bench/oidc.py [--duration 5] [--connections 8]

Needs `wrk` (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.crypto import s256_challenge  # noqa: E402
from gateway.op.grants import Authorization, CodeRecord  # noqa: E402
from gateway.services import build_services  # noqa: E402
from gateway.settings import load_settings  # noqa: E402
from tests.helpers import RedisServer, free_port  # noqa: E402

VERIFIER = "v" * 64
WEB_AUTH = "Basic " + base64.b64encode(b"web:web-secret-0123456789").decode()
SERVICE_AUTH = "Basic " + base64.b64encode(b"service:service-secret-0123456789").decode()


def pinned(cmd: list[str], core: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(core), *cmd]
    return cmd


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def wrk(
    url: str, duration: int, connections: int, script: list[str] | None = None
) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        cmd += ["-s", script[0], url, "--", *script[1:]]
    else:
        cmd.append(url)
    out = subprocess.run(pinned(cmd, 1), capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "requests": total,
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "p50_ms": _latency(out, "50%"),
        "p99_ms": _latency(out, "99%"),
    }


def _latency(out: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


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
    if not shutil.which("wrk"):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2

    redis = RedisServer()
    redis.start()
    folder = Path(tempfile.mkdtemp(prefix="cognate-bench-"))
    gw_port, base_port = free_port(), free_port()
    settings_path = folder / "gateway.yaml"
    write_settings(settings_path, gw_port, redis.url, args.id_token_alg)
    procs = [
        subprocess.Popen(
            pinned(
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    "serve",
                    "--config",  # noqa: S603
                    str(settings_path),
                    "--port",
                    str(gw_port),
                ],
                0,
            ),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            pinned(
                [
                    sys.executable,
                    str(ROOT / "bench" / "baseline_app.py"),  # noqa: S603
                    "--port",
                    str(base_port),
                ],
                0,
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    results: dict[str, dict[str, Any]] = {}
    try:
        gw, base = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{base_port}"
        wait_ready(f"{gw}/healthz")
        wait_ready(base)
        budget = args.duration * 6000  # more single-use inputs than the gateway can consume
        print(f"minting {budget} codes and {budget} refresh tokens…", file=sys.stderr)
        asyncio.run(mint(settings_path, budget, budget, folder))
        lua = str(ROOT / "bench" / "bodies.lua")
        scenarios: list[tuple[str, str, list[str] | None]] = [
            ("bare Starlette JSON (baseline)", base, None),
            ("discovery", f"{gw}/.well-known/openid-configuration", None),
            ("JWKS", f"{gw}/.well-known/jwks.json", None),
            ("client_credentials (ES256 JWT)", gw, [lua, str(folder / "cc.txt"), SERVICE_AUTH]),
            (
                "code exchange (PKCE, ID+access+refresh)",
                gw,
                [lua, str(folder / "codes.txt"), WEB_AUTH],
            ),
            ("refresh (rotation)", gw, [lua, str(folder / "refresh.txt"), WEB_AUTH]),
        ]
        for name, url, script in scenarios:
            print(f"running: {name}", file=sys.stderr)
            results[name] = wrk(url, args.duration, args.connections, script)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)
        redis.stop()
        shutil.rmtree(folder, ignore_errors=True)

    report(results, args.json, {"connections": args.connections, "duration_s": args.duration,
                                "id_token_alg": args.id_token_alg})
    return 0


def report(results: dict[str, dict[str, Any]], path: Path, meta: dict[str, Any]) -> None:
    """Print the table (ratios to the first, baseline, row) and write it as JSON."""
    baseline = next(iter(results.values()))["rps"]
    print(f"\n{'scenario':44} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} {'errors':>7}")
    for name, r in results.items():
        print(f"{name:44} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
              f"{r['rps'] / baseline:6.2f} {r['errors']:7d}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**meta, "results": results}, indent=2))
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    raise SystemExit(main())
