"""SetUserMFAPreference: a signed-in user turns their second factors on and off, as Amplify's
`updateMFAPreference` and amazon-cognito-identity-js's `setUserMfaPreference` ask.

The factors are the MFA store's (`gateway.users.mfa`), the same as the account page's: an
authenticator app (SOFTWARE_TOKEN_MFA) once VerifySoftwareToken confirmed it, and codes by
e-mail (EMAIL_OTP) for a verified address. Turning one *on* needs only the access token, as in
Cognito; turning one *off* also needs the token's sign-in to have passed a second factor — the
account page asks for a current code to do the same, and a stolen password-only session must
not be able to strip the factor that protects the account.

Cognate keeps no separate "preferred" factor: when both are on, a sign-in asks for the app's
code (GetUser reports it as PreferredMfaSetting), so `PreferredMfa` is accepted and checked
for consistency but not stored. SMS as a second factor is not offered (turning it on is
refused as for a user without a phone delivery configuration); WebAuthnMfaSettings are
accepted, as passkeys always count as a second factor here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from gateway import amr
from gateway.cognito.auth import Call
from gateway.cognito.selfservice import signed_in
from gateway.cognito.wire import Body, invalid_parameter, not_authorized
from gateway.errors import CognitoError
from gateway.login.machine import mfa_outcome

if TYPE_CHECKING:
    from gateway.cognito.api import UserPoolApi

SETTINGS = ("SMSMfaSettings", "SoftwareTokenMfaSettings", "EmailMfaSettings", "WebAuthnMfaSettings")


def _setting(body: Body, field: str) -> tuple[bool | None, bool]:
    """(Enabled, PreferredMfa) of one `*MfaSettings` member; Enabled None when absent."""
    value = body.get(field)
    if value is None:
        return None, False
    if not isinstance(value, dict):
        raise CognitoError("SerializationException", f"{field} must be an object.")
    enabled, preferred = value.get("Enabled"), value.get("PreferredMfa", False)
    if not isinstance(enabled, bool | None) or not isinstance(preferred, bool):
        raise CognitoError("SerializationException", f"{field} members must be booleans.")
    return enabled, preferred


async def set_user_mfa_preference(api: UserPoolApi, call: Call) -> Body:
    """SetUserMFAPreference: each factor the body names on or off (absent ones unchanged)."""
    user, token = await signed_in(api, call.body)
    wanted = {field: _setting(call.body, field) for field in SETTINGS}
    preferred = [field for field, (_, pref) in wanted.items() if pref]
    if len(preferred) > 1:
        raise invalid_parameter("Only one MFA type can be set as preferred.")
    if any(pref and enabled is False for enabled, pref in wanted.values()):
        raise invalid_parameter("A disabled MFA type cannot be preferred.")
    record = await api.s.mfa.get(user.user_id)
    changes: list[tuple[Literal["totp", "email"], bool]] = []
    if wanted["SMSMfaSettings"][0]:
        raise invalid_parameter("User does not have delivery config set to turn on SMS_MFA")
    totp_on, _ = wanted["SoftwareTokenMfaSettings"]
    if totp_on and (record is None or not record.totp_secret):
        raise invalid_parameter("User has not verified software token mfa")
    if totp_on is not None and totp_on != bool(record and record.totp_secret):
        changes.append(("totp", totp_on))
    email_on, _ = wanted["EmailMfaSettings"]
    if email_on and not (user.email_verified and api.s.settings.user_pool.email_mfa):
        raise invalid_parameter("User does not have delivery config set to turn on EMAIL_OTP")
    if email_on is not None and email_on != bool(record and record.email_otp):
        changes.append(("email", email_on))
    if any(not on for _, on in changes):
        # Turning a factor off: only from a sign-in that passed one (see the module docstring).
        loaded = await api.s.grants.load_grant(token.gid) if token.gid else None
        signed_amr = loaded[1].authorization.amr if loaded else []
        if not amr.passed_second_factor(signed_amr):
            raise not_authorized("Sign in with your second factor to turn it off.")
        remaining = {m for m, on in (("totp", totp_on), ("email", email_on)) if on}
        if record and record.totp_secret and totp_on is None:
            remaining.add("totp")
        if record and record.email_otp and email_on is None:
            remaining.add("email")
        if not remaining and api.s.settings.user_pool.mfa == "required":
            raise invalid_parameter("MFA is required for this user pool.")
    for method, on in changes:
        if on:  # only e-mail can get here: an app is turned on by VerifySoftwareToken
            await api.s.mfa.enable_email(user.user_id, new_codes=False)
            await mfa_outcome(api.s, method, "enrolled", user.user_id)
        else:
            await api.s.mfa.disable(user.user_id, method)
            await mfa_outcome(api.s, method, "removed", user.user_id)
    return {}


OPERATIONS = {"SetUserMFAPreference": set_user_mfa_preference}
