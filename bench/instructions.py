"""Instructions per request under callgrind: the upstream OIDC callback against the bare
Starlette app, both counted the same way. Unlike req/s, the count does not move with what else
the machine is doing (the same code gives the same count to within ~0.5%), so it tells whether
a change made the hot path cheaper even on a noisy machine.

Each server runs under `valgrind --tool=callgrind` (Debian's valgrind; about 50× slower), is
warmed up, has its counters zeroed (`callgrind_control -z`), serves `--requests` requests with 8
in flight, and has them dumped (`callgrind_control -d`). The IdP and Redis run natively.

    .venv/bin/python bench/instructions.py [--requests 300]
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


async def drive(base: str, paths: list[str], cookies: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=base, cookies=cookies, timeout=120) as http:
        slots = asyncio.Semaphore(8)

        async def one(path: str) -> None:
            async with slots:
                answer = await http.get(path)
                if answer.status_code >= 400:
                    raise RuntimeError(f"{path.split('?')[0]} answered {answer.status_code}")

        await asyncio.gather(*(one(p) for p in paths))


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="counted requests per server")
    args = parser.parse_args()
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    total = WARM_UP + args.requests
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
    print(f"\n{'scenario (instructions per request)':48} {'M instr':>8} {'× bare app':>11}")
    print(f"{'bare Starlette JSON (baseline)':48} {baseline / 1e6:8.3f} {1.0:11.1f}")
    print(f"{'upstream OIDC callback':48} {callback / 1e6:8.3f} {callback / baseline:11.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
