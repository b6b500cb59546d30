"""Second factors by text message (SMS_MFA, codes through the SMS webhook to a real receiver on
loopback), the choice among several (SELECT_MFA_TYPE) and the preferred one, through stock
boto3 `cognito-idp`; the administrator's AdminSetUserMFAPreference (SigV4); and the hosted
pages offering the same text-message codes (turned on from the account page for a verified
number, asked on the second-factor page: one machine, two front ends)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest

from tests.cognito.test_user_pool_api import FLOWS, PASSWORD, error_of, idp, in_model
from tests.helpers import (
    Browser,
    GatewayServer,
    RedisServer,
    code_flow_params,
    form_fields,
    free_port,
    make_settings,
)
from tests.mail import Mailbox, SmsReceiver, code_in, sms_settings, smtp_settings

POOL_ID = "eu-west-1_MfaPick01"
ADMIN_KEY = ("AKIDCOGNATEMFAADMIN1", "mfa-admin-secret-key-0123456789ab")
NUMBER = "+33612345678"


def pool_with(
    redis_server: RedisServer, mailbox: tuple[Mailbox, int], sms: SmsReceiver, **pool: Any
) -> GatewayServer:
    port = free_port()
    base = make_settings(port, redis_server.url)
    clients = [c.model_dump() for c in base.clients] + [
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
        email=smtp_settings(mailbox[1]),
        user_pool={"id": POOL_ID, "sms": sms_settings(sms), **pool},
        region="eu-west-1",
        rate_limits={"login_per_ip": 100_000},
        admin_keys=[{"access_key_id": ADMIN_KEY[0], "secret_access_key": ADMIN_KEY[1]}],
    )
    return GatewayServer(settings).start()


@pytest.fixture(scope="module")
def pool(
    redis_server: RedisServer, mailbox: tuple[Mailbox, int], sms: SmsReceiver
) -> Iterator[GatewayServer]:
    server = pool_with(redis_server, mailbox, sms, sms_mfa=True)
    yield server
    server.stop()


def admin(pool: GatewayServer, key: tuple[str, str] = ADMIN_KEY) -> Any:
    return idp(pool, key)


async def user_with_phone(pool: GatewayServer, verified: bool = True) -> tuple[str, str]:
    """A user with a (verified) phone number: e-mail, user id."""
    email = f"m{secrets.token_hex(4)}@example.com"
    user = await pool.add_user(
        email, PASSWORD, email_verified=True, attributes={"phone_number": NUMBER}
    )
    if verified:
        await pool.call(lambda s: s.users.mark_phone_verified(user.user_id, NUMBER))
    return email, user.user_id


def start(client: Any, email: str) -> dict[str, Any]:
    return dict(
        client.initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId="app",
            AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
        )
    )


def answer(client: Any, started: dict[str, Any], email: str, **responses: str) -> Any:
    return client.respond_to_auth_challenge(
        ClientId="app",
        ChallengeName=started["ChallengeName"],
        Session=started["Session"],
        ChallengeResponses={"USERNAME": email, **responses},
    )


async def test_sms_mfa_is_turned_on_preferred_and_asked_with_a_texted_code(
    pool: GatewayServer, sms: SmsReceiver
) -> None:
    client = idp(pool)
    email, _ = await user_with_phone(pool)
    token = start(client, email)["AuthenticationResult"]["AccessToken"]
    on = {"Enabled": True, "PreferredMfa": True}
    in_model(
        "SetUserMFAPreference", client.set_user_mfa_preference(AccessToken=token, SMSMfaSettings=on)
    )
    user = client.get_user(AccessToken=token)
    assert user["UserMFASettingList"] == ["SMS_MFA"]
    assert user["PreferredMfaSetting"] == "SMS_MFA"

    seen = len([m for m in sms.messages if m["to"] == NUMBER])
    started = start(client, email)
    in_model("InitiateAuth", started)
    assert started["ChallengeName"] == "SMS_MFA"
    assert started["ChallengeParameters"] == {
        "CODE_DELIVERY_DELIVERY_MEDIUM": "SMS",
        "CODE_DELIVERY_DESTINATION": "+*******5678",
    }
    code = await sms.code_for(NUMBER, seen)
    assert sms.messages[-1]["purpose"] == "mfa"
    wrong = "000000" if code != "000000" else "111111"
    assert error_of(answer, client=client, started=started, email=email, SMS_MFA_CODE=wrong)[0] == (
        "CodeMismatchException"
    )
    done = answer(client, started, email, SMS_MFA_CODE=code)  # the same Session, once more
    in_model("RespondToAuthChallenge", done)
    assert "AccessToken" in done["AuthenticationResult"]
    # The code is spent with its sign-in.
    again = start(client, email)
    assert error_of(answer, client=client, started=again, email=email, SMS_MFA_CODE=code)[0] == (
        "CodeMismatchException"
    )


async def test_sms_needs_a_verified_number_and_a_pool_that_texts(
    pool: GatewayServer, redis_server: RedisServer, mailbox: tuple[Mailbox, int], sms: SmsReceiver
) -> None:
    client = idp(pool)
    email, _ = await user_with_phone(pool, verified=False)
    token = start(client, email)["AuthenticationResult"]["AccessToken"]
    assert error_of(
        client.set_user_mfa_preference, AccessToken=token, SMSMfaSettings={"Enabled": True}
    ) == ("InvalidParameterException", "User does not have delivery config set to turn on SMS_MFA")
    off = pool_with(redis_server, mailbox, sms)  # sms_mfa is off by default
    try:
        other = idp(off)
        email, _ = await user_with_phone(off)
        token = start(other, email)["AuthenticationResult"]["AccessToken"]
        assert error_of(
            other.set_user_mfa_preference, AccessToken=token, SMSMfaSettings={"Enabled": True}
        )[0] == ("InvalidParameterException")
    finally:
        off.stop()


async def test_several_factors_ask_which_and_a_preferred_one_is_asked_directly(
    pool: GatewayServer, mailbox: tuple[Mailbox, int], sms: SmsReceiver
) -> None:
    client = idp(pool)
    email, user_id = await user_with_phone(pool)
    token = start(client, email)["AuthenticationResult"]["AccessToken"]
    secret = client.associate_software_token(AccessToken=token)["SecretCode"]
    totp = pyotp.TOTP(secret)
    client.verify_software_token(AccessToken=token, UserCode=totp.at(time.time() - 30))
    client.set_user_mfa_preference(
        AccessToken=token, SMSMfaSettings={"Enabled": True}, EmailMfaSettings={"Enabled": True}
    )
    user = client.get_user(AccessToken=token)
    assert user["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA", "SMS_MFA", "EMAIL_OTP"]
    assert "PreferredMfaSetting" not in user  # several, none preferred

    started = start(client, email)
    assert started["ChallengeName"] == "SELECT_MFA_TYPE"
    assert json.loads(started["ChallengeParameters"]["MFAS_CAN_CHOOSE"]) == [
        "SOFTWARE_TOKEN_MFA",
        "SMS_MFA",
        "EMAIL_OTP",
    ]
    assert error_of(answer, client=client, started=started, email=email, ANSWER="WEB_AUTHN")[0] == (
        "InvalidParameterException"
    )
    chosen = answer(client, started, email, ANSWER="EMAIL_OTP")  # the same Session again
    in_model("RespondToAuthChallenge", chosen)
    assert chosen["ChallengeName"] == "EMAIL_OTP"
    assert chosen["ChallengeParameters"]["CODE_DELIVERY_DELIVERY_MEDIUM"] == "EMAIL"
    code = code_in(await mailbox[0].next_for(email))
    done = answer(client, chosen, email, EMAIL_OTP_CODE=code)
    assert "AccessToken" in done["AuthenticationResult"]

    client.set_user_mfa_preference(
        AccessToken=token, SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True}
    )
    assert client.get_user(AccessToken=token)["PreferredMfaSetting"] == "SOFTWARE_TOKEN_MFA"
    record = await pool.call(lambda s: s.mfa.get(user_id))
    assert record.preferred == "totp"
    assert start(client, email)["ChallengeName"] == "SOFTWARE_TOKEN_MFA"


async def test_the_administrator_sets_preferences_with_a_signed_call(pool: GatewayServer) -> None:
    client = idp(pool)
    email, user_id = await user_with_phone(pool)
    settings = {"SMSMfaSettings": {"Enabled": True, "PreferredMfa": True}}
    # Unsigned, or signed with a key the pool does not hold: refused.
    assert error_of(
        client.admin_set_user_mfa_preference, UserPoolId=POOL_ID, Username=email, **settings
    )[0] in ("UnrecognizedClientException", "InvalidSignatureException")
    stranger = admin(pool, ("AKIDNOTANADMINKEY001", "not-the-secret-key-0123456789abcd"))
    assert error_of(
        stranger.admin_set_user_mfa_preference, UserPoolId=POOL_ID, Username=email, **settings
    )[0] in ("UnrecognizedClientException", "InvalidSignatureException")
    assert await pool.call(lambda s: s.mfa.get(user_id)) is None

    signed = admin(pool)
    in_model(
        "AdminSetUserMFAPreference",
        signed.admin_set_user_mfa_preference(UserPoolId=POOL_ID, Username=email, **settings),
    )
    assert start(client, email)["ChallengeName"] == "SMS_MFA"
    # An administrator turns it off without a second factor of their own.
    signed.admin_set_user_mfa_preference(
        UserPoolId=POOL_ID, Username=email, SMSMfaSettings={"Enabled": False}
    )
    assert "AuthenticationResult" in start(client, email)
    assert error_of(
        signed.admin_set_user_mfa_preference,
        UserPoolId=POOL_ID,
        Username="nobody@example.com",
        **settings,
    ) == ("UserNotFoundException", "User does not exist.")
    assert error_of(
        signed.admin_set_user_mfa_preference,
        UserPoolId="eu-west-1_OtherPool",
        Username=email,
        **settings,
    )[0] == ("ResourceNotFoundException")


async def test_the_hosted_page_offers_the_same_texted_codes(
    pool: GatewayServer, sms: SmsReceiver
) -> None:
    email, user_id = await user_with_phone(pool)
    unproven, _ = await user_with_phone(pool, verified=False)
    account = Browser(pool.url)
    try:  # an unverified number is not offered; a verified one is turned on from the account page
        await account.login_for_code(unproven, password=PASSWORD)
        page = await account.http.get("/account/mfa")
        assert "Use codes sent by text message" not in page.text
        refused = await account.http.post(
            "/account/mfa", data={**form_fields(page.text), "action": "sms"}
        )
        assert refused.status_code == 400
    finally:
        await account.aclose()
    account = Browser(pool.url)
    try:
        await account.login_for_code(email, password=PASSWORD)
        page = await account.http.get("/account/mfa")
        assert "Use codes sent by text message" in page.text
        on = await account.http.post(
            "/account/mfa", data={**form_fields(page.text), "action": "sms"}
        )
        assert on.status_code == 200 and "<code>" in on.text  # its recovery codes, once
    finally:
        await account.aclose()
    assert (await pool.call(lambda s: s.mfa.get(user_id))).sms_otp
    browser = Browser(pool.url)
    try:
        start = await browser.authorize(**code_flow_params())
        answer = await browser.sign_in(start, email, PASSWORD)
        assert answer.status_code == 303, answer.text[answer.text.find("error") :][:300]
        assert answer.headers["location"].startswith("/login/mfa?")
        page = await browser.http.get(answer.headers["location"])
        assert 'value="sms"' in page.text and "•••• 5678" in page.text
        fields = form_fields(page.text)
        seen = len([m for m in sms.messages if m["to"] == NUMBER])
        sent = await browser.http.post("/login/mfa", data={**fields, "action": "sms"})
        assert sent.status_code == 200 and "We sent a code by text message" in sent.text
        code = await sms.code_for(NUMBER, seen)
        done = await browser.http.post("/login/mfa", data={**fields, "code": code})
        assert done.status_code == 303 and "code=" in done.headers["location"], done.text
    finally:
        await browser.aclose()


async def test_the_account_page_will_not_replace_the_app_without_it(pool: GatewayServer) -> None:
    client = idp(pool)
    email = f"page{secrets.token_hex(4)}@example.com"
    await pool.add_user(email, PASSWORD, email_verified=True)
    browser = Browser(pool.url)
    try:
        await browser.login_for_code(email, password=PASSWORD)  # password only: no factor yet
        page = await browser.http.get("/account/mfa")
        begun = await browser.http.post(
            "/account/mfa", data={**form_fields(page.text), "action": "begin"}
        )
        secret = begun.text.split('id="totp-secret">')[1].split("<")[0]
        done = await browser.http.post(
            "/account/mfa",
            data={**form_fields(begun.text), "action": "confirm", "code": pyotp.TOTP(secret).now()},
        )
        assert done.status_code == 200 and "<code>" in done.text  # enrolled, codes shown
        # The same password-only session cannot set up another app over it.
        page = await browser.http.get("/account/mfa")
        again = await browser.http.post(
            "/account/mfa", data={**form_fields(page.text), "action": "begin"}
        )
        assert again.status_code == 403
        assert "replace it" in again.text
    finally:
        await browser.aclose()
    assert start(client, email)["ChallengeName"] == "SOFTWARE_TOKEN_MFA"


async def test_codes_at_sign_in_count_as_sign_ins_not_as_resends(pool: GatewayServer) -> None:
    """Each sign-in with SMS_MFA texts a code. Those are bounded like sign-in attempts
    (rate_limits.login_per_account: 10 per window), not by the 3 "send me a new code" of
    resend_per_account: a user signing in a few times an hour is never locked out, and no
    one can have an account texted without end."""
    client = idp(pool)
    email, user_id = await user_with_phone(pool)
    await pool.call(lambda s: s.mfa.enable(user_id, "sms"))
    for _ in range(pool.settings.rate_limits.login_per_account):
        assert start(client, email)["ChallengeName"] == "SMS_MFA"
    assert error_of(start, client=client, email=email) == (
        "LimitExceededException",
        "Attempt limit exceeded, please try after some time.",
    )
