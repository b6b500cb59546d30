"""The user-pool API's self-service operations, on the same rules as the hosted pages
(`gateway.login.registration`, `gateway.login.recovery`, the directory, the MFA store).

Sign-up, confirmation and recovery never tell whether an account exists (Cognito's
PreventUserExistenceErrors: ENABLED, and what the hosted pages already do): an address that
has an account gets the same answer as a new one, and its owner an e-mail saying someone tried.
Operations that act for a signed-in user take its access token — one from this API or from the
hosted pages' OAuth flow alike — and refuse tokens whose grant was revoked.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from gateway import amr
from gateway.cognito.auth import (
    Call,
    app_client,
    associate_with_session,
    mfa_settings,
    user_by_name,
    verify_with_session,
)
from gateway.cognito.wire import (
    ACCESS_TOKEN_BAD,
    CODE_MISMATCH,
    INCORRECT,
    LIMIT,
    Body,
    attributes,
    check_schema,
    invalid_parameter,
    masked_email,
    masked_phone,
    not_authorized,
    secret_hash,
    string,
)
from gateway.connectors import local_connector_id
from gateway.errors import CognitoError, InvalidToken
from gateway.login import notify, recovery, registration
from gateway.login.machine import resend_allowed
from gateway.login.steps import LoginError, TooManyAttempts
from gateway.logout import end_local_user
from gateway.users import accounts
from gateway.users.directory import (
    InvalidAttribute,
    InvalidEmail,
    InvalidPassword,
    InvalidUsername,
    User,
    UserExists,
    UsernameTaken,
    normalize_email,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.cognito.api import UserPoolApi
    from gateway.tokens import AccessToken

STANDARD = (  # the attributes Cognito returns by these names (besides custom:*)
    "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
    "profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at",
    "address", "phone_number",
)  # fmt: skip


def delivery(email: str) -> dict[str, str]:
    return {"Destination": masked_email(email), "DeliveryMedium": "EMAIL", "AttributeName": "email"}


def user_attributes(user: User, identity_id: str | None) -> list[dict[str, str]]:
    """The account as Cognito lists it: `sub`, e-mail, phone and the other attributes."""
    found: dict[str, str] = {"sub": identity_id or user.user_id}
    found["email"] = user.email
    found["email_verified"] = "true" if user.email_verified else "false"
    if user.name:
        found["name"] = user.name
    for key, value in user.standard.items():
        if key in STANDARD:
            found[key] = str(value)
    if user.phone_number:
        found["phone_number_verified"] = "true" if user.phone_number_verified else "false"
    if user.username:  # the sign-in name of a pool with usernames, as the ID token says it
        found["preferred_username"] = user.username
    for key, value in user.attributes.items():  # kept without their prefix
        found[f"custom:{key.removeprefix('custom:')}"] = str(value)
    return [{"Name": k, "Value": v} for k, v in found.items()]


async def sign_up(api: UserPoolApi, call: Call) -> Body:
    """SignUp: Username is the e-mail (or, with `user_pool.usernames`, the username and the
    e-mail an attribute)."""
    body = call.body
    client = app_client(api, body)
    username = string(body, "Username", high=128)
    password = string(body, "Password", high=256)
    secret_hash(client, username, body.get("SecretHash"))
    given = attributes(body)
    pool = api.s.settings.user_pool
    if not pool.self_sign_up:
        raise not_authorized("SignUp is not permitted for this user pool")
    email = username if "@" in username else given.get("email", "")
    handle = None if "@" in username or not pool.usernames else username
    if not email:
        raise invalid_parameter("Attributes did not conform to the schema: email is required")
    try:
        result = await registration.sign_up(
            api.s,
            normalize_email(email)[:254],
            password,
            given,
            handle,
            call.ctx.ip,
            given.get("locale") or api.s.settings.ui.languages[0],
        )
    except TooManyAttempts:
        raise CognitoError("TooManyRequestsException", "Too many requests") from None
    except registration.InvalidAttributes as exc:
        raise invalid_parameter(f"Attributes did not conform to the schema: {exc}") from None
    except LoginError as exc:
        raise not_authorized(str(exc)) from None
    except InvalidEmail:
        raise invalid_parameter("Invalid email address format.") from None
    except InvalidPassword as exc:
        raise CognitoError(
            "InvalidPasswordException", f"Password did not conform with policy: {exc}"
        ) from None
    except InvalidUsername as exc:
        raise invalid_parameter(f"Username {exc}") from None
    except UsernameTaken:
        raise CognitoError("UsernameExistsException", "User already exists") from None
    if result.existing or result.user is None:
        notify.email(api.s, None, email, "already_registered.txt", given.get("locale"))
        # As for a new account; the made-up sub has an identity ID's shape.
        made_up = f"{api.s.settings.region}:{uuid.uuid4()}"
        return {"UserConfirmed": False, "UserSub": made_up, "CodeDeliveryDetails":
                delivery(email)}  # fmt: skip
    if not result.confirmed:
        await notify.send_code(api.s, None, result.user)
    # UserSub is the `sub` its tokens will carry: the identity ID (made now, once).
    local = local_connector_id(api.s.connectors) or "local"
    sub = await api.s.identities.resolve(local, result.user.user_id)
    answer: Body = {"UserConfirmed": result.confirmed, "UserSub": sub}
    if not result.confirmed:
        answer["CodeDeliveryDetails"] = delivery(result.user.email)
    return answer


async def confirm_sign_up(api: UserPoolApi, call: Call) -> Body:
    body = call.body
    client = app_client(api, body)
    username = string(body, "Username", high=128)
    code = string(body, "ConfirmationCode", high=2048)
    secret_hash(client, username, body.get("SecretHash"))
    user = await user_by_name(api, username)
    try:
        if user is not None and user.email_verified:  # answered as for an unknown user
            raise registration.WrongVerificationCode
        await registration.confirm_email(api.s, user.email if user else "", code)
    except UserExists:  # another account took the address meanwhile
        raise CognitoError("AliasExistsException", ALIAS_EXISTS) from None
    except LoginError:
        raise CognitoError("CodeMismatchException", CODE_MISMATCH) from None
    return {}


async def resend_confirmation_code(api: UserPoolApi, call: Call) -> Body:
    body = call.body
    client = app_client(api, body)
    username = string(body, "Username", high=128)
    secret_hash(client, username, body.get("SecretHash"))
    user = await user_by_name(api, username)
    email = user.email if user else (username if "@" in username else "")
    wait = await resend_allowed(api.s, email or username, call.ctx.ip)
    if wait is not None:
        raise CognitoError("LimitExceededException", LIMIT)
    if user is not None and user.enabled and not user.email_verified:
        await notify.send_code(api.s, None, user)
    # As ForgotPassword: the name as asked, masked (a username or id says nothing of where).
    return {"CodeDeliveryDetails": delivery(normalize_email(username) if "@" in username else "")}


async def forgot_password(api: UserPoolApi, call: Call) -> Body:
    body = call.body
    client = app_client(api, body)
    username = string(body, "Username", high=128)
    secret_hash(client, username, body.get("SecretHash"))
    login = normalize_email(username) if "@" in username else username
    try:
        sent = await recovery.request_code(api.s, login, call.ctx.ip)
    except TooManyAttempts:
        raise CognitoError("LimitExceededException", LIMIT) from None
    if sent is not None:
        notify.email(
            api.s,
            None,
            sent.user.email,
            "reset_password.txt",
            sent.user.locale,
            code=sent.code,
            link=f"{api.s.settings.issuer}/forgot/reset/link?token={sent.link_token}",
        )
    # The name as asked, masked, never the account's address: a username or an id answered
    # with "a***@example.com" when it names an account and "***" when it names none would
    # tell the two apart (PreventUserExistenceErrors). An e-mail masks to itself either way.
    return {"CodeDeliveryDetails": delivery(login)}


async def confirm_forgot_password(api: UserPoolApi, call: Call) -> Body:
    body = call.body
    client = app_client(api, body)
    username = string(body, "Username", high=128)
    code = string(body, "ConfirmationCode", high=2048)
    password = string(body, "Password", high=256)
    secret_hash(client, username, body.get("SecretHash"))
    user = await user_by_name(api, username)
    try:
        await recovery.reset_with_code(api.s, user.email if user else "", code, password)
    except InvalidPassword as exc:
        raise CognitoError(
            "InvalidPasswordException", f"Password did not conform with policy: {exc}"
        ) from None
    except UserExists:  # another account took the address meanwhile
        raise CognitoError("AliasExistsException", ALIAS_EXISTS) from None
    except LoginError:
        raise CognitoError("CodeMismatchException", CODE_MISMATCH) from None
    return {}


async def signed_in(api: UserPoolApi, body: Body) -> tuple[User, AccessToken]:
    """The local account an AccessToken names (from this API or the hosted pages' OAuth
    flow), while its grant lives."""
    token, subject = await token_subject(api, body)
    user = await api.s.users.get(subject) if subject else None
    if user is None or not user.enabled:
        raise not_authorized(ACCESS_TOKEN_BAD)
    return user, token


async def token_subject(api: UserPoolApi, body: Body) -> tuple[AccessToken, str | None]:
    """The AccessToken, in force, and the id of the local account it names (None: none)."""
    raw = string(body, "AccessToken", high=100_000)
    try:
        token = await api.s.tokens.verify_access_token(raw)
    except InvalidToken as exc:  # expired, malformed, an ID token, another issuer's
        expired = "expired" in str(exc)
        raise not_authorized("Access Token has expired" if expired else ACCESS_TOKEN_BAD) from None
    if not await api.s.grants.access_token_active(token, api.s.sessions):
        # Revoked, signed out everywhere, or its SSO session ended (a hosted-page sign-in)
        raise not_authorized("Access Token has been revoked")
    subject = token.username  # this API's tokens name the account; the hosted pages' do not
    if subject is None:
        identity = await api.s.identities.get(token.sub)
        local = local_connector_id(api.s.connectors)
        logins = identity.logins if identity else []
        subject = next((login.subject for login in logins if login.provider == local), None)
    return token, subject


async def get_user(api: UserPoolApi, call: Call) -> Body:
    """GetUser: only reads, so the account may come from this replica's cache
    (gateway.users.changes: every change of it anywhere evicts it)."""
    token, subject = await token_subject(api, call.body)
    s = api.s
    found = await s.users.changes.read(subject, s.users, s.mfa) if subject else None
    if found is None or not found[0].enabled:
        raise not_authorized(ACCESS_TOKEN_BAD)
    user, factors = found
    answer: Body = {"Username": user.user_id, "UserAttributes": user_attributes(user, token.sub)}
    return answer | mfa_settings(factors)


async def change_password(api: UserPoolApi, call: Call) -> Body:
    user, _ = await signed_in(api, call.body)
    previous = string(call.body, "PreviousPassword", required=False, high=256)
    proposed = string(call.body, "ProposedPassword", high=256)
    if await api.s.users.authenticate(user.email, previous) is None:
        raise not_authorized(INCORRECT)
    try:
        await api.s.users.set_password(user.user_id, proposed)
    except InvalidPassword as exc:
        raise CognitoError(
            "InvalidPasswordException", f"Password did not conform with policy: {exc}"
        ) from None
    await api.s.audit.record("user.password_changed", user_id=user.user_id, by="cognito-idp")
    return {}


async def global_sign_out(api: UserPoolApi, call: Call) -> Body:
    """Every session and refresh token of the user ends (access tokens with their grants)."""
    user, token = await signed_in(api, call.body)
    sessions, grants = await api.s.logout.end_identity(token.sub)
    await api.s.audit.record(
        "user.signed_out_everywhere", user_id=user.user_id, sessions=sessions, grants=grants
    )
    return {}


async def revoke_token(api: UserPoolApi, call: Call) -> Body:
    """RevokeToken: the refresh token's grant, with every access token minted from it."""
    body = call.body
    client = app_client(api, body)
    presented = string(body, "Token", high=100_000)
    if client.config.client_secret and body.get("ClientSecret") != client.config.client_secret:
        raise not_authorized(f"Unable to verify secret hash for client {client.client_id}")
    if presented.count(".") == 2:  # a JWT: an ID or access token, never revocable here
        raise CognitoError("UnsupportedTokenTypeException", "Unsupported token type")
    gid = presented.split(".", 1)[0] if "." in presented else ""
    loaded = await api.s.grants.load_grant(gid) if gid else None
    if loaded is not None and loaded[1].authorization.client_id == client.client_id:
        if api.s.grants.refresh_matches(loaded[1], presented) != "unknown":
            await api.s.grants.revoke(gid)
    return {}


