"""The settings schema: validated, typed, frozen models, one per area, with messages that say
what is wrong in the user's words.

What does not live here: reading the YAML file, `${VAR}` and `*_file` expansion and error paths
(`gateway.settings_loader`); building services from settings (`gateway.services`).
"""

from __future__ import annotations

import hmac
import re
import string
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from gateway.cookies import registrable_domain
from gateway.settings_connectors import (
    ConnectorSettings,
    LocalConnectorSettings,
    OAuth2ConnectorSettings,
    OidcConnectorSettings,
    SamlConnectorSettings,
)
from gateway.settings_grants import DeviceSettings, TokenExchangeSettings, TrustRuleSettings
from gateway.settings_metrics import MetricsSettings
from gateway.settings_pools import (
    IdentityPoolSettings,
    LoginProviderSettings,
    MappingRuleSettings,
    PoolRoles,
    RoleMappingSettings,
    StsSettings,
)
from gateway.settings_proxy import (
    ForwardAuthSettings,
    RoutePolicySettings,
    SidecarCredentialsSettings,
    SidecarSettings,
)
from gateway.settings_types import (
    POOL_ID,
    ROLE_ARN,
    ClientUri,
    Duration,
    Model,
    RoleArn,
    check_absolute_url,
    is_loopback_host,
    parse_duration,
)
from gateway.text import languages

__all__ = [  # re-exported: these models are part of the settings schema
    "POOL_ID",
    "ROLE_ARN",
    "ConnectorSettings",
    "DeviceSettings",
    "ForwardAuthSettings",
    "IdentityPoolSettings",
    "LoginProviderSettings",
    "MappingRuleSettings",
    "PoolRoles",
    "RoleMappingSettings",
    "RoutePolicySettings",
    "SidecarCredentialsSettings",
    "SidecarSettings",
    "StsSettings",
    "TokenExchangeSettings",
    "TrustRuleSettings",
    "LocalConnectorSettings",
    "MetricsSettings",
    "OAuth2ConnectorSettings",
    "OidcConnectorSettings",
    "SamlConnectorSettings",
    "is_loopback_host",
    "parse_duration",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"  # RFC 8628
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"  # RFC 8693
GRANT_TYPES = (
    "authorization_code",
    "refresh_token",
    "client_credentials",
    DEVICE_CODE_GRANT,
    TOKEN_EXCHANGE_GRANT,
)
GrantType = Literal[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:token-exchange",
]


def _default_grants() -> list[GrantType]:
    return ["authorization_code", "refresh_token"]


class StoreSettings(Model):
    """Where shared state lives."""

    url: str = "memory://"
    prefix: str = "cognate"
    socket_timeout: float = Field(2.0, gt=0)
    connect_timeout: float = Field(2.0, gt=0)
    max_connections: int = Field(64, gt=0)
    # Fail-over safety (Sentinel, or one server with replicas): one-shot and create-once writes
    # (identity links, codes spent, refresh rotations, replay caches) wait until this many
    # replicas have them, or fail closed (503). 0: do not wait (a fail-over can lose the last
    # moments of writes: a new identity, or a spent code that becomes spendable again).
    replicas_acked: int = Field(0, ge=0, le=5)
    replica_timeout: float = Field(0.5, gt=0, le=10)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        schemes = (
            "redis://",
            "rediss://",
            "unix://",
            "redis+sentinel://",
            "redis+cluster://",
            "rediss+cluster://",
            "memory://",
        )
        if not value.startswith(schemes):
            raise ValueError("must start with " + ", ".join(schemes[:-1]) + " or memory://")
        if value.startswith("redis+sentinel://") and not value.split("://", 1)[1].partition("/")[2]:
            raise ValueError("redis+sentinel:// needs the service name: .../<service>[/<db>]")
        return value

    @model_validator(mode="after")
    def _acks(self) -> StoreSettings:
        if self.replicas_acked and "+cluster://" in self.url:
            raise ValueError("replicas_acked: not supported on Redis Cluster yet")
        if self.replicas_acked and self.url.startswith("memory:"):
            raise ValueError("replicas_acked: the memory store has no replicas")
        return self

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value):
            raise ValueError("must be 1-64 characters of letters, digits, '_', '.', '-'")
        return value


