"""SetUserMFAPreference through stock boto3 `cognito-idp` (Amplify's updateMFAPreference):
an app confirmed by VerifySoftwareToken can be set preferred; nothing unconfirmed can be
turned on; codes by e-mail and by text message go on and off; several factors and none
preferred ask which (SELECT_MFA_TYPE), a preferred one is asked directly; turning a factor off
needs a sign-in that passed one (or an administrator's signed AdminSetUserMFAPreference), and
a pool that requires MFA keeps the last factor."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest

from tests.cognito.test_user_pool_api import FLOWS, PASSWORD, error_of, idp, in_model
from tests.helpers import GatewayServer, RedisServer, free_port, make_settings


def pool_with(redis_server: RedisServer, mfa: str) -> GatewayServer:
    port = free_port()
    clients = [
        {
            "client_id": "app",
            "token_endpoint_auth_method": "none",
            "explicit_auth_flows": FLOWS,
            "grant_types": ["refresh_token"],
        }
    ]
    settings = make_settings(
        port,
        redis_server.url,
        clients=clients,
        user_pool={"id": "eu-west-1_MfaPref01", "mfa": mfa},
    )
    return GatewayServer(settings).start()


@pytest.fixture(scope="module")
def pool(redis_server: RedisServer) -> Iterator[GatewayServer]:
    server = pool_with(redis_server, "optional")
    yield server
    server.stop()


def sign_in(client: Any, email: str, totp: pyotp.TOTP | None = None) -> dict[str, Any]:
    started = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="app",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    if "AuthenticationResult" in started:
        return dict(started["AuthenticationResult"])
    assert totp is not None, started
    if started["ChallengeName"] == "SELECT_MFA_TYPE":  # several factors, none preferred
        started = client.respond_to_auth_challenge(
            ClientId="app",
            ChallengeName="SELECT_MFA_TYPE",
            Session=started["Session"],
            ChallengeResponses={"USERNAME": email, "ANSWER": "SOFTWARE_TOKEN_MFA"},
        )
    assert started["ChallengeName"] == "SOFTWARE_TOKEN_MFA", started
    done = client.respond_to_auth_challenge(
        ClientId="app",
        ChallengeName="SOFTWARE_TOKEN_MFA",
        Session=started["Session"],
        ChallengeResponses={"USERNAME": email, "SOFTWARE_TOKEN_MFA_CODE": totp.now()},
    )
    return dict(done["AuthenticationResult"])


def asks_for_code(client: Any, email: str) -> bool:
    """Does a sign-in ask for the app's code, or which factor (without spending a code)?"""
    started = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="app",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    return started.get("ChallengeName") in ("SOFTWARE_TOKEN_MFA", "SELECT_MFA_TYPE")


async def with_app(pool: GatewayServer, client: Any) -> tuple[str, str, pyotp.TOTP]:
    """A user who turned an authenticator app on (VerifySoftwareToken): e-mail, access token
    (of the password-only sign-in before it), and the app."""
    email = f"p{secrets.token_hex(4)}@example.com"
    await pool.add_user(email, PASSWORD, email_verified=True)
    token = sign_in(client, email)["AccessToken"]
    secret = client.associate_software_token(AccessToken=token)["SecretCode"]
    totp = pyotp.TOTP(secret)
    client.verify_software_token(AccessToken=token, UserCode=totp.at(time.time() - 30))
    return email, token, totp


