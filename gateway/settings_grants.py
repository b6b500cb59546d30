"""Settings of the grants for terminals and workloads: the device authorization grant
(RFC 8628) and token exchange (RFC 8693); part of the settings schema (`gateway.settings`
re-exports them).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from gateway.settings_types import (
    ClientUri,
    Duration,
    Model,
)


class DeviceSettings(Model):
    """The device authorization grant (RFC 8628): code lifetime, polling, guessing limits."""

    code_ttl: Duration = 600  # device and user codes expire together
    interval: int = Field(5, ge=1, le=60)  # the minimum seconds between polls
    guesses_per_ip: int = Field(20, ge=1)  # wrong user codes per IP and window at /device
    codes_per_client: int = Field(100, ge=1)  # device codes per client and window
    # ... and per IP, well under the client's: one address cannot use up a public client's
    # allowance and so block `cognate login` for everyone.
    codes_per_ip: int = Field(10, ge=1)
    window: Duration = 900


class TrustRuleSettings(Model):
    """One external issuer whose tokens may be exchanged for Cognate tokens (RFC 8693), and
    the claims a token must carry: exact values, or globs (`org/*`) with `*`, `?`, `[...]`."""

    name: str | None = None  # how refusals name the rule (default: trust[<index>])
    issuer: ClientUri
    jwks_uri: ClientUri | None = None  # default: from the issuer's discovery document
    audience: list[str] = Field(min_length=1)  # the token's aud must contain one of these
    claims: dict[str, str] = Field(default_factory=dict)
    allow_replay: bool = False  # false: each token (by jti) is exchanged once
    scope: str = ""  # what the exchanged token may carry
    client_ids: list[str] = Field(default_factory=list)  # empty: any client with the grant

    @field_validator("audience", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class TokenExchangeSettings(Model):
    """RFC 8693 token exchange: workloads (CI jobs, Kubernetes pods) trade their platform's
    token for Cognate tokens."""

    trust: list[TrustRuleSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_key_source_per_issuer(self) -> TokenExchangeSettings:
        sources: dict[str, str | None] = {}
        for index, rule in enumerate(self.trust):
            if sources.setdefault(rule.issuer, rule.jwks_uri) != rule.jwks_uri:
                named = f" ({rule.name})" if rule.name else ""
                raise ValueError(
                    f"trust[{index}].jwks_uri{named}: every rule for {rule.issuer} must name "
                    "the same jwks_uri (or none)"
                )
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> TokenExchangeSettings:
        """Refusals and audit entries name a rule by its name: two with one name would make
        a refusal ambiguous."""
        seen: dict[str, int] = {}
        for index in range(len(self.trust)):
            name = self.rule_name(index)
            if name in seen:
                raise ValueError(
                    f"trust[{index}].name: {name!r} is also trust[{seen[name]}]'s name; give "
                    "each rule its own (refusals and the audit stream name rules by it)"
                )
            seen[name] = index
        return self

    def rule_name(self, index: int) -> str:
        return self.trust[index].name or f"trust[{index}]"