def _pem_algorithm(path: str) -> str:
    """RS256 or ES256: what the PEM private key at `path` signs with (ValueError otherwise)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise ValueError(f"keys.files: {path} is not an unencrypted PEM private key") from exc
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise ValueError(f"keys.files: {path} is neither an RSA nor an EC P-256 key")


class KeySettings(Model):
    """Signing keys: generated and kept encrypted in the store, or loaded from PEM files."""

    access_token_alg: Literal["ES256", "RS256"] = "ES256"
    id_token_alg: Literal["RS256", "ES256"] = "RS256"
    rotation_period: Duration = 30 * 86400
    files: list[str] = Field(default_factory=list)

    @field_validator("files")
    @classmethod
    def _files_exist(cls, value: list[str]) -> list[str]:
        for path in value:
            if not Path(path).is_file():
                raise ValueError(f"no such file: {path}")
        return value


class TokenSettings(Model):
    """Lifetimes, in seconds (or '15m', '12h', '30d')."""

    access_token_ttl: Duration = 3600
    id_token_ttl: Duration = 3600
    refresh_token_ttl: Duration = 30 * 86400
    code_ttl: Duration = 60
    flow_ttl: Duration = 900
    leeway: int = 60

    @field_validator("leeway", mode="before")
    @classmethod
    def _leeway(cls, value: Any) -> int:
        return 0 if value in (0, "0") else parse_duration(value)


class SessionSettings(Model):
    """Browser SSO sessions."""

    idle_timeout: Duration = 8 * 3600
    absolute_timeout: Duration = 7 * 86400
    cookie_name: str = Field("cognate_session", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    # Verified sessions (forward-auth), grants found in force and the accounts GetUser read
    # are kept in memory this long (0: off); a logout, a revocation or a change of the
    # account anywhere evicts them from every replica at once (store pub/sub).
    cache_ttl: float = Field(5.0, ge=0, le=60)
    # A parent domain ("example.com") the session cookie is shared with, so apps on its
    # subdomains see the sign-in directly. Without it the cookie is host-only and apps on other
    # hosts get their own host-bound session through /oauth2/callback (see gateway.proxy).
    cookie_domain: str | None = None

    @field_validator("cookie_domain")
    @classmethod
    def _registrable(cls, value: str | None) -> str | None:
        if value is None:
            return None

        return registrable_domain(value)


class RateLimitSettings(Model):
    """Failed sign-ins allowed per window before 429 (per account, and per client IP)."""

    login_per_account: int = Field(10, ge=1)
    login_per_ip: int = Field(50, ge=1)
    window: Duration = 900


class AuditSettings(Model):
    """The audit trail (a Redis Stream)."""

    retention: Duration = 90 * 86400
    # Entries the store could not take (an outage during a request that needs no Redis write,
    # e.g. client_credentials) wait in memory, oldest dropped first, and are written when it
    # answers again; 0: drop them at once. Losses: cognate_audit_events_dropped_total.
    buffer: int = Field(10_000, ge=0, le=1_000_000)


class SmtpSettings(Model):
    host: str = "localhost"
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    tls: bool = False  # implicit TLS (port 465)
    username: str | None = None
    password: str | None = None
    timeout: float = Field(10.0, gt=0, le=60)


class EmailSettings(Model):
    """How e-mail leaves: `console` (the log; demo only) or `smtp`."""

    sender: Literal["console", "smtp"] = "console"
    from_address: str = "Cognate <no-reply@localhost>"
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)


class SmsSettings(Model):
    """How text messages leave: `console` (the log; demo only) or `webhook`: a signed JSON POST
    `{"to": "+E.164", "message": "...", "purpose": "..."}` to `url` (X-Cognate-Signature as for
    hooks), so any SMS provider fits behind a small adapter."""

    sender: Literal["console", "webhook"] = "console"
    url: ClientUri | None = None
    secret: str | None = Field(None, min_length=16)
    timeout: float = Field(5.0, gt=0, le=30)

    @model_validator(mode="after")
    def _webhook_complete(self) -> SmsSettings:
        if self.sender == "webhook" and (self.url is None or self.secret is None):
            raise ValueError("the webhook sender needs url and secret")
        return self


STANDARD_ATTRIBUTES = (
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "phone_number",
    "birthdate",
    "gender",
    "zoneinfo",
    "locale",
    "website",
    "address",
)


class AttributeSettings(Model):
    """A field of the sign-up form: an OIDC standard claim, or `custom:<name>` (Cognito's
    spelling, kept in tokens)."""

    name: str = Field(pattern=r"^(custom:[A-Za-z0-9_-]{1,64}|[a-z_]{1,32})$")
    required: bool = False
    label: str | None = Field(None, max_length=64)  # default: from the name
    max_length: int = Field(256, ge=1, le=2048)
    pattern: str | None = None  # a regular expression the whole value must match

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if not value.startswith("custom:") and value not in STANDARD_ATTRIBUTES:
            raise ValueError(
                f"{value!r} is not a standard attribute ({', '.join(STANDARD_ATTRIBUTES)}); "
                "custom attributes start with custom:"
            )
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value


def _default_attributes() -> list[AttributeSettings]:
    return [AttributeSettings(name="name")]


class PasswordPolicySettings(Model):
    """What a new password must be. Unicode is normalised (NFKC) and never truncated."""

    min_length: int = Field(8, ge=8, le=128)
    # Character classes a password must contain (NIST 800-63B advises against; opt in).
    require: list[Literal["lowercase", "uppercase", "digit", "symbol"]] = Field(
        default_factory=list
    )
    # Refuse the N most common breached passwords (bundled list, case-insensitive; 0: off).
    breached_top: int = Field(10_000, ge=0, le=30_000)


class HookSettings(Model):
    """Signed webhooks in the place of Cognito's Lambda triggers (see gateway.users.hooks)."""

    secret: str = Field(min_length=16)  # HMAC key for X-Cognate-Signature
    timeout: float = Field(3.0, gt=0, le=30)
    pre_sign_up: ClientUri | None = None
    post_confirmation: ClientUri | None = None
    pre_token_generation: ClientUri | None = None
    user_migration: ClientUri | None = None


