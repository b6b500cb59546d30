"""Fixed-window failure counters in the store, for sign-in and anything else that must not be
guessed at speed.

A limit is (what, how many, window). Failures are counted with one INCR that starts the window
on its first hit; once a counter is over its limit, attempts are refused with the window's
remaining time as Retry-After. Windows always expire, so an attacker can slow a victim's sign-in
down but never lock the account for good; keys are hashed, so the store never holds the
e-mail addresses or IPs being counted.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from gateway.crypto import Sealer
from gateway.errors import GatewayError
from gateway.store import Get, Store


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


class RateLimiter:
    """Check and count failures against several limits at once."""

    def __init__(self, store: Store, sealer: Sealer) -> None:
        self._store = store
        self._sealer = sealer

    def _key(self, limit: Limit, value: str) -> str:
        if limit.scope.endswith("-ip"):
            value = _subscriber(value)
        return self._store.key("rl", limit.scope, self._sealer.keyed_hash(value, purpose="rl"))

    async def check(self, checks: list[tuple[Limit, str]]) -> None:
        """Raise RateLimited if any counter is already over its limit (one round trip for all
        of them)."""
        keys = [self._key(limit, value) for limit, value in checks]
        counts = await self._store.read_many([Get(key) for key in keys])
        for (limit, _), key, raw in zip(checks, keys, counts, strict=True):
            if raw is not None and int(raw) >= limit.count:
                ttl = await self._store.ttl(key)
                raise RateLimited(max(1, math.ceil(ttl if ttl is not None else limit.window)))

    async def fail(self, checks: list[tuple[Limit, str]]) -> None:
        """Count one failure against every limit."""
        for limit, value in checks:
            await self._store.incr(self._key(limit, value), ttl=limit.window)


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
