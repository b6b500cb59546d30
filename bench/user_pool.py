"""The Cognito user-pool API's targets, measured in one run on one gateway worker:

- USER_SRP_AUTH, both round trips per sign-in (bench/srp_client.py: a gmpy2 client on the
  other core, every proof real), against the hosted page's password sign-in (argon2id) in
  the same run (target ≥ 2×) and against the raw rate of the server's SRP arithmetic alone
  on the gateway's core (bench/srp.py's gmpy2 engine; target ≥ 0.8×);
- GetUser with an access token against forward-auth session-cache hits (target ≥ 0.5×),
  run alternately in five rounds: the round with the median ratio counts.

    python bench/user_pool.py [--duration 5] [--connections 8]
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.edge import EMAIL, PASSWORD, mint_logins, signed_in  # noqa: E402
from bench.harness import (  # noqa: E402
    BASELINE,
    Environment,
    group_main,
    median_round,
    pinned,
    wrk,
)

POOL_ID = "eu-west-1_BenchPool1"
# GetUser and forward-auth take turns this often (5 s each; the median round counts): their
# ratio swung from 0.45 to 0.93 between rounds of one run on this machine.
GET_USER_ROUNDS = 5

SRP_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from bench.srp import run
count = int(sys.argv[2])
best = min(sum(run("gmpy2", count)) for _ in range(3))
print(count / best)
"""


def settings_text(port: int, redis_url: str, sts_url: str) -> str:
    return f"""
issuer: http://127.0.0.1:{port}
sessions: {{cache_ttl: 5}}
secret_key: bench-secret-key-{"x" * 32}
store: {{url: "{redis_url}", prefix: bench-pool}}
log_level: warning
rate_limits: {{login_per_account: 1000000, login_per_ip: 1000000}}
user_pool: {{id: {POOL_ID}}}
clients:
  - client_id: web
    client_secret: web-secret-0123456789
    redirect_uris: [https://app.example.com/cb]
  - client_id: app
    token_endpoint_auth_method: none
    grant_types: [refresh_token]
    explicit_auth_flows: [ALLOW_USER_SRP_AUTH, ALLOW_USER_PASSWORD_AUTH, ALLOW_REFRESH_TOKEN_AUTH]
"""


def access_token(url: str) -> str:
    answer = httpx.post(
        f"{url}/",
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
        },
        content=json.dumps(
            {
                "AuthFlow": "USER_PASSWORD_AUTH",
                "ClientId": "app",
                "AuthParameters": {"USERNAME": EMAIL, "PASSWORD": PASSWORD},
            }
        ),
    )
    answer.raise_for_status()
    return str(answer.json()["AuthenticationResult"]["AccessToken"])


def srp_sign_ins(url: str, duration: int, connections: int) -> dict[str, Any]:
    out = subprocess.run(  # noqa: S603
        pinned(
            [
                sys.executable,
                str(ROOT / "bench" / "srp_client.py"),
                url,
                EMAIL,
                PASSWORD,
                POOL_ID,
                "app",
                f"--duration={duration}",
                f"--connections={connections}",
            ],
            1,
        ),  # fmt: skip
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return dict(json.loads(out.stdout))


def raw_srp_rate(count: int = 150) -> float:
    """Sign-ins per second of the server's SRP arithmetic alone (challenge + verify, no I/O)
    on the gateway's core, right after the end-to-end run (the same clock speed)."""
    out = subprocess.run(  # noqa: S603
        pinned([sys.executable, "-c", SRP_PROBE, str(ROOT), str(count)], 0),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return float(out.stdout.strip().splitlines()[-1])


def run(duration: int, connections: int, baseline: bool = True) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with Environment(settings_text) as env:
        cookie = signed_in(env)
        token = access_token(env.gateway)
        browser = asyncio.run(mint_logins(env.settings_path, duration * 400, env.folder))
        if baseline:
            results[BASELINE] = wrk(env.baseline, duration, connections)
        (env.folder / "get_user.json").write_text(json.dumps({"AccessToken": token}))
        get_user = [
            str(ROOT / "bench" / "post.lua"),
            "/",
            str(env.folder / "get_user.json"),
            "Content-Type: application/x-amz-json-1.1",
            "X-Amz-Target: AWSCognitoIdentityProviderService.GetUser",
        ]
        rounds = []
        for i in range(GET_USER_ROUNDS):  # alternately: the machine's rate drifts
            print(f"running: forward-auth / GetUser (round {i + 1})", file=sys.stderr)
            hits = [f"Cookie: cognate_session={cookie}"]
            rounds.append(
                (
                    wrk(f"{env.gateway}/oauth2/auth", duration, connections, headers=hits),
                    wrk(env.gateway, duration, connections, get_user),
                )
            )
        forward_auth, got = median_round(rounds)
        results["forward-auth (session cache hits)"] = forward_auth
        results["GetUser (user-pool API)"] = got
        print("running: password sign-in", file=sys.stderr)
        login = [
            str(ROOT / "bench" / "login.lua"),
            str(env.folder / "logins.txt"),
            f"cognate_csrf={browser}",
        ]
        results["password sign-in (hosted page, argon2id)"] = wrk(
            env.gateway, duration, connections, login
        )
        print("running: USER_SRP_AUTH", file=sys.stderr)
        results["USER_SRP_AUTH (both round trips)"] = srp_sign_ins(
            env.gateway, duration, connections
        )
        rate = raw_srp_rate()
    results["raw SRP server arithmetic, one core (reference)"] = {
        "rps": rate,
        "requests": 0,
        "errors": 0,
        "p50_ms": 1000 / rate,
        "p99_ms": 1000 / rate,
    }
    bad = {name: r["errors"] for name, r in results.items() if r["errors"]}
    if bad:
        raise SystemExit(f"non-2xx answers: {bad}")
    srp_rps = results["USER_SRP_AUTH (both round trips)"]["rps"]
    ratios = {
        "USER_SRP_AUTH / hosted password sign-in (target 2.0)": srp_rps
        / results["password sign-in (hosted page, argon2id)"]["rps"],
        "USER_SRP_AUTH / raw SRP arithmetic (target 0.8)": srp_rps / rate,
        "GetUser / forward-auth cache hits (target 0.5)": results["GetUser (user-pool API)"]["rps"]
        / results["forward-auth (session cache hits)"]["rps"],
    }
    rounds_said = ", ".join(f"{r:.2f}" for r in results["GetUser (user-pool API)"]["ratios"])
    print(
        f"  GetUser / forward-auth in each round: {rounds_said} (the median counts)",
        file=sys.stderr,
    )
    for name, value in ratios.items():
        print(f"  {name}: {value:.2f}", file=sys.stderr)
    return results


if __name__ == "__main__":
    raise SystemExit(group_main(__doc__ or "", "user_pool", run))