class GroupSettings(Model):
    """A user-pool group, as in Cognito: members get it in `groups`/`cognito:groups`, and its
    IAM role in `cognito:roles` (`cognito:preferred_role`: the lowest precedence's)."""

    name: str = Field(pattern=r"^[\w+=,.@-]{1,128}$")
    precedence: int = Field(0, ge=0)
    role_arn: RoleArn | None = None
    description: str | None = None  # for the administrators, as Cognito's; nothing acts on it


def _no_repeats(names: list[str], what: str) -> None:
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"{what} {name!r} is listed twice")


class UserPoolSettings(Model):
    """The local user directory's rules."""

    # The pool's id in the Cognito user-pool API (`<region>_<letters and digits>`, as the SDKs
    # expect). None: derived from `secret_key` (stable; `cognate check-config` prints it).
    id: str | None = None
    self_sign_up: bool = False
    # Accounts also get a username (unique, case-insensitive), asked for at sign-up; sign-in
    # and password reset then take the username or the e-mail. The e-mail stays required:
    # verification and recovery go there.
    usernames: bool = False
    allowed_email_domains: list[str] = Field(default_factory=list)  # empty: any domain
    # Refuse sign-in until the e-mail is verified. Default: yes exactly when anyone may sign up
    # (self_sign_up), so administrator-created accounts keep working out of the box.
    require_verified_email: bool | None = None
    code_ttl: Duration = 900
    code_attempts: int = Field(5, ge=1, le=20)
    # A first federated sign-in whose IdP vouches for the e-mail (email_verified) joins the
    # identity of the local user with that same *verified* e-mail. Off: two identities, until
    # the user links them from the account page.
    link_by_verified_email: bool = False
    # Second factor for local accounts (an authenticator app, codes by e-mail, passkeys; with
    # recovery codes): off, optional (users enroll on the account page), or required
    # (enrollment is part of the first sign-in). A client whose `access` says `mfa: true`
    # asks for it too, stepping up a session that signed in without one.
    mfa: Literal["off", "optional", "required"] = "optional"
    # The same for sign-ins through upstream IdPs (their own MFA, when their token's `amr`
    # says so, counts): the second factor then belongs to the identity.
    federated_mfa: Literal["off", "optional", "required"] = "off"
    email_mfa: bool = True  # codes by e-mail as a second factor (verified addresses only)
    # Codes by text message as a second factor (verified numbers only; `sms` delivers them).
    # Off by default: a phone number can be taken over (SIM swap), an app or passkey cannot.
    sms_mfa: bool = False
    # Passwordless sign-in with a code by e-mail (the user-pool API's USER_AUTH EMAIL_OTP), to
    # verified addresses. One factor: an account's authenticator app or passkey is still asked.
    email_sign_in: bool = False
    passkeys: bool = True  # WebAuthn: a second factor, and passwordless sign-in
    # The passkeys' relying party ID: a domain name, the issuer's host (the default) or a
    # parent domain of it. An app on another host under it (Amplify on app.example.com, with
    # the gateway on auth.example.com and this set to example.com) can then register and use
    # the same passkeys through the user-pool API, from the app client's allowed_origins.
    # Changing it later strands the passkeys made for the old one.
    passkey_relying_party_id: str | None = None
    # The sign-up form's fields besides e-mail and password.
    attributes: list[AttributeSettings] = Field(default_factory=_default_attributes)
    # Text messages (phone number verification). With verify_phone, a phone_number given at
    # sign-up is verified by SMS code after the e-mail.
    sms: SmsSettings = Field(default_factory=SmsSettings)
    verify_phone: bool = True
    resend_per_account: int = Field(3, ge=1)  # new codes per account and window
    password: PasswordPolicySettings = Field(default_factory=PasswordPolicySettings)
    hooks: HookSettings | None = None
    groups: list[GroupSettings] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _pool_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(
            r"[a-z]{2}(-[a-z]+)+-\d_[0-9A-Za-z]{1,20}", value
        ):
            raise ValueError(
                f"{value!r} is not a Cognito user pool id: <region>_<1 to 20 letters or "
                "digits>, e.g. eu-west-1_MyPool123"
            )
        return value

    @field_validator("passkey_relying_party_id")
    @classmethod
    def _relying_party_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(
            r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z]([a-z0-9-]{0,61}[a-z0-9])?",
            value,
        ):
            raise ValueError(
                f"{value!r} is not a domain name: give a lower-case host name without scheme, "
                "port or path, e.g. example.com"
            )
        return value

    @field_validator("groups")
    @classmethod
    def _unique_groups(cls, value: list[GroupSettings]) -> list[GroupSettings]:
        _no_repeats([g.name for g in value], "group")
        return value

    @field_validator("mfa", "federated_mfa", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        return "off" if value is False else value  # YAML reads a bare `off` as false

    @field_validator("attributes")
    @classmethod
    def _unique_attributes(cls, value: list[AttributeSettings]) -> list[AttributeSettings]:
        _no_repeats([a.name for a in value], "attribute")
        return value

    @property
    def requires_verification(self) -> bool:
        if self.require_verified_email is None:
            return self.self_sign_up
        return self.require_verified_email


class BrandingSettings(Model):
    """How the hosted pages look for one client (or the whole deployment)."""

    name: str | None = Field(None, max_length=64)
    logo_url: str | None = Field(None, pattern=r"^(https://|/)[^\s\"'<>]+$")  # https or our path
    accent_color: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$")


class UiSettings(Model):
    """The hosted pages: theme, languages, and templates a deployer overrides file by file."""

    product_name: str = Field("Cognate", min_length=1, max_length=64)
    logo_url: str | None = Field(None, pattern=r"^(https://|/)[^\s\"'<>]+$")
    accent_color: str = Field("#2f5bea", pattern=r"^#[0-9a-fA-F]{6}$")
    custom_css: Path | None = None  # appended to /theme.css
    templates_dir: Path | None = None  # files here replace the bundled templates of that name
    languages: list[str] = Field(default_factory=lambda: ["en", "fr"], min_length=1)

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        known = languages()
        for language in value:
            if language not in known:
                raise ValueError(f"{language!r}: no catalogue (available: {', '.join(known)})")
        return value

    @field_validator("custom_css", "templates_dir")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.exists():
            raise ValueError(f"{value}: no such file or directory")
        return value


def origin_of(url: str) -> str | None:
    """The web origin (`scheme://host[:port]`, lower case, default port left out) of an http(s)
    URL, or None for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


AuthFlow = Literal[
    "ALLOW_USER_SRP_AUTH",
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
    "ALLOW_USER_AUTH",
    "ALLOW_ADMIN_USER_PASSWORD_AUTH",
]


def _default_auth_flows() -> list[AuthFlow]:
    # Cognito's own defaults for a new app client: SRP (the password never leaves the
    # device), refresh, and choice-based sign-in; plain-password flows only when asked for.
    return ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_AUTH"]


class ClientSettings(Model):
    """A downstream application (RFC 7591 metadata names)."""

    client_id: str = Field(min_length=1, max_length=128)
    client_secret: str | None = Field(None, min_length=16)
    client_name: str | None = None
    branding: BrandingSettings | None = None  # the sign-in pages' look for this client
    # Who may sign in to this client, in the forward-auth policy language (groups, emails,
    # email_domains, connectors, mfa, deny; host and path do not apply). None: anyone.
    access: RoutePolicySettings | None = None
    redirect_uris: list[ClientUri] = Field(default_factory=list)
    post_logout_redirect_uris: list[ClientUri] = Field(default_factory=list)
    grant_types: list[GrantType] = Field(default_factory=_default_grants)
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post", "none"] = (
        "client_secret_basic"
    )
    scope: str = "openid email profile offline_access"
    backchannel_logout_uri: ClientUri | None = None  # its logout tokens always carry `sid`
    # Browser origins (scheme://host[:port]) that may call the token, userinfo and revocation
    # endpoints (CORS). None: a public client's redirect URI origins; a confidential one none.
    allowed_origins: list[str] | None = None
    # How the client may sign in through the Cognito user-pool API (Cognito's names).
    explicit_auth_flows: list[AuthFlow] = Field(default_factory=_default_auth_flows)
    # Its ID tokens' algorithm (OIDC Dynamic Client Registration's name); None: keys.id_token_alg.
    # ES256 signs ~10x faster than RS256: worth it for clients whose ID tokens only Cognate's
    # own identity pools read (token-exchange workloads), and for any RP that verifies ES256.
    id_token_signed_response_alg: Literal["RS256", "ES256"] | None = None

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str] | None) -> list[str] | None:
        for origin in value or []:
            if origin == "*" or origin_of(origin) != origin:
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return value

    @property
    def cors_origins(self) -> frozenset[str]:
        """The origins that may read this client's answers from the OAuth endpoints."""
        if self.allowed_origins is not None:
            return frozenset(self.allowed_origins)
        if not self.is_public:
            return frozenset()
        return frozenset(o for o in map(origin_of, self.redirect_uris) if o is not None)

    @model_validator(mode="after")
    def _consistent(self) -> ClientSettings:
        public = self.token_endpoint_auth_method == "none"
        if public and self.client_secret:
            raise ValueError("a public client (token_endpoint_auth_method: none) has no secret")
        if not public and not self.client_secret:
            raise ValueError(
                f"client_secret is required for token_endpoint_auth_method "
                f"{self.token_endpoint_auth_method}"
            )
        if public and "client_credentials" in self.grant_types:
            raise ValueError("client_credentials needs a confidential client")
        if "authorization_code" in self.grant_types and not self.redirect_uris:
            raise ValueError("redirect_uris: required for the authorization_code grant")
        return self

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def demands_mfa(self) -> bool:
        """Sign-ins to this client need a second factor (asked for, not refused)."""
        return bool(self.access and self.access.mfa)

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())


