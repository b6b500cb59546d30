"""Accounts kept in memory for the calls that only read them, in step with every replica
(`gateway.store.changes`).

An app built on Amplify calls GetUser (`fetchUserAttributes`) whenever it renders the user: the
account's record and its second factors, read over and over and changed rarely. Each replica
keeps what it read for `sessions.cache_ttl` seconds, the way it keeps sessions and grants. Every
write of an account's record (`UserDirectory`) or of its second factors (`MfaStore`) says so
(`AccountChanges.writing`, also when the write's answer was lost), on `account-changed`.

Only read-only answers use it (GetUser). Every check that decides something — a sign-in, a
password change, a read before a write — reads the store, as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.store import Store
from gateway.store.changes import Changes

if TYPE_CHECKING:
    from gateway.users.directory import User, UserDirectory
    from gateway.users.mfa import MfaRecord, MfaStore

CHANNEL = "account-changed"


Account = tuple["User", "MfaRecord | None"]


class AccountChanges(Changes[Account]):
    """Says when an account changed, and keeps this replica's cache of accounts in step."""

    def __init__(self, store: Store, ttl: float = 0.0) -> None:
        super().__init__(store, CHANNEL, ttl)

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
