"""A load driver for the user-pool API's USER_SRP_AUTH, both round trips per sign-in
(InitiateAuth → PASSWORD_VERIFIER → RespondToAuthChallenge → tokens), run by bench/user_pool.py
on the core wrk uses. wrk cannot compute an SRP proof, so this does, with gmpy2: the client's
S needs one exponentiation per sign-in (its A values are made beforehand), cheap enough that
one core keeps the gateway's busy. Each proof is the real thing: a wrong one is an error,
and any non-2xx answer makes the run fail.

    python bench/srp_client.py URL USERNAME PASSWORD POOL_ID CLIENT_ID [--duration 5]

Prints one JSON object: rps (sign-ins per second), p50_ms, p99_ms (of whole sign-ins), errors.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import hashlib
import hmac
import json
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gmpy2  # noqa: E402
import httpx  # noqa: E402

from gateway.users import srp  # noqa: E402

TARGET = "AWSCognitoIdentityProviderService."
HEADERS = {"Content-Type": "application/x-amz-json-1.1"}


@functools.lru_cache(maxsize=16)
def password_exponent(password: str, pool: str, user_id: str, salt: int) -> tuple[int, int]:
    """x and g^x: the same for every sign-in of one user (the SDKs compute them each time;
    a load driver need not, or its own core, not the server's, sets the rate)."""
    inner = hashlib.sha256(f"{pool}{user_id}:{password}".encode()).digest()
    x = int.from_bytes(hashlib.sha256(bytes.fromhex(srp.pad_hex(salt)) + inner).digest(), "big")
    return x, int(gmpy2.powmod(srp.G, x, srp.N))


def client_key(
    password: str, pool: str, user_id: str, salt: int, a: int, big_a: int, big_b: int
) -> bytes:
    """The client's half of SRP-6a as Cognito's SDKs compute it (the same 16-byte key)."""
    x, g_x = password_exponent(password, pool, user_id, salt)
    u = int.from_bytes(
        hashlib.sha256(bytes.fromhex(srp.pad_hex(big_a) + srp.pad_hex(big_b))).digest(), "big"
    )
    s = int(gmpy2.powmod((big_b - srp.K * g_x) % srp.N, a + u * x, srp.N))
    prk = hmac.new(bytes.fromhex(srp.pad_hex(u)), bytes.fromhex(srp.pad_hex(s)), hashlib.sha256)
    return hmac.new(prk.digest(), srp.INFO + b"\x01", hashlib.sha256).digest()[:16]


async def sign_in(
    http: httpx.AsyncClient, args: argparse.Namespace, a: int, big_a: int, pool: str
) -> bool:
    started = await http.post(
        "/",
        headers={**HEADERS, "X-Amz-Target": TARGET + "InitiateAuth"},
        content=json.dumps(
            {
                "AuthFlow": "USER_SRP_AUTH",
                "ClientId": args.client_id,
                "AuthParameters": {"USERNAME": args.username, "SRP_A": format(big_a, "x")},
            }
        ),
    )
    if started.status_code != 200:
        return False
    asked = started.json()
    params = asked["ChallengeParameters"]
    user_id = params["USER_ID_FOR_SRP"]
    key = client_key(
        args.password, pool, user_id, int(params["SALT"], 16), a, big_a, int(params["SRP_B"], 16)
    )
    timestamp = srp.format_timestamp(datetime.now(UTC))
    block = params["SECRET_BLOCK"]
    message = pool.encode() + user_id.encode() + base64.b64decode(block) + timestamp.encode()
    signature = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
    done = await http.post(
        "/",
        headers={**HEADERS, "X-Amz-Target": TARGET + "RespondToAuthChallenge"},
        content=json.dumps(
            {
                "ChallengeName": "PASSWORD_VERIFIER",
                "ClientId": args.client_id,
                "Session": asked["Session"],
                "ChallengeResponses": {
                    "USERNAME": user_id,
                    "PASSWORD_CLAIM_SECRET_BLOCK": block,
                    "PASSWORD_CLAIM_SIGNATURE": signature,
                    "TIMESTAMP": timestamp,
                },
            }
        ),
    )
    return done.status_code == 200 and "AuthenticationResult" in done.json()


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    pool = srp.pool_name_of(args.pool_id)
    secrets_a = [secrets.randbits(256) | 1 for _ in range(64)]
    pairs = [(a, int(gmpy2.powmod(srp.G, a, srp.N))) for a in secrets_a]
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=args.connections)
    async with httpx.AsyncClient(base_url=args.url, limits=limits, timeout=30) as http:
        # Warm up: connections open, the gateway's caches filled.
        for a, big_a in pairs[:4]:
            if not await sign_in(http, args, a, big_a, pool):
                raise SystemExit("the warm-up sign-in was refused: check the user and client")
        deadline = time.perf_counter() + args.duration
        started = time.perf_counter()

        async def worker(n: int) -> None:
            nonlocal errors
            i = n
            while time.perf_counter() < deadline:
                a, big_a = pairs[i % len(pairs)]
                i += args.connections
                t0 = time.perf_counter()
                if await sign_in(http, args, a, big_a, pool):
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        await asyncio.gather(*(worker(n) for n in range(args.connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return (
            1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0
        )

    return {
        "rps": len(latencies) / elapsed,
        "requests": len(latencies) * 2,
        "errors": errors,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("url", "username", "password", "pool_id", "client_id"):
        parser.add_argument(name)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency of the gateway
        pass
    print(json.dumps(asyncio.run(drive(args))))


if __name__ == "__main__":
    main()
