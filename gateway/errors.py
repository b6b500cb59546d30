"""One exception tree for the whole gateway; each family knows its wire format.

    GatewayError                      base: anything the gateway raises on purpose
    ├── ConfigError                   settings that cannot be loaded or validated (CLI exit 1)
    ├── StoreUnavailable              Redis (or the memory store) cannot answer: fail closed, 503
    ├── OAuthError                    RFC 6749 / OIDC JSON errors on OAuth endpoints
    │   ├── InvalidRequest, InvalidClient (401), InvalidGrant, UnauthorizedClient,
    │   │   UnsupportedGrantType, InvalidScope, UnsupportedResponseType
    │   ├── InvalidToken (401 + WWW-Authenticate, RFC 6750)
    │   └── TemporarilyUnavailable (503)
    ├── PageError                     a friendly HTML page for browsers (never a redirect)
    └── CognitoError                  the Cognito Identity wire API: {"__type", "message"}

OAuth errors that may travel back to a client's redirect URI are raised as `OAuthError` and
turned into a redirect by the authorize endpoint once it has validated that URI; everything
before that point is a `PageError`, because an unvalidated redirect URI must never be followed.

Nothing here renders HTML itself: `gateway.ui.pages` owns templates. This module stays free of
Starlette so the CLI and the store can raise these too.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """Settings that cannot be used; the message names the YAML path of each problem."""

    def __init__(self, problems: list[str], source: str = "settings") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


class StoreUnavailable(GatewayError):
    """The store did not answer. Callers fail closed: 503 (or 401 for forward-auth)."""


class StoreContended(GatewayError):
    """`Store.modify` lost its compare-and-swap on every attempt: others changed the value as
    fast as it could read it. Nothing was written; the caller may try again."""


class OAuthError(GatewayError):
    """An RFC 6749 §5.2 error: `{"error": ..., "error_description": ...}`."""

    error: ClassVar[str] = "invalid_request"
    status_code: ClassVar[int] = 400

    def __init__(self, description: str = "") -> None:
        self.description = description
        super().__init__(f"{self.error}: {description}" if description else self.error)

    def as_dict(self) -> dict[str, Any]:
        """The JSON body (and the query parameters of an error redirect)."""
        body: dict[str, Any] = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body

    def headers(self) -> dict[str, str]:
        """Extra response headers; RFC 6749 forbids caching any token-endpoint response."""
        return {"Cache-Control": "no-store", "Pragma": "no-cache"}


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status_code = 401

    def headers(self) -> dict[str, str]:
        # RFC 6749 §5.2: a 401 from the token endpoint names the scheme the client should use.
        return {**super().headers(), "WWW-Authenticate": 'Basic realm="cognate"'}


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class AccessDenied(OAuthError):
    error = "access_denied"
    status_code = 403


class LoginRequired(OAuthError):
    error = "login_required"


class RequestNotSupported(OAuthError):
    error = "request_not_supported"


class InvalidToken(OAuthError):
    """RFC 6750 §3.1: a bearer token that is missing, expired, revoked or malformed."""

    error = "invalid_token"
    status_code = 401

    def headers(self) -> dict[str, str]:
        challenge = f'Bearer error="{self.error}"'
        if self.description:
            challenge += f', error_description="{self.description}"'
        return {**super().headers(), "WWW-Authenticate": challenge}


class TemporarilyUnavailable(OAuthError):
    error = "temporarily_unavailable"
    status_code = 503

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Retry-After": "5"}


class PageError(GatewayError):
    """A browser-facing error: rendered as a friendly HTML page, never a redirect."""

    def __init__(self, title: str, message: str, status_code: int = 400) -> None:
        self.title = title
        self.message = message
        self.status_code = status_code
        super().__init__(f"{title}: {message}")


class CognitoError(GatewayError):
    """An AWS JSON 1.1 error as Cognito Identity returns it: HTTP 400 (or the given status),
    body `{"__type": "NotAuthorizedException", "message": "..."}` and `x-amzn-ErrorType`."""

    def __init__(
        self, type_name: str, message: str, status_code: int = 400, retry_after: int | None = None
    ) -> None:
        self.type_name = type_name
        self.message = message
        self.status_code = status_code
        self.retry_after = retry_after
        super().__init__(f"{type_name}: {message}")


def not_authorized(message: str) -> CognitoError:
    return CognitoError("NotAuthorizedException", message)


def invalid_parameter(message: str) -> CognitoError:
    return CognitoError("InvalidParameterException", message)


def not_found(message: str) -> CognitoError:
    return CognitoError("ResourceNotFoundException", message)
