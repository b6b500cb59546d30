"""Local user accounts: records under `user:{user_id}`, a unique index `user-email:{email}`.

The user id (a UUID) is the stable subject the `local` connector reports; e-mail can change.
Creating a user claims the e-mail index first (SET NX) and then writes the record, so two
concurrent sign-ups for one address cannot both succeed; an index left pointing at nothing by a
crash between the two writes is reclaimed by the next create.
"""

from __future__ import annotations

import functools
import json
import re
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from gateway.errors import GatewayError
from gateway.settings import STANDARD_ATTRIBUTES, GroupSettings, PasswordPolicySettings
from gateway.store import Get, Put, Read, Store, record_json
from gateway.text import Phrase
from gateway.users.changes import AccountChanges
from gateway.users.groups import Groups
from gateway.users.legacy_hashes import known_format
from gateway.users.passwords import MAX_PASSWORD_BYTES, PasswordHasher
from gateway.users.search import SearchIndex

if TYPE_CHECKING:
    from gateway.users.srp_verifiers import SrpVerifiers

Status = Literal["enabled", "disabled"]


# Their messages are whole sentences: the CLI prints them as they are ("error: <message>").
class UserExists(GatewayError):
    """An account with this e-mail already exists."""

    def __init__(self, address: str) -> None:
        super().__init__(f"a user with the e-mail address {address} already exists")
        self.address = address


class UnknownUser(GatewayError):
    """No account with this id or e-mail."""

    def __init__(self, wanted: str) -> None:
        super().__init__(
            f"no user has the id, e-mail address or username {wanted!r} "
            "(`cognate users list` shows them)"
        )
        self.wanted = wanted


class UsernameTaken(GatewayError):
    """Another account has this username."""

    def __init__(self, username: str) -> None:
        super().__init__(f"the username {username!r} belongs to another user")
        self.username = username


class InvalidUsername(GatewayError):
    """Not a username this pool accepts; the message says what is."""


class InvalidAttribute(GatewayError):
    """An attribute name that cannot be stored."""


class InvalidPassword(GatewayError):
    """The password does not meet the policy; the message says why (a `Phrase` the hosted
    pages translate, English everywhere else): `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def choose_another(exc: InvalidPassword) -> Phrase:
    """The hosted pages' message for a refused new password, translatable as a whole."""
    return Phrase("Choose another password: it %(reason)s.", reason=exc.reason)


class InvalidEmail(InvalidPassword):
    """Not an e-mail address (an InvalidPassword too, for callers that refuse both alike)."""


# What check_password_policy names when a required character class is missing.
CLASS_NAMES = {
    "lowercase": Phrase("a lowercase character"),
    "uppercase": Phrase("an uppercase character"),
    "digit": Phrase("a digit"),
    "symbol": Phrase("a symbol"),
}


@dataclass(frozen=True)
class User:
    """A local account."""

    user_id: str
    email: str
    email_verified: bool
    password_hash: str | None
    status: Status
    created: int
    updated: int
    name: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    standard: dict[str, str] = field(default_factory=dict)  # other OIDC standard claims
    phone_number_verified: bool = False
    username: str | None = None  # with user_pool.usernames: a second sign-in identifier
    # A temporary password (Cognito's FORCE_CHANGE_PASSWORD): the next sign-in must choose one.
    must_change_password: bool = False
    # An administrator's reset (Cognito's RESET_REQUIRED): the password no longer signs in;
    # the user sets a new one with a reset code.
    password_reset_required: bool = False
    # Sign-up confirmed (Cognito's UNCONFIRMED until then); None in records older than this
    # field: a verified e-mail says it (gateway.users.search.user_status).
    confirmed: bool | None = None

    @property
    def enabled(self) -> bool:
        return self.status == "enabled"

    @property
    def phone_number(self) -> str | None:
        return self.standard.get("phone_number")

    @property
    def locale(self) -> str | None:
        return self.standard.get("locale")

    def profile(self) -> dict[str, Any]:
        """Canonical profile claims (OIDC standard names)."""
        claims: dict[str, Any] = {"email": self.email, "email_verified": self.email_verified}
        if self.name:
            claims["name"] = self.name
        claims |= self.standard
        if self.username:
            claims["preferred_username"] = self.username
        if self.phone_number:
            claims["phone_number_verified"] = self.phone_number_verified
        # Custom attributes carry Cognito's prefix in tokens and role-mapping rules.
        claims |= {f"custom:{k}": v for k, v in self.attributes.items()}
        return claims


