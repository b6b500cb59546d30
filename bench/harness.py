"""What every benchmark shares: a private redis-server, the gateway with one worker (as
`cognate serve` runs it), the bare Starlette baseline, optionally moto_server as STS; the
servers under test on core 0, wrk and Redis on core 1; and the results table.

    with Environment(settings_text) as env:      # settings_text(port, redis_url, sts_url) -> YAML
        result = wrk(env.gateway + "/path", duration=5, connections=8)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import RedisServer, free_port  # noqa: E402

BASELINE = "bare Starlette JSON (baseline)"


async def pending_flow(services: Any, browser_binding: str) -> Any:
    """A sign-in of the `web` client waiting for its user (what /oauth2/authorize stores), so
    a benchmark can mint thousands of single-use forms or callbacks beforehand."""
    return await services.flows.create(
        client_id="web",
        redirect_uri="https://app.example.com/cb",
        scope=["openid"],
        state="s",
        nonce=None,
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        prompt=[],
        max_age=None,
        login_hint=None,
        browser=browser_binding,
    )


def pinned(cmd: list[str], core: int) -> list[str]:
    """Run on one core when taskset exists, so the server and wrk do not share one."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(core), *cmd]
    return cmd


def pin(pid: int, core: int) -> None:
    """Move a running process to one core (as `pinned` starts one), when there are two."""
    if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, {core})


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str,
    duration: int,
    connections: int,
    script: list[str] | None = None,
    headers: list[str] | None = None,
    pid: int | None = None,
) -> dict[str, Any]:
    """req/s, p50, p99 and non-2xx count of one wrk run (1 thread); with `pid`, that server
    process's CPU seconds during the run too (`cpu_s`, user + system, from /proc)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for header in headers or []:
        cmd += ["-H", header]
    cmd += ["-s", script[0], url, "--", *script[1:]] if script else [url]
    before = cpu_seconds(pid) if pid is not None else 0.0
    out = subprocess.run(pinned(cmd, 1), capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(pid) - before if pid is not None else None
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result: dict[str, Any] = {
        "rps": rps,
        "requests": total,
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "p50_ms": _latency(out, "50%"),
        "p99_ms": _latency(out, "99%"),
    }
    if used is not None:
        result["cpu_s"] = used
    # Scripts that look at the answers (counted.lua, exchange_pair.lua) print what they saw.
    counted = re.findall(r"^counted (\S+): (\d+)$", out, re.MULTILINE)
    if counted:
        result["counts"] = {name: int(n) for name, n in counted}
    return result


Scenario = tuple[str, str, list[str] | None]  # name, URL, wrk script + its arguments


def run_scenarios(
    env: Environment, scenarios: list[Scenario], duration: int, connections: int, baseline: bool
) -> dict[str, dict[str, Any]]:
    """wrk each scenario in turn (the baseline first, when asked)."""
    if baseline:
        scenarios = [(BASELINE, env.baseline, None), *scenarios]
    results = {}
    for name, url, script in scenarios:
        print(f"running: {name}", file=sys.stderr)
        results[name] = wrk(url, duration, connections, script)
    return results


def _latency(out: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def need_wrk() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")


class Environment:
    """The servers of one benchmark run, started on enter and stopped on exit."""

    def __init__(self, settings_text: Callable[[int, str, str], str], sts: bool = False) -> None:
        self._settings_text = settings_text
        self._sts = sts
        self.redis = RedisServer()
        self.folder = Path(tempfile.mkdtemp(prefix="cognate-bench-"))
        self.settings_path = self.folder / "gateway.yaml"
        self.port, self.base_port, self.sts_port = free_port(), free_port(), free_port()
        self.gateway = f"http://127.0.0.1:{self.port}"
        self.baseline = f"http://127.0.0.1:{self.base_port}"
        self.sts_url = f"http://127.0.0.1:{self.sts_port}/"
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def gateway_pid(self) -> int:
        """The gateway's process (taskset execs it: the same pid)."""
        return self._procs[0].pid

    def __enter__(self) -> Environment:
        self.redis.start()
        assert self.redis.proc is not None
        pin(self.redis.proc.pid, 1)  # in production Redis runs elsewhere, not on the worker
        self.settings_path.write_text(self._settings_text(self.port, self.redis.url, self.sts_url))
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self._procs.append(
            subprocess.Popen(
                pinned(  # noqa: S603
                    [
                        sys.executable,
                        "-m",
                        "gateway",
                        "serve",
                        "--config",
                        str(self.settings_path),
                        "--port",
                        str(self.port),
                    ],
                    0,
                ),
                cwd=ROOT,
                **quiet,
            )
        )
        self._procs.append(
            subprocess.Popen(
                pinned(  # noqa: S603
                    [
                        sys.executable,
                        str(ROOT / "bench" / "baseline_app.py"),
                        "--port",
                        str(self.base_port),
                    ],
                    0,
                ),
                **quiet,
            )
        )
        if self._sts:
            moto = shutil.which("moto_server", path=str(Path(sys.executable).parent))
            self._procs.append(
                subprocess.Popen(  # noqa: S603
                    [moto or "moto_server", "-H", "127.0.0.1", "-p", str(self.sts_port)], **quiet
                )
            )
            wait_ready(self.sts_url)
        wait_ready(f"{self.gateway}/healthz")
        wait_ready(self.baseline)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for proc in self._procs:
            proc.terminate()
            proc.wait(timeout=20)
        self.redis.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


ROUNDS = 3  # a target and its reference run alternately this often: the median ratio counts


def median_round(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Of (reference, target) results run alternately — on a shared machine the rate drifts
    by up to 2x between scenarios — the round whose ratio is the median. The target's result
    gets every round's ratio (`ratios`) and that round's reference rate (`reference_rps`)."""
    ordered = sorted(pairs, key=lambda p: p[1]["rps"] / p[0]["rps"])
    reference, target = ordered[len(ordered) // 2]
    target["ratios"] = [round(t["rps"] / r["rps"], 3) for r, t in pairs]
    target["reference_rps"] = reference["rps"]
    return reference, target


def report(results: dict[str, dict[str, Any]], path: Path, meta: dict[str, Any]) -> None:
    """Print the table (ratios to the baseline row) and write it as JSON."""
    baseline = (
        results[BASELINE]["rps"] if BASELINE in results else next(iter(results.values()))["rps"]
    )
    print(f"\n{'scenario':48} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} {'errors':>7}")
    for name, r in results.items():
        print(
            f"{name:48} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
            f"{r['rps'] / baseline:6.2f} {r['errors']:7d}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**meta, "results": results}, indent=2))
    print(f"\nwritten: {path}")


def group_main(doc: str, name: str, run: Callable[[int, int], dict[str, dict[str, Any]]]) -> int:
    """The command line of one benchmark group: --duration, --connections, --json; runs it
    and prints and writes its table."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / f"{name}.json")
    args = parser.parse_args()
    need_wrk()
    results = run(args.duration, args.connections)
    report(results, args.json, {"connections": args.connections, "duration_s": args.duration})
    return 0
