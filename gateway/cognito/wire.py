"""The user-pool API's wire format: reading fields of an AWS JSON body the way Cognito checks
them, and Cognito's own error types and messages.

Errors are `gateway.errors.CognitoError`s (HTTP 400, `{"__type", "message"}` and
`x-amzn-ErrorType`), rendered by the transport (`gateway.cognito.api`). Field checks answer
with the message shape AWS uses ("1 validation error detected: Value at 'username' failed to
satisfy constraint: ..."), so an SDK's error handling meets what it knows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from gateway.clients import Client
from gateway.crypto import constant_time_equals
from gateway.errors import CognitoError
from gateway.settings import UserPoolSettings
from gateway.users.schema import check_update

Body = dict[str, Any]

# What Cognito answers, word for word, where an SDK or its users may read it.
INCORRECT = "Incorrect username or password."
ATTEMPTS_EXCEEDED = "Password attempts exceeded"
NOT_CONFIRMED = "User is not confirmed."
INVALID_SESSION = "Invalid session for the user, session is expired."
CODE_MISMATCH = "Invalid verification code provided, please try again."
MFA_CODE_MISMATCH = "Invalid code received for user"
LIMIT = "Attempt limit exceeded, please try after some time."
ACCESS_TOKEN_BAD = "Invalid Access Token"


def not_authorized(message: str = INCORRECT) -> CognitoError:
    return CognitoError("NotAuthorizedException", message)


def invalid_parameter(message: str) -> CognitoError:
    return CognitoError("InvalidParameterException", message)


def validation(field: str, constraint: str) -> CognitoError:
    """AWS's own wording for a field that fails the service model."""
    name = field[0].lower() + field[1:]
    return CognitoError(
        "InvalidParameterException",
        f"1 validation error detected: Value at '{name}' failed to satisfy constraint: "
        f"{constraint}",
    )


def string(body: Body, field: str, *, required: bool = True, low: int = 1, high: int = 2048) -> str:
    """A string field within the model's length bounds; "" when optional and absent."""
    value = body.get(field)
    if value is None:
        if required:
            raise validation(field, "Member must not be null")
        return ""
    if not isinstance(value, str):
        raise CognitoError("SerializationException", f"{field} must be a string.")
    if not low <= len(value) <= high:
        raise validation(field, f"Member must have length between {low} and {high} (inclusive)")
    return _unicode(value, field)


def _unicode(value: str, field: str) -> str:
    """Text that is Unicode (JSON's \\ud800 escapes can spell lone surrogates, which are not)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise CognitoError("SerializationException", f"{field} is not valid Unicode.") from None
    return value


def mapping(body: Body, field: str) -> dict[str, str]:
    """A map of strings to strings (AuthParameters, ChallengeResponses, ClientMetadata)."""
    value = body.get(field) or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise CognitoError("SerializationException", f"{field} must map strings to strings.")
    for key, text in value.items():
        _unicode(key, field)
        _unicode(text, field)
    return value


def attributes(body: Body, field: str = "UserAttributes") -> dict[str, str]:
    """A list of `{"Name", "Value"}` pairs as a dict (the last one wins, as in Cognito)."""
    value = body.get(field) or []
    if not isinstance(value, list):
        raise CognitoError("SerializationException", f"{field} must be a list.")
    found: dict[str, str] = {}
    for item in value:
        name = item.get("Name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not 1 <= len(name) <= 32:
            raise validation(f"{field}.member.name", "Member must not be null")
        text = item.get("Value", "")
        if not isinstance(text, str) or len(text) > 2048:
            raise validation(f"{field}.member.value", "Member must have length less than 2048")
        found[_unicode(name, field)] = _unicode(text, field)
    return found


def secret_hash(client: Client, username: str, given: str | None) -> None:
    """A client with a secret must prove it: SECRET_HASH = Base64(HMAC-SHA256(secret,
    username + client_id)), as Cognito computes it."""
    secret = client.config.client_secret
    if not secret:
        return
    if not given:
        raise not_authorized(
            f"Client {client.client_id} is configured with secret but SECRET_HASH was not received"
        )
    digest = hmac.new(
        secret.encode(), (username + client.client_id).encode(), hashlib.sha256
    ).digest()
    if not constant_time_equals(base64.b64encode(digest).decode(), given):
        raise not_authorized(f"Unable to verify secret hash for client {client.client_id}")


def unknown_client(client_id: str) -> CognitoError:
    return CognitoError(
        "ResourceNotFoundException", f"User pool client {client_id} does not exist."
    )


def masked_email(email: str) -> str:
    """j***@example.com, as Cognito shows a code's destination."""
    name, _, domain = email.partition("@")
    return f"{name[:1]}***@{domain}" if domain else "***"


def masked_phone(number: str) -> str:
    """+*******1234, as Cognito shows a code's destination."""
    return f"+*******{number[-4:]}"


def check_schema(pool: UserPoolSettings, given: dict[str, str]) -> None:
    """Attribute writes (UpdateUserAttributes, AdminCreateUser, AdminUpdateUserAttributes...)
    under the pool's rules (`registration.check_update`), refused in Cognito's words."""
    if pool.usernames and "preferred_username" in given:
        raise invalid_parameter(
            "preferred_username is the account's username in this user pool and cannot be changed."
        )
    fault = check_update(pool, given)
    if fault is None:
        return
    name, why = fault
    if why == "not an attribute of this user pool":
        raise invalid_parameter(
            f"Attributes did not conform to the schema: Type for attribute {{{name}}} "
            "could not be determined"
        )
    if name == "phone_number":
        raise invalid_parameter("Invalid phone number format.")
    raise invalid_parameter(f"Attributes did not conform to the schema: {name}: {why}")
