"""The names logins go by in the Cognito Identity API: DescribeIdentity lists them by the
`Logins` keys an SDK sends, so UnlinkIdentity with such a key does what it says (boto3)."""

from __future__ import annotations

import secrets
from typing import Any

from tests.helpers import GatewayServer
from tests.identity.conftest import DEVELOPER, POOL, client, id_token


async def test_own_logins_are_named_by_the_issuer_host_and_unlink_by_it(
    pools: GatewayServer,
) -> None:
    api = client(pools)
    own = pools.url.removeprefix("http://")  # the Logins key of this gateway's ID tokens
    email = f"named-{secrets.token_hex(4)}@example.com"
    await pools.add_user(email, email_verified=True)
    token = await id_token(pools, email)
    identity = api.get_id(IdentityPoolId=POOL, Logins={own: token})["IdentityId"]
    # A developer login linked to the same identity keeps its own name.
    api.get_open_id_token_for_developer_identity(
        IdentityPoolId=POOL,
        IdentityId=identity,
        Logins={own: token, DEVELOPER: f"dev-{secrets.token_hex(3)}"},
    )
    assert sorted(api.describe_identity(IdentityId=identity)["Logins"]) == sorted([own, DEVELOPER])
    assert sorted(listed_logins(api, identity)) == sorted([own, DEVELOPER])  # ListIdentities too
    api.unlink_identity(IdentityId=identity, Logins={own: token}, LoginsToRemove=[own])
    assert api.describe_identity(IdentityId=identity)["Logins"] == [DEVELOPER]
    # The next sign-in at the hosted pages is a login no identity has: a new identity.
    again = await id_token(pools, email)
    assert api.get_id(IdentityPoolId=POOL, Logins={own: again})["IdentityId"] != identity


def listed_logins(api: Any, identity_id: str) -> list[str]:
    """The Logins ListIdentities shows for one identity (paging through the pool)."""
    token: str | None = None
    while True:
        page = api.list_identities(
            IdentityPoolId=POOL, MaxResults=60, **({"NextToken": token} if token else {})
        )
        for item in page["Identities"]:
            if item["IdentityId"] == identity_id:
                return list(item["Logins"])
        token = page.get("NextToken")
        assert token, "not listed"
