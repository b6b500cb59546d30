"""The user pool's administrative operations through stock boto3 `cognito-idp`, signed with
an `admin_keys` entry, the way a back end manages its users: create with a temporary password,
first sign-in through NEW_PASSWORD_REQUIRED, groups reaching the next tokens, disable, global
sign-out, resets, attributes, listing with filters and pages — and the refusals, as Cognito
words them. Every answer is checked against botocore's output shape."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from pycognito.aws_srp import AWSSRP

from gateway.credentials.roles import choose_role
from gateway.credentials.web_identity import provider_name
from gateway.settings import IdentityPoolSettings
from tests.cognito.test_user_pool_api import ADMIN_KEY, error_of, idp, in_model
from tests.helpers import GatewayServer, RedisServer, free_port, make_settings
from tests.mail import Mailbox, SmsReceiver, body_of, code_in, sms_settings, smtp_settings

POOL = "eu-west-1_AdminPool1"
PASSWORD = "correct horse battery"
ADMINS = "arn:aws:iam::123456789012:role/admins"
EDITORS = "arn:aws:iam::123456789012:role/editors"


@pytest.fixture(scope="module")
def pool(
    redis_server: RedisServer, mailbox: tuple[Mailbox, int], sms: SmsReceiver
) -> Iterator[GatewayServer]:
    port = free_port()
    base = make_settings(port, redis_server.url)
    clients = [c.model_dump() for c in base.clients] + [
        {
            "client_id": "webapp",
            "client_name": "Web app",
            "token_endpoint_auth_method": "none",
            "grant_types": ["refresh_token"],
            "explicit_auth_flows": [
                "ALLOW_USER_PASSWORD_AUTH",
                "ALLOW_USER_SRP_AUTH",
                "ALLOW_REFRESH_TOKEN_AUTH",
            ],
        }
    ]
    settings = make_settings(
        port,
        redis_server.url,
        clients=clients,
        email=smtp_settings(mailbox[1]),
        user_pool={
            "self_sign_up": True,
            "id": POOL,
            "groups": [{"name": "admins", "precedence": 1, "role_arn": ADMINS}],
            "sms": sms_settings(sms),
            "attributes": [{"name": "name"}, {"name": "custom:team"}],
        },
        region="eu-west-1",
        rate_limits={"login_per_ip": 100_000},
        admin_keys=[{"access_key_id": ADMIN_KEY[0], "secret_access_key": ADMIN_KEY[1]}],
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


def admin(pool: GatewayServer, key: tuple[str, str] = ADMIN_KEY) -> Any:
    return idp(pool, key)


def fresh_email(tag: str = "a") -> str:
    return f"{tag}{secrets.token_hex(4)}@example.com"


def create(pool: GatewayServer, email: str, **extra: Any) -> dict[str, Any]:
    answer = admin(pool).admin_create_user(
        UserPoolId=POOL,
        Username=email,
        TemporaryPassword="temporary passphrase 1",
        MessageAction="SUPPRESS",
        UserAttributes=[
            {"Name": "email", "Value": email},
            {"Name": "email_verified", "Value": "true"},
            *extra.pop("attributes", []),
        ],
        **extra,
    )
    in_model("AdminCreateUser", answer)
    return answer["User"]  # type: ignore[no-any-return]


def first_sign_in(pool: GatewayServer, email: str, temporary: str) -> dict[str, Any]:
    client = idp(pool)
    started = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="webapp",
        AuthParameters={"USERNAME": email, "PASSWORD": temporary},
    )
    assert started["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
    done = client.respond_to_auth_challenge(
        ClientId="webapp",
        ChallengeName="NEW_PASSWORD_REQUIRED",
        Session=started["Session"],
        ChallengeResponses={"USERNAME": email, "NEW_PASSWORD": PASSWORD},
    )
    return done["AuthenticationResult"]  # type: ignore[no-any-return]


def sign_in(pool: GatewayServer, email: str, password: str = PASSWORD) -> dict[str, Any]:
    return idp(pool).initiate_auth(  # type: ignore[no-any-return]
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="webapp",
        AuthParameters={"USERNAME": email, "PASSWORD": password},
    )["AuthenticationResult"]


def refresh(pool: GatewayServer, token: str) -> Any:
    return idp(pool).initiate_auth(
        AuthFlow="REFRESH_TOKEN_AUTH", ClientId="webapp", AuthParameters={"REFRESH_TOKEN": token}
    )


def temporary_in(message: Any) -> str:
    found = re.search(r"Temporary password: (\S+)", body_of(message))
    assert found, body_of(message)
    return found.group(1)


def attrs(user: dict[str, Any], field: str = "Attributes") -> dict[str, str]:
    return {a["Name"]: a["Value"] for a in user[field]}


async def test_create_user_first_sign_in_and_get_user(pool: GatewayServer) -> None:
    email = fresh_email("c")
    created = create(pool, email, attributes=[{"Name": "name", "Value": "Cleo"}])
    assert created["UserStatus"] == "FORCE_CHANGE_PASSWORD" and created["Enabled"] is True
    user_id = created["Username"]
    assert re.fullmatch(r"[0-9a-f-]{36}", user_id)
    assert attrs(created)["email"] == email and attrs(created)["name"] == "Cleo"
    assert attrs(created)["sub"].startswith("eu-west-1:")
    again = error_of(
        admin(pool).admin_create_user, UserPoolId=POOL, Username=email, MessageAction="SUPPRESS"
    )
    assert again == ("UsernameExistsException", "User account already exists")
    tokens = first_sign_in(pool, email, "temporary passphrase 1")
    # GetUser (the user's own) and AdminGetUser agree on Username and sub.
    own = idp(pool).get_user(AccessToken=tokens["AccessToken"])
    got = admin(pool).admin_get_user(UserPoolId=POOL, Username=email)
    in_model("AdminGetUser", got)
    assert got["Username"] == own["Username"] == user_id
    assert attrs(got, "UserAttributes")["sub"] == attrs(own, "UserAttributes")["sub"]
    assert got["UserStatus"] == "CONFIRMED" and got["Enabled"] is True
    assert got["UserCreateDate"].timestamp() <= got["UserLastModifiedDate"].timestamp()
    # The user id names the account as well as the e-mail does.
    assert admin(pool).admin_get_user(UserPoolId=POOL, Username=user_id)["Username"] == user_id


async def test_invitation_by_email_and_resend(
    pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    email = fresh_email("i")
    created = admin(pool).admin_create_user(
        UserPoolId=POOL, Username=email, DesiredDeliveryMediums=["EMAIL"]
    )
    in_model("AdminCreateUser", created)
    first = temporary_in(await mailbox[0].next_for(email))
    resent = admin(pool).admin_create_user(UserPoolId=POOL, Username=email, MessageAction="RESEND")
    in_model("AdminCreateUser", resent)
    second = temporary_in(await mailbox[0].next_for(email, seen=1))
    assert first != second
    wrong = error_of(
        idp(pool).initiate_auth,
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="webapp",
        AuthParameters={"USERNAME": email, "PASSWORD": first},
    )
    assert wrong == ("NotAuthorizedException", "Incorrect username or password.")
    assert "AccessToken" in first_sign_in(pool, email, second)
    refused = error_of(
        admin(pool).admin_create_user, UserPoolId=POOL, Username=email, MessageAction="RESEND"
    )
    assert refused[0] == "UnsupportedUserStateException"


async def test_invitation_by_text_message(pool: GatewayServer, sms: SmsReceiver) -> None:
    email = fresh_email("m")
    number = f"+1555{secrets.randbelow(10**7):07d}"
    created = admin(pool).admin_create_user(
        UserPoolId=POOL,
        Username=email,
        DesiredDeliveryMediums=["SMS"],
        UserAttributes=[
            {"Name": "phone_number", "Value": number},
            {"Name": "email_verified", "Value": "true"},
        ],
    )
    in_model("AdminCreateUser", created)
    message = await sms.wait_for(lambda m: m["to"] == number)
    found = re.search(r"temporary password (\S+)\.$", message["message"])
    assert found, message
    assert "AccessToken" in first_sign_in(pool, email, found.group(1))


async def test_groups_reach_the_next_tokens_and_the_role_mapping(pool: GatewayServer) -> None:
    client = admin(pool)
    name = f"editors-{secrets.token_hex(3)}"
    made = client.create_group(
        UserPoolId=POOL, GroupName=name, Description="Edit", Precedence=5, RoleArn=EDITORS
    )
    in_model("CreateGroup", made)
    assert made["Group"]["GroupName"] == name and made["Group"]["Precedence"] == 5
    assert error_of(client.create_group, UserPoolId=POOL, GroupName=name)[0] == (
        "GroupExistsException"
    )
    assert error_of(
        client.create_group, UserPoolId=POOL, GroupName=f"{name}-big", Precedence=2**31
    )[0] == ("InvalidParameterException")
    assert error_of(client.create_group, UserPoolId=POOL, GroupName="admins")[0] == (
        "GroupExistsException"
    )
    email = fresh_email("g")
    create(pool, email)
    tokens = first_sign_in(pool, email, "temporary passphrase 1")
    for group in (name, "admins"):
        in_model(
            "AdminAddUserToGroup",
            client.admin_add_user_to_group(UserPoolId=POOL, Username=email, GroupName=group),
        )
    # The change ended the user's sessions: the old refresh token is dead.
    assert error_of(refresh, pool=pool, token=tokens["RefreshToken"])[0] == (
        "NotAuthorizedException"
    )
    keys = KeySet.import_key_set(httpx.get(f"{pool.url}/.well-known/jwks.json").json())
    claims = jwt.decode(sign_in(pool, email)["IdToken"], keys).claims
    assert claims["cognito:groups"] == ["admins", name]  # by precedence
    assert claims["cognito:roles"] == [ADMINS, EDITORS]
    provider = provider_name(pool.url)
    identity_pool = IdentityPoolSettings.model_validate(
        {
            "id": "eu-west-1:11111111-2222-4333-8444-999999999999",
            "name": "groups",
            "providers": [{"type": "cognate"}],
            "roles": {"authenticated": "arn:aws:iam::123456789012:role/everyone"},
            "role_mappings": {provider: {"type": "Token"}},
        }
    )
    assert choose_role(identity_pool, provider, claims) == ADMINS
    listed = client.admin_list_groups_for_user(UserPoolId=POOL, Username=email)
    in_model("AdminListGroupsForUser", listed)
    assert [g["GroupName"] for g in listed["Groups"]] == sorted(["admins", name])
    members = client.list_users_in_group(UserPoolId=POOL, GroupName=name)
    in_model("ListUsersInGroup", members)
    assert [attrs(u)["email"] for u in members["Users"]] == [email]
    got = client.get_group(UserPoolId=POOL, GroupName=name)
    in_model("GetGroup", got)
    assert got["Group"]["RoleArn"] == EDITORS
    groups = client.list_groups(UserPoolId=POOL)
    in_model("ListGroups", groups)
    assert {"admins", name} <= {g["GroupName"] for g in groups["Groups"]}
    # A precedence change reaches the next tokens; settings' groups are settings' to change.
    updated = client.update_group(UserPoolId=POOL, GroupName=name, Precedence=0)
    in_model("UpdateGroup", updated)
    assert updated["Group"]["Precedence"] == 0
    claims = jwt.decode(sign_in(pool, email)["IdToken"], keys).claims
    assert claims["cognito:groups"] == [name, "admins"]
    settings_group = error_of(client.update_group, UserPoolId=POOL, GroupName="admins")
    assert settings_group[0] == "InvalidParameterException" and "settings" in settings_group[1]
    assert error_of(client.delete_group, UserPoolId=POOL, GroupName="admins")[0] == (
        "InvalidParameterException"
    )
    removed = client.admin_remove_user_from_group(
        UserPoolId=POOL, Username=email, GroupName="admins"
    )
    in_model("AdminRemoveUserFromGroup", removed)
    in_model("DeleteGroup", client.delete_group(UserPoolId=POOL, GroupName=name))
    assert error_of(client.get_group, UserPoolId=POOL, GroupName=name) == (
        "ResourceNotFoundException",
        "Group not found.",
    )
    assert client.admin_list_groups_for_user(UserPoolId=POOL, Username=email)["Groups"] == []
    assert "cognito:groups" not in jwt.decode(sign_in(pool, email)["IdToken"], keys).claims
    # The command line sees the same groups (one implementation).
    user = await pool.call(lambda s: s.users.by_email(email))
    assert user.groups == []


async def test_disable_enable_and_global_sign_out(pool: GatewayServer) -> None:
    client = admin(pool)
    email = fresh_email("d")
    create(pool, email)
    tokens = first_sign_in(pool, email, "temporary passphrase 1")
    in_model("AdminDisableUser", client.admin_disable_user(UserPoolId=POOL, Username=email))
    assert client.admin_get_user(UserPoolId=POOL, Username=email)["Enabled"] is False
    refused = error_of(
        idp(pool).initiate_auth,
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="webapp",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    assert refused == ("NotAuthorizedException", "Incorrect username or password.")
    assert error_of(refresh, pool=pool, token=tokens["RefreshToken"]) == (
        "NotAuthorizedException",
        "Invalid Refresh Token",
    )
    in_model("AdminEnableUser", client.admin_enable_user(UserPoolId=POOL, Username=email))
    tokens = sign_in(pool, email)
    assert "AccessToken" in refresh(pool, tokens["RefreshToken"])["AuthenticationResult"]
    in_model(
        "AdminUserGlobalSignOut",
        client.admin_user_global_sign_out(UserPoolId=POOL, Username=email),
    )
    assert error_of(refresh, pool=pool, token=tokens["RefreshToken"])[0] == (
        "NotAuthorizedException"
    )
    assert error_of(idp(pool).get_user, AccessToken=tokens["AccessToken"])[0] == (
        "NotAuthorizedException"
    )


async def test_passwords_reset_and_the_forgot_password_flow(
    pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    client = admin(pool)
    email = fresh_email("p")
    create(pool, email)
    in_model(
        "AdminSetUserPassword",
        client.admin_set_user_password(
            UserPoolId=POOL, Username=email, Password="permanent passphrase", Permanent=True
        ),
    )
    assert "AccessToken" in sign_in(pool, email, "permanent passphrase")
    client.admin_set_user_password(
        UserPoolId=POOL, Username=email, Password="another temporary one", Permanent=False
    )
    got = client.admin_get_user(UserPoolId=POOL, Username=email)
    assert got["UserStatus"] == "FORCE_CHANGE_PASSWORD"
    weak = error_of(
        client.admin_set_user_password, UserPoolId=POOL, Username=email, Password="short"
    )
    assert weak[0] == "InvalidPasswordException"
    first_sign_in(pool, email, "another temporary one")
    in_model(
        "AdminResetUserPassword",
        client.admin_reset_user_password(UserPoolId=POOL, Username=email),
    )
    assert client.admin_get_user(UserPoolId=POOL, Username=email)["UserStatus"] == (
        "RESET_REQUIRED"
    )
    refused = error_of(
        idp(pool).initiate_auth,
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="webapp",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    assert refused == ("PasswordResetRequiredException", "Password reset required for the user")
    srp_refused = error_of(
        AWSSRP(
            username=email, password=PASSWORD, pool_id=POOL, client_id="webapp", client=idp(pool)
        ).authenticate_user
    )
    assert srp_refused[0] == "PasswordResetRequiredException"
    code = code_in(await mailbox[0].next_for(email))
    idp(pool).confirm_forgot_password(
        ClientId="webapp", Username=email, ConfirmationCode=code, Password="after the reset"
    )
    assert client.admin_get_user(UserPoolId=POOL, Username=email)["UserStatus"] == "CONFIRMED"
    assert "AccessToken" in sign_in(pool, email, "after the reset")


async def test_attributes_confirm_and_delete(pool: GatewayServer) -> None:
    client = admin(pool)
    email = fresh_email("t")
    create(pool, email)
    in_model(
        "AdminUpdateUserAttributes",
        client.admin_update_user_attributes(
            UserPoolId=POOL,
            Username=email,
            UserAttributes=[
                {"Name": "given_name", "Value": "Tess"},
                {"Name": "custom:team", "Value": "blue"},
                {"Name": "phone_number", "Value": "+15555550100"},
                {"Name": "phone_number_verified", "Value": "true"},
            ],
        ),
    )
    got = attrs(client.admin_get_user(UserPoolId=POOL, Username=email), "UserAttributes")
    assert got["given_name"] == "Tess" and got["custom:team"] == "blue"
    assert got["phone_number_verified"] == "true"
    assert error_of(
        client.admin_update_user_attributes,
        UserPoolId=POOL,
        Username=email,
        UserAttributes=[{"Name": "sub", "Value": "x"}],
    )[0] == ("InvalidParameterException")
    unknown = error_of(
        client.admin_update_user_attributes,
        UserPoolId=POOL,
        Username=email,
        UserAttributes=[{"Name": "shoe_size", "Value": "9"}],
    )
    assert unknown == (
        "InvalidParameterException",
        "Attributes did not conform to the schema: Type for attribute {shoe_size} could not "
        "be determined",
    )
    in_model(
        "AdminDeleteUserAttributes",
        client.admin_delete_user_attributes(
            UserPoolId=POOL, Username=email, UserAttributeNames=["custom:team"]
        ),
    )
    got = attrs(client.admin_get_user(UserPoolId=POOL, Username=email), "UserAttributes")
    assert "custom:team" not in got
    # A self sign-up confirmed by the operator signs in at once.
    fresh = fresh_email("s")
    idp(pool).sign_up(ClientId="webapp", Username=fresh, Password=PASSWORD)
    assert client.admin_get_user(UserPoolId=POOL, Username=fresh)["UserStatus"] == "UNCONFIRMED"
    in_model("AdminConfirmSignUp", client.admin_confirm_sign_up(UserPoolId=POOL, Username=fresh))
    assert client.admin_get_user(UserPoolId=POOL, Username=fresh)["UserStatus"] == "CONFIRMED"
    assert "AccessToken" in sign_in(pool, fresh)
    events = client.admin_list_user_auth_events(UserPoolId=POOL, Username=fresh)
    in_model("AdminListUserAuthEvents", events)
    kinds = [(e["EventType"], e["EventResponse"]) for e in events["AuthEvents"]]
    assert kinds[:2] == [("SignIn", "Pass"), ("SignUp", "Pass")]  # newest first
    in_model("AdminDeleteUser", client.admin_delete_user(UserPoolId=POOL, Username=fresh))
    assert error_of(client.admin_get_user, UserPoolId=POOL, Username=fresh) == (
        "UserNotFoundException",
        "User does not exist.",
    )


async def test_list_users_filters_pages_and_attributes(pool: GatewayServer) -> None:
    client = admin(pool)
    tag = secrets.token_hex(3)
    emails = sorted(f"lst{tag}{i:02d}@example.com" for i in range(7))
    for email in emails:
        create(pool, email, attributes=[{"Name": "family_name", "Value": f"Fam{tag}"}])
    seen: list[str] = []
    token: str | None = None
    while True:
        page = client.list_users(
            UserPoolId=POOL,
            Filter=f'email ^= "lst{tag}"',
            Limit=3,
            **({"PaginationToken": token} if token else {}),
        )
        in_model("ListUsers", page)
        seen += [attrs(u)["email"] for u in page["Users"]]
        if len(seen) == 3:  # a user added meanwhile does not shift the pages
            create(pool, f"lst{tag}00a@example.com")
        token = page.get("PaginationToken")
        if token is None:
            break
    assert seen == emails[:3] + [e for e in emails[3:]]
    exact = client.list_users(UserPoolId=POOL, Filter=f'email = "{emails[2]}"')
    assert [attrs(u)["email"] for u in exact["Users"]] == [emails[2]]
    by_status = client.list_users(
        UserPoolId=POOL, Filter='cognito:user_status = "force_change_password"', Limit=60
    )
    assert {e for e in emails} <= {attrs(u)["email"] for u in by_status["Users"]} or (
        "PaginationToken" in by_status
    )
    family = client.list_users(UserPoolId=POOL, Filter=f'family_name = "Fam{tag}"')
    assert len(family["Users"]) == 7
    sub = attrs(family["Users"][0])["sub"]
    by_sub = client.list_users(UserPoolId=POOL, Filter=f'sub = "{sub}"')
    assert [attrs(u)["sub"] for u in by_sub["Users"]] == [sub]
    only = client.list_users(
        UserPoolId=POOL, Filter=f'email = "{emails[0]}"', AttributesToGet=["email"]
    )
    assert only["Users"][0]["Attributes"] == [{"Name": "email", "Value": emails[0]}]
    disabled = client.list_users(UserPoolId=POOL, Filter='status = "Disabled"')
    assert emails[0] not in {attrs(u).get("email") for u in disabled["Users"]}
    # Refusals, in Cognito's words.
    for bad, message in (
        ('custom:team = "x"', "Invalid search attribute: custom:team"),
        ('email == "x"', "Error while parsing filter."),
        ("email = x", "Error while parsing filter."),
        ('nickname = "x"', "Invalid search attribute: nickname"),
    ):
        assert error_of(client.list_users, UserPoolId=POOL, Filter=bad) == (
            "InvalidParameterException",
            message,
        )
    assert error_of(client.list_users, UserPoolId=POOL, Limit=61)[0] == (
        "InvalidParameterException"
    )
    forged = error_of(client.list_users, UserPoolId=POOL, PaginationToken="bm90LW91cnM")
    assert forged == ("InvalidParameterException", "Invalid pagination token provided.")
    # A token continues its own filter only.
    first = client.list_users(UserPoolId=POOL, Filter=f'email ^= "lst{tag}"', Limit=1)
    other = error_of(
        client.list_users,
        UserPoolId=POOL,
        Filter='email ^= "zzz"',
        PaginationToken=first["PaginationToken"],
    )
    assert other[0] == "InvalidParameterException"


async def test_pool_and_clients_described(pool: GatewayServer) -> None:
    client = admin(pool)
    described = client.describe_user_pool(UserPoolId=POOL)
    in_model("DescribeUserPool", described)
    assert described["UserPool"]["Id"] == POOL
    app = client.describe_user_pool_client(UserPoolId=POOL, ClientId="webapp")
    in_model("DescribeUserPoolClient", app)
    assert app["UserPoolClient"]["ClientName"] == "Web app"
    assert "ALLOW_USER_PASSWORD_AUTH" in app["UserPoolClient"]["ExplicitAuthFlows"]
    assert error_of(client.describe_user_pool_client, UserPoolId=POOL, ClientId="nope")[0] == (
        "ResourceNotFoundException"
    )
    seen: list[str] = []
    token: str | None = None
    while True:
        page = client.list_user_pool_clients(
            UserPoolId=POOL, MaxResults=1, **({"NextToken": token} if token else {})
        )
        in_model("ListUserPoolClients", page)
        seen += [c["ClientId"] for c in page["UserPoolClients"]]
        token = page.get("NextToken")
        if token is None:
            break
    assert "webapp" in seen and seen == sorted(seen)


async def test_signatures_pools_and_users_refused_as_aws_does(pool: GatewayServer) -> None:
    email = fresh_email("n")
    create(pool, email)
    unsigned = httpx.post(
        pool.url,
        json={"UserPoolId": POOL, "Username": email},
        headers={
            "X-Amz-Target": "AWSCognitoIdentityProviderService.AdminGetUser",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    assert unsigned.status_code == 400
    assert unsigned.json()["__type"] == "MissingAuthenticationTokenException"
    # The public client's own unsigned call (boto3 signs with whatever keys it has).
    not_admin = error_of(idp(pool).admin_get_user, UserPoolId=POOL, Username=email)
    assert not_admin[0] == "UnrecognizedClientException"
    forged = error_of(
        admin(pool, (ADMIN_KEY[0], "not-the-secret-key-0123456789abcd")).admin_get_user,
        UserPoolId=POOL,
        Username=email,
    )
    assert forged[0] == "InvalidSignatureException"
    assert error_of(admin(pool).admin_get_user, UserPoolId="eu-west-1_Other", Username=email) == (
        "ResourceNotFoundException",
        "User pool eu-west-1_Other does not exist.",
    )
    for operation, kwargs in (
        ("admin_get_user", {}),
        ("admin_disable_user", {}),
        ("admin_delete_user", {}),
        ("admin_user_global_sign_out", {}),
        ("admin_reset_user_password", {}),
        ("admin_list_groups_for_user", {}),
        ("admin_add_user_to_group", {"GroupName": "admins"}),
    ):
        assert error_of(
            getattr(admin(pool), operation),
            UserPoolId=POOL,
            Username="nobody@example.com",
            **kwargs,
        ) == ("UserNotFoundException", "User does not exist."), operation
    assert error_of(
        admin(pool).admin_add_user_to_group, UserPoolId=POOL, Username=email, GroupName="nope"
    ) == ("ResourceNotFoundException", "Group not found.")


async def test_ten_thousand_users_listed_by_prefix(pool: GatewayServer) -> None:
    import asyncio

    tag = secrets.token_hex(3)

    async def make(services: Any) -> None:
        async def one(i: int) -> None:
            await services.users.create(f"k{tag}{i:05d}@example.com", None, confirmed=True)

        for start in range(0, 10_000, 500):
            await asyncio.gather(*(one(i) for i in range(start, start + 500)))

    began = time.perf_counter()
    await pool.call(make)
    made = time.perf_counter() - began
    client = admin(pool)
    began = time.perf_counter()
    page = client.list_users(UserPoolId=POOL, Filter=f'email ^= "k{tag}0999"', Limit=60)
    assert [attrs(u)["email"] for u in page["Users"]] == [
        f"k{tag}0999{i}@example.com" for i in range(10)
    ]
    count, token = 0, None
    while True:
        page = client.list_users(
            UserPoolId=POOL,
            Filter=f'email ^= "k{tag}00"',
            Limit=60,
            **({"PaginationToken": token} if token else {}),
        )
        count += len(page["Users"])
        token = page.get("PaginationToken")
        if token is None:
            break
    listed = time.perf_counter() - began
    assert count == 1000
    print(f"10,000 users created in {made:.1f} s; 1,010 listed in 18 pages in {listed:.2f} s")


async def test_force_alias_creation_moves_an_address_in_a_pool_with_usernames(
    redis_server: RedisServer, mailbox: tuple[Mailbox, int]
) -> None:
    """With usernames, an e-mail address is an alias: ForceAliasCreation gives it to the new
    account, and the old one keeps signing in with its username. Deleting the old account
    afterwards must not take the address from the new one."""
    port = free_port()
    clients = [
        {
            "client_id": "webapp",
            "token_endpoint_auth_method": "none",
            "grant_types": ["refresh_token"],
            "explicit_auth_flows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        }
    ]
    settings = make_settings(
        port,
        redis_server.url,
        clients=clients,
        email=smtp_settings(mailbox[1]),
        user_pool={"id": POOL, "usernames": True, "self_sign_up": True},
        region="eu-west-1",
        rate_limits={"login_per_ip": 100_000},
        admin_keys=[{"access_key_id": ADMIN_KEY[0], "secret_access_key": ADMIN_KEY[1]}],
    )
    server = GatewayServer(settings).start()
    try:
        client = admin(server)
        shared = fresh_email("alias")

        def make(username: str, **extra: Any) -> Any:
            return client.admin_create_user(
                UserPoolId=POOL,
                Username=username,
                TemporaryPassword="temporary passphrase 1",
                MessageAction="SUPPRESS",
                UserAttributes=[
                    {"Name": "email", "Value": shared},
                    {"Name": "email_verified", "Value": "true"},
                ],
                **extra,
            )

        make("yvonne")
        client.admin_set_user_password(
            UserPoolId=POOL, Username="yvonne", Password=PASSWORD, Permanent=True
        )
        assert error_of(make, username="xavier") == (
            "AliasExistsException",
            "An account with the email already exists.",
        )
        moved = make("xavier", ForceAliasCreation=True)
        in_model("AdminCreateUser", moved)
        old = client.admin_get_user(UserPoolId=POOL, Username="yvonne")
        assert attrs(old, "UserAttributes")["email_verified"] == "false"
        # The address is the new account's: the old one cannot be verified on it again.
        for again in (
            lambda: client.admin_confirm_sign_up(UserPoolId=POOL, Username="yvonne"),
            lambda: client.admin_update_user_attributes(
                UserPoolId=POOL,
                Username="yvonne",
                UserAttributes=[{"Name": "email_verified", "Value": "true"}],
            ),
        ):
            assert error_of(again)[0] == "AliasExistsException"
        assert attrs(client.admin_get_user(UserPoolId=POOL, Username="yvonne"), "UserAttributes")[
            "email_verified"
        ] == ("false")
        assert "AccessToken" in sign_in(server, "yvonne")  # by username, as before
        assert error_of(  # the address now names the new account
            idp(server).initiate_auth,
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId="webapp",
            AuthParameters={"USERNAME": shared, "PASSWORD": PASSWORD},
        ) == ("NotAuthorizedException", "Incorrect username or password.")
        client.admin_delete_user(UserPoolId=POOL, Username="yvonne")
        assert first_sign_in(server, shared, "temporary passphrase 1")["AccessToken"]
        # A username shaped like an account id would pass for that account in every call
        # that takes a Username: refused, by the admin API and at sign-up alike.
        xavier = client.admin_get_user(UserPoolId=POOL, Username="xavier")["Username"]
        assert error_of(
            client.admin_create_user,
            UserPoolId=POOL,
            Username=xavier,
            MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "email", "Value": fresh_email("imp")}],
        )[0] == ("InvalidParameterException")
        assert error_of(
            idp(server).sign_up,
            ClientId="webapp",
            Username=xavier.upper(),
            Password=PASSWORD,
            UserAttributes=[{"Name": "email", "Value": fresh_email("imp")}],
        )[0] == ("InvalidParameterException")
        shown = attrs(client.admin_get_user(UserPoolId=POOL, Username=xavier), "UserAttributes")
        assert shown["preferred_username"] == "xavier"  # the username, as tokens say it
        assert error_of(  # renaming through an attribute would leave sign-in and it apart
            client.admin_update_user_attributes,
            UserPoolId=POOL,
            Username="xavier",
            UserAttributes=[{"Name": "preferred_username", "Value": "yvonne"}],
        )[0] == ("InvalidParameterException")
    finally:
        server.stop()


async def test_force_alias_creation_cannot_take_a_username(pool: GatewayServer) -> None:
    """Where the e-mail is the Username, it is not an alias: the user exists."""
    email = fresh_email("taken")
    create(pool, email)
    assert error_of(create, pool=pool, email=email, ForceAliasCreation=True) == (
        "UsernameExistsException",
        "User account already exists",
    )


async def test_an_invited_account_signs_in_to_its_new_password_verified_or_not(
    pool: GatewayServer,
) -> None:
    """This pool lets anyone sign up, so sign-ups must prove their address first; an account an
    administrator made is no pending sign-up: its first sign-in answers NEW_PASSWORD_REQUIRED
    (as AdminGetUser's FORCE_CHANGE_PASSWORD says), with or without a verified address."""
    client = admin(pool)
    email = fresh_email("inv")
    client.admin_create_user(
        UserPoolId=POOL,
        Username=email,
        TemporaryPassword="temporary passphrase 1",
        MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": email}],
    )
    assert client.admin_get_user(UserPoolId=POOL, Username=email)["UserStatus"] == (
        "FORCE_CHANGE_PASSWORD"
    )
    started = idp(pool).initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="webapp",
        AuthParameters={"USERNAME": email, "PASSWORD": "temporary passphrase 1"},
    )
    assert started["ChallengeName"] == "NEW_PASSWORD_REQUIRED", started
    profile = json.loads(started["ChallengeParameters"]["userAttributes"])
    assert profile["email_verified"] == "false"  # Cognito's spelling, not Python's
    assert "AccessToken" in first_sign_in(pool, email, "temporary passphrase 1")
    assert client.admin_get_user(UserPoolId=POOL, Username=email)["UserStatus"] == "CONFIRMED"