async def associate_software_token(api: UserPoolApi, call: Call) -> Body:
    """A new authenticator-app secret, for a signed-in user (AccessToken) or a sign-in that
    must set one up (Session of an MFA_SETUP challenge)."""
    if call.body.get("Session"):
        return await associate_with_session(api, call)
    user, token = await signed_in(api, call.body)
    await _may_replace_app(api, user, token)
    return {"SecretCode": await api.s.mfa.begin(user.user_id)}


async def passed_second_factor(api: UserPoolApi, token: AccessToken) -> bool:
    """Did the sign-in this access token came from pass a second factor?"""
    loaded = await api.s.grants.load_grant(token.gid) if token.gid else None
    return amr.passed_second_factor(loaded[1].authorization.amr if loaded else [])


async def _may_replace_app(api: UserPoolApi, user: User, token: AccessToken) -> None:
    """A new authenticator app replaces the one the account has: that takes the proof turning
    it off takes (a sign-in that passed a second factor), or a stolen password would be
    enough to swap the factor that protects the account for the thief's own."""
    record = await api.s.mfa.get(user.user_id)
    if record is not None and record.totp_secret and not await passed_second_factor(api, token):
        raise not_authorized("Sign in with your second factor to replace it.")


async def verify_software_token(api: UserPoolApi, call: Call) -> Body:
    if call.body.get("Session"):
        return await verify_with_session(api, call)
    user, token = await signed_in(api, call.body)
    await _may_replace_app(api, user, token)
    code = string(call.body, "UserCode", high=6, low=6)
    if await api.s.mfa.confirm(user.user_id, code) is None:
        raise CognitoError("CodeMismatchException", CODE_MISMATCH)
    await api.s.audit.record("mfa.enrolled", method="totp", user_id=user.user_id)
    return {"Status": "SUCCESS"}


