"""Settings of the connectors (upstream identity sources): one model per `type`.

What does not live here: the connectors themselves (`gateway.connectors`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from gateway.settings_types import Duration, Model, check_absolute_url


def one_callback_url(oauth2_proxy_callback: bool, cognito_callback: bool) -> None:
    """A connector has one redirect URI at its IdP: oauth2-proxy's or Cognito's, not both."""
    if oauth2_proxy_callback and cognito_callback:
        raise ValueError("oauth2_proxy_callback and cognito_callback: choose one redirect URI")


class LocalConnectorSettings(Model):
    """Cognate's own user directory (e-mail and password)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    type: Literal["local"]
    name: str = "Email and password"


class OidcConnectorSettings(Model):
    """An upstream OpenID Provider (Google, Okta, Entra ID, GitLab, another Cognate…).

    The IdP admin registers `{issuer}/login/{id}/callback` as the redirect URI."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    type: Literal["oidc"]
    name: str = Field(min_length=1, max_length=64)
    preset: Literal["google", "gitlab", "okta", "entra", "apple"] | None = None
    issuer: str
    client_id: str = Field(min_length=1)
    client_secret: str | None = None
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post", "none"] = (
        "client_secret_basic"
    )
    claim_mapping: dict[str, str] = Field(default_factory=dict)
    userinfo: bool = True
    allowed_tenants: list[str] = Field(default_factory=list)  # entra multi-tenant: tid values
    # Sign in with Apple: the client secret is a JWT Cognate signs with this key (ES256).
    apple_team_id: str | None = Field(None, pattern=r"^[A-Z0-9]{10}$")
    apple_key_id: str | None = Field(None, pattern=r"^[A-Z0-9]{10}$")
    apple_private_key: str | None = None  # PEM (YAML: apple_private_key_file)
    # Home-realm discovery: e-mail domains whose users sign in here (login_hint, or an e-mail
    # typed on the sign-in page, goes straight to this IdP).
    domains: list[Annotated[str, Field(pattern=r"^[a-z0-9.-]+\.[a-z]{2,}$")]] = Field(
        default_factory=list
    )
    # oauth2-proxy compatibility: the IdP redirects to {issuer}/oauth2/callback (keep the
    # redirect URI already registered for oauth2-proxy) instead of {issuer}/login/{id}/callback.
    oauth2_proxy_callback: bool = False
    # Cognito compatibility: the IdP redirects to {issuer}/oauth2/idpresponse, the redirect URI
    # an IdP registration made for a Cognito user pool's domain already names.
    cognito_callback: bool = False
    timeout: float = Field(10.0, gt=0, le=60)

    @model_validator(mode="before")
    @classmethod
    def _preset_issuer(cls, data: Any) -> Any:
        # Presets with one well-known issuer need none in the settings; Okta always does.
        defaults = {
            "google": "https://accounts.google.com",
            "gitlab": "https://gitlab.com",
            "entra": "https://login.microsoftonline.com/common/v2.0",
            "apple": "https://appleid.apple.com",
        }
        if isinstance(data, dict) and not data.get("issuer") and data.get("preset") in defaults:
            data = {**data, "issuer": defaults[data["preset"]]}
        if isinstance(data, dict) and data.get("preset") == "apple":
            # Apple takes the client secret JWT in the form and has no userinfo endpoint.
            data = {"token_endpoint_auth_method": "client_secret_post", "userinfo": False, **data}
        return data

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return check_absolute_url(value, allow_http_loopback_only=True).rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _openid(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("must include openid")
        return value

    @model_validator(mode="after")
    def _one_callback(self) -> OidcConnectorSettings:
        one_callback_url(self.oauth2_proxy_callback, self.cognito_callback)
        return self

    @model_validator(mode="after")
    def _secret(self) -> OidcConnectorSettings:
        if self.preset == "apple":
            if not (self.apple_team_id and self.apple_key_id and self.apple_private_key):
                raise ValueError(
                    "the apple preset needs apple_team_id, apple_key_id and apple_private_key "
                    "(the .p8 key from the Apple developer account)"
                )
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.hazmat.primitives.serialization import load_pem_private_key

            try:
                key = load_pem_private_key(self.apple_private_key.encode(), password=None)
            except (ValueError, TypeError):
                raise ValueError("apple_private_key: not a PEM private key") from None
            if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
                raise ValueError("apple_private_key: must be Apple's P-256 (ES256) key")
            return self
        if self.apple_team_id or self.apple_key_id or self.apple_private_key:
            raise ValueError("apple_team_id, apple_key_id, apple_private_key: apple preset only")
        if self.token_endpoint_auth_method != "none" and not self.client_secret:
            raise ValueError("client_secret: required unless token_endpoint_auth_method is none")
        return self


class OAuth2ConnectorSettings(Model):
    """A plain OAuth2 provider (no ID token): `preset` github | facebook | amazon, or explicit
    endpoints. The IdP admin registers `{issuer}/login/{id}/callback`."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    type: Literal["oauth2"]
    name: str = Field(min_length=1, max_length=64)
    preset: Literal["github", "facebook", "amazon"] | None = None
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)
    scopes: list[str] | None = None
    base_url: str | None = None  # GitHub Enterprise Server: https://github.example.com
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    subject_claim: str = "id"
    claim_mapping: dict[str, str] = Field(default_factory=dict)
    trust_email: bool = False  # mark the provider's e-mail verified (only if it verifies them)
    # Home-realm discovery: e-mail domains whose users sign in here (login_hint, or an e-mail
    # typed on the sign-in page, goes straight to this IdP).
    domains: list[Annotated[str, Field(pattern=r"^[a-z0-9.-]+\.[a-z]{2,}$")]] = Field(
        default_factory=list
    )
    # oauth2-proxy compatibility: the IdP redirects to {issuer}/oauth2/callback (keep the
    # redirect URI already registered for oauth2-proxy) instead of {issuer}/login/{id}/callback.
    oauth2_proxy_callback: bool = False
    # Cognito compatibility: the IdP redirects to {issuer}/oauth2/idpresponse, the redirect URI
    # an IdP registration made for a Cognito user pool's domain already names.
    cognito_callback: bool = False
    timeout: float = Field(10.0, gt=0, le=60)

    @field_validator("base_url", "authorization_endpoint", "token_endpoint", "userinfo_endpoint")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else check_absolute_url(value, allow_http_loopback_only=True)

    @model_validator(mode="after")
    def _one_callback(self) -> OAuth2ConnectorSettings:
        one_callback_url(self.oauth2_proxy_callback, self.cognito_callback)
        return self

    @model_validator(mode="after")
    def _endpoints(self) -> OAuth2ConnectorSettings:
        if self.preset is None and not (
            self.authorization_endpoint and self.token_endpoint and self.userinfo_endpoint
        ):
            raise ValueError(
                "give a preset, or authorization_endpoint, token_endpoint and userinfo_endpoint"
            )
        if self.base_url and self.preset != "github":
            raise ValueError("base_url is for the github preset (GitHub Enterprise Server)")
        return self


