"""The user pool's administrative operations (AdminCreateUser, AdminGetUser, ListUsers, the
groups…), as back ends call them with boto3 `cognito-idp` and an `admin_keys` entry: the
transport checks the SigV4 signature (service cognito-idp) before any of these runs.

They are a front end of the same domain functions as `cognate users …`
(`gateway.users.accounts`): one audit trail, the same sessions ended. Users are found by their
Username (the user id) or an alias (e-mail, username), and unknown ones answer
UserNotFoundException, as Cognito answers an operator. This module holds the operations on one
user; `group_ops` the groups, `listing` ListUsers and ListUsersInGroup, `pool_ops` the pool and
its clients. `OPERATIONS` gathers them all for the transport's `ADMIN` table.
"""

from __future__ import annotations

import secrets
import string as characters
from typing import TYPE_CHECKING

from gateway.cognito import group_ops, listing, pool_ops
from gateway.cognito.auth import Call, mfa_settings, this_pool
from gateway.cognito.users_view import named_user, subs, user_type
from gateway.cognito.wire import (
    Body,
    attributes,
    check_schema,
    invalid_parameter,
    string,
    validation,
)
from gateway.errors import CognitoError
from gateway.login import notify, recovery
from gateway.login.registration import EmailDomainRefused, check_email_domain
from gateway.login.steps import TooManyAttempts
from gateway.settings import STANDARD_ATTRIBUTES
from gateway.users import accounts
from gateway.users.directory import (
    InvalidAttribute,
    InvalidEmail,
    InvalidPassword,
    InvalidUsername,
    User,
    UserExists,
    UsernameTaken,
    check_password_policy,
    normalize_email,
)
from gateway.users.search import user_status

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.cognito.api import UserPoolApi

ACTOR = "cognito-idp"  # the actor audit events name (the admin API, signed with an admin key)
# What no administrator writes: the directory keeps them (sub) or they name the account.
UNWRITABLE = {"sub", "cognito:username", "cognito:user_status"}


# Besides the standard claims and `custom:*`, what an administrator may write.
VERIFIED = {"email", "email_verified", "phone_number_verified"}


def _schema(given: dict[str, str]) -> None:
    """Attributes the pool has (Cognito refuses the others, in these words)."""
    for name in given:
        if (
            name not in STANDARD_ATTRIBUTES
            and name not in VERIFIED
            and not (name.startswith("custom:") and len(name) > len("custom:"))
        ):
            raise invalid_parameter(
                f"Attributes did not conform to the schema: Type for attribute {{{name}}} "
                "could not be determined"
            )


def _password_refused(exc: InvalidPassword) -> CognitoError:
    return CognitoError("InvalidPasswordException", f"Password did not conform with policy: {exc}")


def temporary_password(api: UserPoolApi) -> str:
    """A random password the pool's policy accepts (every character class, its length)."""
    policy = api.s.users.policy
    pools = [
        characters.ascii_lowercase,
        characters.ascii_uppercase,
        characters.digits,
        "!#%+-.=?@^_~",
    ]
    while True:
        length = max(policy.min_length, 16)
        chosen = [secrets.choice(pool) for pool in pools]
        chosen += [secrets.choice("".join(pools)) for _ in range(length - len(chosen))]
        secrets.SystemRandom().shuffle(chosen)
        password = "".join(chosen)
        try:
            check_password_policy(password, policy)
        except InvalidPassword:  # a breached-list hit is as good as impossible; draw again
            continue
        return password


def _mediums(body: Body) -> list[str]:
    value = body.get("DesiredDeliveryMediums") or ["EMAIL"]
    if not isinstance(value, list) or not all(m in ("EMAIL", "SMS") for m in value):
        raise validation(
            "DesiredDeliveryMediums", "Member must satisfy enum value set: [SMS, EMAIL]"
        )
    return value


def _invite(api: UserPoolApi, user: User, password: str, mediums: list[str]) -> None:
    """The invitation: the username and temporary password, by e-mail and/or text message."""
    context = {"username": user.email, "password": password}
    if "EMAIL" in mediums:
        notify.email(api.s, None, user.email, "invitation.txt", user.locale, **context)
    if "SMS" in mediums and user.phone_number:
        notify.text_message(
            api.s, None, user.phone_number, "invitation_sms.txt", "invitation", user.locale,
            **context,
        )  # fmt: skip


