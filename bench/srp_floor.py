"""The floor under issue 17's "USER_SRP_AUTH ≥ 0.8× the raw SRP arithmetic": the least any
USER_SRP_AUTH server on this stack must do, served and measured as the gateway is.

`python bench/srp_floor.py` runs five servers on the gateway's core, one after the other, each
driven by `bench/srp_client.py` (real proofs, both round trips per sign-in) on the other core:

- **arithmetic over HTTP, no tokens**: the floor below with placeholder tokens — what the
  exponentiations alone come to when they are served, not looped (no real server can stop
  here; it isolates what serving costs).
- **floor**: a bare ASGI app on uvicorn + uvloop + httptools (the gateway's server options)
  that answers InitiateAuth and RespondToAuthChallenge with the gateway's own SRP code
  (`gateway.users.srp`: GMP exponentiations, the HKDF, the claim check), orjson, an in-process
  dict for the challenge, and the gateway's tokens, signed with joserfc: the RS256 ID token
  Cognito's clients expect (2048-bit RSA, the gateway's key), an ES256 access token (the
  gateway's default `keys.access_token_alg`) and a random refresh token.
  No store, no rate limit, no audit, no routing, no middleware, no checks beyond the proof:
  nothing a real server could leave out is missing, and nothing else is in.
- **floor + Redis**: the same, with the challenge kept in Redis as a real deployment must
  (several replicas; a restart must not strand sign-ins): one SET when it is made, one GETDEL
  when it is answered — the two round trips no stateless server avoids.
- **floor + Redis, ES256 ID token**: the same with the ID token in ES256 (a client's
  `id_token_signed_response_alg` allows it, though code written for Cognito often pins RS256):
  the cheapest server that answers with real tokens and keeps its challenge.
- the **gateway** itself (`bench/user_pool.py`'s settings and user), for scale.

Each is measured twice: the sign-in rate the driver sees, and the server's CPU per sign-in
(`/proc`, user + system), which holds even when the driver is what limits the rate (one core
of httpx and a 512-bit exponent per proof: about 100 sign-ins/s on the 2-core machine the
README's numbers come from, so the lightest servers' rates are the driver's). The raw
arithmetic (`bench/srp.py`'s gmpy2 engine, thread CPU time) runs right after on the same core,
and again beside a busy neighbour core (the driver keeps that core busy during the runs, and a
busy neighbour slows GMP here). The CPU ratio is arithmetic time / server CPU per sign-in: the
most a server of that shape can reach against the raw rate on this machine.

    python bench/srp_floor.py [--duration 5] [--connections 8]
"""

from __future__ import annotations

import argparse
import base64
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.edge import EMAIL, PASSWORD, signed_in  # noqa: E402
from bench.harness import (  # noqa: E402
    Environment,
    cpu_seconds,
    free_port,
    pin,
    pinned,
    wait_ready,
)
from bench.user_pool import POOL_ID, raw_srp_rate, settings_text, srp_sign_ins  # noqa: E402
from tests.helpers import RedisServer  # noqa: E402

USER = "floor-user"
TARGET = b"AWSCognitoIdentityProviderService."


