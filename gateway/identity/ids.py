"""Identity IDs: `(provider, subject)` → `<region>:<lowercase uuid>`, created race-safely.

Keys: `login:{provider}:{subject}` → identity ID (the *link*), and `identity:{id}` → the record
(logins, pools, dates, disabled). A provider is a connector id for sign-ins through the OP
(`local`, `google`…) or an identity-pool provider name (`accounts.google.com`, a developer
provider). Every operation touches one key at a time, so it runs unchanged on Redis Cluster,
and the writes are ordered so that no crash between two of them loses or duplicates anything:

- create/link: claim the link with SET NX first (of any number of concurrent first logins exactly
  one wins), then add the login to the record with compare-and-swap. A link whose record lacks
  the login is repaired on the next resolve.
- unlink/delete: delete the link first (the login stops resolving at once), then the record.

`linked` answers the one question asked over and over — which identity a workload's platform
subject is (every token exchange of every CI run and pod with that subject) — from this
replica's memory for `sessions.cache_ttl` seconds, once the store showed a complete link. Every
removal of a link says so on `identity-link-changed` (`gateway.store.changes`): every replica
forgets it, and none keeps any while it cannot hear that.

Never keyed on e-mail: two upstream accounts with the same address are two identities until
someone links them explicitly. If the store is down, everything raises StoreUnavailable: a new
ID is never handed out without having been stored.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from gateway.errors import GatewayError
from gateway.store import Get, Store, record_json
from gateway.store.changes import Changes

MAX_LOGINS = 20  # as Cognito: at most 20 logins linked to one identity
LINK_CHANNEL = "identity-link-changed"


class LoginTaken(GatewayError):
    """The login is already linked to another identity (`owner`)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        super().__init__(f"the login is linked to another identity: {owner}")


class TooManyLogins(GatewayError):
    """The identity already has MAX_LOGINS logins."""


class UnknownIdentity(GatewayError):
    """No identity with this ID."""


@dataclass(frozen=True)
class Login:
    """One provider account linked to an identity."""

    provider: str
    subject: str


@dataclass(frozen=True)
class Identity:
    """One identity and what is linked to it."""

    identity_id: str
    logins: list[Login]
    created: int
    last_modified: int
    disabled: bool = False
    pools: list[str] = field(default_factory=list)

    @property
    def authenticated(self) -> bool:
        """A guest identity has no logins."""
        return bool(self.logins)

    def has(self, provider: str, subject: str) -> bool:
        return Login(provider, subject) in self.logins

    @staticmethod
    def parse(raw: bytes) -> Identity:
        data = json.loads(raw)
        data["logins"] = [Login(**login) for login in data["logins"]]
        return Identity(**data)

    def dump(self) -> bytes:
        return record_json(self)


