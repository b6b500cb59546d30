"""Settings of identity pools: login providers, role mappings, STS; part of the settings
schema (`gateway.settings` re-exports them).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.settings_types import (
    POOL_ID,
    Duration,
    Model,
    RoleArn,
    check_absolute_url,
)


class LoginProviderSettings(Model):
    """A source of tokens that identity-pool logins accept.

    `type: cognate` is this gateway's own ID tokens (`name` defaults to the issuer without the
    scheme, as AWS names OIDC providers); `type: oidc` any OpenID Provider whose ID tokens are
    verified against its JWKS (`issuer`, `client_ids` = accepted audiences); `type: saml` a SAML
    connector (`connector`) whose base64 SAMLResponse is the login token (`name` defaults to
    `arn:aws:iam::000000000000:saml-provider/<connector>`, the shape of an AWS SAML provider
    ARN; set it to the ARN your SDK code uses); `type: developer` a developer provider name for
    GetOpenIdTokenForDeveloperIdentity."""

    type: Literal["cognate", "oidc", "saml", "developer"]
    name: str | None = Field(None, min_length=1, max_length=2048)
    issuer: str | None = None
    client_ids: list[str] = Field(default_factory=list)
    connector: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> LoginProviderSettings:
        if self.type == "oidc":
            if not self.issuer:
                raise ValueError("issuer: required for an oidc provider")
            check_absolute_url(self.issuer, allow_http_loopback_only=True)
            if not self.client_ids:
                raise ValueError("client_ids: list the audiences (client ids) to accept")
        if self.type == "developer" and not self.name:
            raise ValueError("name: required for a developer provider")
        if (self.type == "saml") != (self.connector is not None):
            raise ValueError("connector: required for a saml provider, and only for one")
        return self


class MappingRuleSettings(Model):
    """One rule of a `Rules` role mapping (first match wins)."""

    claim: str = Field(min_length=1, max_length=64)
    match_type: Literal["Equals", "Contains", "StartsWith", "NotEqual"]
    value: str = Field(min_length=1, max_length=128)
    role_arn: RoleArn


class RoleMappingSettings(Model):
    """How a provider's token chooses the role (AWS RoleMapping)."""

    type: Literal["Token", "Rules"]
    ambiguous_role_resolution: Literal["AuthenticatedRole", "Deny"] = "AuthenticatedRole"
    rules: list[MappingRuleSettings] = Field(default_factory=list, max_length=25)

    @model_validator(mode="after")
    def _rules(self) -> RoleMappingSettings:
        if self.type == "Rules" and not self.rules:
            raise ValueError("rules: a Rules mapping needs at least one rule")
        return self


class PoolRoles(Model):
    authenticated: RoleArn | None = None
    unauthenticated: RoleArn | None = None


class StsSettings(Model):
    """Where AssumeRoleWithWebIdentity goes (AWS regional STS, MinIO, Ceph RGW, ...). The call is
    unsigned (the web-identity token is the proof), so no region: a regional AWS STS is its
    endpoint, `https://sts.<region>.amazonaws.com`."""

    endpoint: str = "https://sts.amazonaws.com"
    duration: Duration = 3600
    timeout: float = Field(5.0, gt=0, le=60)
    retries: int = Field(3, ge=0, le=10)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return check_absolute_url(value, allow_http_loopback_only=True)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: int) -> int:
        if not 900 <= value <= 43200:
            raise ValueError("must be between 900 s (15m) and 43200 s (12h)")
        return value


class IdentityPoolSettings(Model):
    """A Cognito-style identity pool: who may get an identity ID, and which AWS role."""

    id: str
    name: str = Field(min_length=1, max_length=128)
    providers: list[LoginProviderSettings] = Field(default_factory=list)
    allow_unauthenticated: bool = False
    allow_classic_flow: bool = False
    roles: PoolRoles = Field(default_factory=PoolRoles)
    role_mappings: dict[str, RoleMappingSettings] = Field(default_factory=dict)
    principal_tags: dict[str, dict[str, str]] = Field(default_factory=dict)
    session_policy: str | None = None
    token_ttl: Duration = 600
    sts: StsSettings = Field(default_factory=StsSettings)
    cors_origins: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not POOL_ID.match(value):
            raise ValueError("must be <region>:<lowercase uuid>, e.g. us-east-1:0f6e…")
        return value

    @field_validator("session_policy")
    @classmethod
    def _policy(cls, value: str | None) -> str | None:
        if value is not None:
            import json

            try:
                json.loads(value.replace("${cognate:identity_id}", "x"))
            except ValueError:
                raise ValueError(
                    "must be a JSON policy document (${cognate:identity_id} may appear)"
                ) from None
        return value
