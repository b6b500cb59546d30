"""Forward-auth and password sign-in throughput.

- forward-auth: `GET /oauth2/auth` with a real session cookie: 202 + identity headers + a
  signed assertion, with the in-process session cache (hits) and without it (every request a
  Redis GET and an AES-GCM open: the cost of a miss).
- password sign-in: `POST /login` with single-use flows minted beforehand, each an argon2id
  verification at OWASP parameters in the bounded pool; reported with the raw argon2id
  verification rate of one core measured in the same run (the ceiling sign-in cannot beat).

    python bench/edge.py [--duration 5] [--connections 8]
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import BASELINE, Environment, group_main, pending_flow, pinned, wrk  # noqa: E402
from gateway.services import build_services  # noqa: E402
from gateway.settings_loader import load_settings  # noqa: E402
from tests.helpers import Browser  # noqa: E402

EMAIL, PASSWORD = "bench@example.com", "bench password 123"


def settings_text(port: int, redis_url: str, sts_url: str, cache_ttl: float = 5) -> str:
    return f"""
issuer: http://127.0.0.1:{port}
sessions: {{cache_ttl: {cache_ttl}}}
secret_key: bench-secret-key-{"x" * 32}
store: {{url: "{redis_url}", prefix: bench-edge}}
log_level: warning
rate_limits: {{login_per_account: 1000000, login_per_ip: 1000000}}
clients:
  - client_id: web
    client_secret: web-secret-0123456789
    redirect_uris: [https://app.example.com/cb]
  - client_id: service
    client_secret: service-secret-0123456789
    grant_types: [client_credentials]
    scope: reports.read
"""


def signed_in(env: Environment) -> str:
    """The bench user, created with the real CLI, signed in: its session cookie value."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "users",
            "create",
            EMAIL,  # noqa: S603
            "--password-stdin",
            "--verified",
            "-c",
            str(env.settings_path),
        ],
        input=PASSWORD + "\n",
        text=True,
        capture_output=True,
        check=True,
        cwd=ROOT,
    )
    return asyncio.run(session_cookie(env.gateway))


async def session_cookie(url: str) -> str:
    browser = Browser(url)
    await browser.login_for_code(EMAIL, password=PASSWORD)
    cookie = browser.http.cookies["cognate_session"]
    await browser.aclose()
    return str(cookie)


async def mint_logins(settings_path: Path, count: int, folder: Path) -> str:
    """Single-use sign-in forms (flow + CSRF token for one browser); returns that browser's
    CSRF cookie value."""
    services = build_services(load_settings(settings_path))
    browser = secrets.token_urlsafe(24)
    binding = services.flows.browser_binding(browser)
    sem = asyncio.Semaphore(64)

    async def one() -> str:
        async with sem:
            flow = await pending_flow(services, binding)
            return urlencode(
                {
                    "flow": flow.flow_id,
                    "_csrf": services.csrf.token(browser, f"login:{flow.flow_id}"),
                    "connector": "local",
                    "email": EMAIL,
                    "password": PASSWORD,
                }
            )

    bodies = await asyncio.gather(*(one() for _ in range(count)))
    (folder / "logins.txt").write_text("\n".join(bodies) + "\n")
    services.users.hasher.close()
    await services.store.close()
    return browser


ARGON2_PROBE = """
import sys, time
from gateway.users.passwords import PasswordHasher
hasher = PasswordHasher(workers=1)
stored = hasher._argon2.hash(sys.argv[1])
start = time.perf_counter()
for _ in range(int(sys.argv[2])):
    hasher._argon2.verify(stored, sys.argv[1])
print(int(sys.argv[2]) / (time.perf_counter() - start))
"""


