"""One-time codes (SECURITY-TESTS D33): single use, bound to an account, and a fixed number of
attempts however the guesses are timed — against real Redis, from several replicas at once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from gateway.crypto import Sealer
from gateway.store import Store, open_store
from gateway.users.codes import Codes
from tests.helpers import RedisServer

ATTEMPTS = 5
REPLICAS = 4


@pytest.fixture
async def stores(redis_server: RedisServer) -> AsyncIterator[list[Store]]:
    """Four store clients on one prefix: four gateway replicas sharing one Redis."""
    prefix = f"codes{secrets.token_hex(4)}"
    opened = [open_store(redis_server.url, prefix=prefix) for _ in range(REPLICAS)]
    yield opened
    for store in opened:
        await store.close()


def codes_on(store: Store) -> Codes:
    return Codes(store, Sealer(b"k" * 32), ttl=600, attempts=ATTEMPTS)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def test_parallel_wrong_guesses_each_spend_an_attempt(stores: list[Store]) -> None:
    replicas = [codes_on(store) for store in stores]
    code = await replicas[0].issue("reset", "u1")
    guesses = [replicas[i % REPLICAS].check("reset", "u1", wrong(code)) for i in range(100)]
    assert not any(await asyncio.gather(*guesses))
    # 100 guesses are far more than ATTEMPTS: the code is dead, even the right one fails.
    assert await replicas[1].check("reset", "u1", code) is False


async def test_right_code_within_the_attempts_works_once(stores: list[Store]) -> None:
    codes = codes_on(stores[0])
    code = await codes.issue("verify", "u2")
    for _ in range(ATTEMPTS - 1):
        assert await codes.check("verify", "u2", wrong(code)) is False
    assert await codes.check("verify", "u2", code) is True
    assert await codes.check("verify", "u2", code) is False  # single use


async def test_the_last_wrong_guess_ends_the_code(stores: list[Store]) -> None:
    codes = codes_on(stores[0])
    code = await codes.issue("verify", "u3")
    for _ in range(ATTEMPTS):
        assert await codes.check("verify", "u3", wrong(code)) is False
    assert await codes.check("verify", "u3", code) is False


async def test_a_new_code_gets_fresh_attempts_and_stays_bound(stores: list[Store]) -> None:
    codes = codes_on(stores[0])
    old = await codes.issue("mfa-email", "u4")
    for _ in range(ATTEMPTS):
        await codes.check("mfa-email", "u4", wrong(old))
    new = await codes.issue("mfa-email", "u4")
    assert await codes.check("mfa-email", "other-user", new) is False
    assert await codes.check("reset", "u4", new) is False
    assert await codes.check("mfa-email", "u4", new) is True


async def test_a_code_lives_as_a_keyed_hash_with_the_ttl(stores: list[Store]) -> None:
    store = stores[0]
    codes = codes_on(store)
    code = await codes.issue("verify", "u5")
    key = store.key("otp", "verify", "u5")
    raw = await store.get(key)
    assert raw is not None and code.encode() not in raw  # a Redis dump shows no code
    ttl = await store.ttl(key)
    assert ttl is not None and 590 < ttl <= 600
    assert await codes.check("verify", "u5", f" {code} ") is True  # typed with spaces


async def test_a_new_code_replaces_the_old_one(stores: list[Store]) -> None:
    codes = codes_on(stores[0])
    old = await codes.issue("reset", "u6")
    new = await codes.issue("reset", "u6")
    if old != new:  # one in a million they are the same six digits
        assert await codes.check("reset", "u6", old) is False
    assert await codes.check("reset", "u6", new) is True


async def test_a_link_token_works_once_for_its_purpose(stores: list[Store]) -> None:
    codes = [codes_on(store) for store in stores[:2]]
    token = await codes[0].issue_link("verify", "u7")
    assert await codes[1].redeem_link("reset", token) is None  # bound to its purpose
    assert await codes[1].redeem_link("verify", token) == "u7"  # any replica can redeem it
    assert await codes[0].redeem_link("verify", token) is None  # once


async def test_a_link_token_is_stored_only_as_its_hash(stores: list[Store]) -> None:
    store = stores[0]
    token = await codes_on(store).issue_link("verify", "u8")
    keys = [k async for k in store.scan(store.key("otp-link", ""))]
    assert len(keys) == 1 and token not in keys[0]
    assert await store.get(keys[0]) == b"u8"


async def test_malformed_link_tokens_are_refused_unread(stores: list[Store]) -> None:
    codes = codes_on(stores[0])
    await codes.issue_link("verify", "u9")
    for token in ("", "short", "x" * 65):
        assert await codes.redeem_link("verify", token) is None
