"""Instructions per request under callgrind, against the bare Starlette app counted the same
way. Unlike req/s, the count does not move with what else the machine is doing (the same code
gives the same count to within a few per cent), so it tells whether a change made a hot path
cheaper even on a noisy machine. Three groups (`--group`):

- `callback` (default): the upstream OIDC callback;
- `workloads`: issue 20's pair — client_credentials, a token exchange (bench/workloads.py's
  settings: an ES256 ID token for the `ci` client), GetCredentialsForIdentity with cached
  credentials and one ID token, and with the fresh ID token of each exchange (a pair's second
  half); the pair's instruction ratio is cached / (exchange + fresh);
- `user-pool`: GetUser with one access token, and forward-auth session-cache hits — whose count
  is inflated under callgrind: their answers are kept for a second of wall time, which covers
  ~50× fewer requests here, so only GetUser against the bare app carries over to req/s.

A ratio of rates is the inverse ratio of instructions (same machine, same server stack).

Each server runs under `valgrind --tool=callgrind` (Debian's valgrind; about 50× slower), is
warmed up, has its counters zeroed (`callgrind_control -z`), serves `--requests` requests with 8
in flight, and has them dumped (`callgrind_control -d`). The IdP and Redis run natively.

    .venv/bin/python bench/instructions.py [--requests 300] [--group workloads]
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import federation  # noqa: E402
from bench.harness import pinned, wait_ready  # noqa: E402
from tests.helpers import RedisServer, free_port  # noqa: E402

WARM_UP = 100


@contextmanager
def under_callgrind(command: list[str], folder: Path, port: int) -> Iterator[tuple[int, Path]]:
    """`command` serving on `port` under callgrind; yields its pid and where its dumps go."""
    out = folder / f"callgrind.{port}"
    process = subprocess.Popen(  # noqa: S603
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],  # noqa: S607
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[:4]} did not start under valgrind") from None
                time.sleep(1)
        yield process.pid, out
    finally:
        process.terminate()
        process.wait(timeout=60)


def control(action: str, pid: int) -> None:
    """Zero (-z) or dump (-d) the counters of process `pid`."""
    command = ["callgrind_control", action, str(pid)]
    subprocess.run(command, check=True, capture_output=True)  # noqa: S603


def counted(dumps: Path) -> int:
    """Instructions in the dump `callgrind_control -d` asked for (written asynchronously)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for name in glob.glob(f"{dumps}.*"):
            for line in Path(name).read_text().splitlines():
                if line.startswith("totals:"):  # the dump's last line: it is complete
                    return int(line.split()[1])
        time.sleep(0.5)
    raise RuntimeError(f"no complete dump at {dumps}.*")


Call = tuple[str, str, dict[str, str]]  # a POST: path, body, headers


async def drive(
    base: str, paths: list[str] | list[Call], cookies: dict[str, str]
) -> list[httpx.Response]:
    """GET each path (or POST each call), 8 in flight; any 4xx/5xx is an error."""
    async with httpx.AsyncClient(base_url=base, cookies=cookies, timeout=120) as http:
        slots = asyncio.Semaphore(8)

        async def one(request: str | Call) -> httpx.Response:
            async with slots:
                if isinstance(request, str):
                    path, answer = request, await http.get(request)
                else:
                    path = request[0]
                    answer = await http.post(path, content=request[1], headers=request[2])
                if answer.status_code >= 400:
                    raise RuntimeError(f"{path.split('?')[0]} answered {answer.status_code}")
                return answer

        return await asyncio.gather(*(one(p) for p in paths))


def counted_phases(
    pid: int, dumps: Path, base: str, phases: dict[str, tuple[list[Any], list[Any]]]
) -> dict[str, float]:
    """Instructions per request of each phase (warm-up requests, counted requests) of one
    server: zeroed before, dumped after each, the dumps moved aside between phases."""
    results = {}
    for i, (name, (warm, requests)) in enumerate(phases.items()):
        asyncio.run(drive(base, warm, {}))
        control("-z", pid)
        asyncio.run(drive(base, requests, {}))
        control("-d", pid)
        results[name] = counted(dumps) / len(requests)
        for dump in dumps.parent.glob(dumps.name + ".*"):
            dump.rename(dumps.parent / f"phase{i}-{dump.name}")
    return results


