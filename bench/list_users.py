"""ListUsers with a prefix filter over many users against GetUser, in the same run (issue 18's
target: p99 of one ListUsers page ≤ 5× p99 of GetUser).

A private redis-server and the gateway (tests.helpers' GatewayServer: uvicorn in a thread of
this process) are started; `--users` accounts are written straight through the directory (no
password, so no argon2: the index entries are what matters), one more signs in for GetUser's
access token. Then the two calls alternate, `--calls` times each, over one keep-alive HTTP
connection: GetUser with the access token, and ListUsers (`email ^= "<prefix>"`, Limit 60, a
page of 60 of the 100 users the prefix matches) SigV4-signed once with the admin key (the
signature stays valid for the run). Latency is the client's wall time per call, so both carry
the same client and HTTP costs; the client shares this process's GIL with the server, which
inflates both alike.

    python bench/list_users.py [--users 100000] [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
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

from tests.helpers import GatewayServer, RedisServer, free_port, make_settings  # noqa: E402

POOL = "eu-west-1_BenchPool1"
KEY = ("AKIDBENCHADMIN000001", "bench-admin-secret-0123456789abcdef")
TARGET = "AWSCognitoIdentityProviderService."
PASSWORD = "bench passphrase one"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def populate(services: Any, users: int) -> None:
    async def one(i: int) -> None:
        await services.users.create(f"bench{i:06d}@example.com", None, confirmed=True)

    for start in range(0, users, 1000):
        await asyncio.gather(*(one(i) for i in range(start, min(users, start + 1000))))


def signed(url: str, operation: str, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    request = AWSRequest(
        method="POST",
        url=url + "/",
        data=raw,
        headers={"X-Amz-Target": TARGET + operation, "Content-Type": "application/x-amz-json-1.1"},
    )
    SigV4Auth(Credentials(*KEY), "cognito-idp", "eu-west-1").add_auth(request)
    return raw, dict(request.headers.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    redis = RedisServer()
    redis.start()
    port = free_port()
    settings = make_settings(
        port,
        redis.url,
        clients=[
            {
                "client_id": "bench",
                "token_endpoint_auth_method": "none",
                "grant_types": ["refresh_token"],
                "explicit_auth_flows": ["ALLOW_USER_PASSWORD_AUTH"],
            }
        ],
        user_pool={"id": POOL},
        region="eu-west-1",
        rate_limits={"login_per_ip": 100_000},
        admin_keys=[{"access_key_id": KEY[0], "secret_access_key": KEY[1]}],
    )
    server = GatewayServer(settings).start()
    try:
        began = time.perf_counter()
        asyncio.run(server.call(lambda s: populate(s, args.users)))
        made = time.perf_counter() - began
        began = time.perf_counter()
        indexed = asyncio.run(server.call(lambda s: s.users.reindex()))
        rebuilt = time.perf_counter() - began
        asyncio.run(server.add_user("signed-in@example.com", PASSWORD, email_verified=True))
        with httpx.Client(base_url=server.url, timeout=30) as http:
            answer = http.post(
                "/",
                content=json.dumps(
                    {
                        "AuthFlow": "USER_PASSWORD_AUTH",
                        "ClientId": "bench",
                        "AuthParameters": {
                            "USERNAME": "signed-in@example.com",
                            "PASSWORD": PASSWORD,
                        },
                    }
                ),
                headers={"X-Amz-Target": TARGET + "InitiateAuth"},
            )
            access = answer.json()["AuthenticationResult"]["AccessToken"]
            get_body = json.dumps({"AccessToken": access}).encode()
            get_headers = {"X-Amz-Target": TARGET + "GetUser"}
            prefix = f"bench{args.users // 2 // 100:04d}"  # 100 users, from the middle
            list_body, list_headers = signed(
                server.url,
                "ListUsers",
                {"UserPoolId": POOL, "Filter": f'email ^= "{prefix}"', "Limit": 60},
            )
            first = http.post("/", content=list_body, headers=list_headers).json()
            assert len(first["Users"]) == 60, first  # noqa: S101
            times: dict[str, list[float]] = {"GetUser": [], "ListUsers": []}
            for _ in range(args.calls):
                for name, body, headers in (
                    ("GetUser", get_body, get_headers),
                    ("ListUsers", list_body, list_headers),
                ):
                    start = time.perf_counter()
                    reply = http.post("/", content=body, headers=headers)
                    times[name].append(time.perf_counter() - start)
                    assert reply.status_code == 200, reply.text  # noqa: S101
    finally:
        server.stop()
        redis.stop()
    print(f"{args.users} users created in {made:.1f} s; the index rebuilt from the records")
    print(f"(what an upgrade does once) for {indexed} accounts in {rebuilt:.1f} s")
    for name, values in times.items():
        print(
            f"{name:10} p50 {statistics.median(values) * 1000:6.2f} ms   "
            f"p99 {percentile(values, 0.99) * 1000:6.2f} ms"
        )
    ratio = percentile(times["ListUsers"], 0.99) / percentile(times["GetUser"], 0.99)
    print(f"p99 ListUsers / p99 GetUser = {ratio:.2f} (target <= 5)")
    return 0 if ratio <= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