async def admin_create_user(api: UserPoolApi, call: Call) -> Body:
    """AdminCreateUser: a FORCE_CHANGE_PASSWORD account whose first sign-in answers
    NEW_PASSWORD_REQUIRED. `MessageAction` RESEND sends a new temporary password to an account
    still waiting for its first sign-in; SUPPRESS sends nothing."""
    body = call.body
    this_pool(api, body)
    username = string(body, "Username", high=128)
    given = attributes(body)
    action = string(body, "MessageAction", required=False, high=16)
    if action not in ("", "RESEND", "SUPPRESS"):
        raise validation("MessageAction", "Member must satisfy enum value set: [RESEND, SUPPRESS]")
    mediums = _mediums(body)
    chosen = string(body, "TemporaryPassword", required=False, high=256)
    password = chosen or temporary_password(api)
    if action == "RESEND":
        return {"User": await _resend(api, body, password, mediums)}
    refused = sorted(set(given) & UNWRITABLE)
    if refused:
        raise invalid_parameter(f"Cannot modify the non-mutable attribute {refused[0]}")
    _schema(given)
    check_schema(api.s.settings.user_pool, {k: v for k, v in given.items() if k not in VERIFIED})
    email = username if "@" in username else given.get("email", "")
    handle = None if "@" in username else username
    if (
        "@" in username
        and given.get("email")
        and normalize_email(given["email"]) != (normalize_email(username))
    ):
        raise invalid_parameter("The email attribute must be the Username in this user pool.")
    if "SMS" in mediums and not given.get("phone_number"):
        raise invalid_parameter("SMS delivery needs a phone_number attribute.")
    if not email:
        raise invalid_parameter("Attributes did not conform to the schema: email is required")
    if handle is not None and not api.s.settings.user_pool.usernames:
        raise invalid_parameter("Username should be an email.")
    verified = given.pop("email_verified", "").lower() == "true"
    given.pop("email", None)
    phone_verified = given.pop("phone_number_verified", "").lower() == "true"
    # Only the invitation carries a generated password: signing in with it proves the address.
    verified = verified or (not chosen and action != "SUPPRESS" and "EMAIL" in mediums)
    name = given.pop("name", None) or None

    async def created() -> User:
        return await accounts.create(
            api.s, ACTOR, email, password,
            name=name, email_verified=verified, username=handle,
            attributes=given, temporary=True, confirmed=False,
        )  # fmt: skip

    try:
        try:
            user = await created()
        except UserExists:
            # The address is another account's. With a username to sign in by, Cognito's
            # ForceAliasCreation moves the address to the new account; else it stays put.
            holder = await api.s.users.by_email(email)
            if handle is None or body.get("ForceAliasCreation") is not True or holder is None:
                raise
            await accounts.detach_email(api.s, holder, ACTOR)
            user = await created()
    except UserExists:
        raise _exists(handle) from None
    except UsernameTaken:
        raise CognitoError("UsernameExistsException", "User account already exists") from None
    except InvalidEmail:
        raise invalid_parameter("Invalid email address format.") from None
    except InvalidPassword as exc:
        raise _password_refused(exc) from None
    except InvalidUsername as exc:
        raise invalid_parameter(f"Username {exc}") from None
    if phone_verified and user.phone_number:  # the administrator vouches for it, as Cognito
        user = await api.s.users.mark_phone_verified(user.user_id, user.phone_number) or user
    if action != "SUPPRESS":
        _invite(api, user, password, mediums)
    return {"User": user_type(user, (await subs(api, [user]))[user.user_id])}


def _exists(handle: str | None) -> CognitoError:
    """The e-mail belongs to another account: it is the Username itself (a pool without
    usernames: the user exists), or an alias of another user (ForceAliasCreation moves it)."""
    if handle is not None:
        return CognitoError("AliasExistsException", "An account with the email already exists.")
    return CognitoError("UsernameExistsException", "User account already exists")


