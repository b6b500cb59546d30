"""What an administrator does to accounts, once for every front end: `cognate users …`
(gateway.admin) and the user-pool API's admin operations (gateway.cognito.admin_ops) both call
these. Each change is the directory's, plus what must follow it: an audit event naming the
`actor` ("cli", or "cognito-idp" for the user-pool API's admin operations), and the end of
every session and refresh token when the account may no longer be used as it was (disabled,
deleted, a new password, new groups: tokens carry groups and roles, so the next tokens must
be minted anew).

What does not live here: messages to users (invitations, codes: gateway.login.notify, called
by the front ends), and printing (gateway.admin).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.errors import StoreUnavailable
from gateway.logout import end_local_user
from gateway.users.directory import InvalidAttribute
from gateway.users.schema import check_update

if TYPE_CHECKING:
    from gateway.services import Services
    from gateway.users.directory import User
    from gateway.users.groups import Group


@dataclass(frozen=True)
class Ended:
    """What signing a user out everywhere ended."""

    sessions: int = 0
    grants: int = 0


async def sign_out_everywhere(services: Services, user: User, actor: str) -> Ended:
    """Every session and refresh token of the user ends (access tokens with their grants)."""
    sessions, grants = await end_local_user(services, user.user_id)
    await services.audit.record(
        "user.signed_out_everywhere",
        user_id=user.user_id,
        sessions=str(sessions),
        grants=str(grants),
        actor=actor,
    )
    return Ended(sessions, grants)


async def _end(services: Services, user: User) -> Ended:
    return Ended(*await end_local_user(services, user.user_id))


async def create(
    services: Services,
    actor: str,
    email: str,
    password: str,
    *,
    name: str | None = None,
    email_verified: bool = False,
    username: str | None = None,
    attributes: dict[str, str] | None = None,
    temporary: bool = False,
    confirmed: bool | None = None,
) -> User:
    """A new account (the arguments are `UserDirectory.create`'s)."""
    user = await services.users.create(
        email,
        password,
        name=name,
        email_verified=email_verified,
        username=username,
        attributes=attributes,
        temporary=temporary,
        confirmed=confirmed,
    )
    await services.audit.record("user.created", user_id=user.user_id, actor=actor)
    return user


async def set_enabled(services: Services, user: User, enabled: bool, actor: str) -> Ended:
    """Enable, or disable: sign-in and refresh refused, every session and token ended."""
    try:
        await services.users.set_status(user.user_id, "enabled" if enabled else "disabled")
    except StoreUnavailable:
        if not enabled:  # it may have landed (a lost answer): never half a disable
            with contextlib.suppress(StoreUnavailable):
                await _end(services, user)
        raise
    await services.audit.record(
        "user.enabled" if enabled else "user.disabled", user_id=user.user_id, actor=actor
    )
    return Ended() if enabled else await _end(services, user)


async def set_password(
    services: Services, user: User, password: str, temporary: bool, actor: str
) -> Ended:
    """An administrator's new password (`temporary`: replaced at the next sign-in; else the
    account is CONFIRMED, as Cognito's AdminSetUserPassword makes it); the user's sessions
    end."""
    await services.users.set_password(user.user_id, password, temporary=temporary, confirm=True)
    await services.audit.record("user.password_reset", user_id=user.user_id, actor=actor)
    return await _end(services, user)


async def require_reset(services: Services, user: User, actor: str) -> Ended:
    """The password stops working until the user resets it with a code; sessions end."""
    await services.users.require_reset(user.user_id)
    await services.audit.record("user.password_reset_required", user_id=user.user_id, actor=actor)
    return await _end(services, user)


async def confirm(services: Services, user: User, actor: str) -> User:
    """The sign-up confirmed (the e-mail marked as verified)."""
    user = await services.users.confirm(user.user_id)
    await services.audit.record("user.email_verified", user_id=user.user_id, actor=actor)
    return user


async def mark_unverified(
    services: Services, user: User, actor: str, *, email: bool, phone: bool
) -> User:
    """An administrator says the address (`email`) or the number (`phone`) is not proven
    (the attribute); the account stays confirmed."""
    user = await services.users.mark_unverified(user.user_id, email=email, phone=phone)
    await services.audit.record(
        "user.marked_unverified", user_id=user.user_id, email=email, phone=phone, actor=actor
    )
    return user


async def change_email(
    services: Services, user: User, email: str, verified: bool, actor: str
) -> User:
    """An administrator moves the account to another address (`verified`: they vouch for
    it). UserExists when another account has it."""
    user = await services.users.change_email(user.user_id, email, verified=verified)
    await services.audit.record("user.email_changed", user_id=user.user_id, actor=actor)
    return user


async def detach_email(services: Services, user: User, actor: str) -> User:
    """The account's e-mail address given to another account (ForceAliasCreation): it signs
    in with its username from now on (`UserDirectory.detach_email`)."""
    user = await services.users.detach_email(user.user_id)
    await services.audit.record("user.email_detached", user_id=user.user_id, actor=actor)
    return user


async def set_attributes(
    services: Services, user: User, values: dict[str, str], actor: str
) -> User:
    """Attributes set (an empty value removes one); InvalidAttribute names a bad one, by
    the pool's rules (`gateway.users.schema`), as every front end applies them."""
    fault = check_update(services.settings.user_pool, values)
    if fault is not None:
        raise InvalidAttribute(f"{fault[0]}: {fault[1]}")
    for name, value in values.items():
        user = await services.users.set_attribute(user.user_id, name, value)
    await services.audit.record(
        "user.attribute_set", user_id=user.user_id, attribute=",".join(values), actor=actor
    )
    return user


async def delete(services: Services, user: User, actor: str) -> Ended:
    """The account gone, with its second factors, passkeys, sessions and tokens."""
    ended = await _end(services, user)
    await services.mfa.remove(user.user_id)
    await services.passkeys.remove_all(user.user_id)
    await services.users.delete(user.user_id)
    await services.audit.record("user.deleted", user_id=user.user_id, actor=actor)
    return ended


async def change_groups(
    services: Services, user: User, add: list[str], remove: list[str], actor: str
) -> tuple[User, Ended]:
    """Memberships changed; the user's sessions end, so the next tokens carry the new
    `cognito:groups` and roles (and the identity pool's Token role mapping follows)."""
    user = await services.users.set_groups(user.user_id, add, remove)
    await services.audit.record(
        "user.groups_changed", user_id=user.user_id, groups=",".join(user.groups), actor=actor
    )
    return user, await _end(services, user)


async def members(services: Services, group: str) -> list[str]:
    """Every member's user id (from the group's index)."""
    found: list[str] = []
    after: str | None = None
    while page := await services.users.search.group_page(group, after, 500):
        found += page
        after = page[-1]
    return found


async def delete_group(services: Services, group: Group, actor: str) -> None:
    """A stored group gone: its members lose it first (their sessions end), then the group."""
    for user_id in await members(services, group.name):
        user = await services.users.get(user_id)
        if user is not None and group.name in user.groups:
            await change_groups(services, user, [], [group.name], actor)
    await services.users.group_directory.delete(group.name)
    await services.audit.record("group.deleted", group=group.name, actor=actor)


async def update_group(services: Services, name: str, actor: str, **changes: object) -> Group:
    """A stored group's description, precedence or role changed; members' sessions end when
    what tokens carry changed (precedence, role)."""
    group = await services.users.group_directory.update(name, **changes)
    await services.audit.record("group.updated", group=name, actor=actor)
    if set(changes) - {"description"}:
        for user_id in await members(services, name):
            await end_local_user(services, user_id)
    return group