async def test_a_permanent_password_from_an_administrator_confirms_a_sign_up(
    pool: GatewayServer,
) -> None:
    email = fresh_email("unc")
    idp(pool).sign_up(ClientId="webapp", Username=email, Password=PASSWORD)
    client = admin(pool)
    assert client.admin_get_user(UserPoolId=POOL, Username=email)["UserStatus"] == "UNCONFIRMED"
    assert error_of(
        idp(pool).initiate_auth,
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="webapp",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )[0] == ("UserNotConfirmedException")
    client.admin_set_user_password(
        UserPoolId=POOL, Username=email, Password="an administrator's one", Permanent=True
    )
    assert client.admin_get_user(UserPoolId=POOL, Username=email)["UserStatus"] == "CONFIRMED"
    assert "AccessToken" in sign_in(pool, email, "an administrator's one")


async def test_attributes_are_checked_as_at_sign_up_by_every_operation(
    pool: GatewayServer,
) -> None:
    """One set of rules for every write: phone numbers in international format, only the
    custom attributes the pool declares; AdminCreateUser refuses what it cannot honour."""
    client = admin(pool)
    email = fresh_email("chk")
    create(pool, email)
    token = sign_in_new(pool, email)
    for call, kwargs in (
        (client.admin_update_user_attributes, {"UserPoolId": POOL, "Username": email}),
        (idp(pool).update_user_attributes, {"AccessToken": token}),
    ):
        assert error_of(
            call, **kwargs, UserAttributes=[{"Name": "phone_number", "Value": "12345"}]
        ) == ("InvalidParameterException", "Invalid phone number format.")
        assert error_of(call, **kwargs, UserAttributes=[{"Name": "custom:nope", "Value": "x"}]) == (
            "InvalidParameterException",
            "Attributes did not conform to the schema: Type for attribute {custom:nope} could "
            "not be determined",
        )
    assert error_of(
        create,
        pool=pool,
        email=fresh_email("bad"),
        attributes=[{"Name": "phone_number", "Value": "abc"}],
    )[0] == ("InvalidParameterException")
    other = fresh_email("mismatch")
    assert error_of(
        client.admin_create_user,
        UserPoolId=POOL,
        Username=other,
        MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": fresh_email("else")}],
    ) == (
        "InvalidParameterException",
        "The email attribute must be the Username in this user pool.",
    )
    assert error_of(
        client.admin_create_user,
        UserPoolId=POOL,
        Username=fresh_email("nophone"),
        DesiredDeliveryMediums=["SMS"],
    ) == ("InvalidParameterException", "SMS delivery needs a phone_number attribute.")


