"""One exception tree for the whole gateway; each family knows its wire format.

Every exception class the gateway defines is drawn here (tests/test_errors.py checks it): the
ones without a module live in this one, the others in the module named at the end of their line.

    GatewayError                      base: anything the gateway raises on purpose
    ├── ConfigError                   settings that cannot be loaded or validated (CLI exit 1)
    ├── Unavailable                   fail closed: 503 + Retry-After, in each wire format
    │   ├── StoreUnavailable          Redis (or the memory store) cannot answer
    │   │   └── _NotAcknowledged      too few replicas confirmed a write: gateway.store.redis
    │   ├── StoreContended            Store.modify lost every compare-and-swap
    │   └── Overloaded                too much CPU-bound work waiting (argon2, XML signatures)
    ├── RateLimited                   too many attempts; 429 + Retry-After: gateway.ratelimit
    ├── OAuthError                    RFC 6749 / OIDC JSON errors on OAuth endpoints
    │   ├── InvalidRequest, InvalidGrant, UnauthorizedClient, UnsupportedGrantType
    │   ├── InvalidScope, UnsupportedResponseType, AccessDenied (403), LoginRequired
    │   ├── RequestNotSupported
    │   ├── InvalidClient             401 + WWW-Authenticate: Basic
    │   ├── InvalidToken              401 + WWW-Authenticate: Bearer (RFC 6750)
    │   ├── TemporarilyUnavailable    503 + Retry-After
    │   ├── RequestUriNotSupported    gateway.op.authorize
    │   ├── MethodNotAllowed, BodyTooLarge  (405, 413): gateway.op.common
    │   ├── AuthorizationPending, SlowDown, ExpiredToken, DeviceAccessDenied  gateway.op.device
    │   ├── TooManyDeviceCodes        429 (RFC 8628): gateway.op.device
    │   ├── InvalidTarget             RFC 8693: gateway.op.exchange
    │   └── InsufficientScope         403: gateway.op.userinfo
    ├── PageError                     a friendly HTML page for browsers (never a redirect)
    │   └── _TooManyGuesses           429 on the device page: gateway.ui.device
    ├── CognitoError                  the Cognito Identity wire API: {"__type", "message"}
    │   └── CredentialError           credentials cannot be vended: gateway.credentials.errors
    │       ├── RoleNotAllowed, NoAuthenticatedRole  gateway.credentials.errors
    │       ├── StsUnavailable, StsRefusedToken, StsRejectedClaim  gateway.credentials.errors
    │       └── StsFailed, StsError   (StsError: STS's own answer) gateway.credentials.errors
    ├── LoginRejected                 a Logins token that proves nothing: gateway.identity.providers
    ├── LoginTaken, TooManyLogins, UnknownIdentity  identity IDs: gateway.identity.ids
    ├── ConnectorError                an upstream sign-in failed (safe message): gateway.connectors
    │   └── UpstreamUnavailable, UpstreamRefused  gateway.connectors
    │       └── SignInTooOld          past SAML's max_session_age: gateway.connectors
    ├── LoginError                    a sign-in step refused (its page's words): gateway.login.steps
    │   ├── FlowExpired, SignInExpired, AccountUnavailable, IdpUnavailable  gateway.login.steps
    │   ├── IncorrectPassword         one answer for wrong, unknown, disabled: gateway.login.steps
    │   ├── TooManyAttempts           429 + retry_after: gateway.login.steps
    │   │   ├── TooManyCodes          gateway.login.steps
    │   │   ├── TooManyResets         gateway.login.recovery
    │   │   └── TooManySignUps        gateway.login.registration
    │   ├── WrongCode                 gateway.login.steps
    │   │   └── WrongEnrolmentCode    gateway.login.steps
    │   ├── PasskeyRefused            gateway.login.steps
    │   │   └── PasskeySignInRefused  gateway.login.steps
    │   ├── ForeignAnswer             an IdP's answer for another flow: gateway.login.upstream
    │   ├── LinkExpired, LinkRefused, AlreadyLinked, TooManySignInMethods  gateway.login.identity
    │   ├── WrongResetCode, ResetLinkExpired  gateway.login.recovery
    │   ├── WrongVerificationCode, VerifyLinkExpired  gateway.login.registration
    │   └── SignUpRefused             gateway.login.registration
    │       ├── EmailDomainRefused, InvalidAttributes  gateway.login.registration
    │       └── SignUpUnavailable, SignUpDenied  gateway.login.registration
    ├── UnsafeXml                     XML we refuse (a ValueError): gateway.connectors.saml_xml
    ├── OutboundError                 an upstream could not be asked: gateway.outbound
    ├── UserExists, UnknownUser, UsernameTaken, InvalidUsername  gateway.users.directory
    ├── InvalidAttribute, InvalidPassword  gateway.users.directory
    │   └── InvalidEmail              (under InvalidPassword) gateway.users.directory
    ├── UnknownGroup, GroupExists, GroupFromSettings  user-pool groups: gateway.users.groups
    ├── HookFailed                    a user-pool hook refused or failed: gateway.users.hooks
    ├── RegistrationRefused           a passkey not kept, and why: gateway.users.passkeys
    └── DeliveryFailed                a message could not be sent: gateway.users.senders

    Not a GatewayError: ClientError   the command-line client's own error: gateway.client_cli

Each family renders its wire format in one place: `OAuthError` and `Unavailable` as OAuth JSON
in `gateway.op.common.oauth_json`; `CognitoError` (credentials too) and `Unavailable` as
`__type` JSON in `gateway.identity.cognito`; `PageError` and `Unavailable` as HTML in
`gateway.app`; `LoginError` is rendered by each front end of the login machine (the hosted
pages show its `page()`). OAuth errors that may travel back to a client's redirect URI are raised as
`OAuthError` and turned into a redirect by the authorize endpoint once it has validated that
URI; everything before that point is a `PageError`, because an unvalidated redirect URI must
never be followed.

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


class Unavailable(GatewayError):
    """The gateway cannot serve this right now; it fails closed: 503 with `Retry-After`
    (forward-auth: 401). Rendered once per wire format (see the module docstring)."""

    retry_after: ClassVar[int] = 5


class StoreUnavailable(Unavailable):
    """The store did not answer. Callers fail closed: 503 (or 401 for forward-auth)."""


class StoreContended(Unavailable):
    """`Store.modify` lost its compare-and-swap on every attempt: others changed the value as
    fast as it could read it. Nothing was written; the caller may try again."""


class Overloaded(Unavailable):
    """Too much CPU-bound work is waiting (`gateway.pool`); the caller answers 503 with
    Retry-After rather than queue without end."""


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
