"""The rate limiter's slots (`gateway.ratelimit`): taken before a guess is checked, given
back unless it fails, given back after an outage once the store is reachable again, and exact
when a stalled Redis ran a command whose answer was lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.crypto import Sealer
from gateway.errors import StoreUnavailable
from gateway.ratelimit import Attempt, Limit, RateLimited, RateLimiter
from gateway.store import Slot
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore
from tests.helpers import RedisServer, freeze, thaw

CHECKS = [(Limit("login-account", 3, 600), "account-id")]


class Blinking(MemoryStore):
    """A store whose counters can be made unreachable, as Redis is during a fail-over."""

    down = False

    async def hold_slots(self, holds: Sequence[Slot]) -> list[int]:
        if self.down:
            raise StoreUnavailable("the store is down")
        return await super().hold_slots(holds)

    async def release_slots(self, holds: Sequence[Slot], unsure: bool = False) -> None:
        if self.down:
            raise StoreUnavailable("the store is down")
        await super().release_slots(holds, unsure)


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


async def allowance(limiter: RateLimiter) -> int:
    """How many wrong guesses CHECKS still lets through (each one failed, so it stays)."""
    guesses = 0
    while True:
        try:
            attempt = Attempt(await limiter.take(CHECKS))
        except RateLimited:
            return guesses
        attempt.failed()
        await limiter.settle(attempt)
        guesses += 1


async def stalled_commands_ran(store: RedisStore, key: str, gone: str) -> None:
    """Wait (bounded) until the commands sent into the stall and given up on have run, now that
    Redis is back: `gone`'s slot given back, and one more attempt's slot held."""
    async with asyncio.timeout(10):
        while True:
            fields = await store._redis.hgetall(key)
            if gone.encode() not in fields and fields.get(b"#") == b"2" and len(fields) == 3:
                return
            await asyncio.sleep(0.01)


async def test_answers_lost_in_a_stall_free_no_guess_and_count_none(
    frozen_redis: RedisServer,
) -> None:
    """Redis stops answering (SIGSTOP) while a right password gives its slot back and another
    attempt takes one: both time out, both run once Redis wakes, and the limiter, which owes
    them, repeats the give-back and undoes the take. The window must end exact: a counter
    given back twice freed a wrong guess's slot (four guesses against a limit of three), and
    a take counted without its attempt ever being checked brought the lock-out nearer."""
    store = RedisStore(frozen_redis.url, socket_timeout=0.3)
    limiter = RateLimiter(store, Sealer(b"k" * 32))
    key = limiter.key(*CHECKS[0])
    try:
        wrong = Attempt(await limiter.take(CHECKS))
        wrong.failed()
        await limiter.settle(wrong)  # one wrong guess, kept
        right = Attempt(await limiter.take(CHECKS))
        # Two connections open, so both commands go out into the stall (a new connection's
        # handshake would go unanswered first, and nothing be sent).
        await asyncio.gather(store.slots_held(key), store.slots_held(key))
        freeze(frozen_redis)
        taken, given = await asyncio.gather(
            limiter.take(CHECKS),  # sent, never answered: the attempt is not made (503)
            limiter.settle(right),  # a right password's give-back: sent, never answered
            return_exceptions=True,
        )
        assert isinstance(taken, StoreUnavailable) and given is None
        thaw(frozen_redis)
        await stalled_commands_ran(store, key, right.slots[0].member)
        assert await limiter.count(*CHECKS[0]) == 2  # a failure and a lost take: owed back
        assert await allowance(limiter) == 2  # the owed given back first: exactly 3 in all
        assert await limiter.count(*CHECKS[0]) == 3
    finally:
        await store.close()


async def test_only_a_windows_first_refusal_is_flagged_for_the_audit() -> None:
    limiter = RateLimiter(MemoryStore(prefix="t"), Sealer(b"k" * 32))

    async def refusals(checks: list[tuple[Limit, str]], what: str = "sign_in") -> list[bool]:
        firsts = []
        for _ in range(3):
            with pytest.raises(RateLimited) as refused:
                await limiter.take(checks)
            firsts.append(limiter.first_refusal(refused.value, what))
        return firsts

    assert await allowance(limiter) == 3
    # Refusals of another kind (a second-factor code on the same window) seen first: they
    # must not use up the sign-in's first, or they could silence its audit entry.
    assert await refusals(CHECKS, "code") == [True, False, False]
    assert await refusals(CHECKS) == [True, False, False]
    other = [(Limit("login-account", 1, 600), "another-account")]
    failed = Attempt(await limiter.take(other))
    failed.failed()
    await limiter.settle(failed)
    assert await refusals(other) == [True, False, False]  # each window its own first
