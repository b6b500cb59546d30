"""The user-pool API's passkeys: StartWebAuthnRegistration, CompleteWebAuthnRegistration,
ListWebAuthnCredentials and DeleteWebAuthnCredential for the signed-in user, and the building
blocks of the USER_AUTH flow's WEB_AUTHN challenge (`request_options`, `answer`).

The passkeys are the hosted pages' own (`gateway.users.passkeys`: one store, one relying
party), so a passkey registered here signs in on the hosted pages and the other way round.
An app using this API runs on its own origin: its ceremonies accept the gateway's origin and
the app client's allowed origins within the relying party ID (WebAuthn's rule), nothing else.
A passwordless sign-in goes through `gateway.login.machine.passkey`, so limits, audit and
identity resolution are the machine's; what this module adds is the binding of the answer to
the account the sign-in named. The USER_AUTH wiring itself lives in `gateway.cognito.auth`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from webauthn.helpers import base64url_to_bytes

from gateway.cognito.selfservice import signed_in
from gateway.cognito.wire import Body, invalid_parameter, string, validation
from gateway.errors import CognitoError
from gateway.login import machine
from gateway.login.machine import mfa_outcome
from gateway.login.steps import Done, SignInExpired
from gateway.users.passkeys import MAX_PASSKEYS, Passkey, RegistrationRefused

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.cognito.api import UserPoolApi
    from gateway.cognito.auth import Call
    from gateway.login.flows import Flow
    from gateway.login.machine import Context

# Cognito's words for a refused registration answer (its model's documentation).
REFUSED: dict[str, tuple[str, str]] = {
    "challenge": (
        "WebAuthnChallengeNotFoundException",
        "The challenge from StartWebAuthnRegistration was not found or has expired.",
    ),
    "client": (
        "WebAuthnClientMismatchException",
        "The access token is for a different client than the one in the original "
        "StartWebAuthnRegistration request.",
    ),
    "origin": (
        "WebAuthnOriginNotAllowedException",
        "The passkey credential's registration origin does not align with the user pool "
        "relying party id.",
    ),
    "rp_id": (
        "WebAuthnRelyingPartyMismatchException",
        "The passkey credential is associated with a different relying party ID than the "
        "user pool relying party ID.",
    ),
    "unsupported": (
        "WebAuthnCredentialNotSupportedException",
        "The passkey credential is not supported.",
    ),
    "taken": ("InvalidParameterException", "The passkey credential is already registered."),
    "contended": ("TooManyRequestsException", "Too many requests"),
}
DECOY_PURPOSE = "webauthn-decoy-credential"
DECOY_LENGTH = 32  # bytes: what platform authenticators and security keys commonly make


def _enabled(api: UserPoolApi) -> None:
    if not api.s.passkeys.enabled:  # off in settings, or an issuer without a domain name
        raise CognitoError(
            "WebAuthnNotEnabledException", "Passkeys are not enabled for this user pool."
        )


def ceremony_origins(api: UserPoolApi, client_id: str) -> tuple[str, ...]:
    """Who may answer an API ceremony for `client_id`: the gateway's origin and the client's
    allowed origins within the relying party ID."""
    client = api.s.clients.get(client_id)
    return api.s.passkeys.origins_with(client.config.cors_origins if client else ())


def _owner(user_id: str) -> str:
    # One pending API registration per user (Cognito's too); never a hosted page's session id.
    return f"cognito-idp:{user_id}"


async def start_web_authn_registration(api: UserPoolApi, call: Call) -> Body:
    """StartWebAuthnRegistration: creation options for `navigator.credentials.create`, as a
    JSON document (PublicKeyCredentialCreationOptionsJSON)."""
    user, token = await signed_in(api, call.body)
    _enabled(api)
    if len(await api.s.passkeys.list(user.user_id)) >= MAX_PASSKEYS:
        raise CognitoError(
            "LimitExceededException", f"A user can register at most {MAX_PASSKEYS} passkeys."
        )
    options = await api.s.passkeys.registration_options(
        _owner(user.user_id),
        user.user_id,
        user.email,
        origins=ceremony_origins(api, token.client_id),
        client_id=token.client_id,
    )
    return {"CredentialCreationOptions": json.loads(options)}


async def complete_web_authn_registration(api: UserPoolApi, call: Call) -> Body:
    """CompleteWebAuthnRegistration: the browser's RegistrationResponseJSON, verified and kept."""
    user, token = await signed_in(api, call.body)
    _enabled(api)
    credential = call.body.get("Credential")
    if credential is None:
        raise validation("Credential", "Member must not be null")
    if not isinstance(credential, dict):
        raise invalid_parameter("Credential must be a RegistrationResponseJSON object.")
    try:
        await api.s.passkeys.register_or_refuse(
            _owner(user.user_id),
            user.user_id,
            json.dumps(credential),
            "Passkey",
            client_id=token.client_id,
        )
    except RegistrationRefused as exc:
        raise CognitoError(*REFUSED[exc.reason]) from None
    await mfa_outcome(api.s, "passkey", "enrolled", user.user_id)
    return {}


