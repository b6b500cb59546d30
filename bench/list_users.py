"""ListUsers with a prefix filter over many users against GetUser, in the same run (issue 18's
target: p99 of one ListUsers page ≤ 5× p99 of a GetUser call).

The shared harness (bench/harness.py): a private redis-server, the gateway with one worker on
core 0, wrk on core 1. `--users` accounts are written beforehand straight through the directory
(no password, so no argon2: the search index entries are what matters), and the index is
rebuilt once from the records as an upgrade would. One more account signs in for GetUser's
access token. Then wrk runs each call for `--duration` seconds at `--connections`: GetUser with
the access token, and ListUsers (`email ^= "<prefix>"`, Limit 60: a page of 60 of the 100 users
the prefix matches), SigV4-signed once with the admin key (the signature stays valid for the
run). Any non-2xx answer fails the run.

    python bench/list_users.py [--users 100000] [--duration 5] [--connections 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

from bench.harness import Environment, need_wrk, report, wrk  # noqa: E402
from gateway.services import build_services  # noqa: E402
from gateway.settings_loader import load_settings  # noqa: E402

POOL = "eu-west-1_BenchPool1"
KEY = ("AKIDBENCHADMIN000001", "bench-admin-secret-0123456789abcdef")
TARGET = "AWSCognitoIdentityProviderService."
EMAIL, PASSWORD = "signed-in@example.com", "bench passphrase one"
JSON = "Content-Type: application/x-amz-json-1.1"


def settings_text(port: int, redis_url: str, sts_url: str) -> str:
    return f"""
issuer: http://127.0.0.1:{port}
region: eu-west-1
secret_key: bench-secret-key-{"x" * 32}
store: {{url: "{redis_url}", prefix: bench-list}}
log_level: warning
rate_limits: {{login_per_account: 1000000, login_per_ip: 1000000}}
user_pool: {{id: {POOL}}}
admin_keys:
  - {{access_key_id: {KEY[0]}, secret_access_key: {KEY[1]}}}
clients:
  - client_id: bench
    token_endpoint_auth_method: none
    grant_types: [refresh_token]
    explicit_auth_flows: [ALLOW_USER_PASSWORD_AUTH]
"""


async def populate(settings_path: Path, users: int) -> tuple[float, int, float]:
    """The accounts, then the index rebuilt from the records: (seconds, indexed, seconds)."""
    services = build_services(load_settings(settings_path))
    try:
        began = time.perf_counter()
        for start in range(0, users, 1000):
            await asyncio.gather(
                *(
                    services.users.create(f"bench{i:06d}@example.com", None, confirmed=True)
                    for i in range(start, min(users, start + 1000))
                )
            )
        made = time.perf_counter() - began
        began = time.perf_counter()
        indexed = await services.users.reindex()
        rebuilt = time.perf_counter() - began
        await services.users.create(EMAIL, PASSWORD, email_verified=True)
    finally:
        services.users.hasher.close()
        await services.store.close()
    return made, indexed, rebuilt


def signed(url: str, operation: str, body: dict[str, Any]) -> tuple[bytes, list[str]]:
    """The body and the header lines of a SigV4-signed call (for wrk's post.lua)."""
    raw = json.dumps(body).encode()
    request = AWSRequest(
        method="POST",
        url=url + "/",
        data=raw,
        headers={"X-Amz-Target": TARGET + operation, "Content-Type": "application/x-amz-json-1.1"},
    )
    SigV4Auth(Credentials(*KEY), "cognito-idp", "eu-west-1").add_auth(request)
    return raw, [f"{name}: {value}" for name, value in request.headers.items()]


def run(users: int, duration: int, connections: int) -> dict[str, dict[str, Any]]:
    with Environment(settings_text) as env:
        print(f"populating {users} users…", file=sys.stderr)
        made, indexed, rebuilt = asyncio.run(populate(env.settings_path, users))
        print(
            f"{users} users created in {made:.1f} s; the index rebuilt from the records "
            f"(what an upgrade does once) for {indexed} accounts in {rebuilt:.1f} s",
            file=sys.stderr,
        )
        answer = httpx.post(
            env.gateway + "/",
            content=json.dumps(
                {
                    "AuthFlow": "USER_PASSWORD_AUTH",
                    "ClientId": "bench",
                    "AuthParameters": {"USERNAME": EMAIL, "PASSWORD": PASSWORD},
                }
            ),
            headers={"X-Amz-Target": TARGET + "InitiateAuth", "Content-Type": JSON[14:]},
        )
        access = answer.json()["AuthenticationResult"]["AccessToken"]
        (env.folder / "get_user.json").write_text(json.dumps({"AccessToken": access}))
        prefix = f"bench{users // 2 // 100:04d}"  # 100 users, from the middle
        body, headers = signed(
            env.gateway,
            "ListUsers",
            {"UserPoolId": POOL, "Filter": f'email ^= "{prefix}"', "Limit": 60},
        )
        (env.folder / "list_users.json").write_bytes(body)
        first = httpx.post(
            env.gateway + "/", content=body, headers=dict(h.split(": ", 1) for h in headers)
        ).json()
        assert len(first["Users"]) == 60, first  # noqa: S101 - the page is full
        post = str(ROOT / "bench" / "post.lua")
        results = {}
        print("running: GetUser", file=sys.stderr)
        results["GetUser"] = wrk(
            env.gateway,
            duration,
            connections,
            [post, "/", str(env.folder / "get_user.json"), JSON, f"X-Amz-Target: {TARGET}GetUser"],
        )
        print("running: ListUsers", file=sys.stderr)
        results[f"ListUsers (prefix filter, page of 60, {users} users)"] = wrk(
            env.gateway,
            duration,
            connections,
            [post, "/", str(env.folder / "list_users.json"), *headers],
        )
    bad = {name: r["errors"] for name, r in results.items() if r["errors"]}
    if bad:
        raise SystemExit(f"non-2xx answers: {bad}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=5, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "list_users.json")
    args = parser.parse_args()
    need_wrk()
    results = run(args.users, args.duration, args.connections)
    report(results, args.json, {"connections": args.connections, "users": args.users})
    get_user, listing = results.values()
    ratio = listing["p99_ms"] / get_user["p99_ms"]
    print(f"p99 ListUsers / p99 GetUser = {ratio:.2f} (target <= 5)")
    return 0 if ratio <= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
