"""A signed-in user moves their account to another e-mail address through the user-pool API
(UpdateUserAttributes → a code to the new address → VerifyUserAttribute), with stock boto3 and
a real SMTP server on loopback: the account keeps its verified address until the code comes
back; the old address is told; sign-in follows the new address; an address another account
has is refused (AliasExistsException); a wrong code changes nothing."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.cognito.test_user_pool_api import FLOWS, PASSWORD, error_of, idp, in_model
from tests.helpers import GatewayServer, RedisServer, free_port, make_settings
from tests.mail import Mailbox, body_of, code_in, smtp_settings


@pytest.fixture(scope="module")
def pool(redis_server: RedisServer, mailbox: tuple[Mailbox, int]) -> Iterator[GatewayServer]:
    port = free_port()
    clients = [
        {
            "client_id": "app",
            "token_endpoint_auth_method": "none",
            "grant_types": ["refresh_token"],
            "explicit_auth_flows": FLOWS,
        }
    ]
    settings = make_settings(
        port,
        redis_server.url,
        clients=clients,
        email=smtp_settings(mailbox[1]),
        user_pool={"id": "eu-west-1_EmailMove1", "allowed_email_domains": ["example.com"]},
        region="eu-west-1",
        rate_limits={"login_per_ip": 100_000},
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


def sign_in(pool: GatewayServer, email: str) -> str:
    answer = idp(pool).initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="app",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    return str(answer["AuthenticationResult"]["AccessToken"])


def attributes_of(pool: GatewayServer, token: str) -> dict[str, str]:
    return {a["Name"]: a["Value"] for a in idp(pool).get_user(AccessToken=token)["UserAttributes"]}


async def test_an_account_moves_to_a_proven_address(
    pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    client = idp(pool)
    old = f"old{secrets.token_hex(3)}@example.com"
    new = f"new{secrets.token_hex(3)}@example.com"
    await pool.add_user(old, PASSWORD, email_verified=True)
    token = sign_in(pool, old)
    asked = client.update_user_attributes(
        AccessToken=token, UserAttributes=[{"Name": "email", "Value": new.upper()}]
    )
    in_model("UpdateUserAttributes", asked)
    assert asked["CodeDeliveryDetailsList"] == [
        {
            "Destination": f"{new[0]}***@example.com",
            "DeliveryMedium": "EMAIL",
            "AttributeName": "email",
        }
    ]
    # Until the code comes back, nothing has moved.
    assert attributes_of(pool, token)["email"] == old
    assert attributes_of(pool, token)["email_verified"] == "true"
    await mailbox[0].next_for(new)
    # Asked again, the code goes to the address being proven, not the current one.
    again = client.get_user_attribute_verification_code(AccessToken=token, AttributeName="email")
    assert again["CodeDeliveryDetails"]["Destination"] == f"{new[0]}***@example.com"
    code = code_in(await mailbox[0].next_for(new, 1))
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert error_of(
        client.verify_user_attribute, AccessToken=token, AttributeName="email", Code=wrong
    )[0] == ("CodeMismatchException")
    assert attributes_of(pool, token)["email"] == old
    in_model(
        "VerifyUserAttribute",
        client.verify_user_attribute(AccessToken=token, AttributeName="email", Code=code),
    )
    moved = attributes_of(pool, token)
    assert moved["email"] == new and moved["email_verified"] == "true"
    notice = await mailbox[0].next_for(old)
    assert "changed" in notice["Subject"] and f"{new[0]}***@example.com" in body_of(notice)
    assert sign_in(pool, new)
    assert error_of(
        client.initiate_auth,
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="app",
        AuthParameters={"USERNAME": old, "PASSWORD": PASSWORD},
    ) == ("NotAuthorizedException", "Incorrect username or password.")
    # The old address is free again: a new account can have it.
    assert await pool.add_user(old, PASSWORD, email_verified=True)


async def test_an_address_another_account_has_is_refused(
    pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    client = idp(pool)
    mine = f"mine{secrets.token_hex(3)}@example.com"
    theirs = f"theirs{secrets.token_hex(3)}@example.com"
    await pool.add_user(mine, PASSWORD, email_verified=True)
    await pool.add_user(theirs, PASSWORD, email_verified=True)
    token = sign_in(pool, mine)
    assert error_of(
        client.update_user_attributes,
        AccessToken=token,
        UserAttributes=[{"Name": "email", "Value": theirs}, {"Name": "name", "Value": "Ada"}],
    ) == ("AliasExistsException", "An account with the given email already exists.")
    assert "name" not in attributes_of(pool, token)  # a refusal changes nothing
    assert error_of(
        client.update_user_attributes,
        AccessToken=token,
        UserAttributes=[{"Name": "email", "Value": "someone@elsewhere.org"}],
    )[0] == ("InvalidParameterException")
    # Asked for a free address, then another account takes it before the code comes back.
    race = f"race{secrets.token_hex(3)}@example.com"
    client.update_user_attributes(
        AccessToken=token, UserAttributes=[{"Name": "email", "Value": race}]
    )
    code = code_in(await mailbox[0].next_for(race))
    await pool.add_user(race, PASSWORD, email_verified=True)
    assert error_of(
        client.verify_user_attribute, AccessToken=token, AttributeName="email", Code=code
    )[0] == ("AliasExistsException")
    assert attributes_of(pool, token)["email"] == mine