class AdminKey(Model):
    """Credentials that SigV4-sign the Cognito Identity admin operations."""

    access_key_id: str = Field(pattern=r"^[A-Z0-9]{16,128}$")
    secret_access_key: str = Field(min_length=16)


def _default_connectors() -> list[ConnectorSettings]:
    return [LocalConnectorSettings(id="local", type="local")]


class Settings(Model):
    """Everything the gateway needs, as one validated object."""

    issuer: str
    region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    secret_key: str = Field(min_length=32)
    store: StoreSettings = Field(default_factory=StoreSettings)
    keys: KeySettings = Field(default_factory=KeySettings)
    tokens: TokenSettings = Field(default_factory=TokenSettings)
    sessions: SessionSettings = Field(default_factory=SessionSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    device: DeviceSettings = Field(default_factory=DeviceSettings)
    token_exchange: TokenExchangeSettings = Field(default_factory=TokenExchangeSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    forward_auth: ForwardAuthSettings = Field(default_factory=ForwardAuthSettings)
    user_pool: UserPoolSettings = Field(default_factory=UserPoolSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    clients: list[ClientSettings] = Field(default_factory=list)
    connectors: list[ConnectorSettings] = Field(default_factory=_default_connectors)
    identity_pools: list[IdentityPoolSettings] = Field(default_factory=list)
    admin_keys: list[AdminKey] = Field(default_factory=list)
    sidecar: SidecarSettings | None = None
    ui: UiSettings = Field(default_factory=UiSettings)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    demo: bool = False

    @field_validator("admin_keys")
    @classmethod
    def _unique_admin_keys(cls, value: list[AdminKey]) -> list[AdminKey]:
        # Two secrets for one access key id: only one could ever sign; say so rather than
        # let the last one win silently.
        _no_repeats([k.access_key_id for k in value], "access_key_id")
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        check_absolute_url(value, allow_http_loopback_only=True)
        parts = urlsplit(value)
        if parts.query:
            raise ValueError("must not have a query (OpenID Discovery §3)")
        return value.rstrip("/")

    @field_validator("store", mode="before")
    @classmethod
    def _store_url(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _unique_ids(self) -> Settings:
        for what, field, ids in (
            ("clients", "client_id", [c.client_id for c in self.clients]),
            ("connectors", "id", [c.id for c in self.connectors]),
            ("identity_pools", "id", [p.id for p in self.identity_pools]),
        ):
            for index, value in enumerate(ids):
                first = ids.index(value)
                if first != index:
                    # The message carries its own path (model validators cannot set one).
                    raise ValueError(
                        f"{what}[{index}].{field}: duplicate id {value!r} (also {what}[{first}])"
                    )
        return self

    @model_validator(mode="after")
    def _key_files_cover_algorithms(self) -> Settings:
        """With keys.files, every algorithm something signs with needs a key among them (the
        key set is static: nothing can generate the missing one)."""
        if not self.keys.files:
            return self
        have = {_pem_algorithm(path) for path in self.keys.files}
        wanted = [("keys.access_token_alg", self.keys.access_token_alg)]
        wanted.append(("keys.id_token_alg", self.keys.id_token_alg))
        wanted += [
            (f"clients[{i}].id_token_signed_response_alg ({c.client_id})", alg)
            for i, c in enumerate(self.clients)
            if (alg := c.id_token_signed_response_alg)
        ]
        for where, alg in wanted:
            if alg not in have:
                kind = "an EC P-256" if alg == "ES256" else "an RSA"
                raise ValueError(
                    f"{where}: {alg}, but keys.files has no {alg} key (add {kind} private key "
                    "file, or choose an algorithm the files have)"
                )
        return self

    @model_validator(mode="after")
    def _home_realms(self) -> Settings:
        owners: dict[str, str] = {}
        for index, connector in enumerate(self.connectors):
            for domain in getattr(connector, "domains", []):
                if domain in owners:
                    raise ValueError(
                        f"connectors[{index}].domains ({connector.id}): {domain} already signs "
                        "in through "
                        f"{owners[domain]!r}"
                    )
                owners[domain] = connector.id
        return self

    @model_validator(mode="after")
    def _cookie_domain_covers_issuer(self) -> Settings:
        domain = self.sessions.cookie_domain
        host = (urlsplit(self.issuer).hostname or "").lower()
        if domain and host != domain and not host.endswith("." + domain):
            raise ValueError(
                f"sessions.cookie_domain: {domain} does not contain the issuer's host {host}, "
                "so the gateway could not set that cookie (use the issuer's parent domain)"
            )
        return self

    @model_validator(mode="after")
    def _relying_party_covers_issuer(self) -> Settings:
        rp_id = self.user_pool.passkey_relying_party_id
        host = (urlsplit(self.issuer).hostname or "").lower()
        if rp_id and not re.search(r"[a-z]", host.rsplit(".", 1)[-1]):
            raise ValueError(
                f"user_pool.passkey_relying_party_id: the issuer's host {host} is an IP "
                "address, and passkeys need a domain name (give the issuer a host name, or "
                "leave this out: passkeys then stay off)"
            )
        if rp_id and host != rp_id and not host.endswith("." + rp_id):
            # WebAuthn: the RP ID is the page's host or a parent domain of it; the hosted
            # pages run on the issuer's host, so anything else breaks them.
            raise ValueError(
                f"user_pool.passkey_relying_party_id: {rp_id} is not {host} (the issuer's "
                f"host) nor a parent domain of it, so the hosted pages could not use passkeys "
                f"(use {host} or one of its parent domains, or leave it out)"
            )
        if rp_id and "." not in rp_id and rp_id != "localhost":
            raise ValueError(
                f"user_pool.passkey_relying_party_id: {rp_id} is a top-level domain, which "
                f"browsers refuse as a relying party (use {host} or a parent domain below it)"
            )
        return self

    def home_realm(self, email: str | None) -> str | None:
        """The connector that e-mail's domain signs in through (home-realm discovery)."""
        domain = (email or "").rpartition("@")[2].strip().lower()
        if not domain:
            return None
        return next((c.id for c in self.connectors if domain in getattr(c, "domains", [])), None)

    @model_validator(mode="after")
    def _sidecar_credentials(self) -> Settings:
        wanted = self.sidecar.credentials if self.sidecar else None
        if wanted is None:
            return self
        pool = next((p for p in self.identity_pools if p.id == wanted.identity_pool), None)
        if pool is None:
            raise ValueError(
                f"sidecar.credentials.identity_pool: no identity pool {wanted.identity_pool!r}"
            )
        developers = [p.name for p in pool.providers if p.type == "developer"]
        if wanted.developer_provider not in developers:
            raise ValueError(
                "sidecar.credentials.developer_provider: not a developer provider of pool "
                f"{pool.id} (it has: {', '.join(map(str, developers)) or 'none'})"
            )
        return self

    @model_validator(mode="after")
    def _trust_rule_clients(self) -> Settings:
        """A trust rule's `client_ids` must be clients that may use the token-exchange grant:
        any other entry (a typo, a client without the grant) could never exchange, and the
        rule would refuse its real caller."""
        allowed = {c.client_id for c in self.clients if TOKEN_EXCHANGE_GRANT in c.grant_types}
        for index, rule in enumerate(self.token_exchange.trust):
            for client_id in rule.client_ids:
                if client_id not in allowed:
                    known = any(c.client_id == client_id for c in self.clients)
                    fix = (
                        f"add {TOKEN_EXCHANGE_GRANT} to its grant_types"
                        if known
                        else "no client has this client_id: "
                        f"clients with the grant: {', '.join(sorted(allowed)) or 'none'}"
                    )
                    raise ValueError(
                        f"token_exchange.trust[{index}].client_ids "
                        f"({self.token_exchange.rule_name(index)}): {client_id!r} cannot "
                        f"exchange tokens ({fix})"
                    )
        return self

    @model_validator(mode="after")
    def _saml_providers(self) -> Settings:
        saml = {c.id for c in self.connectors if isinstance(c, SamlConnectorSettings)}
        for index, pool in enumerate(self.identity_pools):
            for number, provider in enumerate(pool.providers):
                if provider.type == "saml" and provider.connector not in saml:
                    raise ValueError(
                        f"identity_pools[{index}].providers[{number}].connector: "
                        f"{provider.connector!r} is not a saml connector"
                    )
        return self

    @property
    def secure_cookies(self) -> bool:
        """Secure cookies need https; a plain-http issuer is only allowed on loopback."""
        return self.issuer.startswith("https://")

    @property
    def user_pool_id(self) -> str:
        """`user_pool.id`, or one derived from `secret_key`: the same on every replica and
        restart, and unguessable from outside (`cognate check-config` prints it)."""
        if self.user_pool.id:
            return self.user_pool.id
        digest = hmac.new(self.secret_key.encode(), b"cognito user pool id", "sha256").digest()
        alphabet = string.ascii_letters + string.digits
        return f"{self.region}_" + "".join(alphabet[b % len(alphabet)] for b in digest[:9])

    @property
    def id_token_algs(self) -> list[str]:
        """The algorithms ID tokens are signed with: keys.id_token_alg first, then any a client
        asks for (`id_token_signed_response_alg`)."""
        chosen = (c.id_token_signed_response_alg for c in self.clients)
        return list(dict.fromkeys([self.keys.id_token_alg, *(a for a in chosen if a)]))

    def client(self, client_id: str) -> ClientSettings | None:
        """The registered client, or None."""
        return next((c for c in self.clients if c.client_id == client_id), None)