def argon2_rate(samples: int = 60) -> float:
    """Raw argon2id verifications per second, same parameters as the gateway, on the core the
    gateway runs on (core 0): the ceiling sign-in cannot beat, measured right after it so that
    both see the same clock speed."""
    out = subprocess.run(  # noqa: S603
        pinned([sys.executable, "-c", ARGON2_PROBE, PASSWORD, str(samples)], 0),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return float(out.stdout.strip())


SERVICE_AUTH = "Basic " + base64.b64encode(b"service:service-secret-0123456789").decode()


@contextlib.contextmanager
def sign_in_burst(env: Environment, login: list[str], duration: int) -> Iterator[None]:
    """64 connections of password sign-ins (argon2id) hammering the gateway meanwhile."""
    burst = subprocess.Popen(  # noqa: S603
        pinned(
            ["wrk", "-t1", "-c64", f"-d{duration + 2}s", "--timeout", "30s", "-s", login[0]]
            + [env.gateway, "--"]
            + login[1:],
            1,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        time.sleep(1)  # the burst is under way
        yield
    finally:
        out, _ = burst.communicate(timeout=duration + 30)
        said = [
            line.strip() for line in out.splitlines() if "Requests/sec" in line or "Non-2" in line
        ]
        print(f"  (the burst: {'; '.join(said)})", file=sys.stderr)


def run(duration: int, connections: int, baseline: bool = True) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with Environment(settings_text) as env:
        cookie = signed_in(env)
        browser = asyncio.run(mint_logins(env.settings_path, duration * 400, env.folder))
        if baseline:
            results[BASELINE] = wrk(env.baseline, duration, connections)
        print("running: forward-auth", file=sys.stderr)
        results["forward-auth (session cache hits)"] = wrk(
            f"{env.gateway}/oauth2/auth",
            duration,
            connections,
            headers=[f"Cookie: cognate_session={cookie}"],
        )
        print("running: password sign-in", file=sys.stderr)
        login = [
            str(ROOT / "bench" / "login.lua"),
            str(env.folder / "logins.txt"),
            f"cognate_csrf={browser}",
        ]
        results["password sign-in (argon2id)"] = wrk(env.gateway, duration, connections, login)
        rate = argon2_rate()
        (env.folder / "cc.txt").write_text("grant_type=client_credentials\n")
        token = [str(ROOT / "bench" / "bodies.lua"), str(env.folder / "cc.txt"), SERVICE_AUTH]
        results["token (client_credentials)"] = wrk(env.gateway, duration, connections, token)
    # SECURITY-TESTS G54: a sign-in burst (64 connections of argon2id work) must not starve the
    # hot paths: forward-auth and the token endpoint, each measured while a burst runs, each in
    # a fresh gateway (no queue or cache left over from another scenario).
    for label in ("forward-auth", "token (client_credentials)"):
        with Environment(settings_text) as env:
            cookie = signed_in(env)
            browser = asyncio.run(mint_logins(env.settings_path, duration * 400, env.folder))
            forms = [str(ROOT / "bench" / "login.lua"), str(env.folder / "logins.txt")]
            (env.folder / "cc.txt").write_text("grant_type=client_credentials\n")
            token = [str(ROOT / "bench" / "bodies.lua"), str(env.folder / "cc.txt"), SERVICE_AUTH]
            print(f"running: {label} during a sign-in burst", file=sys.stderr)
            with sign_in_burst(env, [*forms, f"cognate_csrf={browser}"], duration):
                if label == "forward-auth":
                    answer = wrk(
                        f"{env.gateway}/oauth2/auth",
                        duration,
                        connections,
                        headers=[f"Cookie: cognate_session={cookie}"],
                    )
                else:
                    answer = wrk(env.gateway, duration, connections, token)
            results[f"{label} during a sign-in burst"] = answer
    # The same with the in-process session cache off: every request reads Redis (cache misses).
    with Environment(lambda p, r, s: settings_text(p, r, s, cache_ttl=0)) as env:
        cookie = signed_in(env)
        print("running: forward-auth, cache off", file=sys.stderr)
        results["forward-auth (cache off: Redis read)"] = wrk(
            f"{env.gateway}/oauth2/auth",
            duration,
            connections,
            headers=[f"Cookie: cognate_session={cookie}"],
        )
    results["raw argon2id verify, one core (reference)"] = {
        "rps": rate,
        "requests": 0,
        "errors": 0,
        "p50_ms": 1000 / rate,
        "p99_ms": 1000 / rate,
    }
    return results


if __name__ == "__main__":
    raise SystemExit(group_main(__doc__ or "", "edge", run))
