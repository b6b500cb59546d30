"""Accounts kept in memory for the calls that only read them, in step with every replica.

An app built on Amplify calls GetUser (`fetchUserAttributes`) whenever it renders the user: the
account's record and its second factors, read over and over and changed rarely. Each replica
keeps what it read for `sessions.cache_ttl` seconds (bounded, least recently used out), the way
it keeps sessions and grants, and as Keycloak keeps users between cluster invalidations:

- every write of an account's record (`UserDirectory`) or of its second factors (`MfaStore`)
  says so (`AccountChanges.writing`, also when the write's answer was lost): this replica
  forgets the account at once, and the others when the store's pub/sub tells them
  (`account-changed`);
- the cache is off until Redis confirms that subscription and again whenever it is lost or
  goes silent (`gateway.store.redis`'s PING), so a change missed in an outage cannot keep an
  old account in use;
- a read that started before a change, or before the cache came back on, cannot put back what
  it read (`AccountCache.generation`).

Only read-only answers use it (GetUser). Every check that decides something — a sign-in, a
password change, a read before a write — reads the store, as before.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Generic, TypeVar

from gateway.errors import StoreUnavailable
from gateway.store import Store, keep_in_step

if TYPE_CHECKING:
    from gateway.users.directory import User, UserDirectory
    from gateway.users.mfa import MfaRecord, MfaStore

CHANNEL = "account-changed"

T = TypeVar("T")


class AccountCache(Generic[T]):
    """What was read of each account, by user id, for `ttl` seconds."""

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self.enabled = False
        # Moves on every eviction and switch: a read begun before one may be older than it.
        self.generation = 0
        self._entries: OrderedDict[str, tuple[T, float]] = OrderedDict()

    def get(self, user_id: str) -> T | None:
        entry = self._entries.get(user_id)
        if entry is None or not self.enabled:
            return None
        if time.monotonic() >= entry[1]:
            del self._entries[user_id]
            return None
        return entry[0]

    def put(self, user_id: str, value: T, generation: int) -> None:
        """Keep `value`, read since `generation`, unless an account changed meanwhile."""
        if not self.enabled or self.ttl <= 0 or generation != self.generation:
            return
        self._entries[user_id] = (value, time.monotonic() + self.ttl)
        self._entries.move_to_end(user_id)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def evict(self, user_id: str) -> None:
        self.generation += 1
        self._entries.pop(user_id, None)

    def on(self) -> None:
        self.generation += 1  # reads begun while it was off may predate a change it missed
        self.enabled = self.ttl > 0

    def off(self) -> None:
        self.enabled = False
        self.generation += 1
        self._entries.clear()


Account = tuple["User", "MfaRecord | None"]


class AccountChanges:
    """Says when an account changed, and keeps this replica's `AccountCache` in step."""

    def __init__(self, store: Store, ttl: float = 0.0) -> None:
        self._store = store
        self.cache: AccountCache[Account] = AccountCache(ttl)

    async def changed(self, user_id: str) -> None:
        """After a write of the account: forgotten here now, everywhere else when told."""
        self.cache.evict(user_id)
        await self._store.publish(self._store.key(CHANNEL), user_id.encode())

    @contextlib.asynccontextmanager
    async def writing(self, user_id: str) -> AsyncIterator[None]:
        """Around a write of the account: the change is told after it, also when the write
        failed — one whose answer was lost (a timeout) may have landed, and an eviction more
        costs nothing."""
        try:
            yield
        except Exception:
            with contextlib.suppress(StoreUnavailable):
                await self.changed(user_id)
            raise
        await self.changed(user_id)

    async def read(self, user_id: str, users: UserDirectory, mfa: MfaStore) -> Account | None:
        """The account and its second factors, from the cache or (then kept) the store."""
        found = self.cache.get(user_id)
        if found is not None:
            return found
        generation = self.cache.generation
        user = await users.get(user_id)
        if user is None:
            return None
        found = (user, await mfa.get(user_id))
        self.cache.put(user_id, found, generation)
        return found

    async def listen(self) -> None:
        """Keep the cache in step with changes everywhere (runs for good; the cache is off
        whenever the subscription is not in place)."""
        await keep_in_step(
            self._store, self._store.key(CHANNEL), self.cache, self.cache.evict, "account-change"
        )