async def _resend(api: UserPoolApi, body: Body, password: str, mediums: list[str]) -> Body:
    user = await named_user(api, body)
    if user_status(user) != "FORCE_CHANGE_PASSWORD":
        raise CognitoError(
            "UnsupportedUserStateException",
            f"Resend not possible. {user.user_id} status is not FORCE_CHANGE_PASSWORD.",
        )
    try:
        await accounts.set_password(api.s, user, password, True, ACTOR)
    except InvalidPassword as exc:
        raise _password_refused(exc) from None
    _invite(api, user, password, mediums)
    fresh = await api.s.users.get(user.user_id) or user
    return user_type(fresh, (await subs(api, [fresh]))[fresh.user_id])


async def admin_get_user(api: UserPoolApi, call: Call) -> Body:
    """AdminGetUser: the account, its status, its second factors (as GetUser names them)."""
    this_pool(api, call.body)
    user = await named_user(api, call.body)
    view = user_type(user, (await subs(api, [user]))[user.user_id])
    view["UserAttributes"] = view.pop("Attributes")
    return view | mfa_settings(await api.s.mfa.get(user.user_id))


async def admin_delete_user(api: UserPoolApi, call: Call) -> Body:
    this_pool(api, call.body)
    await accounts.delete(api.s, await named_user(api, call.body), ACTOR)
    return {}


async def admin_enable_user(api: UserPoolApi, call: Call) -> Body:
    this_pool(api, call.body)
    await accounts.set_enabled(api.s, await named_user(api, call.body), True, ACTOR)
    return {}


async def admin_disable_user(api: UserPoolApi, call: Call) -> Body:
    """Sign-in and refresh refused from now on; every session and refresh token ends."""
    this_pool(api, call.body)
    await accounts.set_enabled(api.s, await named_user(api, call.body), False, ACTOR)
    return {}


async def admin_set_user_password(api: UserPoolApi, call: Call) -> Body:
    """`Permanent` false: a temporary password (FORCE_CHANGE_PASSWORD); true: the password."""
    body = call.body
    this_pool(api, body)
    user = await named_user(api, body)
    password = string(body, "Password", high=256)
    permanent = body.get("Permanent", False)
    if not isinstance(permanent, bool):
        raise CognitoError("SerializationException", "Permanent must be a boolean.")
    try:
        await accounts.set_password(api.s, user, password, not permanent, ACTOR)
    except InvalidPassword as exc:
        raise _password_refused(exc) from None
    return {}


async def admin_reset_user_password(api: UserPoolApi, call: Call) -> Body:
    """RESET_REQUIRED: the password stops working, and a reset code goes to the e-mail (the
    ForgotPassword flow's, so ConfirmForgotPassword sets the new one)."""
    this_pool(api, call.body)
    user = await named_user(api, call.body)
    await accounts.require_reset(api.s, user, ACTOR)
    try:
        sent = await recovery.request_code(api.s, user.email, call.ctx.ip)
    except TooManyAttempts:
        raise CognitoError(
            "LimitExceededException", "Attempt limit exceeded, please try after some time."
        ) from None
    if sent is not None:
        notify.email(
            api.s, None, user.email, "reset_password.txt", user.locale, code=sent.code,
            link=f"{api.s.settings.issuer}/forgot/reset/link?token={sent.link_token}",
        )  # fmt: skip
    return {}


async def admin_confirm_sign_up(api: UserPoolApi, call: Call) -> Body:
    """The sign-up confirmed without its code (the e-mail counts as verified, as
    `cognate users confirm` does)."""
    this_pool(api, call.body)
    await _confirm(api, await named_user(api, call.body))
    return {}


async def _confirm(api: UserPoolApi, user: User) -> None:
    """The account's address verified, unless another account holds it now."""
    try:
        await accounts.confirm(api.s, user, ACTOR)
    except UserExists:
        raise CognitoError(
            "AliasExistsException", "An account with the given email already exists."
        ) from None


