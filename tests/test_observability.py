"""Metrics, readiness and log correlation (issue: operations)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re

import httpx

from gateway.observability import JsonFormatter
from tests.helpers import Browser, GatewayServer, RedisServer, free_port, make_settings, redeem


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
