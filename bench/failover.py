"""How long a planned Sentinel fail-over refuses durable writes (`store.replicas_acked: 1`).

    python bench/failover.py [--replicas 1 2] [--runs 3]

Starts a master, N replicas and one Sentinel (quorum 1) on loopback (the test suite's
`RedisSentinel`), then four writers doing
what a sign-in does with `replicas_acked: 1` (SET NX + WAIT 1 through `redis+sentinel://`, the
gateway's RedisStore) without pause. After two seconds of steady writes, SENTINEL FAILOVER.
Reported per run: the time from the fail-over command to the last refused write (the outage a
user sees as 503 on sign-in), how many writes were refused and why, when the new master had a
replica attached again, and how many confirmed writes the new master does not have (lost).
Nothing here asserts a time: the numbers go to the README.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402

from gateway.errors import StoreUnavailable  # noqa: E402
from gateway.store.redis import RedisStore  # noqa: E402
from tests.helpers import RedisSentinel  # noqa: E402


def cli(port: int, *args: str) -> str:
    return subprocess.run(  # noqa: S603
        [shutil.which("redis-cli") or "redis-cli", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=5,
    ).stdout


@dataclass
class Run:
    refused: list[float] = field(default_factory=list)  # seconds after the fail-over command
    reasons: Counter[str] = field(default_factory=Counter)
    writes: int = 0
    replica_back: float | None = None  # the new master has a replica online again
    acknowledged: list[str] = field(default_factory=list)  # keys whose create was confirmed
    lost: int = 0  # of those, missing on the new master: acknowledged, then lost


def reason(exc: StoreUnavailable) -> str:
    text = str(exc)
    for known in (
        "replicas in time",
        "Sentinel is failing over",
        "overlapped a fail-over",
        "READONLY",
        "no answer within",
        "Connection",
        "master",
    ):
        if known in text:
            return known
    return text[:60]


async def one_run(replicas: int, redis_options: list[str]) -> Run:
    topology = RedisSentinel(replicas=replicas, redis_options=redis_options)
    topology.start()
    store = RedisStore(topology.url, prefix=f"fo{secrets.token_hex(3)}", replicas_acked=1)
    run = Run()
    stop = asyncio.Event()
    started: list[float] = []

    async def writer() -> None:
        while not stop.is_set():
            key = store.key(secrets.token_hex(8))
            try:
                await store.create(key, b"1", ttl=300)
                run.writes += 1
                run.acknowledged.append(key)
            except StoreUnavailable as exc:
                if started:
                    run.refused.append(time.monotonic() - started[0])
                    run.reasons[reason(exc)] += 1
                await asyncio.sleep(0.01)  # a client retrying, not a spin

    writers = [asyncio.create_task(writer()) for _ in range(4)]
    try:
        await asyncio.sleep(2)
        before = topology.master_port()
        started.append(time.monotonic())
        assert "OK" in topology.cli("sentinel", "failover", topology.SERVICE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = time.monotonic() - started[0]
            try:
                port = topology.master_port()
            except (IndexError, ValueError):
                port = before
            if port != before and run.replica_back is None:
                info = cli(port, "info", "replication")
                if "state=online" in info:
                    run.replica_back = now
            last = run.refused[-1] if run.refused else 0.0
            if run.replica_back is not None and now - max(last, run.replica_back) > 3:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*writers)
        # The new master's data is what survives (the old one resyncs from it when demoted).
        survivor = aioredis.Redis(port=topology.master_port())
        for start in range(0, len(run.acknowledged), 1000):
            chunk = run.acknowledged[start : start + 1000]
            run.lost += len(chunk) - int(await survivor.exists(*chunk))
        await survivor.aclose()
    finally:
        stop.set()
        await asyncio.gather(*writers)
        await store.close()
        topology.stop()
    return run


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--redis",
        default="",
        help="options for every redis-server, e.g. '--repl-diskless-sync-delay 0'",
    )
    args = parser.parse_args()
    results = []
    for replicas in args.replicas:
        for _ in range(args.runs):
            run = await one_run(replicas, args.redis.split())
            result = {
                "replicas": replicas,
                "redis": args.redis,
                "refused_until_s": round(run.refused[-1], 2) if run.refused else 0.0,
                "refused": len(run.refused),
                "writes": run.writes,
                "acknowledged_then_lost": run.lost,
                "reasons": dict(run.reasons),
                "replica_back_s": None if run.replica_back is None else round(run.replica_back, 2),
            }
            print(json.dumps(result), flush=True)
            results.append(result)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "failover.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