def app(redis_url: str | None, id_alg: str = "RS256") -> Any:
    """The floor's ASGI app (built in the server process), its ID token signed with `id_alg`;
    "none": placeholder tokens (no server may do that: it shows what the arithmetic over HTTP
    alone costs)."""
    import orjson
    import redis.asyncio as aioredis
    from joserfc import jwt
    from joserfc.jwk import ECKey, RSAKey

    from gateway.users import srp

    pool = srp.pool_name_of(POOL_ID)
    salt, verifier = srp.new_verifier(pool, USER, PASSWORD)
    rsa = RSAKey.generate_key(2048, {"kid": "floor-rs", "alg": "RS256"}, private=True)
    ec = ECKey.generate_key("P-256", {"kid": "floor-es", "alg": "ES256"}, private=True)
    id_key = rsa if id_alg == "RS256" else ec
    id_header = {"alg": id_alg, "kid": id_key.kid}
    issuer = f"https://cognito-idp.eu-west-1.amazonaws.com/{POOL_ID}"
    challenges: dict[str, bytes] = {}
    store = aioredis.from_url(redis_url) if redis_url else None

    async def keep(session: str, value: bytes) -> None:
        if store is None:
            challenges[session] = value
        else:
            await store.set(f"floor:{session}", value, px=180_000)

    async def take(session: str) -> bytes | None:
        if store is None:
            return challenges.pop(session, None)
        value: bytes | None = await store.getdel(f"floor:{session}")
        return value

    def tokens() -> dict[str, Any]:
        if id_alg == "none":
            return {"AuthenticationResult": {"AccessToken": "-", "IdToken": "-"}}
        now = int(time.time())
        common = {"sub": USER, "iss": issuer, "iat": now, "exp": now + 3600, "auth_time": now}
        id_claims = {**common, "aud": "app", "token_use": "id", "email": EMAIL}
        access_claims = {**common, "client_id": "app", "token_use": "access", "scope": "openid"}
        return {
            "AuthenticationResult": {
                "AccessToken": jwt.encode({"alg": "ES256", "kid": "floor-es"}, access_claims, ec),
                "IdToken": jwt.encode(id_header, id_claims, id_key),
                "RefreshToken": secrets.token_urlsafe(48),
                "ExpiresIn": 3600,
                "TokenType": "Bearer",
            },
            "ChallengeParameters": {},
        }

    async def initiate(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        big_a = srp.parse_hex(body["AuthParameters"]["SRP_A"])
        if big_a % srp.N == 0:
            return 400, {"__type": "InvalidParameterException"}
        b, big_b = srp.challenge(verifier)
        block = secrets.token_bytes(64)
        session = secrets.token_urlsafe(32)
        kept = [format(b, "x"), format(big_b, "x"), format(big_a, "x")]
        await keep(session, orjson.dumps([*kept, base64.b64encode(block).decode()]))
        return 200, {
            "ChallengeName": "PASSWORD_VERIFIER",
            "Session": session,
            "ChallengeParameters": {
                "USER_ID_FOR_SRP": USER,
                "SALT": srp.pad_hex(salt),
                "SRP_B": format(big_b, "x"),
                "SECRET_BLOCK": base64.b64encode(block).decode(),
            },
        }

    async def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        kept = await take(body["Session"])
        if kept is None:
            return 400, {"__type": "NotAuthorizedException"}
        b, big_b, big_a, block = orjson.loads(kept)
        answer = body["ChallengeResponses"]
        if answer["PASSWORD_CLAIM_SECRET_BLOCK"] != block:
            return 400, {"__type": "NotAuthorizedException"}
        ok = srp.verify(
            pool,
            USER,
            verifier,
            int(b, 16),
            int(big_b, 16),
            int(big_a, 16),
            base64.b64decode(block),
            answer["TIMESTAMP"],
            answer["PASSWORD_CLAIM_SIGNATURE"],
            time.time(),
        )
        return (200, tokens()) if ok else (400, {"__type": "NotAuthorizedException"})

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        target = next((v for k, v in scope["headers"] if k == b"x-amz-target"), b"")
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        operation = target.removeprefix(TARGET)
        body = orjson.loads(b"".join(chunks) or b"{}")
        if operation == b"InitiateAuth":
            status, answer = await initiate(body)
        elif operation == b"RespondToAuthChallenge":
            status, answer = await respond(body)
        else:
            status, answer = 200, {}  # the readiness probe
        payload = orjson.dumps(answer)
        headers = [(b"content-type", b"application/x-amz-json-1.1")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return asgi


def measured(url: str, pid: int, duration: int, connections: int) -> dict[str, Any]:
    """The driver's rate for one server, and the server's CPU per sign-in meanwhile."""
    before = cpu_seconds(pid)
    result = srp_sign_ins(url, duration, connections)
    used = cpu_seconds(pid) - before
    result["cpu_ms_per_sign_in"] = 1000 * used / max(1, result["requests"] / 2)
    return result


def floor_server(port: int, redis_url: str | None, id_alg: str) -> subprocess.Popen[bytes]:
    code = (
        "import sys, uvicorn; sys.path.insert(0, sys.argv[1]); "
        "from bench.srp_floor import app; "
        "uvicorn.run(app(sys.argv[3] or None, sys.argv[4]), host='127.0.0.1', "
        "port=int(sys.argv[2]), "
        "loop='uvloop', http='httptools', log_config=None, access_log=False)"
    )
    cmd = [sys.executable, "-c", code, str(ROOT), str(port), redis_url or "", id_alg]
    return subprocess.Popen(pinned(cmd, 0), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def busy_neighbour() -> subprocess.Popen[bytes]:
    """GMP exponentiations on the driver's core, as the driver's own proofs keep it busy
    during a run: the raw arithmetic measured beside it shows what a busy neighbour costs."""
    code = (
        "import gmpy2; from gateway.users import srp\nwhile True: gmpy2.powmod(3, srp.N - 2, srp.N)"
    )
    return subprocess.Popen(pinned([sys.executable, "-c", code], 1), cwd=ROOT)  # noqa: S603


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per server")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    rows: dict[str, dict[str, Any]] = {}
    redis = RedisServer()
    redis.start()
    try:
        assert redis.proc is not None
        pin(redis.proc.pid, 1)  # as Environment does: Redis is not on the server's core
        floors = (
            ("arithmetic over HTTP, no tokens", None, "none"),
            ("floor", None, "RS256"),
            ("floor + Redis (SET, GETDEL)", redis.url, "RS256"),
            ("floor + Redis, ES256 ID token", redis.url, "ES256"),
        )
        for name, redis_url, id_alg in floors:
            port = free_port()
            server = floor_server(port, redis_url, id_alg)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_ready(url)
                print(f"running: {name}", file=sys.stderr)
                rows[name] = measured(url, server.pid, args.duration, args.connections)
            finally:
                server.terminate()
                server.wait(timeout=10)
    finally:
        redis.stop()
    with Environment(settings_text) as env:
        signed_in(env)  # the bench user, made as bench/user_pool.py makes it
        print("running: the gateway", file=sys.stderr)
        rows["the gateway (bench/user_pool.py)"] = measured(
            env.gateway, env.gateway_pid, args.duration, args.connections
        )
    rate = raw_srp_rate()
    busy = busy_neighbour()
    try:
        crowded = raw_srp_rate()
    finally:
        busy.terminate()
        busy.wait(timeout=10)
    arithmetic_ms = 1000 / rate
    print(f"raw SRP arithmetic, one core: {rate:.0f} sign-ins/s ({arithmetic_ms:.2f} ms each)")
    print(
        f"  the same with the other core busy (as the driver keeps it): {crowded:.0f}/s,"
        f" {crowded / rate:.2f}x"
    )
    columns = ("sign-ins/s", "CPU ms/sign-in", "rate ratio", "CPU ratio")
    print(f"{'server':<34} {columns[0]:>10} {columns[1]:>15} {columns[2]:>11} {columns[3]:>10}")
    for name, row in rows.items():
        print(
            f"{name:<34} {row['rps']:>10.0f} {row['cpu_ms_per_sign_in']:>15.2f}"
            f" {row['rps'] / rate:>10.2f}x {arithmetic_ms / row['cpu_ms_per_sign_in']:>9.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
