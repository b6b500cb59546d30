"""SetUserMFAPreference and AdminSetUserMFAPreference: second factors on and off, and the one
preferred, as Amplify's `updateMFAPreference`, amazon-cognito-identity-js's
`setUserMfaPreference` and a back end's boto3 ask.

The factors are the MFA store's (`gateway.users.mfa`), the same as the account page's: an
authenticator app (SOFTWARE_TOKEN_MFA) once VerifySoftwareToken confirmed it, codes by e-mail
(EMAIL_OTP) for a verified address, codes by text message (SMS_MFA, with `user_pool.sms_mfa`)
for a verified number. Turning one *on* needs only the access token, as in Cognito; turning
one *off* also needs the token's sign-in to have passed a second factor — the account page
asks for a current code to do the same, and a stolen password-only session must not be able to
strip the factor that protects the account. The admin operation (SigV4, an `admin_keys` entry)
may do either.

`PreferredMfa` is stored: a sign-in with several factors asks for the preferred one, and
without one it asks which (SELECT_MFA_TYPE). WebAuthnMfaSettings are accepted: passkeys always
count as a second factor here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

from gateway.cognito.auth import Call, this_pool, user_by_name
from gateway.cognito.selfservice import passed_second_factor, signed_in
from gateway.cognito.wire import Body, invalid_parameter, not_authorized, string
from gateway.errors import CognitoError
from gateway.login.machine import mfa_outcome
from gateway.users.directory import User

if TYPE_CHECKING:
    from gateway.cognito.api import UserPoolApi

Factor = Literal["totp", "email", "sms"]
# Each `*MfaSettings` member and the factor it turns on or off.
SETTINGS: dict[str, Factor | None] = {
    "SoftwareTokenMfaSettings": "totp",
    "SMSMfaSettings": "sms",
    "EmailMfaSettings": "email",
    "WebAuthnMfaSettings": None,
}


def _setting(body: Body, field: str) -> tuple[bool | None, bool | None]:
    """(Enabled, PreferredMfa) of one `*MfaSettings` member; None for what is absent."""
    value = body.get(field)
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise CognitoError("SerializationException", f"{field} must be an object.")
    enabled, preferred = value.get("Enabled"), value.get("PreferredMfa")
    if not isinstance(enabled, bool | None) or not isinstance(preferred, bool | None):
        raise CognitoError("SerializationException", f"{field} members must be booleans.")
    return enabled, preferred


async def set_user_mfa_preference(api: UserPoolApi, call: Call) -> Body:
    """SetUserMFAPreference, for the user an access token names."""
    user, token = await signed_in(api, call.body)

    async def second_factor_passed() -> bool:
        return await passed_second_factor(api, token)

    await apply(api, user, call.body, second_factor_passed)
    return {}


async def admin_set_user_mfa_preference(api: UserPoolApi, call: Call) -> Body:
    """AdminSetUserMFAPreference (SigV4-signed): any user of this pool, by Username."""
    this_pool(api, call.body)
    user = await user_by_name(api, string(call.body, "Username", high=128))
    if user is None:
        raise CognitoError("UserNotFoundException", "User does not exist.")

    async def administrator() -> bool:
        return True

    await apply(api, user, call.body, administrator, by="admin")
    return {}


async def apply(
    api: UserPoolApi,
    user: User,
    body: Body,
    may_remove: Callable[[], Awaitable[bool]],
    by: str = "user",
) -> None:
    """Each factor the body names on or off (absent ones unchanged), then the preference.
    `may_remove`: may this caller turn a factor off (see the module docstring)?"""
    pool = api.s.settings.user_pool
    wanted = {field: _setting(body, field) for field in SETTINGS}
    if sum(1 for _, preferred in wanted.values() if preferred) > 1:
        raise invalid_parameter("Only one MFA type can be set as preferred.")
    if any(preferred and enabled is False for enabled, preferred in wanted.values()):
        raise invalid_parameter("A disabled MFA type cannot be preferred.")
    record = await api.s.mfa.get(user.user_id)
    now_on = set(record.factors()) if record else set()
    requested = {SETTINGS[f]: on for f, (on, _) in wanted.items() if SETTINGS[f] and on is not None}
    if requested.get("sms") and not (pool.sms_mfa and user.phone_number_verified):
        raise invalid_parameter("User does not have delivery config set to turn on SMS_MFA")
    if requested.get("totp") and "totp" not in now_on:
        raise invalid_parameter("User has not verified software token mfa")
    if requested.get("email") and not (user.email_verified and pool.email_mfa):
        raise invalid_parameter("User does not have delivery config set to turn on EMAIL_OTP")
    changes = [
        (factor, on) for factor, on in requested.items() if factor and on != (factor in now_on)
    ]
    remaining = (now_on | {f for f, on in changes if on}) - {f for f, on in changes if not on}
    if any(not on for _, on in changes):
        if not await may_remove():
            raise not_authorized("Sign in with your second factor to turn it off.")
        if not remaining and pool.mfa == "required":
            raise invalid_parameter("MFA is required for this user pool.")
    for factor, on in changes:
        if factor is None:
            continue
        if on:  # e-mail or text message: an app is turned on by VerifySoftwareToken
            assert factor != "totp"  # noqa: S101 - refused above
            await api.s.mfa.enable(user.user_id, factor, new_codes=False)
            await mfa_outcome(api.s, factor, "enrolled", user.user_id)
        else:
            await api.s.mfa.disable(user.user_id, factor)
            await mfa_outcome(api.s, factor, "removed", user.user_id)
    preferred = next((SETTINGS[f] for f, (_, p) in wanted.items() if p and SETTINGS[f]), None)
    unpreferred = {SETTINGS[f] for f, (_, p) in wanted.items() if p is False}
    current = record.preferred if record else None
    if preferred is not None and preferred != current:
        await api.s.mfa.prefer(user.user_id, preferred)
        await api.s.audit.record("mfa.preferred", method=preferred, user_id=user.user_id, by=by)
    elif current in unpreferred and current in remaining:
        await api.s.mfa.prefer(user.user_id, None)


OPERATIONS = {"SetUserMFAPreference": set_user_mfa_preference}
ADMIN_OPERATIONS = {"AdminSetUserMFAPreference": admin_set_user_mfa_preference}