def per_request(
    command: list[str], port: int, folder: Path, paths: list[str], cookies: dict[str, str]
) -> float:
    base = f"http://127.0.0.1:{port}"
    with under_callgrind(command, folder, port) as (pid, dumps):
        asyncio.run(drive(base, paths[:WARM_UP], cookies))
        control("-z", pid)
        asyncio.run(drive(base, paths[WARM_UP:], cookies))
        control("-d", pid)
        return counted(dumps) / (len(paths) - WARM_UP)


def bare(folder: Path, total: int) -> float:
    port = free_port()
    command = [sys.executable, str(ROOT / "bench" / "baseline_app.py"), "--port", str(port)]
    return per_request(command, port, folder, ["/"] * total, {})


def serving(settings: Path, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--config",
        str(settings),
        "--port",
        str(port),
    ]


def workloads(folder: Path, count: int) -> dict[str, float]:
    """Issue 20's pair, phase by phase, in one gateway under callgrind."""
    import json

    from bench import workloads as wl

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    amz = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": wl.TARGET.split(": ")[1]}
    issuer, redis, port, sts_port = (
        wl.WorkloadIssuer().start(),
        RedisServer(),
        free_port(),
        free_port(),
    )
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    sts = subprocess.Popen(  # noqa: S603
        [moto, "-H", "127.0.0.1", "-p", str(sts_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        redis.start()
        wait_ready(f"http://127.0.0.1:{sts_port}/")
        text = wl.settings_for(issuer, "ES256")(port, redis.url, f"http://127.0.0.1:{sts_port}/")
        settings = folder / "workloads.yaml"
        # Under valgrind everything is ~50x slower: a store timeout of 2 s would fire.
        settings.write_text(
            text.replace("prefix: bench-wl}", "prefix: bench-wl, socket_timeout: 30}")
        )
        base = f"http://127.0.0.1:{port}"
        with under_callgrind(serving(settings, port), folder, port) as (pid, dumps):
            identity, provider = wl.prepare_credentials(base, base, issuer, folder)
            creds = (folder / "creds.json").read_text()

            def exchanges(n: int) -> list[Call]:
                return [
                    ("/oauth2/token", wl.exchange_body(issuer.github(base)), form) for _ in range(n)
                ]

            fresh = [
                (
                    "/",
                    json.dumps(
                        {"IdentityId": identity, "Logins": {provider: a.json()["access_token"]}}
                    ),
                    amz,
                )
                for a in asyncio.run(drive(base, exchanges(WARM_UP + count), {}))
            ]
            cc: Call = (
                "/oauth2/token",
                "grant_type=client_credentials",
                {**form, "Authorization": wl.SERVICE_AUTH},
            )
            return counted_phases(
                pid,
                dumps,
                base,
                {
                    "client_credentials": ([cc] * WARM_UP, [cc] * count),
                    "token exchange": (exchanges(WARM_UP), exchanges(count)),
                    "GetCredentialsForIdentity, cached": (
                        [("/", creds, amz)] * WARM_UP,
                        [("/", creds, amz)] * count,
                    ),
                    "GetCredentialsForIdentity, fresh ID token": (fresh[:WARM_UP], fresh[WARM_UP:]),
                },
            )
    finally:
        sts.terminate()
        issuer.stop()
        redis.stop()


def user_pool(folder: Path, count: int) -> dict[str, float]:
    """Issue 17's GetUser against forward-auth session-cache hits, in one gateway."""
    import json
    from types import SimpleNamespace

    from bench import user_pool as up
    from bench.edge import signed_in

    redis, port = RedisServer(), free_port()
    try:
        redis.start()
        settings = folder / "user_pool.yaml"
        text = up.settings_text(port, redis.url, "http://127.0.0.1:9/")
        settings.write_text(
            text.replace("prefix: bench-pool}", "prefix: bench-pool, socket_timeout: 30}")
        )
        base = f"http://127.0.0.1:{port}"
        with under_callgrind(serving(settings, port), folder, port) as (pid, dumps):
            cookie = signed_in(SimpleNamespace(settings_path=settings, gateway=base))  # type: ignore[arg-type]
            token = up.access_token(base)
            amz = {
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "AWSCognitoIdentityProviderService.GetUser",
            }
            get_user: Call = ("/", json.dumps({"AccessToken": token}), amz)
            hits = ["/oauth2/auth"] * (WARM_UP + count)
            asyncio.run(drive(base, hits[:WARM_UP], {"cognate_session": cookie}))
            control("-z", pid)
            asyncio.run(drive(base, hits[WARM_UP:], {"cognate_session": cookie}))
            control("-d", pid)
            forward_auth = counted(dumps) / count
            for dump in dumps.parent.glob(dumps.name + ".*"):
                dump.rename(dumps.parent / f"fa-{dump.name}")
            counts = counted_phases(
                pid, dumps, base, {"GetUser": ([get_user] * WARM_UP, [get_user] * count)}
            )
            return {"forward-auth, session cache hit": forward_auth, **counts}
    finally:
        redis.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="counted requests per server")
    parser.add_argument(
        "--group", choices=["callback", "workloads", "user-pool"], default="callback"
    )
    args = parser.parse_args()
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    total = WARM_UP + args.requests
    if args.group in ("workloads", "user-pool"):
        folder = Path(tempfile.mkdtemp(prefix="cognate-callgrind-"))
        try:
            baseline = bare(folder, total)
            group = workloads if args.group == "workloads" else user_pool
            counts = group(folder, args.requests)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        table(baseline, counts)
        if args.group == "workloads":
            pair = counts["token exchange"] + counts["GetCredentialsForIdentity, fresh ID token"]
            cached = counts["GetCredentialsForIdentity, cached"]
            ratio = cached / pair
            print(f"\npair (exchange + fresh) vs cached GetCredentialsForIdentity: {ratio:.2f}x")
        else:
            # Not the req/s ratio: forward-auth keeps each answer for a second of wall time,
            # which under callgrind (~50x slower) covers ~50x fewer requests.
            print("\nforward-auth's count is inflated here (its one-second answer cache): compare")
            print("GetUser with the bare app, and forward-auth's req/s with bench/user_pool.py")
        return 0
    folder = Path(tempfile.mkdtemp(prefix="cognate-callgrind-"))
    redis = RedisServer()
    idp = subprocess.Popen(  # noqa: S603
        pinned([sys.executable, str(ROOT / "bench" / "idp_app.py")], 1)
        + ["--port", str(federation.IDP_PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        redis.start()
        wait_ready(f"{federation.IDP}/jwks")
        base_port, port = free_port(), free_port()
        baseline = per_request(
            [sys.executable, str(ROOT / "bench" / "baseline_app.py"), "--port", str(base_port)],
            base_port,
            folder,
            ["/"] * total,
            {},
        )
        settings = folder / "gateway.yaml"
        # Under valgrind everything is ~50x slower: a store timeout of 2 s would fire.
        settings.write_text(
            federation.settings_text(port, redis.url, "http://127.0.0.1:9/", store_timeout=30)
        )
        browser = asyncio.run(federation.mint_callbacks(settings, total, folder))
        callbacks = (folder / "callbacks.txt").read_text().split()
        serve = [sys.executable, "-m", "gateway", "serve", "--config", str(settings)]
        callback = per_request(
            [*serve, "--port", str(port)], port, folder, callbacks, {"cognate_csrf": browser}
        )
    finally:
        idp.terminate()
        idp.wait(timeout=20)
        redis.stop()
        shutil.rmtree(folder, ignore_errors=True)
    table(baseline, {"upstream OIDC callback": callback})
    return 0


def table(baseline: float, counts: dict[str, float]) -> None:
    print(f"\n{'scenario (instructions per request)':48} {'M instr':>8} {'× bare app':>11}")
    print(f"{'bare Starlette JSON (baseline)':48} {baseline / 1e6:8.3f} {1.0:11.1f}")
    for name, count in counts.items():
        print(f"{name:48} {count / 1e6:8.3f} {count / baseline:11.1f}")


if __name__ == "__main__":
    raise SystemExit(main())
