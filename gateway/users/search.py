"""The user directory's search index: one sorted set per searchable attribute, so listing
users by an exact value or a prefix reads one page of one key, however many users there are.

Each set `user-search:<attribute>` holds `<value>\\x00<user_id>` members (all scored 0, ordered by
their bytes: ZRANGEBYLEX); `user-search:group:<name>` holds a group's members' ids. The directory
keeps them in step on every save (`changes`), adding new entries before the record is written and
removing old ones after, so a crash between the writes leaves at worst an entry that points at a
record which no longer matches it: readers re-check every record they load (`matches`), and the
next save of that user repairs it.

What does not live here: the Cognito `Filter` grammar (gateway.cognito.listing) and the records
themselves (gateway.users.directory).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Literal

from gateway.store import SortedAdd, SortedRemove, Store, Write

if TYPE_CHECKING:
    from gateway.users.directory import User

UserStatus = Literal[
    "UNCONFIRMED", "CONFIRMED", "FORCE_CHANGE_PASSWORD", "RESET_REQUIRED", "EXTERNAL_PROVIDER"
]
# The attributes Cognito's ListUsers filters on (`sub` is found through the identity instead).
SEARCHABLE = (
    "username", "email", "phone_number", "name", "given_name", "family_name",
    "preferred_username", "cognito:user_status", "status",
)  # fmt: skip
SEPARATOR = "\x00"


def user_status(user: User) -> UserStatus:
    """Cognito's UserStatus of an account: a reset an administrator asked for, a temporary
    password, a sign-up not yet confirmed (`confirmed`, or for older records a verified
    e-mail), an account without a password of its own (it signs in elsewhere), or CONFIRMED."""
    if user.password_reset_required:
        return "RESET_REQUIRED"
    if user.must_change_password:
        return "FORCE_CHANGE_PASSWORD"
    if not (user.email_verified if user.confirmed is None else user.confirmed):
        return "UNCONFIRMED"
    if user.password_hash is None:
        return "EXTERNAL_PROVIDER"
    return "CONFIRMED"


def searchable_values(user: User) -> dict[str, str]:
    """The values of `user` that ListUsers can filter on, by Cognito's attribute names."""
    values = {
        "username": user.user_id,  # Cognito's Username here is the user id (GetUser's too)
        "email": user.email,
        "status": "Enabled" if user.enabled else "Disabled",
        "cognito:user_status": user_status(user),
    }
    if user.name:
        values["name"] = user.name
    for attribute in ("given_name", "family_name", "phone_number", "preferred_username"):
        if user.standard.get(attribute):
            values[attribute] = str(user.standard[attribute])
    if user.username:
        values["preferred_username"] = user.username
    return values


def _entries(user: User | None) -> set[tuple[str, str]]:
    if user is None:
        return set()
    found = {
        (attribute, f"{value.replace(SEPARATOR, '')}{SEPARATOR}{user.user_id}")
        for attribute, value in searchable_values(user).items()
    }
    found |= {(f"group:{group}", user.user_id) for group in user.groups}
    return found


class SearchIndex:
    """The sorted sets of the directory's searchable attributes and group memberships."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._built = store.key("user-search-built")
        self._ready = False

    def key(self, attribute: str) -> str:
        return self._store.key("user-search", attribute)

    def changes(self, before: User | None, after: User | None) -> tuple[list[Write], list[Write]]:
        """(additions to write before the record, removals to write after it)."""
        old, new = _entries(before), _entries(after)
        adds: list[Write] = [SortedAdd(self.key(a), m) for a, m in sorted(new - old)]
        removes: list[Write] = [SortedRemove(self.key(a), m) for a, m in sorted(old - new)]
        return adds, removes

    async def page(
        self, attribute: str, value: str, prefix: bool, after: str | None, count: int
    ) -> list[tuple[str, str]]:
        """Up to `count` (member, user id) whose `attribute` equals `value` (or starts with it,
        `prefix`), after the member `after`. Candidates: callers re-check the records."""
        start = value.replace(SEPARATOR, "") + ("" if prefix else SEPARATOR)
        members = await self._store.sorted_page(self.key(attribute), start, after, count)
        return [(m, m.rpartition(SEPARATOR)[2]) for m in members]

    async def rebuild(self, batches: AsyncIterator[list[User]]) -> int:
        """Index every account the batches hold (idempotent): how many. Accounts saved since
        the index exists are in it already; this is for the records of an older release."""
        count = 0
        async for users in batches:
            await self._store.write_many([w for u in users for w in self.changes(None, u)[0]])
            count += len(users)
        await self._store.put(self._built, b"1")
        self._ready = True
        return count

    async def ready(self) -> bool:
        """Whether the index has been built once (then every save keeps it whole)."""
        if not self._ready and await self._store.get(self._built) is not None:
            self._ready = True
        return self._ready

    async def rebuild_once(self, batches: Callable[[], AsyncIterator[list[User]]]) -> None:
        """`rebuild`, by one replica at a time (the others answer from the index meanwhile)."""
        if await self._store.create(self._store.key("user-search-building"), b"1", ttl=600):
            await self.rebuild(batches())

    async def group_page(self, group: str, after: str | None, count: int) -> list[str]:
        """Up to `count` ids of `group`'s members, after the id `after` (in id order)."""
        return await self._store.sorted_page(self.key(f"group:{group}"), "", after, count)


def matches(user: User, attribute: str, value: str, prefix: bool) -> bool:
    """Whether a loaded record still has what its index entry said (see the module docstring)."""
    found = searchable_values(user).get(attribute)
    if found is None:
        return False
    return found.startswith(value) if prefix else found == value
