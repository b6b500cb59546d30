"""SRP verifiers at rest, against real Redis: sealed (the raw value holds neither salt nor
verifier in any form a dump could use), bound to their key, and they check the password."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.crypto import Sealer
from gateway.store import Store, open_store
from gateway.users import srp
from gateway.users.srp_verifiers import SrpVerifiers
from tests.helpers import RedisServer

POOL = srp.pool_name_of("eu-west-1_AbC123xyZ")


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[Store]:
    opened = open_store(redis_server.url, prefix=f"srp{secrets.token_hex(4)}")
    yield opened
    await opened.close()


@pytest.fixture
async def raw_redis(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def verifiers_on(store: Store) -> SrpVerifiers:
    return SrpVerifiers(store, Sealer(b"k" * 32))


def forms(number: int) -> list[bytes]:
    """The ways a dump could spell a number: hex either case, padded, bytes, decimal."""
    hex_digits = format(number, "x")
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return [hex_digits.encode(), hex_digits.upper().encode(), raw, str(number).encode()] + [
        srp.pad_hex(number).encode()
    ]


async def test_sealed_at_rest(store: Store, raw_redis: aioredis.Redis) -> None:
    record = await verifiers_on(store).set("u1", POOL, "alice", "correct horse")
    raw = await raw_redis.get(store.key("srp-verifier", "u1"))
    assert raw is not None
    for secret in (record.salt, record.verifier):
        for form in forms(secret):
            assert form not in raw
    assert b"alice" not in raw and POOL.encode() not in raw


async def test_round_trip_and_the_verifier_checks_the_password(store: Store) -> None:
    verifiers = verifiers_on(store)
    made = await verifiers.set("u2", POOL, "bob", "p4ssw0rd")
    got = await verifiers.get("u2")
    assert got == made
    assert got.is_for(POOL, "bob")
    assert not got.is_for("OtherPool", "bob") and not got.is_for(POOL, "bobby")
    assert got.verifier == srp.password_verifier(POOL, "bob", "p4ssw0rd", got.salt)
    assert got.verifier != srp.password_verifier(POOL, "bob", "p4ssw0rd!", got.salt)


async def test_set_again_replaces_with_a_new_salt(store: Store) -> None:
    verifiers = verifiers_on(store)
    first = await verifiers.set("u3", POOL, "carol", "old password")
    second = await verifiers.set("u3", POOL, "carol", "new password")
    assert second.salt != first.salt
    assert await verifiers.get("u3") == second


async def test_delete(store: Store) -> None:
    verifiers = verifiers_on(store)
    await verifiers.set("u4", POOL, "dave", "pw")
    assert await verifiers.delete("u4") is True
    assert await verifiers.get("u4") is None
    assert await verifiers.delete("u4") is False
    assert await verifiers.get("never-set") is None


async def test_a_record_moved_to_another_user_does_not_open(
    store: Store, raw_redis: aioredis.Redis
) -> None:
    # Copying Mallory's record over Alice's key would let Mallory's password sign in as Alice:
    # the key name is sealed in, so the copy fails loudly instead of being read as "none".
    verifiers = verifiers_on(store)
    await verifiers.set("mallory", POOL, "mallory", "mallory's password")
    raw = await raw_redis.get(store.key("srp-verifier", "mallory"))
    await raw_redis.set(store.key("srp-verifier", "alice"), raw)
    with pytest.raises(ValueError):
        await verifiers.get("alice")
