"""The names logins go by in the Cognito Identity API: DescribeIdentity lists them by the
`Logins` keys an SDK sends, so UnlinkIdentity with such a key does what it says (boto3)."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from tests.helpers import Browser, GatewayServer, redeem
from tests.identity.conftest import CLOSED_POOL, DEVELOPER, POOL, StsFront, client, id_token


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


async def test_one_user_in_two_pools_gets_credentials_from_the_pool_that_takes_the_token(
    pools: GatewayServer, sts: StsFront
) -> None:
    """A Cognate login's identity ID is its `sub` in every pool, and GetCredentialsForIdentity
    names no pool: the pool is the first one (of those the identity is in) whose providers
    take the token. POOL takes only the web and spa clients' ID tokens; CLOSED_POOL any."""
    api = client(pools)
    own = pools.url.removeprefix("http://")
    email = f"two-pools-{secrets.token_hex(4)}@example.com"
    await pools.add_user(email, email_verified=True)
    web = await id_token(pools, email)
    identity = api.get_id(IdentityPoolId=POOL, Logins={own: web})["IdentityId"]
    native = await native_id_token(pools, email)  # a CLI's, say
    assert api.get_id(IdentityPoolId=CLOSED_POOL, Logins={own: native})["IdentityId"] == identity
    for token, pool in ((native, CLOSED_POOL), (web, POOL)):
        sts.reset()
        api.get_credentials_for_identity(IdentityId=identity, Logins={own: token})
        (sent,) = [r for r in sts.requests if r.get("Action") == "AssumeRoleWithWebIdentity"]
        assert claims_of(sent["WebIdentityToken"])["aud"] == pool


async def native_id_token(gateway: GatewayServer, email: str) -> str:
    """`email` signed in through the public `native` client (loopback redirect, PKCE)."""
    browser = Browser(gateway.url)
    try:
        callback = "http://127.0.0.1/callback"
        code, verifier, _ = await browser.login_for_code(
            email, client_id="native", redirect_uri=callback
        )
        answer = await redeem(
            browser.http, code, verifier, auth=None, redirect_uri=callback, client_id="native"
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["id_token"])
    finally:
        await browser.aclose()


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