async def test_an_administrator_moves_an_account_to_another_address(pool: GatewayServer) -> None:
    client = admin(pool)
    email, new, taken = fresh_email("from"), fresh_email("to"), fresh_email("held")
    create(pool, email)
    create(pool, taken)
    sign_in_new(pool, email)
    client.admin_update_user_attributes(
        UserPoolId=POOL,
        Username=email,
        UserAttributes=[
            {"Name": "email", "Value": new},
            {"Name": "email_verified", "Value": "true"},
        ],
    )
    moved = attrs(client.admin_get_user(UserPoolId=POOL, Username=new), "UserAttributes")
    assert moved["email"] == new and moved["email_verified"] == "true"
    assert "AccessToken" in sign_in(pool, new)
    assert error_of(client.admin_get_user, UserPoolId=POOL, Username=email)[0] == (
        "UserNotFoundException"
    )
    assert error_of(
        client.admin_update_user_attributes,
        UserPoolId=POOL,
        Username=new,
        UserAttributes=[{"Name": "email", "Value": taken}],
    ) == ("AliasExistsException", "An account with the given email already exists.")
    unproven = fresh_email("unproven")
    client.admin_update_user_attributes(
        UserPoolId=POOL, Username=new, UserAttributes=[{"Name": "email", "Value": unproven}]
    )
    assert attrs(client.admin_get_user(UserPoolId=POOL, Username=unproven), "UserAttributes")[
        "email_verified"
    ] == ("false")