def split_attributes(values: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(standard claims, custom attributes without their `custom:` prefix)."""
    standard = {k: v for k, v in values.items() if k in STANDARD_ATTRIBUTES and k != "name"}
    custom = {k.removeprefix("custom:"): v for k, v in values.items() if k.startswith("custom:")}
    return standard, custom


USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")


def normalize_username(username: str) -> str:
    """Case-folded, NFKC, trimmed: the form used for uniqueness and lookups."""
    return unicodedata.normalize("NFKC", username).strip().lower()


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def normalize_email(email: str) -> str:
    """Case-folded, NFKC, trimmed: the form used for uniqueness and lookups."""
    return unicodedata.normalize("NFKC", email).strip().lower()


@functools.cache
def _breached(top: int) -> frozenset[str]:
    """The `top` most common passwords of public breaches (zxcvbn's bundled list)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # 0.8 MB of lists: at first use

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"][:top])


def check_password_policy(password: str, policy: PasswordPolicySettings | None = None) -> None:
    """Raise InvalidPassword saying what is wrong: too long (bytes, checked first, before any
    other work), too short, a missing required class, or one of the most breached passwords."""
    policy = policy or PasswordPolicySettings()
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidPassword(Phrase("must be at most %(limit)s bytes", limit=MAX_PASSWORD_BYTES))
    text = unicodedata.normalize("NFKC", password)
    if len(text) < policy.min_length:
        raise InvalidPassword(
            Phrase("must be at least %(count)s characters", count=policy.min_length)
        )
    classes = {
        "lowercase": any(c.islower() for c in text),
        "uppercase": any(c.isupper() for c in text),
        "digit": any(c.isdigit() for c in text),
        "symbol": any(not c.isalnum() for c in text),
    }
    missing = [name for name in policy.require if not classes[name]]
    if missing:
        wanted = [CLASS_NAMES[m] for m in missing]
        raise InvalidPassword(Phrase("must contain %(classes)s", classes=wanted))
    if policy.breached_top and text.lower() in _breached(policy.breached_top):
        raise InvalidPassword(Phrase("is one of the most common passwords; choose another"))


class UserDirectory:
    """Accounts in the store; passwords through the bounded argon2id pool."""

    def __init__(
        self,
        store: Store,
        hasher: PasswordHasher,
        policy: PasswordPolicySettings | None = None,
        groups: list[GroupSettings] | None = None,
        srp: SrpVerifiers | None = None,
        pool_name: str = "",
        changes: AccountChanges | None = None,
    ) -> None:
        self._store = store
        self.changes = changes or AccountChanges(store)  # told of every change of a record
        self.hasher = hasher
        self.policy = policy or PasswordPolicySettings()
        self.group_directory = Groups(store, groups)
        self.search = SearchIndex(store)
        # USER_SRP_AUTH needs a verifier of each password: derived whenever the password is
        # seen (a new account, a new password, a password sign-in of an account that has none).
        self.srp = srp
        self._pool_name = pool_name

    async def _keep_verifier(self, user: User, password: str) -> None:
        # The raw password, as the SRP clients hash it (the argon2 hash takes it NFKC-folded).
        if self.srp is not None:
            await self.srp.set(user.user_id, self._pool_name, user.user_id, password)

    async def _verifier_missing(self, user: User) -> bool:
        if self.srp is None:
            return False
        try:
            record = await self.srp.get(user.user_id)
        except ValueError:  # unreadable: replace it while the password is at hand
            return True
        return record is None or not record.is_for(self._pool_name, user.user_id)

    @property
    def groups(self) -> dict[str, Any]:
        """Every group by name (settings' and stored ones, as last read: gateway.users.groups)."""
        return self.group_directory.known()

    def claims(self, user: User) -> dict[str, Any]:
        """The user's profile claims, with their groups as Cognito spells them: `groups` and
        `cognito:groups` by precedence, `cognito:roles` and `cognito:preferred_role` (the role
        of the lowest-precedence group that has one). The groups are as of the user's record
        being read (`get` reads both in one round trip), on every replica alike."""
        claims = user.profile()
        defined = self.group_directory.known()
        known = sorted((defined[g] for g in user.groups if g in defined), key=lambda g: g.order)
        if known:
            names = [g.name for g in known]
            claims |= {"groups": names, "cognito:groups": names}
            roles = [g.role_arn for g in known if g.role_arn]
            if roles:
                claims |= {"cognito:roles": roles, "cognito:preferred_role": roles[0]}
        return claims

    async def set_groups(self, user_id: str, add: list[str], remove: list[str]) -> User:
        """Change a user's group memberships (groups must be defined in the pool: UnknownGroup)."""
        user = await self.get(user_id)  # reads the groups too
        if user is None:
            raise UnknownUser(user_id)
        unknown = [g for g in add if g not in self.group_directory.known()]
        if unknown:
            raise InvalidAttribute(f"no group {', '.join(unknown)} in this user pool")
        groups = [g for g in user.groups if g not in remove]
        groups += [g for g in add if g not in groups]
        return await self._save(replace(user, groups=groups, updated=int(time.time())), user)

    async def create(
        self,
        email: str,
        password: str | None,
        *,
        name: str | None = None,
        email_verified: bool = False,
        enforce_policy: bool = True,
        attributes: dict[str, str] | None = None,
        username: str | None = None,
        temporary: bool = False,
        confirmed: bool | None = None,
    ) -> User:
        """A new enabled account; raises UserExists or InvalidPassword. `enforce_policy`
        False only for passwords another system already accepted (migration). `attributes`:
        standard claims by name, custom ones as `custom:<name>`. `temporary`: the password
        must be replaced at the first sign-in (an administrator's invitation). `confirmed`:
        whether the sign-up needs no confirmation (None: as `email_verified` says)."""
        standard, custom = split_attributes(attributes or {})
        if username is not None:
            username = normalize_username(username)
            if not USERNAME.match(username):
                raise InvalidUsername(
                    "3 to 64 letters, digits, dots, dashes or underscores, starting with a "
                    "letter or digit"
                )
            if _is_uuid(username):
                # Account ids name accounts too (Cognito's Username): a username shaped like
                # one could pass itself off as another account.
                raise InvalidUsername("cannot have the form of an account id")
        address = normalize_email(email)
        if "@" not in address or len(address) > 254:
            raise InvalidEmail(Phrase("the e-mail address is not valid"))
        password_hash = None
        if password is not None:
            if enforce_policy:
                check_password_policy(password, self.policy)
            elif len(password.encode()) > MAX_PASSWORD_BYTES:
                raise InvalidPassword(
                    Phrase("must be at most %(limit)s bytes", limit=MAX_PASSWORD_BYTES)
                )
            password_hash = await self.hasher.hash(unicodedata.normalize("NFKC", password))
        now = int(time.time())
        user = User(
            user_id=str(uuid.uuid4()),
            email=address,
            email_verified=email_verified,
            password_hash=password_hash,
            status="enabled",
            created=now,
            updated=now,
            name=name,
            attributes=custom,
            standard=standard,
            username=username,
            must_change_password=temporary and password is not None,
            confirmed=confirmed,
        )
        if not await self._claim(self._email_key(address), user.user_id):
            raise UserExists(address)
        if username is not None and not await self._claim(
            self._username_key(username), user.user_id
        ):
            # The e-mail index now points at no account: the next sign-up reclaims it.
            raise UsernameTaken(username)
        await self._save(user, None)
        if password is not None:
            await self._keep_verifier(user, password)
        return user

    async def _claim(self, index: str, user_id: str) -> bool:
        """Make a unique index (e-mail, username) point to `user_id`: True, or False when a
        live account holds it. An index left pointing at nothing (a crash between two writes,
        a half-made account) is reclaimed atomically."""
        claim = user_id.encode()
        if await self._store.create(index, claim):
            return True
        owner = await self._store.get(index)
        if owner == claim:  # already this account's
            return True
        if owner and await self.get(owner.decode()) is not None:
            return False
        # Free, or pointing at no account: take it, unless another sign-up changed it since
        # we looked (then that one's claim stands). An index gone in between is free too.
        outcome = await self._store.modify(
            index, lambda current: claim if current == owner else None, attempts=2, seen=owner
        )
        return outcome.written

    async def get(self, user_id: str) -> User | None:
        """The account, or None; the pool's groups are read in the same round trip, so
        `claims` of this user name them as they are now."""
        return self.read_back(await self._store.read_many(self.reading(user_id)))

    def reading(self, user_id: str) -> list[Read]:
        """The reads of `get`, for a caller that sends them beside its own in one
        `Store.read_many` and hands their answers (in order) to `read_back`."""
        return [Get(self._user_key(user_id)), self.group_directory.reading()]

    def read_back(self, raws: Sequence[bytes | None]) -> User | None:
        """The account from the answers to `reading` (None when it is gone)."""
        raw, stored = raws
        self.group_directory.refresh(stored)
        return None if raw is None else User(**json.loads(raw))

    async def owner(self, identifier: str) -> str | None:
        """The id of the account an e-mail or a username names (one round trip), the id
        itself when `identifier` is one (none); None when nothing is named. `by_login` is this
        and `get`."""
        if "@" in identifier:
            index = self._email_key(normalize_email(identifier))
        elif not identifier.strip():
            return None
        elif _is_uuid(identifier):  # an account id: never a username (`create` refuses those)
            return identifier.lower()
        else:
            index = self._username_key(normalize_username(identifier))
        owner = await self._store.get(index)
        return owner.decode() if owner else None  # b"": released

    async def get_many(self, user_ids: list[str]) -> list[User | None]:
        """The accounts (None for each that is gone), in one round trip."""
        return await self._many([self._user_key(uid) for uid in user_ids])

    async def _many(self, keys: list[str]) -> list[User | None]:
        raws = await self._store.read_many([Get(k) for k in keys]) if keys else []
        present = [raw for raw in raws if raw is not None]
        # One parse for the lot (a ListUsers page reads 61): a third cheaper than one each.
        decoded = iter(json.loads(b"[" + b",".join(present) + b"]") if present else [])
        return [None if raw is None else User(**next(decoded)) for raw in raws]

    async def by_email(self, email: str) -> User | None:
        """The account with this e-mail, or None."""
        owner = await self._store.get(self._email_key(normalize_email(email)))
        return await self.get(owner.decode()) if owner else None  # b"": released

    async def by_username(self, username: str) -> User | None:
        """The account with this username, or None."""
        owner = await self._store.get(self._username_key(normalize_username(username)))
        return await self.get(owner.decode()) if owner else None  # b"": released

    async def by_login(self, identifier: str) -> User | None:
        """The account an e-mail (anything with an @), a username, or the account's own id
        names (Cognito's `cognito:username`, which the SDKs send back as USERNAME), or None."""
        owner = await self.owner(identifier)
        return await self.get(owner) if owner else None

    async def authenticate(self, identifier: str, password: str) -> User | None:
        """The enabled account if the password matches, else None. `identifier`: an e-mail, or
        a username. Unknown, disabled and wrong password cost the same argon2 run, so timing
        does not reveal which accounts exist."""
        if len(password.encode()) > MAX_PASSWORD_BYTES:
            return None
        user = await self.by_login(identifier)
        raw, password = password, unicodedata.normalize("NFKC", password)
        stored = user.password_hash if user else None
        if not await self.hasher.verify(stored, password) or user is None or not user.enabled:
            return None
        if stored and self.hasher.needs_rehash(stored):
            rehashed = await self.hasher.hash(password)
            user = await self._save(
                replace(user, password_hash=rehashed, updated=int(time.time())), user
            )
        if await self._verifier_missing(user):
            await self._keep_verifier(user, raw)
        return user

    async def set_password(
        self, user_id: str, password: str, temporary: bool = False, confirm: bool = False
    ) -> User:
        """A new password (policy-checked, argon2id). `temporary`: the next sign-in must
        choose another (an administrator's reset). A permanent one ends a reset, and confirms
        an account whose temporary password it replaces (as Cognito's status follows), or any
        account with `confirm` (an administrator's permanent password: CONFIRMED)."""
        check_password_policy(password, self.policy)
        before = await self.get(user_id)
        if before is None:
            raise UnknownUser(user_id)
        password_hash = await self.hasher.hash(unicodedata.normalize("NFKC", password))
        user = replace(
            before,
            password_hash=password_hash,
            must_change_password=temporary,
            password_reset_required=False,
            updated=int(time.time()),
        )
        if not temporary and (before.must_change_password or confirm):
            user = replace(user, confirmed=True)
        await self._save(user, before)
        await self._keep_verifier(user, password)
        return user

    async def mark_email_verified(self, user_id: str) -> User:
        """The user proved they read mail at their address (which confirms a sign-up);
        UserExists when another account holds that address now."""
        user = await self.get(user_id)
        if user is None:
            raise UnknownUser(user_id)
        if not await self._claim(self._email_key(user.email), user_id):
            # The address went to another account (ForceAliasCreation): it is that one's now,
            # and two accounts must never hold one verified address.
            raise UserExists(user.email)
        changed = replace(user, email_verified=True, updated=int(time.time()))
        return await self._save(replace(changed, confirmed=True), user)

    async def mark_unverified(self, user_id: str, *, email: bool, phone: bool) -> User:
        """An administrator says the address (`email`) or the number (`phone`) is not proven
        any more (AdminUpdateUserAttributes `email_verified`/`phone_number_verified` "false"),
        as the attribute says; the account keeps both, stays confirmed, and its codes and
        password resets still go to the address and number on record."""
        user = await self.get(user_id)
        if user is None:
            raise UnknownUser(user_id)
        changed = replace(
            user,
            email_verified=user.email_verified and not email,
            phone_number_verified=user.phone_number_verified and not phone,
            updated=int(time.time()),
        )
        return await self._save(changed, user)

    async def mark_phone_verified(self, user_id: str, number: str) -> User | None:
        """The user proved they receive texts at `number` (still their number: else None)."""
        user = await self.get(user_id)
        if user is None or user.phone_number != number:
            return None
        changed = replace(user, phone_number_verified=True, updated=int(time.time()))
        return await self._save(changed, user)

    async def set_attribute(self, user_id: str, name: str, value: str) -> User:
        """Set `name` (the display name) or a custom attribute (`custom:<name>`, as Cognito
        spells them, or a bare name); an empty value removes a custom attribute."""
        user = before = await self.get(user_id)
        if user is None or before is None:
            raise UnknownUser(user_id)
        if name == "name":
            user = replace(user, name=value or None)
        elif name in STANDARD_ATTRIBUTES:
            standard = {k: v for k, v in user.standard.items() if k != name}
            if value:
                standard[name] = value[:2048]
            user = replace(user, standard=standard)
            if name == "phone_number":  # a new number is not verified yet
                user = replace(user, phone_number_verified=False)
        else:
            key = name.removeprefix("custom:")
            if not key or len(key) > 64 or not key.replace("_", "").replace("-", "").isalnum():
                raise InvalidAttribute(f"{name!r} is not an attribute name (letters, digits, _ -)")
            attributes = {k: v for k, v in user.attributes.items() if k != key}
            if value:
                attributes[key] = value[:2048]
            user = replace(user, attributes=attributes)
        return await self._save(replace(user, updated=int(time.time())), before)

    async def set_status(self, user_id: str, status: Status) -> User:
        """Enable or disable an account."""
        user = await self.get(user_id)
        if user is None:
            raise UnknownUser(user_id)
        return await self._save(replace(user, status=status, updated=int(time.time())), user)

    async def require_reset(self, user_id: str) -> User:
        """An administrator's reset (Cognito's AdminResetUserPassword): the password no longer
        signs in (its hash is gone, and the SRP verifier with it) until the user sets a new
        one with a reset code."""
        user = await self.get(user_id)
        if user is None:
            raise UnknownUser(user_id)
        changed = replace(
            user,
            password_hash=None,
            must_change_password=False,
            password_reset_required=True,
            updated=int(time.time()),
        )
        if self.srp is not None:
            await self.srp.delete(user_id)
        return await self._save(changed, user)

    async def confirm(self, user_id: str) -> User:
        """The sign-up confirmed by an administrator (the e-mail counts as verified: it is
        what confirming a sign-up proves here)."""
        return await self.mark_email_verified(user_id)

    async def change_email(self, user_id: str, email: str, verified: bool = True) -> User:
        """The account's address becomes `email`, verified (the caller proved it, with a code
        sent there) unless `verified` is False (an administrator's change that proves
        nothing). Raises UserExists when another account has the address, InvalidEmail
        when it is not one. The new address is claimed before the record changes and the old
        one released after, so no moment has two accounts, or none, at either address."""
        user = await self.get(user_id)
        if user is None:
            raise UnknownUser(user_id)
        address = normalize_email(email)
        if "@" not in address or len(address) > 254:
            raise InvalidEmail(Phrase("the e-mail address is not valid"))
        if address != user.email and not await self._claim(self._email_key(address), user_id):
            raise UserExists(address)
        if address == user.email:
            verified = verified or user.email_verified
        changed = replace(user, email=address, email_verified=verified, updated=int(time.time()))
        await self._save(changed, user)
        if address != user.email:
            await self._release(self._email_key(user.email), user_id)
        return changed

    async def detach_email(self, user_id: str) -> User:
        """The account stops answering to its e-mail address: an administrator gave the
        address to a new account (AdminCreateUser's ForceAliasCreation, in a pool with
        usernames). The record keeps the address, unverified, so its owner can still be told
        apart; sign-in and recovery by that address now reach the new account. The account
        signs in with its username."""
        user = await self.get(user_id)
        if user is None:
            raise UnknownUser(user_id)
        changed = replace(user, email_verified=False, updated=int(time.time()))
        await self._save(changed, user)
        await self._release(self._email_key(user.email), user_id)
        return changed

    async def _release(self, index: str, user_id: str) -> None:
        """Free a unique index (e-mail, username) if it still names `user_id` (one atomic
        compare-and-swap to an empty value, which `_claim` takes like a free one): an address
        that moved to another account stays with that account."""
        await self._store.update(index, user_id.encode(), b"")

    async def delete(self, user_id: str) -> None:
        """Remove the account and its e-mail index."""
        user = await self.get(user_id)
        if user is None:
            raise UnknownUser(user_id)
        async with self.changes.writing(user_id):
            await self._store.delete(self._user_key(user_id))
        _, removals = self.search.changes(user, None)
        await self._store.write_many(removals)
        await self._release(self._email_key(user.email), user_id)
        if user.username:
            await self._release(self._username_key(user.username), user_id)
        if self.srp is not None:
            await self.srp.delete(user_id)

    async def all(self) -> AsyncIterator[User]:
        """Every account (store scan order; 500 records a round trip)."""
        async for batch in self.batches():
            for user in batch:
                yield user

    async def resolve(self, id_or_email: str) -> User:
        """Find by user id, e-mail or username (CLI convenience); raises UnknownUser."""
        if "@" in id_or_email:
            user = await self.by_email(id_or_email)
        else:
            user = await self.get(id_or_email) or await self.by_username(id_or_email)
        if user is None:
            raise UnknownUser(id_or_email)
        return user

    async def import_account(self, record: dict[str, Any]) -> str:
        """One account from another system (a JSON Lines record: email, password_hash,
        email_verified, name, attributes, groups): 'created', or 'existing' when the e-mail is
        already here (so an interrupted import can rerun). The hash may be argon2, bcrypt,
        scrypt or PBKDF2 (see legacy_hashes): it is replaced by argon2id at the next sign-in.
        InvalidAttribute says what is wrong with a bad record."""
        email = normalize_email(str(record.get("email") or ""))
        if "@" not in email or len(email) > 254:
            raise InvalidAttribute("email: missing or not an e-mail address")
        password_hash = record.get("password_hash")
        if password_hash is not None and not (
            isinstance(password_hash, str) and known_format(password_hash)
        ):
            raise InvalidAttribute("password_hash: not argon2, bcrypt, scrypt or PBKDF2")
        groups = [str(g) for g in record.get("groups") or []]
        await self.group_directory.load()
        unknown = [g for g in groups if g not in self.groups]
        if unknown:
            raise InvalidAttribute(f"groups: no group {', '.join(unknown)} in user_pool.groups")
        if await self.by_email(email) is not None:
            return "existing"
        now = int(time.time())
        attributes = record.get("attributes") or {}
        user = User(
            user_id=str(uuid.uuid4()),
            email=email,
            email_verified=record.get("email_verified") is True,
            password_hash=password_hash,
            status="enabled",
            created=now,
            updated=now,
            name=str(record["name"])[:128] if record.get("name") else None,
            attributes={str(k): str(v) for k, v in attributes.items()}
            if isinstance(attributes, dict)
            else {},
            groups=groups,
        )
        outcome = await self.restore(user)
        return "existing" if outcome == "conflict" else outcome

    async def restore(self, user: User) -> str:
        """Put back an exported account: 'created', 'existing', or 'conflict' (its e-mail
        belongs to another account here). Idempotent, so an interrupted import can rerun."""
        if await self.get(user.user_id) is not None:
            return "existing"
        if not await self._claim(self._email_key(normalize_email(user.email)), user.user_id):
            return "conflict"  # a live account (not this one: it has no record) holds it
        await self._save(user, None)
        return "created"

    async def _save(self, user: User, before: User | None) -> User:
        """Write the record and keep the search index in step (gateway.users.search): new
        entries first, the record, then the entries `before` had and `user` has not, in one
        round trip; readers re-check records, so a crash in between misleads no one."""
        adds, removes = self.search.changes(before, user)
        record = Put(self._user_key(user.user_id), record_json(user))
        if before is None:  # a new account is in no cache: reads of none are not kept
            await self._store.write_many([*adds, record, *removes])
            return user
        async with self.changes.writing(user.user_id):
            await self._store.write_many([*adds, record, *removes])
        return user

    async def batches(self, size: int = 500) -> AsyncIterator[list[User]]:
        """Every account, `size` records a round trip (store scan order)."""
        keys: list[str] = []
        async for key in self._store.scan(self._store.key("user", "")):
            keys.append(key)
            if len(keys) == size:
                yield [u for u in await self._many(keys) if u is not None]
                keys = []
        if keys:
            yield [u for u in await self._many(keys) if u is not None]

    async def reindex(self) -> int:
        """Index every account (those saved before the index existed): how many."""
        return await self.search.rebuild(self.batches())

    async def index_ready(self) -> bool:
        """Whether every account is in the search index (it has been built once)."""
        return await self.search.ready()

    async def build_index_once(self) -> None:
        """`reindex`, by one replica at a time, after an upgrade from a release without it."""
        await self.search.rebuild_once(self.batches)

    def _user_key(self, user_id: str) -> str:
        return self._store.key("user", user_id)

    def _email_key(self, email: str) -> str:
        return self._store.key("user-email", email)

    def _username_key(self, username: str) -> str:
        return self._store.key("user-username", username)
