"""Upstream identity sources ("connectors") and what they hand back.

A connector keeps no state of its own: whatever it needs between the redirect to an IdP and the
callback is a typed *pending* record (`OidcPending`, `OAuth2Pending`, `SamlPending`) that the
login keeps on the flow (`gateway.login.progress.AtIdp`) and hands back to `finish`.

Connectors opt into small capabilities, as dex's do: `PasswordConnector.login` (the local
directory), `RedirectConnector.start` / `finish` (OIDC, OAuth2, SAML), `RefreshingConnector`
(upstream tokens can be refreshed, and the profile with them) and `SigningOutConnector` (the
IdP's own sessions end with Cognate's). Callers ask `isinstance(connector, Capability)`, never
which class a connector is.

Adding one: a module here, a line in `registry.build_connectors`, its tests, an example in
`config/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from gateway.errors import GatewayError


class ConnectorError(GatewayError):
    """An upstream sign-in failed; the message is safe to show the user (no tokens, no
    internals) and names the provider where that helps."""


class UpstreamUnavailable(ConnectorError):
    """The IdP could not be reached (`status` 503) or sent something that is not an answer —
    a 5xx, HTML, an oversized body (502): no fault of the user's, so the page says to try
    again rather than answering 400."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


class UpstreamRefused(ConnectorError):
    """The IdP itself said no (a revoked upstream refresh token), as opposed to being
    unreachable: the downstream grant must end too."""


class SignInTooOld(UpstreamRefused):
    """The upstream sign-in is older than its connector allows (SAML's `max_session_age`)."""


@dataclass(frozen=True)
class OidcPending:
    """An OpenID Connect sign-in waiting for its callback."""

    state: str
    nonce: str
    verifier: str  # PKCE code_verifier
    callback: str  # the redirect_uri sent, sent again with the code


@dataclass(frozen=True)
class OAuth2Pending:
    """A plain OAuth 2.0 (social) sign-in waiting for its callback."""

    state: str
    verifier: str
    callback: str


@dataclass(frozen=True)
class SamlPending:
    """A SAML AuthnRequest waiting for its Response (`request_id` must be its InResponseTo)."""

    state: str  # the RelayState
    request_id: str


UpstreamPending = OidcPending | OAuth2Pending | SamlPending


@dataclass(frozen=True)
class LoginStart:
    """Where `start()` sends the browser, and what to keep on the flow until the callback.
    With `form`, the browser POSTs those fields to `redirect_url` (SAML HTTP-POST binding)."""

    redirect_url: str
    pending: UpstreamPending
    form: dict[str, str] | None = None


@dataclass(frozen=True)
class UpstreamIdentity:
    """What a connector proved: who the user is at that source, and what it says about them."""

    connector_id: str
    subject: str
    claims: dict[str, Any] = field(default_factory=dict)
    amr: list[str] = field(default_factory=list)
    expires_at: float | None = None  # when the proof itself expires (a SAML assertion)
    # The IdP's tokens (access_token, refresh_token, expires_at), kept encrypted with the session
    # and its grants, refreshed when the downstream refresh token is used.
    tokens: dict[str, Any] | None = None
    # The password was right but temporary (the local directory's FORCE_CHANGE_PASSWORD):
    # the login asks for a new one before anything else.
    new_password_due: bool = False


class Connector(Protocol):
    """Every connector has an id, a type and a button label."""

    id: str
    type: str
    name: str


@runtime_checkable
class PasswordConnector(Connector, Protocol):
    """A connector that checks a username and password itself."""

    async def login(self, username: str, password: str) -> UpstreamIdentity | None:
        """The identity if the credentials are right, else None (same cost either way)."""
        ...


@runtime_checkable
class RedirectConnector(Connector, Protocol):
    """A connector that sends the browser to an upstream IdP and back."""

    async def start(self, callback_url: str, flow_id: str) -> LoginStart:
        """Where to send the browser, and what to remember on the flow."""
        ...

    async def finish(self, params: Mapping[str, str], pending: UpstreamPending) -> UpstreamIdentity:
        """Validate the IdP's answer to the sign-in `pending` describes; raise ConnectorError
        with a safe message otherwise (also when `pending` is another kind's)."""
        ...

    def form_origins(self) -> list[str]:
        """Origins the sign-in page must allow as form targets (CSP form-action)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class UpstreamSignIn:
    """A past sign-in at a connector, as a downstream refresh presents it."""

    subject: str | None  # who signed in there (a refreshed ID token must name the same)
    tokens: Mapping[str, Any] | None  # the IdP's tokens kept with the grant, if any
    auth_time: int
    now: float  # the refreshing endpoint's clock


@dataclass(frozen=True)
class UpstreamRefresh:
    """What an upstream refresh brought: new tokens to keep, and (when the IdP sent a new ID
    token) a fresher profile, in the connector's canonical claims."""

    tokens: dict[str, Any]
    claims: dict[str, Any] | None = None


@runtime_checkable
class RefreshingConnector(Protocol):
    """A connector asked again at every downstream refresh (OIDC and OAuth2 refresh their
    upstream tokens; SAML has none, and bounds the sign-in's age instead)."""

    async def refresh(self, signed_in: UpstreamSignIn) -> UpstreamRefresh | None:
        """Does the IdP still stand by this sign-in? What it refreshed, or None when there is
        nothing to refresh; UpstreamRefused (SignInTooOld) when it no longer does,
        ConnectorError when it cannot be asked."""
        ...


def local_connector_id(connectors: Mapping[str, Connector]) -> str | None:
    """The id of the `local` connector (Cognate's own user directory), if one is configured."""
    return next((c.id for c in connectors.values() if c.type == "local"), None)
