"""Session-wide real servers: one private redis-server, one gateway on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.helpers import (
    Browser,
    GatewayServer,
    RedisCluster,
    RedisSentinel,
    RedisServer,
    free_port,
    make_settings,
    thaw,
)
from tests.mail import Mailbox, SmsReceiver


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def frozen_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, for it to `freeze`; thawed and stopped afterwards."""
    server = RedisServer()
    server.start()
    yield server
    thaw(server)
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """Three masters on loopback, started by the suite."""
    cluster = RedisCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[RedisSentinel]:
    """A master watched by a Sentinel, started by the suite."""
    sentinel = RedisSentinel()
    sentinel.start()
    yield sentinel
    sentinel.stop()


@pytest.fixture(scope="session")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on loopback and what it received: (mailbox, port)."""
    from aiosmtpd.controller import Controller

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


@pytest.fixture(scope="session")
def sms() -> Iterator[SmsReceiver]:
    """The SMS webhook's receiver on loopback (user_pool.sms: `mail.sms_settings(sms)`)."""
    receiver = SmsReceiver()
    receiver.server.start()
    yield receiver
    receiver.server.stop()


@pytest.fixture(scope="session")
def gateway(redis_server: RedisServer) -> Iterator[GatewayServer]:
    """The shared gateway (real Redis). Tests that need other settings start their own."""
    server = GatewayServer(make_settings(free_port(), redis_server.url)).start()
    yield server
    server.stop()


@pytest.fixture
async def browser(gateway: GatewayServer) -> AsyncIterator[Browser]:
    b = Browser(gateway.url)
    yield b
    await b.aclose()


@pytest.fixture
async def http(gateway: GatewayServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        yield client


_counter = iter(range(1, 1_000_000))


@pytest.fixture
async def user(gateway: GatewayServer) -> str:
    """A fresh local user's e-mail (password: helpers.PASSWORD)."""
    email = f"user{next(_counter)}@example.com"
    await gateway.add_user(email, name="Test User", email_verified=True)
    return email
