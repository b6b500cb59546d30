"""Fixed-window failure counters in the store, for sign-in and anything else that must not be
guessed at speed.

A limit is (what, how many, window). Failures are counted with one INCR that starts the window
on its first hit; once a counter is over its limit, attempts are refused with the window's
remaining time as Retry-After. Guesses are counted before they are checked (`take`, then
`settle`): each attempt takes a slot with an atomic INCR first and gives it back if it turns
out not to be a failure, so a burst of parallel guesses gets the limit's number of checks, not
one per request in flight. Windows always expire, so an attacker can slow a victim's sign-in
down but never lock the account for good; keys are hashed, so the store never holds the
e-mail addresses or IPs being counted.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field

from gateway.crypto import Sealer
from gateway.errors import GatewayError, Unavailable
from gateway.store import Store


class RateLimited(GatewayError):
    """Too many attempts; `retry_after` seconds until the window ends."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many attempts; retry after {retry_after}s")


@dataclass(frozen=True)
class Limit:
    """At most `count` failures per `window` seconds for one `scope` value."""

    scope: str
    count: int
    window: int


@dataclass
class Attempt:
    """One attempt's slots (`RateLimiter.take`): `failed()` when it is a failure (it stays
    counted); otherwise `RateLimiter.settle` gives them back."""

    keys: list[str]
    is_failure: bool = field(default=False)

    def failed(self) -> None:
        self.is_failure = True


class RateLimiter:
    """Take and count attempts against several limits at once."""

    OWED = 10_000  # slots owed back at most (see give_back)

    def __init__(self, store: Store, sealer: Sealer) -> None:
        self._store = store
        self._sealer = sealer
        # Slots an attempt could not give back because the store was down at that moment:
        # given back by the next call that reaches the store, so a Redis blip in the middle
        # of a sign-in does not lock its user out for the window once Redis is back. (A
        # counter whose window has ended meanwhile is left alone: `Store.decr`.)
        self._owed: list[str] = []

    def _key(self, limit: Limit, value: str) -> str:
        if limit.scope.endswith("-ip"):
            value = _subscriber(value)
        return self._store.key("rl", limit.scope, self._sealer.keyed_hash(value, purpose="rl"))

    async def take(self, checks: list[tuple[Limit, str]]) -> list[str]:
        """Count one attempt against every limit before it is made (an atomic INCR each, all
        in one round trip): RateLimited, with nothing left counted, if that puts any counter
        over its limit. Returns the counters' keys (for `give_back`). When the store fails
        mid-way, what it may have counted stays counted (a guess is never made free)."""
        keys = [self._key(limit, value) for limit, value in checks]
        if self._owed:
            owed, self._owed = self._owed, []
            await self.give_back(owed)
        windows = [(key, limit.window) for (limit, _), key in zip(checks, keys, strict=True)]
        counts = await self._store.incr_many(windows)
        over = [
            (limit, key)
            for (limit, _), key, count in zip(checks, keys, counts, strict=True)
            if count > limit.count
        ]
        if over:
            limit, key = over[0]
            try:
                ttl = await self._store.ttl(key)
            finally:
                await self.give_back(keys)
            raise RateLimited(max(1, math.ceil(ttl if ttl is not None else limit.window)))
        return keys

    async def give_back(self, keys: list[str]) -> None:
        """Undo `take` for an attempt that was not a failure (one round trip). With the store
        down, the slots are owed, and given back by the next `take` that reaches it. (A
        stalled store may still run a give-back whose answer was lost, and then the owed one
        too: a counter can end one below its failures, never below 0 — `Store.decr`.)"""
        if not keys:
            return
        try:
            await self._store.decr_many(keys)
        except Unavailable:
            self._owed = [*self._owed, *keys][-self.OWED :]

    async def settle(self, attempt: Attempt) -> None:
        """After an attempt begun with `take`: its slots back unless it `failed()` (a success,
        a refusal for another reason, an outage or an overload mid-way is no guess)."""
        if not attempt.is_failure:
            await self.give_back(attempt.keys)


def _subscriber(address: str) -> str:
    """What a per-IP limit counts: an IPv4 address, or the /64 of an IPv6 one (what one
    subscriber or host is usually given: counting each /128 would give a client 2^64
    fresh counters)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
