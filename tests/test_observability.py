"""Metrics, readiness and log correlation (issue: operations)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.errors import ConfigError
from gateway.metrics import Allowed
from gateway.observability import JsonFormatter
from tests.helpers import Browser, GatewayServer, RedisServer, free_port, make_settings, redeem

ROOT = Path(__file__).parent.parent


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_what_happens(
    gateway: GatewayServer, browser: Browser, http: httpx.AsyncClient, user: str
) -> None:
    before = (await http.get("/metrics")).text
    code, verifier, _ = await browser.login_for_code(user)
    await redeem(http, code, verifier)
    await http.get("/login?flow=unknown-flow-id")
    after = (await http.get("/metrics")).text
    assert "# HELP cognate_http_requests_total" in after

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("cognate_tokens_issued_total", grant_type="authorization_code") == 1
    assert grew("cognate_sign_ins_total", connector="local", result="success") == 1
    # Routes are labelled by template, so ids and queries never become label values.
    assert grew("cognate_http_requests_total", route="/login", method="GET", status="400") == 1
    assert (
        grew("cognate_http_requests_total", route="/oauth2/token", method="POST", status="200") == 1
    )
    assert "flow=" not in after and user not in after
    assert sample(after, "cognate_store_operation_seconds_count", operation="get") > 0


async def test_readyz_reports_each_check(redis_server: RedisServer) -> None:
    gateway = GatewayServer(make_settings(free_port(), redis_server.url)).start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {
                "status": "ready",
                "checks": {"store": "ok", "durability": "ok", "keys": "ok"},
            }
    finally:
        gateway.stop()


async def test_readyz_fails_on_evicting_or_missing_redis() -> None:
    import redis.asyncio as aioredis

    redis = RedisServer()
    redis.start()
    gateway = GatewayServer(
        make_settings(
            free_port(),
            redis.url,
            store={"url": redis.url, "connect_timeout": 0.3, "socket_timeout": 0.3},
        )
    ).start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            client = aioredis.Redis.from_url(redis.url)
            await client.config_set("maxmemory-policy", "allkeys-lru")
            await client.aclose()
            evicting = await http.get("/readyz")
            assert evicting.status_code == 503
            assert "allkeys-lru" in evicting.json()["checks"]["durability"]
            redis.stop()
            down = await http.get("/readyz")
            assert down.status_code == 503 and down.json()["checks"]["store"] != "ok"
            assert (await http.get("/healthz")).status_code == 200  # the process is alive
    finally:
        gateway.stop()
        redis.stop()


async def test_logs_carry_request_id_and_traceparent(http: httpx.AsyncClient) -> None:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("cognate.access")
    access.addHandler(handler)
    previous = access.level
    access.setLevel(logging.INFO)
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    try:
        await http.get("/healthz", headers={"traceparent": trace, "X-Request-Id": "req-42"})
        await http.get("/healthz", headers={"traceparent": "garbage"})
        # The server's thread logs a request once its answer is sent: the client can be faster.
        deadline = asyncio.get_running_loop().time() + 5
        while len(buffer.getvalue().splitlines()) < 2:
            assert asyncio.get_running_loop().time() < deadline, buffer.getvalue()
            await asyncio.sleep(0.01)
    finally:
        access.removeHandler(handler)
        access.setLevel(previous)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert lines[0]["traceparent"] == trace and lines[0]["request_id"] == "req-42"
    assert lines[0]["path"] == "/healthz" and lines[0]["status"] == 200
    assert "traceparent" not in lines[1]


class ServeProcess:
    """`cognate serve` as a real process (its own workers, its own metrics), on a free port;
    its stderr goes to a file beside the config (a pipe nobody reads could fill and block it)."""

    def __init__(self, config: Path, workers: int, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = config.with_suffix(".log")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "gateway", "serve", "-c", str(config)]
                + ["--port", str(self.port), "--workers", str(workers)],
                cwd=ROOT,
                env={**os.environ, **(env or {})},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    async def ready(self, http: httpx.AsyncClient) -> None:
        """Poll /readyz (not /healthz: the tests count /healthz) until every worker is up."""
        deadline = time.monotonic() + 60
        answered = 0
        while answered < 5:  # several answers in a row: the other worker is up too
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            assert time.monotonic() < deadline, "cognate serve did not start"
            try:
                answered += (await http.get(f"{self.url}/readyz")).status_code == 200
            except httpx.TransportError:
                answered = 0
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def serve_config(tmp_path: Path, redis_url: str, **extra: Any) -> Path:
    config = tmp_path / "gateway.yaml"
    data = {
        "issuer": "http://127.0.0.1:8000",  # the issuer's port is not the one served on here
        "secret_key": "k" * 40,
        "store": {"url": redis_url, "prefix": f"metrics-{secrets.token_hex(4)}"},
        "log_level": "warning",
        **extra,
    }
    config.write_text(json.dumps(data))  # JSON is YAML
    return config


async def hit(http: httpx.AsyncClient, url: str, times: int) -> None:
    """`times` GETs, eight at a time, each on a new connection (so both workers get some)."""
    for start in range(0, times, 8):
        answers = await asyncio.gather(
            *(http.get(url, headers={"Connection": "close"}) for _ in range(min(8, times - start)))
        )
        assert all(a.status_code == 200 for a in answers)


async def scrape(http: httpx.AsyncClient, url: str) -> str:
    """One scrape, on a new connection (as Prometheus does, any worker may answer)."""
    answer = await http.get(url, headers={"Connection": "close"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text


def healthz_total(text: str) -> float:
    return sample(text, "cognate_http_requests_total", route="/healthz", method="GET", status="200")


async def test_metrics_add_up_every_worker_of_serve(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # With `serve --workers 2` each scrape reaches one worker: its own numbers alone went up
    # and down between scrapes, and never counted every request. Now every scrape adds up all
    # workers. A deployer's PROMETHEUS_MULTIPROC_DIR holding an earlier run's numbers is
    # emptied at start (or those would be counted again): leave one there first.
    shared = tmp_path / "prometheus"
    shared.mkdir()
    stale = (
        "from prometheus_client import Counter\n"
        "Counter('cognate_http_requests_total', 'HTTP requests', ['route', 'method', 'status'])"
        ".labels('/healthz', 'GET', '200').inc(1000)\n"
    )
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    subprocess.run([sys.executable, "-c", stale], env={**os.environ, **env}, check=True)  # noqa: S603
    assert list(shared.glob("counter_*.db"))
    gateway = ServeProcess(serve_config(tmp_path, redis_server.url), workers=2, env=env)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            await gateway.ready(http)
            sent, seen = 0, []
            for _ in range(3):
                await hit(http, f"{gateway.url}/healthz", 40)
                sent += 40
                # A request is counted just after its answer went out: the first scrape may
                # come a moment early, so poll for the total (a lone worker never reaches it).
                deadline = time.monotonic() + 10
                while not seen or seen[-1] != sent:
                    assert time.monotonic() < deadline, (sent, seen)
                    seen.append(healthz_total(await scrape(http, f"{gateway.url}/metrics")))
                    assert seen[-1] <= sent, seen
                for _ in range(4):  # then every scrape, whichever worker answers it, says so
                    seen.append(healthz_total(await scrape(http, f"{gateway.url}/metrics")))
                    assert seen[-1] == sent, seen
            assert seen == sorted(seen)  # monotonic
            assert sample(await scrape(http, f"{gateway.url}/metrics"), "cognate_up") == 1
    finally:
        gateway.stop()


@pytest.mark.parametrize("workers", [1, 2])
async def test_metrics_listen_moves_metrics_off_the_public_port(
    tmp_path: Path, redis_server: RedisServer, workers: int
) -> None:
    listen = free_port()
    config = serve_config(
        tmp_path,
        redis_server.url,
        metrics={"listen": f"127.0.0.1:{listen}", "allow": ["127.0.0.0/8"]},
    )
    gateway = ServeProcess(config, workers=workers)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            await gateway.ready(http)
            assert (await http.get(f"{gateway.url}/metrics")).status_code == 404
            await hit(http, f"{gateway.url}/healthz", 24)
            deadline = time.monotonic() + 10
            while (
                total := healthz_total(await scrape(http, f"http://127.0.0.1:{listen}/metrics"))
            ) != 24:
                assert total < 24 and time.monotonic() < deadline, total  # every worker's, added up
            assert (await http.get(f"http://127.0.0.1:{listen}/other")).status_code == 404
    finally:
        gateway.stop()


def test_metrics_listen_on_a_busy_port_is_a_clear_error(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        config = serve_config(tmp_path, redis_server.url, metrics={"listen": f"127.0.0.1:{taken}"})
        gateway = ServeProcess(config, workers=1)
        assert gateway.proc.wait(timeout=60) == 1
    assert f"metrics.listen: cannot listen on 127.0.0.1:{taken}" in gateway.log.read_text()


async def test_metrics_allow_limits_who_may_scrape(redis_server: RedisServer) -> None:
    for allow, status in ((["10.0.0.0/8", "192.168.0.0/16"], 403), (["127.0.0.1/32"], 200)):
        settings = make_settings(free_port(), redis_server.url, metrics={"allow": allow})
        gateway = GatewayServer(settings).start()
        try:
            async with httpx.AsyncClient(base_url=gateway.url) as http:
                assert (await http.get("/metrics")).status_code == status  # we are 127.0.0.1
                assert (await http.get("/healthz")).status_code == 200  # the rest is unaffected
        finally:
            gateway.stop()


def test_metrics_allow_reads_the_connecting_address() -> None:
    allowed = Allowed(["10.0.0.0/8", "fd00::/8"])
    assert allowed("10.1.2.3") and allowed("fd00::5")
    assert allowed("::ffff:10.1.2.3")  # an IPv4 scraper seen on a dual-stack socket
    assert not allowed("11.0.0.1") and not allowed("::1")
    assert not allowed(None) and not allowed("")  # a Unix socket peer: not a listed network
    assert Allowed([])("203.0.113.9")  # no allow-list: everyone, as before


def test_metrics_settings_name_the_key_and_the_fix() -> None:
    for metrics, key, fix in (
        ({"listen": "9100"}, "metrics.listen", "127.0.0.1:9100"),
        ({"listen": "127.0.0.1:99999"}, "metrics.listen", "HOST:PORT"),
        ({"allow": ["127.0.0.1/32", "10.0.0.0/33"]}, "metrics.allow[1]", "10.0.0.0/8"),
        ({"allow": "10.0.0.0/8"}, "metrics.allow", "list"),
        ({"listn": "127.0.0.1:9100"}, "metrics.listn", "unknown key"),
    ):
        with pytest.raises(ConfigError) as refused:
            make_settings(free_port(), "redis://127.0.0.1:6379/0", metrics=metrics)
        problem = next(p for p in refused.value.problems if p.startswith(key))
        assert fix in problem, problem
    ok = make_settings(free_port(), "redis://127.0.0.1:6379/0", metrics={"listen": "[::1]:9100"})
    assert ok.metrics.address == ("::1", 9100)