async def list_web_authn_credentials(api: UserPoolApi, call: Call) -> Body:
    """ListWebAuthnCredentials: the user's passkeys, oldest first, MaxResults (up to 20) at a
    time; NextToken names the first passkey of the next page."""
    user, _ = await signed_in(api, call.body)
    _enabled(api)
    limit = call.body.get("MaxResults")
    if limit is None or limit == 0:
        limit = MAX_PASSKEYS
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= 20:
        raise validation("MaxResults", "Member must have value less than or equal to 20")
    keys = sorted(await api.s.passkeys.list(user.user_id), key=lambda p: p.created)
    start = 0
    if call.body.get("NextToken") is not None:
        after = string(call.body, "NextToken", high=131072)
        start = next((i for i, p in enumerate(keys) if p.credential_id == after), -1)
        if start < 0:
            raise invalid_parameter("Invalid NextToken.")
    page = keys[start : start + limit]
    answer: Body = {"Credentials": [_description(api, p) for p in page]}
    if start + limit < len(keys):
        answer["NextToken"] = keys[start + limit].credential_id
    return answer


def _description(api: UserPoolApi, passkey: Passkey) -> dict[str, Any]:
    described: dict[str, Any] = {
        "CredentialId": passkey.credential_id,
        "FriendlyCredentialName": passkey.name,
        "RelyingPartyId": passkey.rp_id or api.s.passkeys.rp_id,
        "AuthenticatorTransports": list(passkey.transports),
        "CreatedAt": passkey.created,
    }
    if passkey.attachment:
        described["AuthenticatorAttachment"] = passkey.attachment
    return described


async def delete_web_authn_credential(api: UserPoolApi, call: Call) -> Body:
    """DeleteWebAuthnCredential: one of the user's own passkeys (another's is "not found")."""
    user, _ = await signed_in(api, call.body)
    _enabled(api)
    credential_id = string(call.body, "CredentialId", high=131072)
    keys = await api.s.passkeys.list(user.user_id)
    if not any(p.credential_id == credential_id for p in keys):
        raise CognitoError("ResourceNotFoundException", "Credential not found.")
    if not await api.s.passkeys.remove(user.user_id, credential_id):
        # A concurrent change won twice: nothing was removed, the client may try again.
        raise CognitoError(*REFUSED["contended"])
    await mfa_outcome(api.s, "passkey", "removed", user.user_id)
    return {}


# -- the WEB_AUTHN challenge of USER_AUTH (wired in gateway.cognito.auth) --------------------


async def request_options(
    api: UserPoolApi, flow: Flow, user_id: str | None, *, username: str = ""
) -> str:
    """CREDENTIAL_REQUEST_OPTIONS (a JSON string) for a passwordless sign-in of `user_id`'s
    passkeys on `flow`: its passkeys allowed, user verification required, only its passkey
    may answer (`answer`). For an unknown user (None), or one without passkeys, the options
    have the same shape with a decoy credential no passkey answers; give `username` (what the
    caller asked for) so the decoy is the same on every try, as a real user's list is.
    Raises WebAuthnNotEnabledException when passkeys are off."""
    _enabled(api)
    seed = username.strip().lower() or user_id or flow.flow_id  # as sign-in reads names
    decoy = base64url_to_bytes(api.s.sealer.keyed_hash(seed, purpose=DECOY_PURPOSE))
    return await api.s.passkeys.sign_in_options(
        flow.flow_id,
        user_id or "",
        [decoy[:DECOY_LENGTH]],
        ceremony_origins(api, flow.client_id),
    )


async def answer(api: UserPoolApi, flow: Flow, credential_json: str, ctx: Context) -> Done:
    """The CREDENTIAL answer (PublicKeyCredential JSON) to `request_options` on `flow`:
    through `machine.passkey` (its per-IP limit, audit and identity resolution), bound to the
    account the options named. Raises the machine's LoginError family on refusal
    (PasskeySignInRefused; TooManyAttempts)."""
    step = await machine.passkey(api.s, flow, credential_json, ctx)
    if not isinstance(step, Done):
        # A passwordless passkey is verified (two factors in one gesture): the machine never
        # asks for another. Should that change, this sign-in must not end in tokens.
        raise SignInExpired
    return step


OPERATIONS: dict[str, Callable[[UserPoolApi, Call], Awaitable[Body]]] = {
    "StartWebAuthnRegistration": start_web_authn_registration,
    "CompleteWebAuthnRegistration": complete_web_authn_registration,
    "ListWebAuthnCredentials": list_web_authn_credentials,
    "DeleteWebAuthnCredential": delete_web_authn_credential,
}
