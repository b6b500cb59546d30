"""SSO sessions: ticket cookies, idle and absolute timeouts, sealing (SECURITY-TESTS E41)."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from gateway.crypto import Sealer
from gateway.sessions import SessionManager
from gateway.settings import SessionSettings
from gateway.store import Store, open_store
from gateway.store.redis import RedisStore
from tests.helpers import RedisServer


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[Store]:
    s = open_store(redis_server.url, prefix=f"sess{secrets.token_hex(4)}")
    yield s
    await s.close()


def manager(store: Store, idle: int = 3600, absolute: int = 86400) -> SessionManager:
    return SessionManager(
        store, Sealer(b"m" * 32), SessionSettings(idle_timeout=idle, absolute_timeout=absolute)
    )


async def new_session(sessions: SessionManager) -> tuple[object, str]:
    return await sessions.create(
        identity_id="us-east-1:x",
        connector_id="local",
        subject="u",
        amr=["pwd"],
        profile={"email": "a@example.com"},
    )


async def test_record_ttl_is_the_idle_timeout(store: Store) -> None:
    sessions = manager(store, idle=600)
    session, cookie = await new_session(sessions)
    ttl = await store.ttl(store.key("session", cookie.split(".")[0]))
    assert ttl is not None and 590 < ttl <= 600
    assert (await sessions.load(cookie)) == session


async def test_absolute_timeout_ends_the_session(store: Store) -> None:
    sessions = manager(store, absolute=3600)
    session, cookie = await new_session(sessions)
    sid, secret = cookie.split(".")
    old = replace(session, created=int(time.time()) - 3601)  # type: ignore[type-var]
    await sessions._save(old, secret)
    assert await sessions.load(cookie) is None
    assert await store.get(store.key("session", sid)) is None


async def test_record_is_useless_without_the_cookie_secret(store: Store) -> None:
    sessions = manager(store)
    _, cookie = await new_session(sessions)
    sid = cookie.split(".")[0]
    raw = await store.get(store.key("session", sid))
    assert raw is not None and b"a@example.com" not in raw
    assert await sessions.load(f"{sid}.{'A' * 32}") is None
    # Another deployment's master key cannot open it either, even with the right cookie.
    other = SessionManager(store, Sealer(b"n" * 32), SessionSettings())
    assert await other.load(cookie) is None


async def test_end_removes_the_record(store: Store) -> None:
    sessions = manager(store)
    _, cookie = await new_session(sessions)
    await sessions.end(cookie)
    assert await sessions.load(cookie) is None


class _SignOutDuringKeepAlive(RedisStore):
    """A real Redis store in which a sign-out lands between keep_alive's read and its swap
    (the interleaving two replicas produce; forced here so the test is deterministic)."""

    async def update(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        await self.delete(key)
        return await super().update(key, expected, value, ttl)


async def test_keep_alive_of_a_session_ended_meanwhile_is_false(redis_server: RedisServer) -> None:
    racing = _SignOutDuringKeepAlive(redis_server.url, prefix=f"sess{secrets.token_hex(4)}")
    try:
        sessions = manager(racing)
        session, cookie = await new_session(sessions)
        sid = cookie.split(".")[0]
        # A refresh bound to this session must not go through: it ended.
        assert not await sessions.keep_alive(sid, int(time.time()))
        assert await racing.get(racing.key("session", sid)) is None
    finally:
        await racing.close()


async def test_keep_alive_restarts_the_idle_timeout(store: Store) -> None:
    sessions = manager(store, idle=600)
    session, cookie = await new_session(sessions)
    sid = cookie.split(".")[0]
    await store.put(store.key("session", sid), await store.get(store.key("session", sid)) or b"", 5)
    assert await sessions.keep_alive(sid, int(time.time()))
    ttl = await store.ttl(store.key("session", sid))
    assert ttl is not None and 590 < ttl <= 600


class _EndHeardDuringRead(RedisStore):
    """A real Redis store whose session read is overtaken by the news that the session ended
    (another replica's sign-out, heard over pub/sub while the read was on its way)."""

    heard: SessionManager | None = None

    async def get(self, key: str) -> bytes | None:
        found = await super().get(key)
        if self.heard is not None and ":session:" in key:
            self.heard.cache.evict(key.rsplit(":", 1)[1])
        return found


async def test_a_session_read_before_its_end_was_heard_is_not_cached(
    redis_server: RedisServer,
) -> None:
    store = _EndHeardDuringRead(redis_server.url, prefix=f"sess{secrets.token_hex(4)}")
    try:
        sessions = SessionManager(store, Sealer(b"m" * 32), SessionSettings(cache_ttl=60))
        sessions.cache.on()
        _, cookie = await new_session(sessions)
        store.heard = sessions
        assert await sessions.load(cookie, cached=True) is not None  # it was live when read
        assert sessions.cached(cookie) is None  # but it is not kept: it ended meanwhile
        store.heard = None
        assert await sessions.load(cookie, cached=True) is not None
        assert sessions.cached(cookie) is not None  # a read with no end on the way is kept
    finally:
        await store.close()