# Attributes a user may not write through the API (the directory keeps them, or proves them).
UNWRITABLE = {"sub", "email_verified", "phone_number_verified", "cognito:username"}
ALIAS_EXISTS = "An account with the given email already exists."


async def update_user_attributes(api: UserPoolApi, call: Call) -> Body:
    """UpdateUserAttributes: the profile's standard and custom attributes. A new phone
    number is unverified until VerifyUserAttribute (its code by text message). A new e-mail
    address is only asked for: a code goes there, and the account keeps its current, verified
    address until VerifyUserAttribute brings the code back (Cognito's "keep the original
    value until the update is verified")."""
    user, _ = await signed_in(api, call.body)
    given = attributes(call.body)
    refused = sorted(set(given) & UNWRITABLE)
    if refused:
        raise not_authorized(f"A client attempted to write unauthorized attribute {refused[0]}")
    check_schema(api.s.settings.user_pool, {k: v for k, v in given.items() if k != "email"})
    new_email = given.pop("email", None)
    if new_email is not None and normalize_email(new_email) == user.email:
        new_email = None
    deliveries: list[dict[str, str]] = []
    if new_email is not None:  # checked and asked for first: a refusal changes nothing
        deliveries.append(await _ask_email_change(api, user, new_email, call.ctx.ip))
    try:
        if given:
            user = await accounts.set_attributes(api.s, user, given, "cognito-idp")
    except InvalidAttribute as exc:
        raise invalid_parameter(str(exc)) from None
    if "phone_number" in given and user.phone_number:
        await notify.send_phone_code(api.s, None, user)
        deliveries.append(_sms(user.phone_number))
    return {"CodeDeliveryDetailsList": deliveries}


