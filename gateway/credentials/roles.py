"""Choosing the IAM role for an identity, as Cognito identity pools do.

Order: the role mapping of the provider the user signed in with — `Token` (the token's
`cognito:preferred_role` / `cognito:roles`, from groups with precedence) or `Rules` (first rule
whose claim matches wins) — and, when that is ambiguous, `AmbiguousRoleResolution`:
`AuthenticatedRole` (the pool's default) or `Deny`. Guests get the unauthenticated role.
A `CustomRoleArn` is honoured only when the token allows it (it is in `cognito:roles`).

Only roles that appear in the pool's settings (or in the token, for Token mappings) can ever be
chosen, so a caller cannot name an arbitrary or foreign role; nothing here talks to STS.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.credentials.errors import NoAuthenticatedRole, RoleNotAllowed
from gateway.settings import ROLE_ARN, IdentityPoolSettings, MappingRuleSettings


def _claim_values(claims: dict[str, Any], name: str) -> list[str]:
    value = claims.get(name)
    if value is None:
        return []
    return [_as_text(v) for v in (value if isinstance(value, list) else [value])]


def _as_text(value: Any) -> str:
    # Claims are JSON: a boolean reads "true"/"false" in a rule, as it does in the token.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rule_matches(rule: MappingRuleSettings, claims: dict[str, Any]) -> bool:
    """Does one mapping rule match the token's claims?"""
    values = _claim_values(claims, rule.claim)
    if rule.match_type == "NotEqual":
        return bool(values) and all(v != rule.value for v in values)
    if rule.match_type == "Equals":
        return rule.value in values
    if rule.match_type == "Contains":
        return any(rule.value in v for v in values)
    return any(v.startswith(rule.value) for v in values)  # StartsWith


def choose_role(
    pool: IdentityPoolSettings,
    provider: str | None,
    claims: dict[str, Any],
    custom_role_arn: str | None = None,
) -> str:
    """The role ARN for this identity; RoleNotAllowed (or NoAuthenticatedRole) when none
    may be used."""
    if provider is None:  # a guest
        if custom_role_arn:
            raise RoleNotAllowed("CustomRoleArn is not allowed for unauthenticated identities.")
        if not pool.allow_unauthenticated or not pool.roles.unauthenticated:
            raise RoleNotAllowed("Unauthenticated access is not supported for this identity pool.")
        return pool.roles.unauthenticated
    token_roles = [r for r in _claim_values(claims, "cognito:roles") if ROLE_ARN.match(r)]
    if custom_role_arn:
        if custom_role_arn not in token_roles:
            raise RoleNotAllowed("The CustomRoleArn is not in the token's cognito:roles.")
        return custom_role_arn
    mapping = pool.role_mappings.get(provider)
    if mapping is not None:
        chosen: str | None = None
        if mapping.type == "Token":
            preferred = claims.get("cognito:preferred_role")
            if isinstance(preferred, str) and preferred in token_roles:
                chosen = preferred
            elif len(token_roles) == 1:
                chosen = token_roles[0]
        else:
            chosen = next((r.role_arn for r in mapping.rules if rule_matches(r, claims)), None)
        if chosen:
            return chosen
        if mapping.ambiguous_role_resolution == "Deny":
            raise RoleNotAllowed(
                "No role mapping rule matched and the pool denies ambiguous role resolution."
            )
    if not pool.roles.authenticated:
        raise NoAuthenticatedRole("The identity pool has no authenticated role.")
    return pool.roles.authenticated


def allowed_roles(pool: IdentityPoolSettings, group_roles: Iterable[str] = ()) -> set[str]:
    """Every role the settings of this pool could lead to (for `cognate pools check`).

    `group_roles` are the `role_arn`s of the user-pool groups: this gateway's ID tokens carry
    them in `cognito:roles`, and a pool that accepts those tokens reaches them through a
    `Token` mapping or a `CustomRoleArn` — so they need trust policies as much as the rest."""
    roles = {r for r in (pool.roles.authenticated, pool.roles.unauthenticated) if r}
    for mapping in pool.role_mappings.values():
        roles |= {rule.role_arn for rule in mapping.rules}
    if any(p.type == "cognate" for p in pool.providers):
        roles |= set(group_roles)
    return roles
