"""Choice-based sign-in (USER_AUTH) through stock boto3 `cognito-idp`, with pycognito's SRP
for PASSWORD_SRP: the pool's choices (the same for every username), a preferred challenge
answered without a round trip, SELECT_CHALLENGE answered with PASSWORD or PASSWORD_SRP, and a
passwordless code by e-mail (EMAIL_OTP, `user_pool.email_sign_in`) to a real SMTP server on
loopback — a wrong code refused and counted, an unknown user answered alike, an account's
authenticator app still asked after the code."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest

from tests.cognito.test_user_pool_api import PASSWORD, error_of, idp, in_model
from tests.helpers import GatewayServer, RedisServer, free_port, make_settings
from tests.mail import Mailbox, body_of, code_in, smtp_settings

POOL_ID = "eu-west-1_UserAuth1"


def pool_with(
    redis_server: RedisServer, mailbox: tuple[Mailbox, int], **pool: Any
) -> GatewayServer:
    port = free_port()
    clients = [
        {  # Cognito's defaults: SRP, refresh, USER_AUTH; no plain USER_PASSWORD_AUTH
            "client_id": "app",
            "token_endpoint_auth_method": "none",
            "grant_types": ["refresh_token"],
        }
    ]
    settings = make_settings(
        port,
        redis_server.url,
        clients=clients,
        email=smtp_settings(mailbox[1]),
        user_pool={"id": POOL_ID, **pool},
        region="eu-west-1",
        rate_limits={"login_per_ip": 100_000, "login_per_account": 5},
    )
    return GatewayServer(settings).start()


@pytest.fixture(scope="module")
def pool(redis_server: RedisServer, mailbox: tuple[Mailbox, int]) -> Iterator[GatewayServer]:
    server = pool_with(redis_server, mailbox, email_sign_in=True, passkeys=False)
    yield server
    server.stop()


def user_auth(client: Any, username: str, **params: str) -> dict[str, Any]:
    return dict(
        client.initiate_auth(
            AuthFlow="USER_AUTH", ClientId="app", AuthParameters={"USERNAME": username, **params}
        )
    )


def respond(client: Any, started: dict[str, Any], username: str, **responses: str) -> Any:
    return client.respond_to_auth_challenge(
        ClientId="app",
        ChallengeName=started["ChallengeName"],
        Session=started["Session"],
        ChallengeResponses={"USERNAME": username, **responses},
    )


async def new_user(pool: GatewayServer) -> tuple[str, str]:
    email = f"c{secrets.token_hex(4)}@example.com"
    user = await pool.add_user(email, PASSWORD, email_verified=True)
    return email, user.user_id


async def test_the_choices_are_the_pools_and_the_same_for_anyone(pool: GatewayServer) -> None:
    client = idp(pool)
    email, _ = await new_user(pool)
    known = user_auth(client, email)
    in_model("InitiateAuth", known)
    assert known["ChallengeName"] == "SELECT_CHALLENGE"
    assert known["AvailableChallenges"] == ["PASSWORD", "PASSWORD_SRP", "EMAIL_OTP"]
    unknown = user_auth(client, "nobody-here@example.com")
    assert {k: v for k, v in unknown.items() if k not in ("Session", "ResponseMetadata")} == {
        k: v for k, v in known.items() if k not in ("Session", "ResponseMetadata")
    }
    # A choice the pool does not offer gets the list, as Cognito answers.
    assert user_auth(client, email, PREFERRED_CHALLENGE="WEB_AUTHN")["ChallengeName"] == (
        "SELECT_CHALLENGE"
    )
    assert error_of(respond, client=client, started=known, username=email, ANSWER="SMS_OTP")[0] == (
        "InvalidParameterException"
    )


async def test_password_preferred_or_selected(pool: GatewayServer) -> None:
    client = idp(pool)
    email, user_id = await new_user(pool)
    done = user_auth(client, email, PREFERRED_CHALLENGE="PASSWORD", PASSWORD=PASSWORD)
    assert client.get_user(AccessToken=done["AuthenticationResult"]["AccessToken"])["Username"] == (
        user_id
    )
    assert error_of(
        user_auth, client=client, username=email, PREFERRED_CHALLENGE="PASSWORD", PASSWORD="no"
    ) == ("NotAuthorizedException", "Incorrect username or password.")
    listed = user_auth(client, email)
    selected = respond(client, listed, email, ANSWER="PASSWORD", PASSWORD=PASSWORD)
    in_model("RespondToAuthChallenge", selected)
    assert "AccessToken" in selected["AuthenticationResult"]
    # The Session of a SELECT_CHALLENGE serves once.
    assert error_of(
        respond, client=client, started=listed, username=email, ANSWER="PASSWORD", PASSWORD=PASSWORD
    ) == ("NotAuthorizedException", "Invalid session for the user, session is expired.")


async def test_password_srp_with_pycognito(pool: GatewayServer) -> None:
    from pycognito.aws_srp import AWSSRP

    client = idp(pool)
    email, user_id = await new_user(pool)
    for how in ("preferred", "selected"):
        srp = AWSSRP(
            username=email, password=PASSWORD, pool_id=POOL_ID, client_id="app", client=client
        )
        srp_a = format(srp.large_a_value, "x")
        if how == "preferred":
            asked = user_auth(client, email, PREFERRED_CHALLENGE="PASSWORD_SRP", SRP_A=srp_a)
        else:
            asked = respond(
                client, user_auth(client, email), email, ANSWER="PASSWORD_SRP", SRP_A=srp_a
            )
        assert asked["ChallengeName"] == "PASSWORD_VERIFIER", asked
        responses = srp.process_challenge(asked["ChallengeParameters"], {"USERNAME": email})
        done = client.respond_to_auth_challenge(
            ClientId="app",
            ChallengeName="PASSWORD_VERIFIER",
            Session=asked["Session"],
            ChallengeResponses=responses,
        )
        token = done["AuthenticationResult"]["AccessToken"]
        assert client.get_user(AccessToken=token)["Username"] == user_id


async def test_a_code_by_e_mail_signs_in_without_a_password(
    pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    client = idp(pool)
    email, user_id = await new_user(pool)
    asked = user_auth(client, email, PREFERRED_CHALLENGE="EMAIL_OTP")
    in_model("InitiateAuth", asked)
    assert asked["ChallengeName"] == "EMAIL_OTP"
    assert asked["ChallengeParameters"] == {
        "CODE_DELIVERY_DELIVERY_MEDIUM": "EMAIL",
        "CODE_DELIVERY_DESTINATION": f"{email[0]}***@example.com",
    }
    message = await mailbox[0].next_for(email)
    code = code_in(message)
    # Its own words: no password was given, so the second factor's "someone knows your
    # password" would alarm for nothing.
    assert "password" not in body_of(message).lower()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert error_of(respond, client=client, started=asked, username=email, EMAIL_OTP_CODE=wrong)[
        0
    ] == ("CodeMismatchException")
    done = respond(client, asked, email, EMAIL_OTP_CODE=code)  # the same Session, again
    tokens = done["AuthenticationResult"]
    assert client.get_user(AccessToken=tokens["AccessToken"])["Username"] == user_id
    # The code is spent: a second sign-in cannot reuse it.
    again = user_auth(client, email, PREFERRED_CHALLENGE="EMAIL_OTP")
    assert error_of(respond, client=client, started=again, username=email, EMAIL_OTP_CODE=code)[
        0
    ] == ("CodeMismatchException")


async def test_an_unknown_user_is_answered_alike_and_no_code_matches(
    pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    client = idp(pool)
    ghost = f"ghost{secrets.token_hex(3)}@example.com"
    asked = user_auth(client, ghost, PREFERRED_CHALLENGE="EMAIL_OTP")
    assert asked["ChallengeName"] == "EMAIL_OTP"
    assert asked["ChallengeParameters"]["CODE_DELIVERY_DESTINATION"] == f"{ghost[0]}***@example.com"
    for guess in ("000000", "123456"):
        assert error_of(
            respond, client=client, started=asked, username=ghost, EMAIL_OTP_CODE=guess
        )[0] == ("CodeMismatchException")
    assert not [m for m in mailbox[0].messages if m["To"] == ghost]


async def test_an_unproven_address_gets_no_code(
    pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    """A code would prove a mailbox nobody proved is this account's: none is sent."""
    client = idp(pool)
    email = f"unproven{secrets.token_hex(3)}@example.com"
    await pool.add_user(email, PASSWORD, email_verified=False)
    asked = user_auth(client, email, PREFERRED_CHALLENGE="EMAIL_OTP")
    assert asked["ChallengeName"] == "EMAIL_OTP"
    known, _ = await new_user(pool)  # a code that did go out arrives after any for `email`
    user_auth(client, known, PREFERRED_CHALLENGE="EMAIL_OTP")
    await mailbox[0].next_for(known)
    assert not [m for m in mailbox[0].messages if m["To"] == email]