async def _ask_email_change(api: UserPoolApi, user: User, email: str, ip: str) -> dict[str, str]:
    """A code to the address `user` wants to move to; its delivery details."""
    if "@" not in email or len(email) > 254:
        raise invalid_parameter("Invalid email address format.")
    wait = await resend_allowed(api.s, user.user_id, ip)
    if wait is not None:
        raise CognitoError("LimitExceededException", LIMIT)
    try:
        code = await registration.request_email_change(api.s, user, email)
    except UserExists:
        raise CognitoError("AliasExistsException", ALIAS_EXISTS) from None
    except registration.EmailDomainRefused:
        raise invalid_parameter("This e-mail domain is not allowed in this user pool.") from None
    address = normalize_email(email)
    notify.email(api.s, None, address, "verify_new_email.txt", user.locale, code=code)
    return delivery(address)


async def delete_user_attributes(api: UserPoolApi, call: Call) -> Body:
    user, _ = await signed_in(api, call.body)
    names = call.body.get("UserAttributeNames")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise validation_error("UserAttributeNames")
    refused = sorted(set(names) & UNWRITABLE)
    if refused:
        raise not_authorized(f"A client attempted to write unauthorized attribute {refused[0]}")
    check_schema(api.s.settings.user_pool, dict.fromkeys(names, ""))
    try:
        for name in names:
            user = await api.s.users.set_attribute(user.user_id, name, "")
    except InvalidAttribute as exc:
        raise invalid_parameter(str(exc)) from None
    return {}


