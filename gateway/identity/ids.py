"""Identity IDs: `(connector_id, subject)` → `<region>:<lowercase uuid>`, created race-safely.

Keys: `login:{connector_id}:{subject}` → identity ID (the link), and `identity:{id}` → the
identity record (logins, created). Resolution claims the link with SET NX: of any number of
concurrent first logins exactly one creates the ID, the others read it. The link is written
before the record, and a link whose record is missing (a crash between the two writes) gets its
record recreated on the next resolve, so no ordering of crashes loses an identity or mints two.

Never keyed on e-mail: two upstream accounts with the same address are two identities until
someone links them explicitly. If the store is down, resolution raises StoreUnavailable: a new
ID is never minted without having been stored.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field

from gateway.store import Store


@dataclass(frozen=True)
class Identity:
    """One identity and the logins linked to it."""

    identity_id: str
    logins: list[str]  # "connector_id:subject"
    created: int
    last_modified: int
    disabled: bool = False
    attributes: dict[str, str] = field(default_factory=dict)


def login_name(connector_id: str, subject: str) -> str:
    """How a login is written in records and keys."""
    return f"{connector_id}:{subject}"


class IdentityResolver:
    """Find or create the identity ID behind a login."""

    def __init__(self, store: Store, region: str) -> None:
        self._store = store
        self._region = region

    def new_id(self) -> str:
        """A fresh identity ID in this deployment's region."""
        return f"{self._region}:{uuid.uuid4()}"

    async def resolve(self, connector_id: str, subject: str) -> str:
        """The identity ID for this login, creating it on first sight."""
        login = login_name(connector_id, subject)
        link = self._login_key(login)
        candidate = self.new_id()
        if await self._store.create(link, candidate.encode()):
            identity_id = candidate
        else:
            existing = await self._store.get(link)
            if existing is None:  # unlinked between our two calls: try once more from the top
                return await self.resolve(connector_id, subject)
            identity_id = existing.decode()
        await self._ensure_record(identity_id, login)
        return identity_id

    async def get(self, identity_id: str) -> Identity | None:
        """The identity record, or None."""
        raw = await self._store.get(self._identity_key(identity_id))
        return None if raw is None else Identity(**json.loads(raw))

    async def _ensure_record(self, identity_id: str, login: str) -> None:
        now = int(time.time())
        record = Identity(identity_id=identity_id, logins=[login], created=now, last_modified=now)
        await self._store.create(
            self._identity_key(identity_id), json.dumps(asdict(record)).encode()
        )

    def _login_key(self, login: str) -> str:
        return self._store.key("login", login)

    def _identity_key(self, identity_id: str) -> str:
        return self._store.key("identity", identity_id)