class SamlConnectorSettings(Model):
    """A SAML 2.0 identity provider; Cognate is the service provider (pysaml2).

    The IdP admin registers the SP metadata at `{issuer}/saml/{id}/metadata` (ACS
    `{issuer}/saml/{id}/acs`, single logout `{issuer}/saml/{id}/slo`)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    type: Literal["saml"]
    name: str = Field(min_length=1, max_length=64)
    idp_metadata: str = Field(min_length=1)  # a file path, or an https URL
    idp_metadata_refresh: Duration = 3600  # re-read (certificate rollover) this often
    entity_id: str | None = None  # default: the SP metadata URL
    # PEM text; in YAML usually `sp_key_file:` / `sp_cert_file:` (read from the file at load).
    sp_key: str  # signs AuthnRequests and decrypts encrypted assertions
    sp_cert: str
    binding: Literal["redirect", "post"] = "redirect"  # how AuthnRequests reach the IdP
    want_response_signed: bool = False  # the assertion is always required to be signed
    clock_skew: int = Field(60, ge=0, le=600)
    allow_idp_initiated: bool = False
    idp_initiated_redirect: str = Field("/", pattern=r"^/([^/\\\\].*)?$")  # a local path only
    subject_attribute: str | None = None  # default: the NameID (use for transient NameIDs)
    name_id_format: str | None = None
    attribute_mapping: dict[str, str] = Field(default_factory=dict)
    trust_email: bool = False  # mark the IdP's e-mail verified (only if it verifies them)
    # A SAML sign-in cannot be refreshed at the IdP: refresh tokens stop working this long
    # after it (the user signs in again, and the IdP decides again).
    max_session_age: Duration = 8 * 3600
    crypto: Literal["inprocess", "xmlsec1"] = "inprocess"
    max_response_bytes: int = Field(512 * 1024, ge=16 * 1024, le=8 * 1024 * 1024)
    # Home-realm discovery: e-mail domains whose users sign in here (login_hint, or an e-mail
    # typed on the sign-in page, goes straight to this IdP).
    domains: list[Annotated[str, Field(pattern=r"^[a-z0-9.-]+\.[a-z]{2,}$")]] = Field(
        default_factory=list
    )
    timeout: float = Field(10.0, gt=0, le=60)

    @field_validator("idp_metadata")
    @classmethod
    def _metadata(cls, value: str) -> str:
        if value.startswith(("http://", "https://")):
            return check_absolute_url(value, allow_http_loopback_only=True)
        if not Path(value).is_file():
            raise ValueError(f"{value}: no such file (give a path or an https URL)")
        return value

    @field_validator("sp_key")
    @classmethod
    def _key(cls, value: str) -> str:
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            key = load_pem_private_key(value.encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError("must be an unencrypted PEM private key") from None
        if not isinstance(key, RSAPrivateKey) or key.key_size < 2048:
            raise ValueError("must be an RSA key of 2048 bits or more (SAML IdPs expect RSA)")
        return value

    @field_validator("sp_cert")
    @classmethod
    def _cert(cls, value: str) -> str:
        from cryptography.x509 import load_pem_x509_certificate

        try:
            load_pem_x509_certificate(value.encode())
        except ValueError:
            raise ValueError("must be a PEM certificate") from None
        return value


ConnectorSettings = Annotated[
    LocalConnectorSettings
    | OidcConnectorSettings
    | OAuth2ConnectorSettings
    | SamlConnectorSettings,
    Field(discriminator="type"),
]
