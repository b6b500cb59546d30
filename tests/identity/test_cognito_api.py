"""The Cognito Identity API through boto3 against the live gateway, with moto_server as STS
(behind a front that records what the gateway sent and injects faults)."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import botocore
import pytest
from botocore.exceptions import ClientError
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.helpers import GatewayServer
from tests.identity.conftest import (
    ADMIN_ROLE,
    AUTH_ROLE,
    CLOSED_POOL,
    DEVELOPER,
    POOL,
    UNAUTH_ROLE,
    StsFront,
    client,
    id_token,
)


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def own(gateway: GatewayServer) -> str:
    return gateway.url.removeprefix("http://")


async def new_user(
    gateway: GatewayServer, prefix: str = "user", verified: bool = True
) -> tuple[str, str]:
    email = f"{prefix}-{secrets.token_hex(4)}@example.com"
    await gateway.add_user(email, email_verified=verified)
    return email, await id_token(gateway, email)


def jwks(gateway: GatewayServer) -> KeySet:
    import httpx

    return KeySet.import_key_set(httpx.get(f"{gateway.url}/.well-known/jwks.json").json())


# -- GetId ------------------------------------------------------------------------------------


async def test_get_id_with_own_token_is_the_token_subject(pools: GatewayServer) -> None:
    _, token = await new_user(pools)
    sub = jwt.decode(token, jwks(pools)).claims["sub"]
    api = client(pools)
    assert api.get_id(IdentityPoolId=POOL, Logins={own(pools): token})["IdentityId"] == sub


async def test_get_id_unauthenticated(pools: GatewayServer) -> None:
    api = client(pools)
    guest = api.get_id(IdentityPoolId=POOL)["IdentityId"]
    assert guest.startswith("us-east-1:")
    with pytest.raises(ClientError) as caught:
        api.get_id(IdentityPoolId=CLOSED_POOL)
    assert error_code(caught) == "NotAuthorizedException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_get_id_errors(pools: GatewayServer) -> None:
    api = client(pools)
    _, token = await new_user(pools)
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"IdentityPoolId": "us-east-1:00000000-0000-4000-8000-000000000000"},
            "ResourceNotFoundException",
        ),
        (
            {"IdentityPoolId": POOL, "Logins": {own(pools): token[:-4] + "AAAA"}},
            "NotAuthorizedException",
        ),
        (
            {"IdentityPoolId": POOL, "Logins": {"accounts.google.com": token}},
            "NotAuthorizedException",
        ),
        ({"IdentityPoolId": POOL, "Logins": {DEVELOPER: "someone"}}, "NotAuthorizedException"),
    ]
    for params, expected in cases:
        with pytest.raises(ClientError) as caught:
            api.get_id(**params)
        assert error_code(caught) == expected, params
    with pytest.raises(botocore.exceptions.ParamValidationError):
        api.get_id(IdentityPoolId="")


async def test_hundred_parallel_get_id_for_one_new_login_make_one_identity(
    pools: GatewayServer, idp: GatewayServer
) -> None:
    _, token = await new_user(idp)
    api = client(pools)
    ids = await asyncio.gather(
        *(
            asyncio.to_thread(api.get_id, IdentityPoolId=POOL, Logins={own(idp): token})
            for _ in range(100)
        )
    )
    assert len({r["IdentityId"] for r in ids}) == 1


async def test_external_login_gets_its_own_identity_and_links(
    pools: GatewayServer, idp: GatewayServer
) -> None:
    api = client(pools)
    _, external = await new_user(idp)
    _, local = await new_user(pools)
    external_id = api.get_id(IdentityPoolId=POOL, Logins={own(idp): external})["IdentityId"]
    assert external_id != jwt.decode(external, jwks(idp)).claims["sub"]
    # Another local user presenting the same external login: conflict, not a silent merge.
    with pytest.raises(ClientError) as caught:
        api.get_id(IdentityPoolId=POOL, Logins={own(pools): local, own(idp): external})
    assert error_code(caught) == "ResourceConflictException"
    # A fresh external account together with the local token links to the local identity.
    _, fresh = await new_user(idp)
    local_id = api.get_id(IdentityPoolId=POOL, Logins={own(pools): local})["IdentityId"]
    linked = api.get_id(IdentityPoolId=POOL, Logins={own(pools): local, own(idp): fresh})
    assert linked["IdentityId"] == local_id
    assert set(api.describe_identity(IdentityId=local_id)["Logins"]) == {own(pools), own(idp)}
    # Unlink it again with UnlinkIdentity
    api.unlink_identity(IdentityId=local_id, Logins={own(pools): local}, LoginsToRemove=[own(idp)])
    assert own(idp) not in api.describe_identity(IdentityId=local_id)["Logins"]


# -- GetOpenIdToken and credentials ----------------------------------------------------------


async def test_get_open_id_token_claims(pools: GatewayServer) -> None:
    api = client(pools)
    _, token = await new_user(pools)
    identity = api.get_id(IdentityPoolId=POOL, Logins={own(pools): token})["IdentityId"]
    answer = api.get_open_id_token(IdentityId=identity, Logins={own(pools): token})
    claims = jwt.decode(answer["Token"], jwks(pools), algorithms=["RS256"]).claims
    assert claims["iss"] == pools.url and claims["sub"] == identity
    # The pool does not allow the classic flow: the client's token is not for STS.
    assert claims["aud"] == f"{POOL}/client"
    assert claims["amr"] == ["authenticated", own(pools)]
    assert claims["exp"] - claims["iat"] == 600
    with pytest.raises(ClientError) as caught:
        api.get_open_id_token(IdentityId=identity)  # authenticated identity without logins
    assert error_code(caught) == "NotAuthorizedException"


async def test_guest_credentials_use_the_unauthenticated_role(
    pools: GatewayServer, sts: StsFront
) -> None:
    sts.reset()
    api = client(pools)
    guest = api.get_id(IdentityPoolId=POOL)["IdentityId"]
    answer = api.get_credentials_for_identity(IdentityId=guest)
    creds = answer["Credentials"]
    assert {"AccessKeyId", "SecretKey", "SessionToken", "Expiration"} <= set(creds)
    assert sts.requests[-1]["RoleArn"] == UNAUTH_ROLE
    claims = jwt.decode(sts.requests[-1]["WebIdentityToken"], jwks(pools)).claims
    assert claims["amr"] == ["unauthenticated"] and claims["sub"] == guest
    assert claims["aud"] == f"{POOL}/unauthenticated"  # IAM can keep guests off other roles


async def test_guest_token_cannot_pass_as_an_authenticated_login(
    pools: GatewayServer, sts: StsFront
) -> None:
    api = client(pools)
    guest = api.get_id(IdentityPoolId=POOL)["IdentityId"]
    token = api.get_open_id_token(IdentityId=guest)["Token"]
    sts.reset()
    for call in (
        lambda: api.get_id(IdentityPoolId=POOL, Logins={"cognito-identity.amazonaws.com": token}),
        lambda: api.get_credentials_for_identity(
            IdentityId=guest, Logins={"cognito-identity.amazonaws.com": token}
        ),
    ):
        with pytest.raises(ClientError) as caught:
            call()
        assert error_code(caught) == "NotAuthorizedException"
    assert sts.requests == []


async def test_credentials_token_sent_to_sts_and_caching(
    pools: GatewayServer, idp: GatewayServer, sts: StsFront
) -> None:
    sts.reset()
    api = client(pools)
    email, token = await new_user(idp, "dev")
    identity = api.get_id(IdentityPoolId=POOL, Logins={own(idp): token})["IdentityId"]
    first = api.get_credentials_for_identity(IdentityId=identity, Logins={own(idp): token})
    assert len(sts.requests) == 1
    sent = sts.requests[0]
    assert sent["Action"] == "AssumeRoleWithWebIdentity"
    assert sent["RoleArn"] == AUTH_ROLE  # the admin rule does not match "dev-…"
    assert sent["RoleSessionName"] == email
    assert json.loads(sent["Policy"])["Statement"][0]["Resource"] == (
        f"arn:aws:s3:::bucket/{identity}/*"
    )
    claims = jwt.decode(sent["WebIdentityToken"], jwks(pools), algorithms=["RS256"]).claims
    assert claims["iss"] == pools.url and claims["aud"] == POOL and claims["sub"] == identity
    assert claims["amr"] == ["authenticated", own(idp)]
    assert claims["https://aws.amazon.com/tags"]["principal_tags"] == {"email": [email]}
    assert claims["https://aws.amazon.com/source_identity"] == email
    # Cached: same credentials, no second STS call.
    again = api.get_credentials_for_identity(IdentityId=identity, Logins={own(idp): token})
    assert again["Credentials"]["AccessKeyId"] == first["Credentials"]["AccessKeyId"]
    assert len(sts.requests) == 1


async def test_parallel_credential_requests_make_one_sts_call(
    pools: GatewayServer, sts: StsFront
) -> None:
    api = client(pools)
    _, token = await new_user(pools)
    identity = api.get_id(IdentityPoolId=POOL, Logins={own(pools): token})["IdentityId"]
    sts.reset()
    answers = await asyncio.gather(
        *(
            asyncio.to_thread(
                api.get_credentials_for_identity, IdentityId=identity, Logins={own(pools): token}
            )
            for _ in range(12)
        )
    )
    assert len({a["Credentials"]["AccessKeyId"] for a in answers}) == 1
    assert len(sts.requests) == 1


async def test_role_rules_and_deny(pools: GatewayServer, idp: GatewayServer, sts: StsFront) -> None:
    api = client(pools)
    _, admin = await new_user(idp, "admin")
    identity = api.get_id(IdentityPoolId=POOL, Logins={own(idp): admin})["IdentityId"]
    sts.reset()
    api.get_credentials_for_identity(IdentityId=identity, Logins={own(idp): admin})
    assert sts.requests[-1]["RoleArn"] == ADMIN_ROLE
    # The local provider's mapping denies users whose e-mail is not verified: no STS call.
    _, unverified = await new_user(pools, verified=False)
    identity = api.get_id(IdentityPoolId=POOL, Logins={own(pools): unverified})["IdentityId"]
    sts.reset()
    with pytest.raises(ClientError) as caught:
        api.get_credentials_for_identity(IdentityId=identity, Logins={own(pools): unverified})
    assert error_code(caught) == "NotAuthorizedException"
    assert sts.requests == []


async def test_custom_or_foreign_roles_are_refused_without_calling_sts(
    pools: GatewayServer, sts: StsFront
) -> None:
    api = client(pools)
    _, token = await new_user(pools)
    identity = api.get_id(IdentityPoolId=POOL, Logins={own(pools): token})["IdentityId"]
    sts.reset()
    for arn in (
        "arn:aws:iam::999999999999:role/admin",
        "arn:aws:iam::*:role/*",
        ADMIN_ROLE,
        "junk-junk-junk-junk-junk",
    ):
        with pytest.raises(ClientError) as caught:
            api.get_credentials_for_identity(
                IdentityId=identity, Logins={own(pools): token}, CustomRoleArn=arn
            )
        assert error_code(caught) in ("NotAuthorizedException", "InvalidParameterException")
    assert sts.requests == []


async def test_sts_faults(pools: GatewayServer, sts: StsFront) -> None:
    api = client(pools)

    async def fresh_identity() -> tuple[str, str]:
        _, token = await new_user(pools)
        return api.get_id(IdentityPoolId=POOL, Logins={own(pools): token})["IdentityId"], token

    # Throttled twice, then fine: retried with backoff within the budget.
    identity, token = await fresh_identity()
    sts.reset()
    sts.faults = [(400, "Throttling"), (503, "ServiceUnavailable")]
    api.get_credentials_for_identity(IdentityId=identity, Logins={own(pools): token})
    assert len(sts.requests) == 3

    # Always throttled: bounded retries, then 503 with Retry-After.
    identity, token = await fresh_identity()
    sts.reset()
    sts.faults = [(400, "Throttling")] * 10
    with pytest.raises(ClientError) as caught:
        api.get_credentials_for_identity(IdentityId=identity, Logins={own(pools): token})
    assert error_code(caught) == "ExternalServiceException"
    meta = caught.value.response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 503 and meta["HTTPHeaders"]["retry-after"]
    assert len(sts.requests) == 4  # 1 + 3 retries

    # InvalidIdentityToken once: one fresh token, then success; twice: NotAuthorizedException
    # (400, as AWS answers a refused web-identity token), which an SDK does not retry.
    identity, token = await fresh_identity()
    sts.reset()
    sts.faults = [(400, "InvalidIdentityToken")]
    api.get_credentials_for_identity(IdentityId=identity, Logins={own(pools): token})
    assert len(sts.requests) == 2
    assert sts.requests[0]["WebIdentityToken"] != sts.requests[1]["WebIdentityToken"]
    identity, token = await fresh_identity()
    sts.reset()
    sts.faults = [(400, "InvalidIdentityToken")] * 8
    retrying = client(pools, retries={"mode": "standard", "total_max_attempts": 4})
    with pytest.raises(ClientError) as caught:
        retrying.get_credentials_for_identity(IdentityId=identity, Logins={own(pools): token})
    assert error_code(caught) == "NotAuthorizedException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(sts.requests) == 2  # one fresh token, and the SDK did not come back for more

    # IDPRejectedClaim: 403 straight away.
    identity, token = await fresh_identity()
    sts.reset()
    sts.faults = [(400, "IDPRejectedClaim")]
    with pytest.raises(ClientError) as caught:
        api.get_credentials_for_identity(IdentityId=identity, Logins={own(pools): token})
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert len(sts.requests) == 1
    sts.reset()


# -- signed admin operations ------------------------------------------------------------------


async def test_sigv4_is_required_and_checked(pools: GatewayServer) -> None:
    good = client(pools)
    assert good.get_identity_pool_roles(IdentityPoolId=POOL)["Roles"]["authenticated"] == AUTH_ROLE
    for key, expected in (
        (("AKIACOGNATETEST0001", "a-wrong-secret-a-wrong-secret"), "InvalidSignatureException"),
        (("AKIAUNKNOWNKEY00001", "whatever-whatever-whatever"), "UnrecognizedClientException"),
    ):
        with pytest.raises(ClientError) as caught:
            client(pools, key).get_identity_pool_roles(IdentityPoolId=POOL)
        assert error_code(caught) == expected
    unsigned = client(pools, signature_version=botocore.UNSIGNED)
    with pytest.raises(ClientError) as caught:
        unsigned.describe_identity(IdentityId=POOL)
    assert error_code(caught) == "MissingAuthenticationTokenException"


async def test_developer_identities(pools: GatewayServer, sts: StsFront) -> None:
    api = client(pools)
    user = f"dev-user-{secrets.token_hex(3)}"
    answer = api.get_open_id_token_for_developer_identity(
        IdentityPoolId=POOL,
        Logins={DEVELOPER: user},
        PrincipalTags={"team": "blue"},
        TokenDuration=900,
    )
    identity = answer["IdentityId"]
    claims = jwt.decode(answer["Token"], jwks(pools)).claims
    assert claims["aud"] == f"{POOL}/client" and claims["exp"] - claims["iat"] == 900
    assert claims["https://aws.amazon.com/tags"]["principal_tags"] == {"team": ["blue"]}
    # Same developer user → same identity.
    again = api.get_open_id_token_for_developer_identity(
        IdentityPoolId=POOL, Logins={DEVELOPER: user}
    )
    assert again["IdentityId"] == identity
    # Enhanced flow: credentials with the Cognito token.
    sts.reset()
    creds = api.get_credentials_for_identity(
        IdentityId=identity, Logins={"cognito-identity.amazonaws.com": answer["Token"]}
    )
    assert creds["IdentityId"] == identity and len(sts.requests) == 1
    looked = api.lookup_developer_identity(IdentityPoolId=POOL, DeveloperUserIdentifier=user)
    assert looked["IdentityId"] == identity and looked["DeveloperUserIdentifierList"] == [user]
    # Merge another developer user into this identity.
    other = f"dev-other-{secrets.token_hex(3)}"
    other_id = api.get_open_id_token_for_developer_identity(
        IdentityPoolId=POOL, Logins={DEVELOPER: other}
    )["IdentityId"]
    assert other_id != identity
    merged = api.merge_developer_identities(
        SourceUserIdentifier=other,
        DestinationUserIdentifier=user,
        DeveloperProviderName=DEVELOPER,
        IdentityPoolId=POOL,
    )
    assert merged["IdentityId"] == identity
    assert sorted(
        api.lookup_developer_identity(IdentityPoolId=POOL, IdentityId=identity)[
            "DeveloperUserIdentifierList"
        ]
    ) == sorted([user, other])
    with pytest.raises(ClientError) as caught:
        api.describe_identity(IdentityId=other_id)
    assert error_code(caught) == "ResourceNotFoundException"
    # Registered elsewhere → DeveloperUserAlreadyRegisteredException
    third = api.get_open_id_token_for_developer_identity(
        IdentityPoolId=POOL, Logins={DEVELOPER: f"third-{secrets.token_hex(3)}"}
    )["IdentityId"]
    with pytest.raises(ClientError) as caught:
        api.get_open_id_token_for_developer_identity(
            IdentityPoolId=POOL, IdentityId=third, Logins={DEVELOPER: user}
        )
    assert error_code(caught) == "DeveloperUserAlreadyRegisteredException"
    api.unlink_developer_identity(
        IdentityId=identity,
        IdentityPoolId=POOL,
        DeveloperProviderName=DEVELOPER,
        DeveloperUserIdentifier=other,
    )
    assert api.lookup_developer_identity(IdentityPoolId=POOL, IdentityId=identity)[
        "DeveloperUserIdentifierList"
    ] == [user]


async def test_describe_list_delete(pools: GatewayServer) -> None:
    api = client(pools)
    created = [
        api.get_open_id_token_for_developer_identity(
            IdentityPoolId=POOL, Logins={DEVELOPER: f"list-{i}-{secrets.token_hex(3)}"}
        )["IdentityId"]
        for i in range(5)
    ]
    described = api.describe_identity(IdentityId=created[0])
    assert described["Logins"] == [DEVELOPER]
    assert described["CreationDate"].year >= 2026  # epoch seconds parsed by botocore
    seen: list[str] = []
    token: str | None = None
    while True:
        page = api.list_identities(
            IdentityPoolId=POOL, MaxResults=3, **({"NextToken": token} if token else {})
        )
        assert len(page["Identities"]) <= 3
        seen += [i["IdentityId"] for i in page["Identities"]]
        token = page.get("NextToken")
        if not token:
            break
    assert set(created) <= set(seen) and len(seen) == len(set(seen))
    assert api.delete_identities(IdentityIdsToDelete=created[:2])["UnprocessedIdentityIds"] == []
    with pytest.raises(ClientError) as caught:
        api.describe_identity(IdentityId=created[0])
    assert error_code(caught) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as caught:
        api.list_identities(IdentityPoolId=POOL, MaxResults=61)
    assert error_code(caught) == "InvalidParameterException"


async def test_identity_pool_roles_round_trip(pools: GatewayServer) -> None:
    api = client(pools)
    before = api.get_identity_pool_roles(IdentityPoolId=CLOSED_POOL)
    assert before["Roles"] == {"authenticated": AUTH_ROLE}
    mapping = {
        "Type": "Rules",
        "AmbiguousRoleResolution": "Deny",
        "RulesConfiguration": {
            "Rules": [
                {"Claim": "email", "MatchType": "Contains", "Value": "@corp", "RoleARN": ADMIN_ROLE}
            ]
        },
    }
    api.set_identity_pool_roles(
        IdentityPoolId=CLOSED_POOL,
        Roles={"authenticated": ADMIN_ROLE},
        RoleMappings={own(pools): mapping},
    )
    after = api.get_identity_pool_roles(IdentityPoolId=CLOSED_POOL)
    assert after["Roles"] == {"authenticated": ADMIN_ROLE}
    assert after["RoleMappings"][own(pools)] == mapping
    with pytest.raises(ClientError) as caught:
        api.set_identity_pool_roles(
            IdentityPoolId=CLOSED_POOL, Roles={"authenticated": "arn:aws:iam::*:role/wildcard"}
        )
    assert error_code(caught) == "InvalidParameterException"
    api.set_identity_pool_roles(IdentityPoolId=CLOSED_POOL, Roles={"authenticated": AUTH_ROLE})


async def test_unknown_operation_and_bad_json(pools: GatewayServer) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=pools.url) as http:
        unknown = await http.post(
            "/",
            content=b"{}",
            headers={
                "X-Amz-Target": "AWSCognitoIdentityService.Nope",
                "Content-Type": "application/x-amz-json-1.1",
            },
        )
        assert unknown.status_code == 400
        assert unknown.json()["__type"] == "UnknownOperationException"
        bad = await http.post(
            "/cognito-identity",
            content=b"{not json",
            headers={
                "X-Amz-Target": "AWSCognitoIdentityService.GetId",
                "Content-Type": "application/x-amz-json-1.1",
            },
        )
        assert bad.json()["__type"] == "SerializationException"
        assert bad.headers["x-amzn-errortype"].startswith("SerializationException")


async def test_web_identity_token_is_not_an_id_token_login(pools: GatewayServer) -> None:
    api = client(pools)
    guest = api.get_id(IdentityPoolId=POOL)["IdentityId"]
    token = api.get_open_id_token(IdentityId=guest)["Token"]
    with pytest.raises(ClientError) as caught:
        api.get_id(IdentityPoolId=CLOSED_POOL, Logins={own(pools): token})
    assert error_code(caught) == "NotAuthorizedException"


async def test_classic_flow_tokens_are_for_sts_only_when_allowed(
    pools: GatewayServer, sts: StsFront
) -> None:
    api = client(pools)
    _, token = await new_user(pools)
    identity = api.get_id(IdentityPoolId=POOL, Logins={own(pools): token})["IdentityId"]
    client_token = api.get_open_id_token(IdentityId=identity, Logins={own(pools): token})["Token"]
    # Still a valid login for the enhanced flow...
    sts.reset()
    api.get_credentials_for_identity(
        IdentityId=identity, Logins={"cognito-identity.amazonaws.com": client_token}
    )
    # ...while what Cognate itself sends to STS carries the pool audience the trust policy names.
    assert jwt.decode(sts.requests[-1]["WebIdentityToken"], jwks(pools)).claims["aud"] == POOL
    # With the classic flow allowed, the client's token names the pool directly.
    from gateway.credentials.web_identity import token_audience

    assert token_audience(POOL, True, for_sts=True) == POOL
    assert token_audience(POOL, False, for_sts=False) == f"{POOL}/unauthenticated/client"


async def test_guest_becomes_authenticated_when_a_login_is_added(
    pools: GatewayServer, idp: GatewayServer, sts: StsFront
) -> None:
    api = client(pools)
    guest = api.get_id(IdentityPoolId=POOL)["IdentityId"]
    assert api.describe_identity(IdentityId=guest)["Logins"] == []
    _, token = await new_user(idp, "upgrade")
    sts.reset()
    answer = api.get_credentials_for_identity(IdentityId=guest, Logins={own(idp): token})
    assert answer["IdentityId"] == guest  # the same identity, now with a login
    assert api.describe_identity(IdentityId=guest)["Logins"] == [own(idp)]
    claims = jwt.decode(sts.requests[-1]["WebIdentityToken"], jwks(pools)).claims
    assert claims["amr"] == ["authenticated", own(idp)] and claims["aud"] == POOL
    # From now on it needs its login, like any authenticated identity.
    with pytest.raises(ClientError) as caught:
        api.get_credentials_for_identity(IdentityId=guest)
    assert error_code(caught) == "NotAuthorizedException"
