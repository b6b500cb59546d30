"""Graceful shutdown: `cognate serve` told to stop (SIGTERM, as Kubernetes does) finishes the
requests in flight, refuses new ones, and exits cleanly."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.helpers import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
SERVICE = ("service", "service-secret-0123456789")


async def test_sigterm_finishes_requests_in_flight(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"issuer: http://127.0.0.1:{port}\nsecret_key: {'s' * 40}\n"
        f"store: {{url: '{redis_server.url}', prefix: shutdown}}\nlog_level: warning\n"
        "clients:\n  - {client_id: service, client_secret: service-secret-0123456789,"
        " grant_types: [client_credentials]}\n"
    )
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for _ in range(200):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
            sent = asyncio.Event()

            async def slow_body() -> AsyncIterator[bytes]:
                yield b"grant_type=client_"
                sent.set()
                await asyncio.sleep(1.0)  # still uploading when the signal arrives
                yield b"credentials"

            async def token() -> httpx.Response:
                return await client.post(
                    "/oauth2/token",
                    content=slow_body(),
                    auth=SERVICE,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )

            in_flight = [asyncio.create_task(token()) for _ in range(4)]
            await sent.wait()
            await asyncio.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            answers = await asyncio.gather(*in_flight)
            assert [a.status_code for a in answers] == [200] * 4
            assert all("access_token" in a.json() for a in answers)
        # uvicorn re-raises the signal once it has shut down, so the exit says "SIGTERM".
        assert await asyncio.to_thread(proc.wait, 20) in (0, -signal.SIGTERM)
        assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")
        async with httpx.AsyncClient(base_url=url) as late:
            try:
                await late.get("/healthz")
                raise AssertionError("a stopped gateway still answered")
            except httpx.ConnectError:
                pass
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
