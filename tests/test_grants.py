"""The grant store on a real Redis: codes redeemed once, refresh rotation with replay detection,
revocation, and grants bound to the SSO session they came from."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from gateway.crypto import Sealer
from gateway.grants import Authorization, CodeRecord, GrantStore
from gateway.store import Store, open_store
from tests.helpers import RedisServer


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[Store]:
    s = open_store(redis_server.url, prefix=f"grants{secrets.token_hex(4)}")
    yield s
    await s.close()


@dataclass
class Sessions:
    """The sessions a grant may be bound to (what `SessionLiveness` asks)."""

    alive: set[str] = field(default_factory=set)
    kept_alive: list[str] = field(default_factory=list)

    async def peek(self, sid: str) -> bool:
        return sid in self.alive

    async def keep_alive(self, sid: str, auth_time: int) -> bool:
        self.kept_alive.append(sid)
        return sid in self.alive


def authorization(scope: list[str] | None = None, sid: str | None = "sid-1") -> Authorization:
    return Authorization(
        sub="eu-west-1:0000",
        client_id="app",
        scope=scope or ["openid"],
        auth_time=1,
        sid=sid,
        amr=["pwd"],
        profile={"email": "ada@example.com"},
    )


def grants_on(store: Store) -> GrantStore:
    return GrantStore(store, Sealer(b"g" * 32))


async def test_a_code_is_stored_sealed_under_its_hash(store: Store) -> None:
    grants = grants_on(store)
    code = await grants.issue_code(CodeRecord(authorization(), "https://app/cb", None), ttl=60)
    keys = [k async for k in store.scan(store.key("code", ""))]
    assert len(keys) == 1 and code not in keys[0]
    raw = await store.get(keys[0])
    assert raw is not None and b"ada@example.com" not in raw
    loaded = await grants.load_code(code)
    assert loaded is not None and loaded[1].redirect_uri == "https://app/cb"
    assert await grants.load_code(code + "x") is None


async def test_parallel_redemptions_of_one_code_have_one_winner(store: Store) -> None:
    grants = [grants_on(store) for _ in range(10)]
    code = await grants[0].issue_code(CodeRecord(authorization(), "https://app/cb", None), 60)
    loaded = await grants[0].load_code(code)
    assert loaded is not None
    raw, record = loaded
    won = await asyncio.gather(
        *(g.mark_code_used(code, raw, record, f"gid{i}") for i, g in enumerate(grants))
    )
    assert won.count(True) == 1
    again = await grants[0].load_code(code)
    assert again is not None and again[1].used_by == f"gid{won.index(True)}"


async def test_refresh_rotation_and_replay(store: Store) -> None:
    grants = grants_on(store)
    grant, first = await grants.create_grant(authorization(), lifetime=3600, with_refresh=True)
    assert first is not None and grants.gid_of(first) == grant.gid
    loaded = await grants.load_grant(grant.gid)
    assert loaded is not None
    raw, stored = loaded
    assert grants.refresh_matches(stored, first) == "current"
    rotated = await grants.rotate_refresh(raw, stored)
    assert rotated is not None
    new_grant, second = rotated
    assert grants.refresh_matches(new_grant, second) == "current"
    assert grants.refresh_matches(new_grant, first) == "used"  # replay: revoke the family
    assert grants.refresh_matches(new_grant, f"{grant.gid}.guessed") == "unknown"
    # The same token rotated twice at once: the second swap, from the old record, loses.
    assert await grants.rotate_refresh(raw, stored) is None
    ttl = await store.ttl(store.key("grant", grant.gid))
    assert ttl is not None and 3500 < ttl <= 3600


def test_gid_of_wants_the_shape_of_a_refresh_token() -> None:
    gid = "a" * 32
    assert GrantStore.gid_of(f"{gid}.secret") == gid
    for token in (gid, f"{gid}.", "short.secret", f"{gid}x.secret"):
        assert GrantStore.gid_of(token) is None


async def test_revoking_ends_the_family(store: Store) -> None:
    grants = grants_on(store)
    grant, _ = await grants.create_grant(authorization(), lifetime=3600, with_refresh=True)
    assert await grants.grant_alive(grant.gid)
    await grants.revoke(grant.gid)
    assert not await grants.grant_alive(grant.gid)
    assert await grants.load_grant(grant.gid) is None


async def test_a_grant_lives_only_as_long_as_its_session(store: Store) -> None:
    grants = grants_on(store)
    sessions = Sessions(alive={"sid-1"})
    grant, _ = await grants.create_grant(authorization(), lifetime=3600, with_refresh=True)
    assert grant.session == "sid-1"
    assert await grants.live_grant(grant.gid, sessions) is not None
    assert await grants.live_grant(grant.gid, sessions, refreshing=True) is not None
    assert sessions.kept_alive == ["sid-1"]  # a refresh is activity in the session
    sessions.alive.clear()  # signed out
    assert await grants.live_grant(grant.gid, sessions) is None
    assert not await grants.grant_alive(grant.gid)  # revoked for good


async def test_offline_access_outlives_the_session(store: Store) -> None:
    grants = grants_on(store)
    grant, _ = await grants.create_grant(
        authorization(scope=["openid", "offline_access"]), lifetime=3600, with_refresh=True
    )
    assert grant.session is None
    assert await grants.live_grant(grant.gid, Sessions()) is not None