async def test_an_app_is_set_preferred_and_turned_off_after_a_sign_in_with_it(
    pool: GatewayServer,
) -> None:
    client = idp(pool)
    email = f"p{secrets.token_hex(4)}@example.com"
    await pool.add_user(email, PASSWORD, email_verified=True)
    token = sign_in(client, email)["AccessToken"]
    preferred = {"Enabled": True, "PreferredMfa": True}
    # Nothing confirmed yet: an app cannot be turned on by preference alone.
    assert error_of(
        client.set_user_mfa_preference, AccessToken=token, SoftwareTokenMfaSettings=preferred
    ) == ("InvalidParameterException", "User has not verified software token mfa")
    assert error_of(
        client.set_user_mfa_preference, AccessToken=token, SMSMfaSettings={"Enabled": True}
    )[0] == ("InvalidParameterException")

    email, token, totp = await with_app(pool, client)
    answer = client.set_user_mfa_preference(AccessToken=token, SoftwareTokenMfaSettings=preferred)
    in_model("SetUserMFAPreference", answer)
    user = client.get_user(AccessToken=token)
    assert user["PreferredMfaSetting"] == "SOFTWARE_TOKEN_MFA"
    assert user["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]

    # The token of a password-only sign-in cannot strip the second factor...
    off = {"Enabled": False, "PreferredMfa": False}
    assert error_of(
        client.set_user_mfa_preference, AccessToken=token, SoftwareTokenMfaSettings=off
    )[0] == ("NotAuthorizedException")
    assert asks_for_code(client, email)  # ...which is still asked for;
    with_mfa = sign_in(client, email, totp)["AccessToken"]  # a sign-in that passed it can
    client.set_user_mfa_preference(AccessToken=with_mfa, SoftwareTokenMfaSettings=off)
    assert "UserMFASettingList" not in client.get_user(AccessToken=with_mfa)
    assert not asks_for_code(client, email)


async def test_codes_by_e_mail_on_and_off(pool: GatewayServer) -> None:
    client = idp(pool)
    email, token, totp = await with_app(pool, client)
    user_id = client.get_user(AccessToken=token)["Username"]
    before = await pool.call(lambda s: s.mfa.get(user_id))
    client.set_user_mfa_preference(AccessToken=token, EmailMfaSettings={"Enabled": True})
    after = await pool.call(lambda s: s.mfa.get(user_id))
    # The API cannot show new recovery codes: the ones the user has keep working.
    assert after.email_otp and after.recovery_hashes == before.recovery_hashes != []
    assert client.get_user(AccessToken=token)["UserMFASettingList"] == [
        "SOFTWARE_TOKEN_MFA",
        "EMAIL_OTP",
    ]
    both = {"Enabled": True, "PreferredMfa": True}
    assert error_of(
        client.set_user_mfa_preference,
        AccessToken=token,
        EmailMfaSettings=both,
        SoftwareTokenMfaSettings=both,
    )[0] == ("InvalidParameterException")
    with_mfa = sign_in(client, email, totp)["AccessToken"]
    client.set_user_mfa_preference(AccessToken=with_mfa, EmailMfaSettings={"Enabled": False})
    assert client.get_user(AccessToken=with_mfa)["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    assert asks_for_code(client, email)  # the app stays


async def test_a_pool_that_requires_mfa_keeps_the_last_factor(
    redis_server: RedisServer,
) -> None:
    pool = pool_with(redis_server, "required")
    try:
        client = idp(pool)
        email = f"q{secrets.token_hex(4)}@example.com"
        await pool.add_user(email, PASSWORD, email_verified=True)
        started = client.initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId="app",
            AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
        )
        assert started["ChallengeName"] == "MFA_SETUP"
        secret = client.associate_software_token(Session=started["Session"])
        totp = pyotp.TOTP(secret["SecretCode"])
        verified = client.verify_software_token(
            Session=secret["Session"], UserCode=totp.at(time.time() - 30)
        )
        done = client.respond_to_auth_challenge(
            ClientId="app",
            ChallengeName="MFA_SETUP",
            Session=verified["Session"],
            ChallengeResponses={"USERNAME": email},
        )["AuthenticationResult"]
        assert error_of(
            client.set_user_mfa_preference,
            AccessToken=done["AccessToken"],
            SoftwareTokenMfaSettings={"Enabled": False},
        ) == ("InvalidParameterException", "MFA is required for this user pool.")
    finally:
        pool.stop()


async def test_replacing_the_app_takes_a_sign_in_that_passed_it(pool: GatewayServer) -> None:
    """A password alone (a stolen one) must not swap the account's authenticator app for the
    thief's: Associate/VerifySoftwareToken over an enrolled app need a second-factor sign-in,
    as turning it off does."""
    client = idp(pool)
    email, password_only, totp = await with_app(pool, client)
    assert error_of(client.associate_software_token, AccessToken=password_only) == (
        "NotAuthorizedException",
        "Sign in with your second factor to replace it.",
    )
    assert error_of(client.verify_software_token, AccessToken=password_only, UserCode="123456")[
        0
    ] == ("NotAuthorizedException")
    assert asks_for_code(client, email)
    with_mfa = sign_in(client, email, totp)["AccessToken"]
    secret = client.associate_software_token(AccessToken=with_mfa)["SecretCode"]
    new_app = pyotp.TOTP(secret)  # the next step: this one and the last are spent already
    client.verify_software_token(AccessToken=with_mfa, UserCode=new_app.at(time.time() + 30))
    user_id = client.get_user(AccessToken=with_mfa)["Username"]
    assert (await pool.call(lambda s: s.mfa.get(user_id))).totp_secret == secret