def sign_in_new(pool: GatewayServer, email: str) -> str:
    """The first sign-in of an account `create` made (its temporary password replaced)."""
    return str(first_sign_in(pool, email, "temporary passphrase 1")["AccessToken"])


async def test_an_administrator_marks_an_address_and_a_number_unverified(
    pool: GatewayServer,
) -> None:
    client = admin(pool)
    email = fresh_email("u")
    create(
        pool,
        email,
        attributes=[
            {"Name": "phone_number", "Value": "+15555550123"},
            {"Name": "phone_number_verified", "Value": "true"},
        ],
    )
    client.admin_set_user_password(
        UserPoolId=POOL, Username=email, Password=PASSWORD, Permanent=True
    )

    def verified() -> tuple[str, str, str]:
        got = client.admin_get_user(UserPoolId=POOL, Username=email)
        found = attrs(got, "UserAttributes")
        return found["email_verified"], found["phone_number_verified"], got["UserStatus"]

    assert verified() == ("true", "true", "CONFIRMED")
    client.admin_update_user_attributes(
        UserPoolId=POOL,
        Username=email,
        UserAttributes=[
            {"Name": "email_verified", "Value": "false"},
            {"Name": "phone_number_verified", "Value": "False"},  # any case, as AdminCreateUser
        ],
    )
    assert verified() == ("false", "false", "CONFIRMED")  # as Cognito: still confirmed
    assert "AccessToken" in sign_in(pool, email)  # and signs in
    client.admin_update_user_attributes(
        UserPoolId=POOL,
        Username=email,
        UserAttributes=[{"Name": "email_verified", "Value": "true"}],
    )
    assert verified() == ("true", "false", "CONFIRMED")