async def admin_update_user_attributes(api: UserPoolApi, call: Call) -> Body:
    """Standard and custom attributes; `email_verified`/`phone_number_verified` "true" mark
    them verified, "false" not verified (the account stays confirmed). A new `email` moves
    the account to that address at once (verified when `email_verified` says "true", else to
    be proven with VerifyUserAttribute); an address another account has is
    AliasExistsException."""
    body = call.body
    this_pool(api, body)
    user = await named_user(api, body)
    given = attributes(body)
    refused = sorted(set(given) & UNWRITABLE)
    if refused:
        raise invalid_parameter(f"Cannot modify the non-mutable attribute {refused[0]}")
    _schema(given)
    check_schema(api.s.settings.user_pool, {k: v for k, v in given.items() if k not in VERIFIED})
    # "true"/"false" in any case, as AdminCreateUser reads them
    email_verified = (given.pop("email_verified", None) or "").lower() or None
    phone_verified = (given.pop("phone_number_verified", None) or "").lower() or None
    email = given.pop("email", None)
    if email is not None and normalize_email(email) != user.email:
        try:
            check_email_domain(api.s.settings.user_pool, normalize_email(email))
            user = await accounts.change_email(api.s, user, email, email_verified == "true", ACTOR)
        except UserExists:
            raise CognitoError(
                "AliasExistsException", "An account with the given email already exists."
            ) from None
        except InvalidEmail:
            raise invalid_parameter("Invalid email address format.") from None
        except EmailDomainRefused:
            raise invalid_parameter(
                "This e-mail domain is not allowed in this user pool."
            ) from None
        email_verified = None  # said with the address
    try:
        user = await accounts.set_attributes(api.s, user, given, ACTOR) if given else user
    except InvalidAttribute as exc:
        raise invalid_parameter(str(exc)) from None
    if email_verified == "true" and not user.email_verified:
        await _confirm(api, user)
    if phone_verified == "true" and user.phone_number:
        await api.s.users.mark_phone_verified(user.user_id, user.phone_number)
    email_off, phone_off = email_verified == "false", phone_verified == "false"
    if (email_off and user.email_verified) or (phone_off and user.phone_number_verified):
        await accounts.mark_unverified(api.s, user, ACTOR, email=email_off, phone=phone_off)
    return {}


async def admin_delete_user_attributes(api: UserPoolApi, call: Call) -> Body:
    body = call.body
    this_pool(api, body)
    user = await named_user(api, body)
    names = body.get("UserAttributeNames")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise validation("UserAttributeNames", "Member must not be null")
    refused = sorted(set(names) & (UNWRITABLE | {"email", "email_verified"}))
    if refused:
        raise invalid_parameter(f"Cannot modify the non-mutable attribute {refused[0]}")
    _schema(dict.fromkeys(names, ""))
    check_schema(api.s.settings.user_pool, dict.fromkeys(names, ""))
    try:
        await accounts.set_attributes(api.s, user, dict.fromkeys(names, ""), ACTOR)
    except InvalidAttribute as exc:
        raise invalid_parameter(str(exc)) from None
    return {}


async def admin_user_global_sign_out(api: UserPoolApi, call: Call) -> Body:
    """Every session and refresh token of the user ends (access tokens with their grants)."""
    this_pool(api, call.body)
    await accounts.sign_out_everywhere(api.s, await named_user(api, call.body), ACTOR)
    return {}


OPERATIONS: dict[str, Callable[[UserPoolApi, Call], Awaitable[Body]]] = {
    "AdminCreateUser": admin_create_user,
    "AdminGetUser": admin_get_user,
    "AdminDeleteUser": admin_delete_user,
    "AdminEnableUser": admin_enable_user,
    "AdminDisableUser": admin_disable_user,
    "AdminSetUserPassword": admin_set_user_password,
    "AdminResetUserPassword": admin_reset_user_password,
    "AdminConfirmSignUp": admin_confirm_sign_up,
    "AdminUpdateUserAttributes": admin_update_user_attributes,
    "AdminDeleteUserAttributes": admin_delete_user_attributes,
    "AdminUserGlobalSignOut": admin_user_global_sign_out,
    **group_ops.OPERATIONS,
    **listing.OPERATIONS,
    **pool_ops.OPERATIONS,
}