async def get_user_attribute_verification_code(api: UserPoolApi, call: Call) -> Body:
    """A new code for `email` (while unverified) or `phone_number`."""
    user, _ = await signed_in(api, call.body)
    name = string(call.body, "AttributeName", high=32)
    wait = await resend_allowed(api.s, user.user_id, call.ctx.ip)
    if wait is not None:
        raise CognitoError("LimitExceededException", LIMIT)
    pending = await registration.pending_email(api.s, user) if name == "email" else None
    if pending is not None:  # the address the account is moving to
        code = await registration.request_email_change(api.s, user, pending)
        notify.email(api.s, None, pending, "verify_new_email.txt", user.locale, code=code)
        return {"CodeDeliveryDetails": delivery(pending)}
    if name == "email":
        await notify.send_code(api.s, None, user)
        return {"CodeDeliveryDetails": delivery(user.email)}
    if name == "phone_number" and user.phone_number:
        await notify.send_phone_code(api.s, None, user)
        return {"CodeDeliveryDetails": _sms(user.phone_number)}
    raise invalid_parameter(f"{name} cannot be verified")


async def verify_user_attribute(api: UserPoolApi, call: Call) -> Body:
    user, _ = await signed_in(api, call.body)
    name = string(call.body, "AttributeName", high=32)
    code = string(call.body, "Code", high=2048)
    try:
        if name == "email" and await registration.pending_email(api.s, user) is not None:
            moved, previous = await registration.confirm_email_change(api.s, user, code)
            # The old address hears of it: a stolen session must not move an account quietly.
            notify.email(
                api.s, None, previous, "email_changed.txt", user.locale,
                new_address=masked_email(moved.email),
            )  # fmt: skip
        elif name == "email":
            await registration.confirm_email(api.s, user.email, code)
        elif name == "phone_number":
            await registration.confirm_phone(api.s, user, code)
        else:
            raise invalid_parameter(f"{name} cannot be verified")
    except UserExists:  # another account took the address meanwhile
        raise CognitoError("AliasExistsException", ALIAS_EXISTS) from None
    except LoginError:
        raise CognitoError("CodeMismatchException", CODE_MISMATCH) from None
    return {}


async def delete_user(api: UserPoolApi, call: Call) -> Body:
    """DeleteUser: the account, its sessions and tokens, its second factors."""
    user, token = await signed_in(api, call.body)
    await end_local_user(api.s, user.user_id)
    await api.s.mfa.remove(user.user_id)
    await api.s.passkeys.remove_all(user.user_id)
    await api.s.users.delete(user.user_id)
    await api.s.audit.record("user.deleted", user_id=user.user_id, by="cognito-idp")
    return {}


async def devices_off(api: UserPoolApi, call: Call) -> Body:
    """Device tracking is off here (Cognito's default): no device is ever remembered."""
    await signed_in(api, call.body)
    if call.body.get("DeviceKey") is not None:
        raise CognitoError("ResourceNotFoundException", "Device does not exist.")
    return {"Devices": []}


def _sms(number: str) -> dict[str, str]:
    return {
        "Destination": masked_phone(number),
        "DeliveryMedium": "SMS",
        "AttributeName": "phone_number",
    }


def validation_error(field: str) -> CognitoError:
    return invalid_parameter(f"{field} must be a list of attribute names")


OPERATIONS: dict[str, Callable[[UserPoolApi, Call], Awaitable[dict[str, Any]]]] = {
    "UpdateUserAttributes": update_user_attributes,
    "DeleteUserAttributes": delete_user_attributes,
    "GetUserAttributeVerificationCode": get_user_attribute_verification_code,
    "VerifyUserAttribute": verify_user_attribute,
    "DeleteUser": delete_user,
    "ListDevices": devices_off,
    "GetDevice": devices_off,
    "ForgetDevice": devices_off,
    "UpdateDeviceStatus": devices_off,
    "ConfirmDevice": devices_off,
    "SignUp": sign_up,
    "ConfirmSignUp": confirm_sign_up,
    "ResendConfirmationCode": resend_confirmation_code,
    "ForgotPassword": forgot_password,
    "ConfirmForgotPassword": confirm_forgot_password,
    "GetUser": get_user,
    "ChangePassword": change_password,
    "GlobalSignOut": global_sign_out,
    "RevokeToken": revoke_token,
    "AssociateSoftwareToken": associate_software_token,
    "VerifySoftwareToken": verify_software_token,
}
