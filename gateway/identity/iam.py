"""What an operator must create in AWS IAM for an identity pool: the OIDC provider that trusts
this gateway's issuer, and a trust policy per role. Printed by `cognate pools check`.

Trust policies key on `aud`: authenticated tokens carry the pool id, guests' tokens
`<pool id>/unauthenticated`, so a guest's token cannot assume an authenticated role.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.credentials.roles import allowed_roles
from gateway.credentials.web_identity import provider_name, token_audience
from gateway.settings import IdentityPoolSettings


def oidc_provider(issuer: str, pool: IdentityPoolSettings) -> dict[str, Any]:
    """The `aws iam create-open-id-connect-provider` input for this pool."""
    return {
        "Url": issuer,
        "ClientIDList": [token_audience(pool.id, True), token_audience(pool.id, False)],
    }


def trust_policy(issuer: str, account: str, audience: str) -> dict[str, Any]:
    """The trust policy of a role that accepts tokens with `audience`."""
    host = provider_name(issuer)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/{host}"},
                "Action": [
                    "sts:AssumeRoleWithWebIdentity",
                    "sts:TagSession",
                    "sts:SetSourceIdentity",
                ],
                "Condition": {"StringEquals": {f"{host}:aud": audience}},
            }
        ],
    }


def pool_report(
    issuer: str, pool: IdentityPoolSettings, group_roles: Sequence[str] = ()
) -> dict[str, Any]:
    """Everything `pools check` prints for one pool (`group_roles`: the roles of the user
    pool's groups, settings' and the store's, which this gateway's ID tokens carry)."""
    policies = {}
    for role in sorted(allowed_roles(pool, group_roles)):
        account = role.split(":")[4]
        guest = role == pool.roles.unauthenticated
        policies[role] = trust_policy(issuer, account, token_audience(pool.id, not guest))
    problems = []
    if not issuer.startswith("https://"):
        problems.append("AWS IAM accepts only https issuers; this one is for local testing")
    if pool.allow_unauthenticated and not pool.roles.unauthenticated:
        problems.append("allow_unauthenticated is set but roles.unauthenticated is not")
    if pool.providers and not pool.roles.authenticated and not pool.role_mappings:
        problems.append("no authenticated role and no role mappings: logins get no credentials")
    return {
        "pool": pool.id,
        "name": pool.name,
        "oidc_provider": oidc_provider(issuer, pool),
        "trust_policies": policies,
        "problems": problems,
    }
