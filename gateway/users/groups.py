"""User-pool groups: the ones in settings (`user_pool.groups`) and the ones administrators
manage at run time (the user-pool API's CreateGroup…), kept in the store.

Settings win. A group named in settings is the operator's reviewed configuration (and what
`cognate pools check` builds IAM trust policies from), so the API cannot create, change or
delete one of that name (`GroupFromSettings`); members are added and removed alike. A stored
group that settings later name is shadowed by the settings' definition, and comes back as it
was if settings drop it again.

All stored groups live in one record (`user-groups`, a JSON object by name): one key, so a
change is one compare-and-swap on any Redis (Cluster too), and the directory reads it in the
same round trip as a user record, so every replica's tokens carry a change at once. Cognito
allows 10,000 groups a pool; even that many is one value of ~1 MB read only when it changed
(the cached bytes are compared first). Memberships stay on the user records (`User.groups`),
with an index per group for ListUsersInGroup (gateway.users.search).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from gateway.errors import GatewayError
from gateway.settings import GroupSettings
from gateway.store import Get, Store

# No Precedence (Cognito's null) sorts after every number.
NO_PRECEDENCE = 2**31


class UnknownGroup(GatewayError):
    """No group of this name, in settings or in the store."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no group {name!r} in this user pool")
        self.name = name


class GroupExists(GatewayError):
    """A group of this name already exists."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a group named {name!r} already exists")
        self.name = name


class GroupFromSettings(GatewayError):
    """The group is defined in settings: change it there."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"the group {name!r} is defined in the settings (user_pool.groups): change it there"
        )
        self.name = name


@dataclass(frozen=True)
class Group:
    """A group as the API shows it; `from_settings` when the settings define it."""

    name: str
    description: str | None = None
    precedence: int | None = None
    role_arn: str | None = None
    created: int = 0
    updated: int = 0
    from_settings: bool = False

    @property
    def order(self) -> tuple[int, str]:
        """Where it sorts among a user's groups: lowest precedence first, then by name."""
        return (NO_PRECEDENCE if self.precedence is None else self.precedence, self.name)


def _from_settings(group: GroupSettings) -> Group:
    return Group(
        group.name, group.description, group.precedence, group.role_arn, from_settings=True
    )


class Groups:
    """Every group of the pool: settings' and the store's (settings win)."""

    def __init__(self, store: Store, configured: list[GroupSettings] | None = None) -> None:
        self._store = store
        self.configured = {g.name: _from_settings(g) for g in configured or []}
        self._raw: bytes | None = None
        self._stored: dict[str, Group] = {}

    @property
    def key(self) -> str:
        return self._store.key("user-groups")

    def reading(self) -> Get:
        """The read that refreshes `known` (for a `read_many` beside another read)."""
        return Get(self.key)

    def refresh(self, raw: bytes | None) -> None:
        """Take the stored record just read (parsed only when it changed)."""
        if raw != self._raw:
            stored = json.loads(raw) if raw else {}
            self._stored = {name: Group(**value) for name, value in stored.items()}
            self._raw = raw

    async def load(self) -> None:
        """Read the stored groups now."""
        self.refresh(await self._store.get(self.key))

    def known(self) -> dict[str, Group]:
        """Every group, as last read (settings win over stored ones of the same name)."""
        return {**self._stored, **self.configured}

    async def all(self) -> list[Group]:
        """Every group, by name."""
        await self.load()
        return sorted(self.known().values(), key=lambda g: g.name)

    async def get(self, name: str) -> Group:
        """The group, or UnknownGroup."""
        await self.load()
        group = self.known().get(name)
        if group is None:
            raise UnknownGroup(name)
        return group

    async def create(self, name: str, **fields: object) -> Group:
        """A new stored group (`fields`: description, precedence, role_arn); GroupExists when
        settings or the store have the name."""
        if name in self.configured:
            raise GroupExists(name)
        now = int(time.time())
        group = replace(Group(name, created=now, updated=now), **fields)  # type: ignore[arg-type]

        def add(stored: dict[str, Group]) -> dict[str, Group]:
            if name in stored:
                raise GroupExists(name)
            return {**stored, name: group}

        await self._change(add)
        return group

    async def update(self, name: str, **changes: object) -> Group:
        """Change a stored group's description, precedence or role_arn (the keys given)."""
        self._writable(name)
        now = int(time.time())
        updated: list[Group] = []

        def change(stored: dict[str, Group]) -> dict[str, Group]:
            if name not in stored:
                raise UnknownGroup(name)
            updated[:] = [replace(stored[name], **changes, updated=now)]  # type: ignore[arg-type]
            return {**stored, name: updated[0]}

        await self._change(change)
        return updated[0]

    async def delete(self, name: str) -> None:
        """Remove a stored group (its members are the caller's to update first)."""
        self._writable(name)

        def remove(stored: dict[str, Group]) -> dict[str, Group]:
            if name not in stored:
                raise UnknownGroup(name)
            return {k: v for k, v in stored.items() if k != name}

        await self._change(remove)

    def _writable(self, name: str) -> None:
        if name in self.configured:
            raise GroupFromSettings(name)

    async def _change(self, change: Callable[[dict[str, Group]], dict[str, Group]]) -> None:
        def apply(raw: bytes | None) -> bytes:
            stored = {k: Group(**v) for k, v in (json.loads(raw) if raw else {}).items()}
            result = change(stored)
            return json.dumps({k: asdict(v) for k, v in sorted(result.items())}).encode()

        outcome = await self._store.modify(self.key, apply)
        self.refresh(outcome.value)
