"""Why credentials cannot be vended: the credential family of `gateway.errors`' tree.

The vendor and the role choice raise these in their own words; each kind names the Cognito
Identity error it is on the wire (`type_name`, `status_code`), as each `OAuthError` names its
`error`, and `gateway.identity.cognito` renders them (`__type` JSON) with every other
`CognitoError`. The family derives from `CognitoError` so that the endpoints that already
answer Cognito errors (the browser `/credentials`, the sidecar's container credentials) keep
answering these exactly as before.

`StsError` is STS's own answer (its error code and message); the vendor turns it into one of
the kinds below and never lets it reach a caller.
"""

from __future__ import annotations

from typing import ClassVar

from gateway.errors import CognitoError


class CredentialError(CognitoError):
    """Credentials cannot be vended; `message` is safe to show the caller."""

    wire_type: ClassVar[str] = "NotAuthorizedException"
    wire_status: ClassVar[int] = 400
    wire_retry: ClassVar[int | None] = None

    def __init__(self, message: str) -> None:
        super().__init__(self.wire_type, message, self.wire_status, retry_after=self.wire_retry)


class RoleNotAllowed(CredentialError):
    """No role this identity may assume (guest rules, CustomRoleArn, a Deny mapping, or a
    trust policy that refused it)."""


class NoAuthenticatedRole(CredentialError):
    """The identity pool has no authenticated role to fall back on."""

    wire_type = "InvalidIdentityPoolConfigurationException"


class StsUnavailable(CredentialError):
    """STS did not answer in time: try again."""

    wire_type = "ExternalServiceException"
    wire_status = 503
    wire_retry = 5


class StsRefusedToken(CredentialError):
    """STS refused our web-identity token even freshly minted: as AWS answers such a token,
    400 NotAuthorized (a 5xx would make every SDK retry a call that cannot succeed)."""


class StsRejectedClaim(CredentialError):
    """STS (the IdP trust) rejected a claim of the token."""

    wire_status = 403


class StsFailed(CredentialError):
    """Any other STS error: a bad gateway."""

    wire_type = "ExternalServiceException"
    wire_status = 502


class StsError(CredentialError):
    """STS refused or failed; `code` is its error code (or "Unavailable"), `message` its
    text. Internal to the vendor, which maps it to a kind above."""

    wire_type = "ExternalServiceException"
    wire_status = 502

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        # CognitoError's str is "type: message"; STS's code says more in logs.
        self.args = (f"{code}: {message}",)