class IdentityStore:
    """Find, create, link and remove identities."""

    def __init__(self, store: Store, region: str, cache_ttl: float = 0.0) -> None:
        self._store = store
        self.region = region
        # Links known complete, by link key; told of every removal (see the module docstring).
        self.links: Changes[str] = Changes(store, LINK_CHANNEL, cache_ttl)

    def new_id(self) -> str:
        """A fresh identity ID in this deployment's region."""
        return f"{self.region}:{uuid.uuid4()}"

    async def find(self, provider: str, subject: str) -> str | None:
        """The identity a login is linked to, or None."""
        return self.found(await self._store.get(self._login_key(provider, subject)))

    async def linked(self, provider: str, subject: str) -> str | None:
        """The identity a login is linked to when its record has the login too (the link is
        complete), else None (then `resolve` creates or repairs). Kept in this replica's
        memory for a while once seen: answers that may be a few seconds behind only."""
        link = self._login_key(provider, subject)
        known = self.links.cache.get(link)
        if known is not None:
            return known
        generation = self.links.cache.generation
        identity_id = self.found(await self._store.get(link))
        if identity_id is None:
            return None
        record = await self.get(identity_id)
        if record is None or not record.has(provider, subject):
            return None
        self.links.cache.put(link, identity_id, generation)
        return identity_id

    def finding(self, provider: str, subject: str) -> Get:
        """`find` as a read for `Store.read_many`; `found` reads its answer."""
        return Get(self._login_key(provider, subject))

    @staticmethod
    def found(owner: bytes | None) -> str | None:
        return owner.decode() if owner else None

    async def resolve(self, provider: str, subject: str, pool: str | None = None) -> str:
        """The identity ID for this login, creating it on first sight."""
        link = self._login_key(provider, subject)
        candidate = self.new_id()
        if await self._store.create(link, candidate.encode()):
            identity_id = candidate
        else:
            existing = await self._store.get(link)
            if existing is None:  # unlinked between our two calls: start again
                return await self.resolve(provider, subject, pool)
            identity_id = existing.decode()
        await self._ensure(identity_id, Login(provider, subject), pool)
        return identity_id

    async def create_guest(self, pool: str) -> Identity:
        """An unauthenticated identity (no logins) in `pool`."""
        now = int(time.time())
        identity = Identity(self.new_id(), [], now, now, pools=[pool])
        await self._store.put(self._identity_key(identity.identity_id), identity.dump())
        return identity

    async def get(self, identity_id: str) -> Identity | None:
        """The identity record, or None."""
        raw = await self._store.get(self._identity_key(identity_id))
        return None if raw is None else Identity.parse(raw)

    async def link(self, identity_id: str, provider: str, subject: str) -> Identity:
        """Link a login to an existing identity; LoginTaken if another identity has it."""
        identity = await self.get(identity_id)
        if identity is None:
            raise UnknownIdentity(identity_id)
        if identity.has(provider, subject):
            return identity
        if len(identity.logins) >= MAX_LOGINS:
            raise TooManyLogins(identity_id)
        link = self._login_key(provider, subject)
        if not await self._store.create(link, identity_id.encode()):
            owner = await self._store.get(link)
            if owner is not None and owner.decode() != identity_id:
                raise LoginTaken(owner.decode())
            await self._store.put(link, identity_id.encode())
        try:
            return await self._modify(identity_id, _adding(Login(provider, subject)))
        except TooManyLogins:
            async with self.links.writing(link):
                await self._store.delete(link)
            raise

    async def unlink(self, identity_id: str, provider: str, subject: str) -> Identity:
        """Remove a login from an identity (the identity stays)."""
        link = self._login_key(provider, subject)
        # Told even when the link is gone already: a retry after a removal whose publish
        # failed must still reach the replicas that keep the link (`linked`).
        async with self.links.writing(link):
            if await self.find(provider, subject) == identity_id:
                await self._store.delete(link)
        login = Login(provider, subject)
        return await self._modify(
            identity_id,
            lambda i: replace(i, logins=[x for x in i.logins if x != login]),
        )

    async def add_pool(self, identity_id: str, pool: str) -> Identity:
        """Record that the identity was used in `pool` (ListIdentities shows it there)."""
        return await self._modify(
            identity_id, lambda i: i if pool in i.pools else replace(i, pools=[*i.pools, pool])
        )

    async def delete(self, identity_id: str) -> bool:
        """Delete the identity and its links; False if it did not exist."""
        identity = await self.get(identity_id)
        if identity is None:
            return False
        for login in identity.logins:
            link = self._login_key(login.provider, login.subject)
            async with self.links.writing(link):  # told even when gone already, as in unlink
                if await self.find(login.provider, login.subject) == identity_id:
                    await self._store.delete(link)
        await self._store.delete(self._identity_key(identity_id))
        return True

    async def page(
        self, pool: str | None, cursor: str | None, limit: int, hide_disabled: bool = False
    ) -> tuple[list[Identity], str | None]:
        """Up to `limit` identities (of `pool`, if given) after the opaque `cursor`, and the
        cursor of the next page (None at the end). Order: by identity ID."""
        # A full key scan per page: fine for the tens of thousands of identities a gateway
        # holds; a sorted index per pool is the next step if that ever changes.
        base = self._store.key("identity", "")
        found = sorted(
            [
                key[len(base) :]
                async for key in self._store.scan(base)
                if cursor is None or key[len(base) :] > cursor
            ]
        )
        page: list[Identity] = []
        for identity_id in found:
            identity = await self.get(identity_id)
            if identity is None or (pool is not None and pool not in identity.pools):
                continue
            if hide_disabled and identity.disabled:
                continue
            page.append(identity)
            if len(page) == limit:
                more = identity_id != found[-1]
                return page, identity_id if more else None
        return page, None

    async def restore(self, identity: Identity) -> str:
        """Put back an exported identity and its links: 'created', 'existing' or 'conflict'
        (one of its logins belongs to another identity here, and was left there)."""
        created = await self._store.create(
            self._identity_key(identity.identity_id), identity.dump()
        )
        outcome = "created" if created else "existing"
        for login in identity.logins:
            link = self._login_key(login.provider, login.subject)
            if not await self._store.create(link, identity.identity_id.encode()):
                owner = await self._store.get(link)
                if owner is not None and owner.decode() != identity.identity_id:
                    outcome = "conflict"
        return outcome

    async def _ensure(self, identity_id: str, login: Login, pool: str | None) -> None:
        now = int(time.time())
        record = Identity(identity_id, [login], now, now, pools=[pool] if pool else [])
        if await self._store.create(self._identity_key(identity_id), record.dump()):
            return
        current = await self.get(identity_id)
        if current is not None and (
            not current.has(login.provider, login.subject) or (pool and pool not in current.pools)
        ):
            # A crash left the link without its login in the record: repair it.
            def repair(i: Identity) -> Identity:
                i = _adding(login)(i)
                return i if not pool or pool in i.pools else replace(i, pools=[*i.pools, pool])

            await self._modify(identity_id, repair)

    async def _modify(self, identity_id: str, change: Callable[[Identity], Identity]) -> Identity:
        """Apply `change` to the record (`Store.modify`: compare-and-swap, retried on
        contention, StoreContended when it never wins)."""

        def apply(raw: bytes | None) -> bytes | None:
            if raw is None:
                raise UnknownIdentity(identity_id)
            current = Identity.parse(raw)
            updated = change(current)
            if updated == current:
                return None
            return replace(updated, last_modified=int(time.time())).dump()

        outcome = await self._store.modify(self._identity_key(identity_id), apply, attempts=20)
        if outcome.value is None:  # apply() raises first; this keeps the type honest
            raise UnknownIdentity(identity_id)
        return Identity.parse(outcome.value)

    def _login_key(self, provider: str, subject: str) -> str:
        return self._store.key("login", provider, subject)

    def _identity_key(self, identity_id: str) -> str:
        return self._store.key("identity", identity_id)


def _adding(login: Login) -> Callable[[Identity], Identity]:
    def add(identity: Identity) -> Identity:
        if login in identity.logins:
            return identity
        if len(identity.logins) >= MAX_LOGINS:
            raise TooManyLogins(identity.identity_id)
        return replace(identity, logins=[*identity.logins, login])

    return add
