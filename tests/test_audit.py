"""The audit trail: events from sign-in, tokens and admin commands, read back with the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.audit import Audit
from gateway.errors import StoreUnavailable
from tests.helpers import (
    PASSWORD,
    Browser,
    GatewayServer,
    RedisServer,
    code_flow_params,
    free_port,
    make_settings,
    redeem,
    writes_paused,
)
from tests.test_observability import sample

ROOT = Path(__file__).parent.parent


async def test_sign_in_and_tokens_are_audited(gateway: GatewayServer, user: str) -> None:
    browser = Browser(gateway.url)
    try:
        first = await browser.authorize(**code_flow_params())
        assert (await browser.sign_in(first, user, "not the password")).status_code == 401
        code, verifier, _ = await browser.login_for_code(user)
        await redeem(browser.http, code, verifier)
    finally:
        await browser.aclose()
    # The token endpoint's entry is written just after its answer (Audit.defer).
    deadline = time.monotonic() + 10
    while True:
        stored = await gateway.call(lambda s: s.audit.read("0", 10_000))
        entries = [fields for _, fields in stored]
        mine = [e for e in entries if e.get("account") == user or e.get("event") == "token.issued"]
        events = [e["event"] for e in mine]
        if "token.issued" in events or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert "sign_in.failure" in events and "token.issued" in events
    success = [e for e in entries if e["event"] == "sign_in.success" and e.get("client_id")]
    assert success and success[-1]["connector"] == "local"
    assert success[-1]["identity_id"].startswith("us-east-1:") and success[-1]["ip"]
    text = json.dumps(entries)
    assert PASSWORD not in text and "not the password" not in text and code not in text


def test_admin_commands_are_audited_and_tail_shows_them(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"issuer: https://auth.example.com\nsecret_key: {'k' * 40}\n"
        f"store: {{url: '{redis_server.url}', prefix: audit-cli}}\n"
    )

    def cognate(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", *args, "-c", str(config)],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )

    assert (
        cognate(
            "users",
            "create",
            "audited@example.com",
            "--password-stdin",
            stdin="a long enough password\n",
        ).returncode
        == 0
    )
    assert cognate("users", "disable", "audited@example.com").returncode == 0
    tail = cognate("audit", "tail", "-n", "5", "--json")
    assert tail.returncode == 0, tail.stderr
    events = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [e["event"] for e in events][-2:] == ["user.created", "user.disabled"]
    assert all(e["actor"] == "cli" for e in events[-2:])
    assert "a long enough password" not in tail.stdout
    human = cognate("audit", "tail", "-n", "1")
    assert "user.disabled" in human.stdout and "actor=cli" in human.stdout


SERVICE = ("service", "service-secret-0123456789")


@contextlib.contextmanager
def audited_gateway(buffer: int) -> Iterator[tuple[RedisServer, GatewayServer]]:
    """A gateway on a Redis of its own (the test stops it) whose audit trail reports every
    half second and retries every tenth (production: 10 s and 1 s)."""
    redis = RedisServer()
    redis.start()
    settings = make_settings(
        free_port(),
        redis.url,
        store={"url": redis.url, "prefix": "audit-outage", "connect_timeout": 0.5},
    )
    gateway = GatewayServer(settings)
    s = gateway.services
    s.audit = Audit(
        s.store, settings.audit.retention, s.metrics, buffer, report_every=0.5, retry_every=0.1
    )
    gateway.start()
    try:
        yield redis, gateway
    finally:
        gateway.stop()
        redis.stop()


async def client_credentials(http: httpx.AsyncClient, request_id: str) -> None:
    answer = await http.post(
        "/oauth2/token",
        auth=SERVICE,
        data={"grant_type": "client_credentials"},
        headers={"X-Request-Id": request_id},
    )
    assert answer.status_code == 200, answer.text  # needs no Redis write: issued in an outage


async def stored_request_ids(gateway: GatewayServer, count: int) -> list[str]:
    """The request ids of the stored token.issued entries, once there are `count` of them."""
    deadline = time.monotonic() + 20
    while True:
        try:
            entries = await gateway.call(lambda s: s.audit.read("0", 1000))
        except StoreUnavailable:
            entries = []
        ids = [f["request_id"] for _, f in entries if f["event"] == "token.issued"]
        if len(ids) >= count or time.monotonic() > deadline:
            return ids
        await asyncio.sleep(0.05)


async def test_audit_entries_wait_out_a_redis_outage(caplog: pytest.LogCaptureFixture) -> None:
    # In the field, one outage lost 221 client_credentials audit entries, one warning line each.
    with audited_gateway(buffer=100) as (redis, gateway):
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            redis.stop()
            with caplog.at_level(logging.INFO, logger="cognate.audit"):
                for n in range(20):
                    await client_credentials(http, f"outage-{n}")
                # Each entry is held once the writer's attempt failed (just after its answer).
                deadline = time.monotonic() + 10
                while gateway.services.audit.pending < 20:
                    assert time.monotonic() < deadline, gateway.services.audit.pending
                    await asyncio.sleep(0.02)
                held = (await http.get("/metrics")).text
                assert sample(held, "cognate_audit_events_pending") == 20
                deadline = time.monotonic() + 20
                while not [r for r in caplog.records if "events not stored" in r.getMessage()]:
                    assert time.monotonic() < deadline, "no summary line"
                    await asyncio.sleep(0.05)
                redis.start()
                assert await stored_request_ids(gateway, 20) == [f"outage-{n}" for n in range(20)]
            summaries = [r for r in caplog.records if "events not stored" in r.getMessage()]
            # One line per interval, not one per event, and together they count every event.
            assert len(summaries) < 20
            assert sum(r.__dict__["audit_not_stored"] for r in summaries) == 20
            assert "(store unavailable)" in summaries[0].getMessage()
            assert not [r for r in caplog.records if r.getMessage() == "audit event not stored"]
            after = (await http.get("/metrics")).text
            assert sample(after, "cognate_audit_events_pending") == 0
            assert sample(after, "cognate_audit_events_dropped_total", event="token.issued") == 0
            # Back to normal: a new entry goes straight to the stream.
            await client_credentials(http, "after")
            assert (await stored_request_ids(gateway, 21))[-1] == "after"


async def test_a_full_audit_buffer_drops_the_oldest_and_counts_them() -> None:
    with audited_gateway(buffer=3) as (redis, gateway):
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            redis.stop()
            for n in range(5):
                await client_credentials(http, f"burst-{n}")
            deadline = time.monotonic() + 10
            while gateway.services.audit.pending < 3:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            lost = (await http.get("/metrics")).text
            assert sample(lost, "cognate_audit_events_dropped_total", event="token.issued") == 2
            assert sample(lost, "cognate_audit_events_pending") == 3
            redis.start()
            assert await stored_request_ids(gateway, 3) == ["burst-2", "burst-3", "burst-4"]


async def test_tokens_do_not_wait_for_their_audit_entry() -> None:
    # Redis holds every write for a while (CLIENT PAUSE WRITE): the client_credentials answer
    # needs no write, so it must not wait for its audit entry either (Audit.defer); the entry
    # is stored once Redis takes writes again.
    with audited_gateway(buffer=100) as (redis, gateway):
        async with httpx.AsyncClient(base_url=gateway.url, timeout=2.0) as http:
            with writes_paused(redis.url, seconds=6):
                await client_credentials(http, "while-paused")  # within the 2 s timeout
            assert await stored_request_ids(gateway, 1) == ["while-paused"]
