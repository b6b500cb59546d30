"""A Redis subscription is the only thing that keeps the in-process caches (sessions, grants,
GetUser's accounts) honest, so it must say when it cannot be trusted: it counts as in place only
once Redis confirmed it, and a connection that goes silent — a frozen network, a stopped server,
neither of which gives an error — is given up within seconds (`PUBSUB_SILENCE`), which turns
those caches off. Here the server is frozen with SIGSTOP."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.errors import StoreUnavailable
from gateway.store.redis import PUBSUB_SILENCE, RedisStore
from tests.helpers import RedisServer, freeze


async def test_a_silent_subscription_is_given_up(frozen_redis: RedisServer) -> None:
    store = RedisStore(frozen_redis.url, socket_timeout=1.0)
    messages = store.subscribe(store.key("silent"))
    try:
        assert await anext(messages) == b""  # confirmed
        await store.publish(store.key("silent"), b"one")
        assert await anext(messages) == b"one"
        freeze(frozen_redis)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="silent|lost"):
            await asyncio.wait_for(anext(messages), PUBSUB_SILENCE + 5)
        assert time.monotonic() - started < PUBSUB_SILENCE + 5
    finally:
        await messages.aclose()  # type: ignore[attr-defined]
        await store.close()


async def test_a_subscription_counts_once_redis_confirmed_it(frozen_redis: RedisServer) -> None:
    store = RedisStore(frozen_redis.url, socket_timeout=1.0)
    try:
        await store._redis.ping()  # a connection in redis-py's pool, ready: no handshake to wait
        freeze(frozen_redis)  # SUBSCRIBE goes out, and is never answered
        messages = store.subscribe(store.key("unconfirmed"))
        with pytest.raises(StoreUnavailable):
            first = await asyncio.wait_for(anext(messages), PUBSUB_SILENCE + 5)
            pytest.fail(f"counted as subscribed ({first!r}) before Redis said so")
        await messages.aclose()  # type: ignore[attr-defined]
    finally:
        await store.close()
