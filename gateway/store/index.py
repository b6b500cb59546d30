"""A small expiring set per owner, kept as one record (so it is a single key on Cluster).

Used to find everything that belongs to an identity — its sessions, its token families — when
it must all end at once. Members carry their own expiry and are pruned on every write; the
record lives as long as its longest member. Writes are compare-and-swap, so concurrent logins
never lose each other's entries.
"""

from __future__ import annotations

import json
import time

from gateway.errors import StoreUnavailable
from gateway.store import Store

MAX_MEMBERS = 500  # beyond this, the members that expire first are forgotten


class MemberIndex:
    """owner → {member: expires_at}."""

    def __init__(self, store: Store, name: str) -> None:
        self._store = store
        self._name = name

    def _key(self, owner: str) -> str:
        return self._store.key(self._name, owner)

    async def add(self, owner: str, member: str, expires_at: int) -> None:
        """Remember `member` until `expires_at` (epoch seconds)."""
        key = self._key(owner)
        for _ in range(20):
            raw = await self._store.get(key)
            now = int(time.time())
            members = {m: t for m, t in (json.loads(raw) if raw else {}).items() if t > now}
            members[member] = expires_at
            if len(members) > MAX_MEMBERS:
                members = dict(sorted(members.items(), key=lambda kv: kv[1])[-MAX_MEMBERS:])
            blob = json.dumps(members).encode()
            ttl = max(members.values()) - now
            if raw is None:
                if await self._store.create(key, blob, ttl=ttl):
                    return
            elif await self._store.update(key, raw, blob, ttl=ttl):
                return
        raise StoreUnavailable(f"{self._name} index of {owner} is too contended")

    async def members(self, owner: str) -> list[str]:
        """The members that have not expired."""
        raw = await self._store.get(self._key(owner))
        now = time.time()
        return [m for m, t in (json.loads(raw) if raw else {}).items() if t > now]

    async def clear(self, owner: str) -> list[str]:
        """Remove and return every live member."""
        raw = await self._store.take(self._key(owner))
        now = time.time()
        return [m for m, t in (json.loads(raw) if raw else {}).items() if t > now]
