"""What a replica keeps in memory of rarely changing records, in step with every replica.

Some answers read the same record over and over while it almost never changes: GetUser reads an
account (`gateway.users.changes`), a workload's token exchange reads the link from its
platform's subject to its identity (`gateway.identity.ids`). Each replica keeps what it read for
a few seconds (`ReplicaCache`: bounded, least recently used out), as Keycloak keeps users and
links between cluster invalidations, and `Changes` keeps it honest:

- every write of such a record says so (`Changes.writing`, also when the write's answer was
  lost): this replica forgets the record at once, and the others when the store's pub/sub
  tells them (one channel per kind of record);
- the cache is off until Redis confirms that subscription and again whenever it is lost or
  goes silent (`gateway.store.redis`'s PING), so a change missed in an outage cannot keep an
  old record in use;
- a read that started before a change, or before the cache came back on, cannot put back what
  it read (`ReplicaCache.generation`).

Only answers that may be a few seconds behind use them; every check that decides a write reads
the store.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

from gateway.errors import StoreUnavailable
from gateway.store import Store, keep_in_step

T = TypeVar("T")


class ReplicaCache(Generic[T]):
    """What was read of each record, by its id, for `ttl` seconds."""

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self.enabled = False
        # Moves on every eviction and switch: a read begun before one may be older than it.
        self.generation = 0
        self._entries: OrderedDict[str, tuple[T, float]] = OrderedDict()

    def get(self, key: str) -> T | None:
        entry = self._entries.get(key)
        if entry is None or not self.enabled:
            return None
        if time.monotonic() >= entry[1]:
            del self._entries[key]
            return None
        return entry[0]

    def put(self, key: str, value: T, generation: int) -> None:
        """Keep `value`, read since `generation`, unless a record changed meanwhile."""
        if not self.enabled or self.ttl <= 0 or generation != self.generation:
            return
        self._entries[key] = (value, time.monotonic() + self.ttl)
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def evict(self, key: str) -> None:
        self.generation += 1
        self._entries.pop(key, None)

    def on(self) -> None:
        self.generation += 1  # reads begun while it was off may predate a change it missed
        self.enabled = self.ttl > 0

    def off(self) -> None:
        self.enabled = False
        self.generation += 1
        self._entries.clear()


class Changes(Generic[T]):
    """Says when a record of one kind changed (on `channel`), and keeps this replica's
    `ReplicaCache` of them in step. With `ttl` 0 nothing is kept, but changes are still told:
    the command line and the other replicas write the same records."""

    def __init__(self, store: Store, channel: str, ttl: float = 0.0) -> None:
        self._store = store
        self.channel = channel
        self.cache: ReplicaCache[T] = ReplicaCache(ttl)

    async def changed(self, key: str) -> None:
        """After a write of the record: forgotten here now, everywhere else when told."""
        self.cache.evict(key)
        await self._store.publish(self._store.key(self.channel), key.encode())

    @contextlib.asynccontextmanager
    async def writing(self, key: str) -> AsyncIterator[None]:
        """Around a write of the record: the change is told after it, also when the write
        failed — one whose answer was lost (a timeout) may have landed, and an eviction more
        costs nothing."""
        try:
            yield
        except Exception:
            with contextlib.suppress(StoreUnavailable):
                await self.changed(key)
            raise
        await self.changed(key)

    async def listen(self) -> None:
        """Keep the cache in step with changes everywhere (runs for good; the cache is off
        whenever the subscription is not in place)."""
        await keep_in_step(
            self._store, self._store.key(self.channel), self.cache, self.cache.evict, self.channel
        )