async def test_wrong_codes_count_against_the_account(pool: GatewayServer) -> None:
    client = idp(pool)
    email, _ = await new_user(pool)
    asked = user_auth(client, email, PREFERRED_CHALLENGE="EMAIL_OTP")
    for _ in range(5):  # login_per_account: 5, each wrong code keeps the Session
        assert error_of(
            respond, client=client, started=asked, username=email, EMAIL_OTP_CODE="000000"
        )[0] == ("CodeMismatchException")
    assert error_of(
        respond, client=client, started=asked, username=email, EMAIL_OTP_CODE="000000"
    ) == ("NotAuthorizedException", "Password attempts exceeded")
    # The same limit as passwords: the account's password sign-in waits too.
    assert error_of(
        user_auth, client=client, username=email, PREFERRED_CHALLENGE="PASSWORD", PASSWORD=PASSWORD
    ) == ("NotAuthorizedException", "Password attempts exceeded")


async def test_an_authenticator_app_is_still_asked_after_the_code(
    pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    client = idp(pool)
    email, user_id = await new_user(pool)
    token = user_auth(client, email, PREFERRED_CHALLENGE="PASSWORD", PASSWORD=PASSWORD)[
        "AuthenticationResult"
    ]["AccessToken"]
    totp = pyotp.TOTP(client.associate_software_token(AccessToken=token)["SecretCode"])
    client.verify_software_token(AccessToken=token, UserCode=totp.at(time.time() - 30))
    client.set_user_mfa_preference(AccessToken=token, EmailMfaSettings={"Enabled": True})
    asked = user_auth(client, email, PREFERRED_CHALLENGE="EMAIL_OTP")
    code = code_in(await mailbox[0].next_for(email))
    second = respond(client, asked, email, EMAIL_OTP_CODE=code)
    # Codes by e-mail are not offered again: the mailbox was the first factor.
    assert second["ChallengeName"] == "SOFTWARE_TOKEN_MFA", second
    done = respond(client, second, email, SOFTWARE_TOKEN_MFA_CODE=totp.now())
    assert "AccessToken" in done["AuthenticationResult"]


async def test_e_mail_codes_are_offered_only_when_the_pool_says_so(
    redis_server: RedisServer, mailbox: tuple[Mailbox, int]
) -> None:
    off = pool_with(redis_server, mailbox)
    try:
        client = idp(off)
        email, _ = await new_user(off)
        listed = user_auth(client, email)
        assert "EMAIL_OTP" not in listed["AvailableChallenges"]
        assert error_of(respond, client=client, started=listed, username=email, ANSWER="EMAIL_OTP")[
            0
        ] == ("InvalidParameterException")
    finally:
        off.stop()
