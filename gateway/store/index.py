"""A per-owner expiring set: everything that belongs to an identity (its sessions, its token
families), so it can all end at once.

It is a thin naming layer over the store's `index_*` primitives (a Redis sorted set scored by
expiry), which add atomically: any number of concurrent sign-ins or token grants for one
identity all land, with no compare-and-swap to lose.
"""

from __future__ import annotations

from gateway.store import IndexAdd, Store


class MemberIndex:
    """owner → {member until expires_at}."""

    def __init__(self, store: Store, name: str) -> None:
        self._store = store
        self._name = name

    def _key(self, owner: str) -> str:
        return self._store.key(self._name, owner)

    async def add(self, owner: str, member: str, expires_at: int) -> None:
        """Remember `member` until `expires_at` (epoch seconds)."""
        await self._store.index_add(self._key(owner), member, expires_at)

    def adding(self, owner: str, member: str, expires_at: int) -> IndexAdd:
        """`add` as a write for `Store.write_many`."""
        return IndexAdd(self._key(owner), member, expires_at)

    async def members(self, owner: str) -> list[str]:
        """The members that have not expired."""
        return await self._store.index_members(self._key(owner))

    async def clear(self, owner: str) -> list[str]:
        """Remove and return every live member."""
        return await self._store.index_take(self._key(owner))
