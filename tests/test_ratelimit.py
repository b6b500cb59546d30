"""The rate limiter's slots (`gateway.ratelimit`): taken before a guess is checked, given
back unless it fails, and given back after an outage once the store is reachable again."""

from __future__ import annotations

import pytest

from gateway.crypto import Sealer
from gateway.errors import StoreUnavailable
from gateway.ratelimit import Attempt, Limit, RateLimited, RateLimiter
from gateway.store.memory import MemoryStore

CHECKS = [(Limit("login-account", 3, 600), "account-id")]


class Blinking(MemoryStore):
    """A store whose counters can be made unreachable, as Redis is during a fail-over."""

    down = False

    async def incr(self, key: str, ttl: float) -> int:
        if self.down:
            raise StoreUnavailable("the store is down")
        return await super().incr(key, ttl)

    async def decr(self, key: str) -> int:
        if self.down:
            raise StoreUnavailable("the store is down")
        return await super().decr(key)


async def test_a_slot_is_held_while_in_flight_and_kept_only_by_a_failure() -> None:
    limiter = RateLimiter(MemoryStore(prefix="t"), Sealer(b"k" * 32))
    held = [Attempt(await limiter.take(CHECKS)) for _ in range(3)]
    with pytest.raises(RateLimited):  # three in flight: no fourth check
        await limiter.take(CHECKS)
    held[0].failed()
    for attempt in held:
        await limiter.settle(attempt)
    # one failure kept; the two others (and the refused one) gave theirs back
    for _ in range(2):
        await limiter.take(CHECKS)
    with pytest.raises(RateLimited):
        await limiter.take(CHECKS)


async def test_slots_an_outage_kept_are_given_back_once_the_store_is_back() -> None:
    """Three right passwords in flight when the store goes down: they end in 503 and cannot
    give their slots back. Once it is back, the user must not be locked out for the window."""
    store = Blinking(prefix="t")
    limiter = RateLimiter(store, Sealer(b"k" * 32))
    held = [Attempt(await limiter.take(CHECKS)) for _ in range(3)]
    store.down = True
    for attempt in held:
        await limiter.settle(attempt)  # a success, or the outage: no failure, but unreachable
    with pytest.raises(StoreUnavailable):  # still down: fails closed
        await limiter.take(CHECKS)
    store.down = False
    for _ in range(3):  # the owed slots were given back first: a full allowance again
        await limiter.take(CHECKS)
    with pytest.raises(RateLimited):
        await limiter.take(CHECKS)
