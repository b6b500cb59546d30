"""The Cognito user-pool API through stock boto3 `cognito-idp` (endpoint_url = the gateway):
sign-up with the e-mailed code, USER_PASSWORD_AUTH, TOTP MFA as SOFTWARE_TOKEN_MFA and as
MFA_SETUP, refresh, GetUser, forgot password, sign-out — and the refusals, as Cognito words
them, with no user's existence revealed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import botocore.loaders
import httpx
import pyotp
import pytest
from botocore.config import Config

from gateway.users import srp
from tests.helpers import GatewayServer, RedisServer, free_port, make_settings
from tests.mail import Mailbox, code_in, smtp_settings

PASSWORD = "correct horse battery"
FLOWS = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
ADMIN_KEY = ("AKIDCOGNATEADMIN0001", "admin-secret-key-0123456789abcdef")
MODEL = botocore.loaders.Loader().load_service_model("cognito-idp", "service-2")


@pytest.fixture(scope="module")
def pool(redis_server: RedisServer, mailbox: tuple[Mailbox, int]) -> Iterator[GatewayServer]:
    port = free_port()
    base = make_settings(port, redis_server.url)
    clients = [c.model_dump() for c in base.clients] + [
        {
            "client_id": "mobileapp",
            "token_endpoint_auth_method": "none",
            "grant_types": ["refresh_token"],
            "explicit_auth_flows": FLOWS,
        },
        {
            "client_id": "backend",
            "client_secret": "backend-secret-0123456789",
            "grant_types": ["refresh_token"],
            "explicit_auth_flows": FLOWS,
        },
        {"client_id": "srponly", "token_endpoint_auth_method": "none", "grant_types": []},
        {
            "client_id": "server",
            "client_secret": "server-secret-0123456789",
            "grant_types": ["refresh_token"],
            "explicit_auth_flows": ["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        },
        {  # demands a second factor: a user without one sets it up while signing in
            "client_id": "strict",
            "token_endpoint_auth_method": "none",
            "grant_types": ["refresh_token"],
            "explicit_auth_flows": FLOWS,
            "access": {"mfa": True},
        },
    ]
    settings = make_settings(
        port,
        redis_server.url,
        clients=clients,
        email=smtp_settings(mailbox[1]),
        user_pool={
            "self_sign_up": True,
            "id": "eu-west-1_TestPool1",
            "attributes": [{"name": "name"}, {"name": "custom:team"}],
        },
        region="eu-west-1",
        # One address (127.0.0.1) makes every test's sign-ins: the per-IP limit stays out of
        # the way; the per-account one is what these tests look at.
        rate_limits={"login_per_ip": 100_000},
        admin_keys=[{"access_key_id": ADMIN_KEY[0], "secret_access_key": ADMIN_KEY[1]}],
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


def idp(pool: GatewayServer, key: tuple[str, str] = ("unused", "unused")) -> Any:
    """boto3 `cognito-idp` at the gateway; `key` signs the admin operations (an `admin_keys`
    entry), the public ones ignore it."""
    return boto3.client(
        "cognito-idp",
        endpoint_url=pool.url,
        region_name="eu-west-1",
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(retries={"max_attempts": 1}),
    )


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def srp_started(client: Any, srp_client: Any, email: str) -> tuple[dict[str, Any], dict[str, str]]:
    """InitiateAuth(USER_SRP_AUTH) by pycognito's `srp_client`, and its answer to the
    PASSWORD_VERIFIER challenge (not sent)."""
    started = client.initiate_auth(
        AuthFlow="USER_SRP_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": email, "SRP_A": format(srp_client.large_a_value, "x")},
    )
    responses = srp_client.process_challenge(started["ChallengeParameters"], {"USERNAME": email})
    return started, responses


def verifier_answer(session: str, responses: dict[str, str]) -> dict[str, Any]:
    """RespondToAuthChallenge(PASSWORD_VERIFIER)'s arguments."""
    return {
        "ClientId": "mobileapp",
        "ChallengeName": "PASSWORD_VERIFIER",
        "Session": session,
        "ChallengeResponses": responses,
    }


async def login_count(pool: GatewayServer, value: str) -> int:
    """The per-account sign-in counter of `value` (an account id, or a name no account has)."""
    from gateway.ratelimit import Limit

    config = pool.settings.rate_limits
    limit = Limit("login-account", config.login_per_account, config.window)
    count: int = await pool.call(lambda s: s.limiter.count(limit, value))
    return count


def in_model(operation: str, answer: dict[str, Any]) -> None:
    """Every field Cognate returns is one the service model's output shape has."""
    output = MODEL["operations"][operation].get("output")
    members = MODEL["shapes"][output["shape"]]["members"] if output else {}
    extra = set(answer) - {"ResponseMetadata"} - set(members)
    assert extra == set(), f"{operation} returned fields not in the model: {extra}"


async def signed_up(pool: GatewayServer, mailbox: tuple[Mailbox, int]) -> str:
    email = f"u{secrets.token_hex(4)}@example.com"
    client = idp(pool)
    answer = client.sign_up(
        ClientId="mobileapp",
        Username=email,
        Password=PASSWORD,
        UserAttributes=[{"Name": "name", "Value": "Uma"}],
    )
    in_model("SignUp", answer)
    assert answer["UserConfirmed"] is False
    assert answer["CodeDeliveryDetails"]["DeliveryMedium"] == "EMAIL"
    code = code_in(await mailbox[0].next_for(email))
    code_error = error_of(
        client.confirm_sign_up, ClientId="mobileapp", Username=email, ConfirmationCode="000000"
    )
    assert code_error[0] == "CodeMismatchException"
    in_model(
        "ConfirmSignUp",
        client.confirm_sign_up(ClientId="mobileapp", Username=email, ConfirmationCode=code),
    )
    return email


async def test_sign_up_confirm_sign_in_refresh_get_user_and_sign_out(
    pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    client = idp(pool)
    email = await signed_up(pool, mailbox)
    answer = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    in_model("InitiateAuth", answer)
    result = answer["AuthenticationResult"]
    assert result["TokenType"] == "Bearer" and result["ExpiresIn"] > 0
    user = client.get_user(AccessToken=result["AccessToken"])
    in_model("GetUser", user)
    attributes = {a["Name"]: a["Value"] for a in user["UserAttributes"]}
    assert attributes["email"] == email and attributes["email_verified"] == "true"
    assert attributes["name"] == "Uma"
    refreshed = client.initiate_auth(
        AuthFlow="REFRESH_TOKEN_AUTH",
        ClientId="mobileapp",
        AuthParameters={"REFRESH_TOKEN": result["RefreshToken"]},
    )["AuthenticationResult"]
    assert "RefreshToken" not in refreshed  # not rotated, as Cognito's default
    assert client.get_user(AccessToken=refreshed["AccessToken"])["Username"] == user["Username"]
    in_model("GlobalSignOut", client.global_sign_out(AccessToken=refreshed["AccessToken"]))
    assert error_of(client.get_user, AccessToken=refreshed["AccessToken"])[0] == (
        "NotAuthorizedException"
    )
    again = error_of(
        client.initiate_auth,
        AuthFlow="REFRESH_TOKEN_AUTH",
        ClientId="mobileapp",
        AuthParameters={"REFRESH_TOKEN": result["RefreshToken"]},
    )
    assert again == ("NotAuthorizedException", "Invalid Refresh Token")


async def test_wrong_unknown_and_unconfirmed_users(
    pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    client = idp(pool)
    email = await signed_up(pool, mailbox)
    wrong = error_of(
        client.initiate_auth,
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": email, "PASSWORD": "not the password"},
    )
    unknown = error_of(
        client.initiate_auth,
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": "nobody@example.com", "PASSWORD": PASSWORD},
    )
    assert wrong == unknown == ("NotAuthorizedException", "Incorrect username or password.")
    fresh = f"n{secrets.token_hex(4)}@example.com"
    client.sign_up(ClientId="mobileapp", Username=fresh, Password=PASSWORD)
    unconfirmed = error_of(
        client.initiate_auth,
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": fresh, "PASSWORD": PASSWORD},
    )
    assert unconfirmed == ("UserNotConfirmedException", "User is not confirmed.")
    # Signing up an address that has an account answers as for a new one.
    existing = client.sign_up(ClientId="mobileapp", Username=email, Password=PASSWORD)
    assert existing["UserConfirmed"] is False and existing["UserSub"]


async def test_flows_clients_and_secret_hash(pool: GatewayServer) -> None:
    client = idp(pool)
    assert error_of(
        client.initiate_auth,
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="srponly",
        AuthParameters={"USERNAME": "a@example.com", "PASSWORD": PASSWORD},
    ) == ("InvalidParameterException", "USER_PASSWORD_AUTH flow not enabled for this client")
    assert error_of(
        client.initiate_auth,
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="nosuchclient",
        AuthParameters={"USERNAME": "a@example.com", "PASSWORD": PASSWORD},
    ) == ("ResourceNotFoundException", "User pool client nosuchclient does not exist.")
    missing = error_of(
        client.initiate_auth,
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="backend",
        AuthParameters={"USERNAME": "a@example.com", "PASSWORD": PASSWORD},
    )
    assert missing[0] == "NotAuthorizedException" and "SECRET_HASH was not received" in missing[1]
    wrong = error_of(
        client.initiate_auth,
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="backend",
        AuthParameters={
            "USERNAME": "a@example.com",
            "PASSWORD": PASSWORD,
            "SECRET_HASH": secret_hash("a@example.com", "backend", "not-the-secret-0123"),
        },
    )
    assert wrong == ("NotAuthorizedException", "Unable to verify secret hash for client backend")


async def test_a_client_with_a_secret_signs_in_with_its_secret_hash(pool: GatewayServer) -> None:
    email = f"b{secrets.token_hex(4)}@example.com"
    await pool.add_user(email, PASSWORD, email_verified=True)
    answer = idp(pool).initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="backend",
        AuthParameters={
            "USERNAME": email,
            "PASSWORD": PASSWORD,
            "SECRET_HASH": secret_hash(email, "backend", "backend-secret-0123456789"),
        },
    )
    assert "AccessToken" in answer["AuthenticationResult"]


async def test_totp_setup_during_sign_in_then_software_token_mfa(pool: GatewayServer) -> None:
    client = idp(pool)
    email = f"m{secrets.token_hex(4)}@example.com"
    await pool.add_user(email, PASSWORD, email_verified=True)
    signed_in = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    # The signed-in user turns on an authenticator app.
    secret = client.associate_software_token(AccessToken=signed_in["AccessToken"])["SecretCode"]
    assert (
        error_of(
            client.verify_software_token, AccessToken=signed_in["AccessToken"], UserCode="000000"
        )[0]
        == "CodeMismatchException"
    )
    # (The previous step's code: each step's code counts once, and the sign-in below uses
    # the current one.)
    verified = client.verify_software_token(
        AccessToken=signed_in["AccessToken"],
        UserCode=pyotp.TOTP(secret).at(time.time() - 30),
    )
    in_model("VerifySoftwareToken", verified)
    # The next sign-in asks for its code: a wrong one keeps the Session for another try.
    started = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    in_model("InitiateAuth", started)
    assert started["ChallengeName"] == "SOFTWARE_TOKEN_MFA"
    assert "AuthenticationResult" not in started
    responses = {"USERNAME": email, "SOFTWARE_TOKEN_MFA_CODE": "000000"}
    mismatch = error_of(
        client.respond_to_auth_challenge,
        ClientId="mobileapp",
        ChallengeName="SOFTWARE_TOKEN_MFA",
        Session=started["Session"],
        ChallengeResponses=responses,
    )
    assert mismatch == ("CodeMismatchException", "Invalid code received for user")
    done = client.respond_to_auth_challenge(
        ClientId="mobileapp",
        ChallengeName="SOFTWARE_TOKEN_MFA",
        Session=started["Session"],
        ChallengeResponses={**responses, "SOFTWARE_TOKEN_MFA_CODE": pyotp.TOTP(secret).now()},
    )
    in_model("RespondToAuthChallenge", done)
    assert "IdToken" in done["AuthenticationResult"]
    replayed = error_of(
        client.respond_to_auth_challenge,
        ClientId="mobileapp",
        ChallengeName="SOFTWARE_TOKEN_MFA",
        Session=started["Session"],
        ChallengeResponses=responses,
    )
    assert replayed == (
        "NotAuthorizedException",
        "Invalid session for the user, session is expired.",
    )


async def test_mfa_setup_while_signing_in(pool: GatewayServer) -> None:
    client = idp(pool)
    email = f"s{secrets.token_hex(4)}@example.com"
    await pool.add_user(email, PASSWORD, email_verified=True)
    started = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="strict",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    assert started["ChallengeName"] == "MFA_SETUP" and "AuthenticationResult" not in started
    assert started["ChallengeParameters"]["MFAS_CAN_SETUP"] == '["SOFTWARE_TOKEN_MFA"]'
    # Not set up yet: the challenge cannot be answered (D36: a password alone gets nothing).
    early = client.associate_software_token(Session=started["Session"])
    in_model("AssociateSoftwareToken", early)
    premature = error_of(
        client.respond_to_auth_challenge,
        ClientId="strict",
        ChallengeName="MFA_SETUP",
        Session=early["Session"],
        ChallengeResponses={"USERNAME": email},
    )
    assert premature[0] == "NotAuthorizedException"
    started = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="strict",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    associated = client.associate_software_token(Session=started["Session"])
    totp = pyotp.TOTP(associated["SecretCode"])
    wrong = error_of(client.verify_software_token, Session=associated["Session"], UserCode="000000")
    assert wrong[0] == "EnableSoftwareTokenMFAException"
    verified = client.verify_software_token(Session=associated["Session"], UserCode=totp.now())
    assert verified["Status"] == "SUCCESS"
    done = client.respond_to_auth_challenge(
        ClientId="strict",
        ChallengeName="MFA_SETUP",
        Session=verified["Session"],
        ChallengeResponses={"USERNAME": email},
    )
    assert "AccessToken" in done["AuthenticationResult"]
    reused = error_of(
        client.respond_to_auth_challenge,
        ClientId="strict",
        ChallengeName="MFA_SETUP",
        Session=verified["Session"],
        ChallengeResponses={"USERNAME": email},
    )
    assert reused[0] == "NotAuthorizedException"


async def test_forgot_password_with_the_e_mailed_code(
    pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    client = idp(pool)
    email = await signed_up(pool, mailbox)
    sent = client.forgot_password(ClientId="mobileapp", Username=email)
    in_model("ForgotPassword", sent)
    code = code_in(await mailbox[0].next_for(email, 1))  # after the sign-up's
    weak = error_of(
        client.confirm_forgot_password,
        ClientId="mobileapp",
        Username=email,
        ConfirmationCode=code,
        Password="short",
    )
    assert weak[0] == "InvalidPasswordException"
    client.confirm_forgot_password(
        ClientId="mobileapp", Username=email, ConfirmationCode=code, Password="a new passphrase!"
    )
    answer = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": email, "PASSWORD": "a new passphrase!"},
    )
    assert "AccessToken" in answer["AuthenticationResult"]
    # Unknown accounts get the same answer.
    assert "CodeDeliveryDetails" in client.forgot_password(
        ClientId="mobileapp", Username="nobody@example.com"
    )


async def test_reset_codes_are_limited_per_account_by_any_of_its_names(
    pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    """Five reset e-mails an hour per account, whether it is named by its e-mail (any case) or
    its id: counted by name, each way of naming it was five more e-mails to its owner."""
    client = idp(pool)
    email = f"resets{secrets.token_hex(4)}@example.com"
    user = await pool.add_user(email, PASSWORD, email_verified=True)
    for name in (email, email.upper(), user.user_id, user.user_id.upper(), email):
        client.forgot_password(ClientId="mobileapp", Username=name)
    refused = error_of(client.forgot_password, ClientId="mobileapp", Username=user.user_id)
    assert refused[0] == "LimitExceededException"
    for _ in range(5):
        assert code_in(await mailbox[0].next_for(email))


async def test_bad_bodies_are_aws_errors(pool: GatewayServer) -> None:
    import httpx

    headers = {
        "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
        "Content-Type": "application/x-amz-json-1.1",
    }
    async with httpx.AsyncClient(base_url=pool.url) as http:
        for body in (b"{not json", b"[]", b'{"AuthFlow": 3, "ClientId": "mobileapp"}'):
            answer = await http.post("/", content=body, headers=headers)
            assert answer.status_code == 400, answer.text
            assert answer.json()["__type"] in {
                "SerializationException",
                "InvalidParameterException",
            }
        unknown = await http.post(
            "/",
            content=b"{}",
            headers={**headers, "X-Amz-Target": "AWSCognitoIdentityProviderService.Nope"},
        )
        assert unknown.json()["__type"] == "UnknownOperationException"
        # Too large, by far too: AWS JSON either way (Starlette answers text/plain to a
        # Content-Length past its route limit, which must sit far above the API's own).
        for size in (1_500_000, 3_000_000, 20_000_000):
            big = await http.post("/", content=b'{"a":"' + b"x" * size + b'"}', headers=headers)
            assert big.status_code == 413
            assert big.headers["content-type"] == "application/x-amz-json-1.1"
            assert big.json()["__type"] == "InvalidParameterException"


def secret_hash(username: str, client_id: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), (username + client_id).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


async def test_keys_and_discovery_where_cognito_shaped_urls_look(pool: GatewayServer) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=pool.url) as http:
        plain = await http.get("/.well-known/jwks.json")
        shaped = await http.get("/eu-west-1_TestPool1/.well-known/jwks.json")
        assert shaped.status_code == 200 and shaped.json() == plain.json()
        config = await http.get("/eu-west-1_TestPool1/.well-known/openid-configuration")
        assert config.json()["issuer"] == pool.url  # the one issuer every token carries
        other = await http.get("/eu-west-1_OtherPool/.well-known/jwks.json")
        assert other.status_code == 404


async def test_srp_sign_in_with_pycognito_and_its_refusals(pool: GatewayServer) -> None:
    from pycognito.aws_srp import AWSSRP

    client = idp(pool)
    email = f"p{secrets.token_hex(4)}@example.com"
    user = await pool.add_user(email, PASSWORD, email_verified=True)

    def srp_for(password: str, username: str = email) -> Any:
        return AWSSRP(
            username=username,
            password=password,
            pool_id="eu-west-1_TestPool1",
            client_id="mobileapp",
            client=client,
        )

    tokens = srp_for(PASSWORD).authenticate_user()["AuthenticationResult"]
    assert client.get_user(AccessToken=tokens["AccessToken"])["Username"] == user.user_id
    for wrong in (srp_for("not the password"), srp_for(PASSWORD, "nobody@example.com")):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            wrong.authenticate_user()
        assert refused.value.response["Error"]["Message"] == "Incorrect username or password."
    # The same answer twice: the Session (and its b) served once.
    started, responses = srp_started(client, srp_for(PASSWORD), email)
    in_model("InitiateAuth", started)
    assert started["ChallengeParameters"]["USER_ID_FOR_SRP"] == user.user_id
    answer = verifier_answer(started["Session"], responses)
    first = client.respond_to_auth_challenge(**answer)
    assert "AccessToken" in first["AuthenticationResult"]
    replayed = error_of(client.respond_to_auth_challenge, **answer)
    assert replayed == (
        "NotAuthorizedException",
        "Invalid session for the user, session is expired.",
    )


async def test_a_malformed_srp_answer_is_no_guess_and_keeps_its_session(
    pool: GatewayServer,
) -> None:
    """RespondToAuthChallenge(PASSWORD_VERIFIER) without one of the four fields every SDK
    sends is InvalidParameterException, as at Cognito: not "Incorrect username or password.",
    not counted against the account, and its Session still answers. A USERNAME longer than
    any account's name is refused before anything is stored for it."""
    from pycognito.aws_srp import AWSSRP

    client = idp(pool)
    email = f"mal{secrets.token_hex(4)}@example.com"
    user = await pool.add_user(email, PASSWORD, email_verified=True)
    srp_client = AWSSRP(email, PASSWORD, "eu-west-1_TestPool1", "mobileapp", client=client)
    started, responses = srp_started(client, srp_client, email)
    for field in ("USERNAME", "PASSWORD_CLAIM_SECRET_BLOCK", "PASSWORD_CLAIM_SIGNATURE",
                  "TIMESTAMP"):  # fmt: skip
        for missing in ({k: v for k, v in responses.items() if k != field},
                        {**responses, field: ""}):  # fmt: skip
            assert error_of(
                client.respond_to_auth_challenge, **verifier_answer(started["Session"], missing)
            ) == ("InvalidParameterException", f"Missing required parameter {field}")
    assert await login_count(pool, user.user_id) == 0
    done = client.respond_to_auth_challenge(**verifier_answer(started["Session"], responses))
    assert "AccessToken" in done["AuthenticationResult"]
    long_name = "x" * 243 + "@example.com"  # 255 characters: longer than any e-mail address
    for flow, params in (
        ("USER_SRP_AUTH", {"SRP_A": "ab"}),
        ("USER_PASSWORD_AUTH", {"PASSWORD": "x"}),
    ):
        assert error_of(
            client.initiate_auth,
            AuthFlow=flow,
            ClientId="mobileapp",
            AuthParameters={"USERNAME": long_name, **params},
        ) == ("InvalidParameterException", "USERNAME is longer than 254 characters")
    assert error_of(
        client.initiate_auth,
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": long_name[1:], "PASSWORD": "x"},
    ) == ("NotAuthorizedException", "Incorrect username or password.")


async def test_an_srp_answer_must_name_the_account_it_proves(pool: GatewayServer) -> None:
    """The PASSWORD_VERIFIER answer's USERNAME names the account the challenge was for — its
    id (USER_ID_FOR_SRP, as the SDKs send it), the name the sign-in started with, or another
    of its names. A proof that holds, sent under another account's name, is a failed sign-in:
    "Incorrect username or password.", counted against the account, never tokens."""
    from pycognito.aws_srp import AWSSRP

    client = idp(pool)
    email = f"n{secrets.token_hex(4)}@example.com"
    user = await pool.add_user(email, PASSWORD, email_verified=True)
    other = await pool.add_user(f"o{secrets.token_hex(4)}@example.com", PASSWORD,
                                email_verified=True)  # fmt: skip

    def answered(username: str | None) -> Any:
        srp_client = AWSSRP(email, PASSWORD, "eu-west-1_TestPool1", "mobileapp", client=client)
        started, responses = srp_started(client, srp_client, email)
        assert responses["USERNAME"] == user.user_id  # what pycognito sends back
        if username is not None:
            responses = {**responses, "USERNAME": username}
        return lambda: client.respond_to_auth_challenge(
            **verifier_answer(started["Session"], responses)
        )

    for name in (None, email, email.upper()):
        assert "AccessToken" in answered(name)()["AuthenticationResult"]
    for name in (other.user_id, other.email, "nobody@example.com"):
        assert error_of(answered(name)) == (
            "NotAuthorizedException",
            "Incorrect username or password.",
        )
    assert await login_count(pool, user.user_id) == 3
    assert await login_count(pool, other.user_id) == 0


async def flows_stored(pool: GatewayServer) -> int:
    """How many login flows the pool's store holds."""
    import redis.asyncio as aioredis

    store = pool.services.settings.store
    client = aioredis.from_url(store.url)
    try:
        return len([k async for k in client.scan_iter(f"{store.prefix}:flow:*")])
    finally:
        await client.aclose()


async def test_a_refused_sign_in_leaves_no_flow_behind(pool: GatewayServer) -> None:
    """Each InitiateAuth starts a login flow, kept up to 15 minutes while its challenges are
    answered. One answered without a Session — a wrong password, an unknown name, a wrong SRP
    proof, an account over its limit, an account not confirmed yet — is removed with the
    answer: a stream of guesses leaves nothing in the store. A sign-in that gets a challenge
    keeps its flow."""
    from pycognito.aws_srp import AWSSRP

    client = idp(pool)
    email = f"fl{secrets.token_hex(4)}@example.com"
    await pool.add_user(email, PASSWORD, email_verified=True)
    before = await flows_stored(pool)

    def password(username: str) -> tuple[str, str]:
        return error_of(
            client.initiate_auth,
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId="mobileapp",
            AuthParameters={"USERNAME": username, "PASSWORD": "not the password"},
        )

    refused = ("NotAuthorizedException", "Incorrect username or password.")
    assert password(email) == refused
    assert password(f"nobody{secrets.token_hex(4)}@example.com") == refused
    wrong = AWSSRP(email, "not the password", "eu-west-1_TestPool1", "mobileapp", client=client)
    assert error_of(wrong.authenticate_user) == refused
    # The right password of an account not confirmed yet: no limit counts it, and the API
    # confirms outside any flow (ConfirmSignUp), so its flow is gone with the answer too.
    fresh = f"nc{secrets.token_hex(4)}@example.com"
    client.sign_up(ClientId="mobileapp", Username=fresh, Password=PASSWORD)
    unconfirmed = ("UserNotConfirmedException", "User is not confirmed.")
    for _ in range(3):
        assert (
            error_of(
                client.initiate_auth,
                AuthFlow="USER_PASSWORD_AUTH",
                ClientId="mobileapp",
                AuthParameters={"USERNAME": fresh, "PASSWORD": PASSWORD},
            )
            == unconfirmed
        )
    srp = AWSSRP(fresh, PASSWORD, "eu-west-1_TestPool1", "mobileapp", client=client)
    assert error_of(srp.authenticate_user) == unconfirmed
    assert await flows_stored(pool) == before
    for _ in range(20):  # to the account's limit, and past it
        if (answer := password(email)) != refused:
            break
    assert answer == ("NotAuthorizedException", "Password attempts exceeded")
    assert await flows_stored(pool) == before
    started = client.initiate_auth(
        AuthFlow="USER_SRP_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": email, "SRP_A": format(wrong.large_a_value, "x")},
    )
    assert started["ChallengeName"] == "PASSWORD_VERIFIER"
    assert await flows_stored(pool) == before + 1


async def test_a_verifier_moved_to_another_account_proves_nothing(pool: GatewayServer) -> None:
    """Verifiers are sealed to their account's key: one copied over another account's (write
    access to Redis, a botched restore) does not open there and counts as no verifier, so
    neither password signs in to that account by SRP — the same answer as a wrong password,
    never a 500 (SRP's x binds the account id as well) — while the verifier's own account
    still signs in."""
    from pycognito.aws_srp import AWSSRP

    client = idp(pool)
    mallory = await pool.add_user(f"m{secrets.token_hex(4)}@example.com", "mallory's password",
                                  email_verified=True)  # fmt: skip
    victim = await pool.add_user(f"v{secrets.token_hex(4)}@example.com", PASSWORD,
                                 email_verified=True)  # fmt: skip

    async def copy(s: Any) -> None:
        key = s.users.srp.reading(mallory.user_id).key
        await s.store.put(s.users.srp.reading(victim.user_id).key, await s.store.get(key))

    await pool.call(copy)

    def srp_as(email: str, password: str) -> Any:
        return AWSSRP(email, password, "eu-west-1_TestPool1", "mobileapp", client=client)

    for password in ("mallory's password", PASSWORD):
        refused = error_of(srp_as(victim.email, password).authenticate_user)
        assert refused == ("NotAuthorizedException", "Incorrect username or password.")
    assert (
        "AccessToken"
        in srp_as(mallory.email, "mallory's password").authenticate_user()["AuthenticationResult"]
    )


async def test_wrong_srp_proofs_count_where_wrong_passwords_do(pool: GatewayServer) -> None:
    """USER_SRP_AUTH's wrong proofs are counted against the account's one allowance, by its
    id, whichever of its names started the sign-in — the counter a wrong password under its
    e-mail takes too. An unknown name's are counted under the name typed, as its passwords."""
    from pycognito.aws_srp import AWSSRP

    client = idp(pool)
    email = f"lim{secrets.token_hex(4)}@example.com"
    user = await pool.add_user(email, PASSWORD, email_verified=True)

    def srp_fails(username: str) -> None:
        wrong = AWSSRP(username, "not the password", "eu-west-1_TestPool1", "mobileapp",
                       client=client)  # fmt: skip
        assert error_of(wrong.authenticate_user)[1] == "Incorrect username or password."

    for name in (email, user.user_id, email.upper()):
        await asyncio.to_thread(srp_fails, name)
    assert await login_count(pool, user.user_id) == 3
    password = {"USERNAME": email, "PASSWORD": "wrong"}
    assert error_of(
        client.initiate_auth,
        AuthFlow="USER_PASSWORD_AUTH", ClientId="mobileapp", AuthParameters=password,
    ) == ("NotAuthorizedException", "Incorrect username or password.")  # fmt: skip
    assert await login_count(pool, user.user_id) == 4  # the same counter
    ghost = f"ghost{secrets.token_hex(4)}@example.com"
    await asyncio.to_thread(srp_fails, ghost)
    assert await login_count(pool, ghost) == 1


async def test_an_account_without_a_verifier_gets_one_at_its_next_password_sign_in(
    pool: GatewayServer,
) -> None:
    from pycognito.aws_srp import AWSSRP

    client = idp(pool)
    email = f"v{secrets.token_hex(4)}@example.com"
    user = await pool.add_user(email, PASSWORD, email_verified=True)
    await pool.call(lambda s: s.users.srp.delete(user.user_id))  # as an imported account
    srp_client = AWSSRP(
        username=email,
        password=PASSWORD,
        pool_id="eu-west-1_TestPool1",
        client_id="mobileapp",
        client=client,
    )
    with pytest.raises(botocore.exceptions.ClientError):
        srp_client.authenticate_user()
    client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    assert "AccessToken" in srp_client.authenticate_user()["AuthenticationResult"]
    stored = await pool.call(lambda s: s.store.get(s.store.key("srp-verifier", user.user_id)))
    assert stored is not None and PASSWORD.encode() not in stored


async def test_the_signed_in_users_own_operations(pool: GatewayServer) -> None:
    client = idp(pool)
    email = f"o{secrets.token_hex(4)}@example.com"
    await pool.add_user(email, PASSWORD, email_verified=True)

    def sign_in(password: str = PASSWORD) -> str:
        result = client.initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId="mobileapp",
            AuthParameters={"USERNAME": email, "PASSWORD": password},
        )
        return str(result["AuthenticationResult"]["AccessToken"])

    token = sign_in()
    updated = client.update_user_attributes(
        AccessToken=token,
        UserAttributes=[{"Name": "name", "Value": "Olga"}, {"Name": "custom:team", "Value": "a"}],
    )
    in_model("UpdateUserAttributes", updated)
    listed = {a["Name"]: a["Value"] for a in client.get_user(AccessToken=token)["UserAttributes"]}
    assert listed["name"] == "Olga" and listed["custom:team"] == "a"
    refused = error_of(
        client.update_user_attributes,
        AccessToken=token,
        UserAttributes=[{"Name": "email_verified", "Value": "true"}],
    )
    assert refused[0] == "NotAuthorizedException"
    client.delete_user_attributes(AccessToken=token, UserAttributeNames=["custom:team"])
    listed = {a["Name"] for a in client.get_user(AccessToken=token)["UserAttributes"]}
    assert "custom:team" not in listed
    assert client.list_devices(AccessToken=token)["Devices"] == []
    assert error_of(client.list_web_authn_credentials, AccessToken=token)[0] == (
        "WebAuthnNotEnabledException"
    )
    wrong = error_of(
        client.change_password,
        AccessToken=token,
        PreviousPassword="not it",
        ProposedPassword="a new passphrase!",
    )
    assert wrong == ("NotAuthorizedException", "Incorrect username or password.")
    client.change_password(
        AccessToken=token, PreviousPassword=PASSWORD, ProposedPassword="a new passphrase!"
    )
    token = sign_in("a new passphrase!")
    in_model("DeleteUser", client.delete_user(AccessToken=token))
    assert error_of(client.get_user, AccessToken=token)[0] == "NotAuthorizedException"
    gone = error_of(
        client.initiate_auth,
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": email, "PASSWORD": "a new passphrase!"},
    )
    assert gone == ("NotAuthorizedException", "Incorrect username or password.")


async def test_a_temporary_password_answers_new_password_required(pool: GatewayServer) -> None:
    client = idp(pool)
    email = f"t{secrets.token_hex(4)}@example.com"
    user = await pool.add_user(email, PASSWORD, email_verified=True)
    await pool.call(lambda s: s.users.set_password(user.user_id, "temporary passphrase 1", True))
    started = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": email, "PASSWORD": "temporary passphrase 1"},
    )
    in_model("InitiateAuth", started)
    assert started["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
    weak = error_of(
        client.respond_to_auth_challenge,
        ClientId="mobileapp",
        ChallengeName="NEW_PASSWORD_REQUIRED",
        Session=started["Session"],
        ChallengeResponses={"USERNAME": user.user_id, "NEW_PASSWORD": "short"},
    )
    assert weak[0] == "InvalidPasswordException"
    done = client.respond_to_auth_challenge(
        ClientId="mobileapp",
        ChallengeName="NEW_PASSWORD_REQUIRED",
        Session=started["Session"],
        ChallengeResponses={"USERNAME": user.user_id, "NEW_PASSWORD": "my own passphrase"},
    )
    assert "AccessToken" in done["AuthenticationResult"]
    again = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": email, "PASSWORD": "my own passphrase"},
    )
    assert "AuthenticationResult" in again


async def test_what_a_new_user_found(pool: GatewayServer, mailbox: tuple[Mailbox, int]) -> None:
    import json

    import httpx

    client = idp(pool)
    email = f"f{secrets.token_hex(4)}@example.com"
    sub = client.sign_up(ClientId="mobileapp", Username=email, Password=PASSWORD)["UserSub"]
    code = code_in(await mailbox[0].next_for(email))
    client.confirm_sign_up(ClientId="mobileapp", Username=email, ConfirmationCode=code)
    result = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    # SignUp's UserSub is the sub its tokens and GetUser carry.
    attributes = {
        a["Name"]: a["Value"]
        for a in client.get_user(AccessToken=result["AccessToken"])["UserAttributes"]
    }
    assert attributes["sub"] == sub
    # A confirmed account answers ConfirmSignUp as an unknown one does.
    for name in (email, "nobody@example.com"):
        assert (
            error_of(
                client.confirm_sign_up, ClientId="mobileapp", Username=name, ConfirmationCode="1"
            )[0]
            == "CodeMismatchException"
        )
    # Tokens that do not verify: 400 NotAuthorized, never a 500.
    expired, _ = await pool.call(
        lambda s: asyncio_value(
            s.tokens.access_token(
                sub=sub, client_id="mobileapp", scope=frozenset(), gid=None, now=1_000_000
            )
        )
    )
    assert error_of(client.get_user, AccessToken=expired) == (
        "NotAuthorizedException",
        "Access Token has expired",
    )
    for wrong in (result["IdToken"], "a.b.c", result["RefreshToken"]):
        assert error_of(client.get_user, AccessToken=wrong)[0] == "NotAuthorizedException"
    # RevokeToken takes refresh tokens only.
    assert error_of(client.revoke_token, ClientId="mobileapp", Token=result["AccessToken"])[0] == (
        "UnsupportedTokenTypeException"
    )
    # SRP_A = 0 or N is refused at once; so are a missing, an overlong and a non-hex one,
    # each saying which.
    for a, message in (
        ("0", "SRP_A cannot be 0"),
        (format(srp.N, "x"), "SRP_A cannot be 0"),
        ("", "Missing required parameter SRP_A"),
        ("a" * 1025, "SRP_A is longer than 1024 hexadecimal digits"),
        ("0x1f", "SRP_A is not a hexadecimal number"),
    ):
        assert error_of(
            client.initiate_auth,
            AuthFlow="USER_SRP_AUTH",
            ClientId="mobileapp",
            AuthParameters={"USERNAME": email, "SRP_A": a} if a else {"USERNAME": email},
        ) == ("InvalidParameterException", message)
    # Bodies Python cannot take apart as they are: AWS errors, not 500s.
    headers = {
        "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
        "Content-Type": "application/x-amz-json-1.1",
    }
    surrogate = (
        b'{"AuthFlow":"USER_PASSWORD_AUTH","ClientId":"mobileapp",'
        b'"AuthParameters":{"USERNAME":"\\ud800","PASSWORD":"x"}}'
    )
    async with httpx.AsyncClient(base_url=pool.url) as http:
        for body in (surrogate, b'{"a":' * 100_000):
            answer = await http.post("/", content=body, headers=headers)
            assert answer.status_code == 400, answer.text
            assert json.loads(answer.text)["__type"] == "SerializationException"


async def asyncio_value(value: Any) -> Any:
    return value


async def test_admin_initiate_auth_is_signed_with_an_admin_key(pool: GatewayServer) -> None:
    email = f"a{secrets.token_hex(4)}@example.com"
    await pool.add_user(email, PASSWORD, email_verified=True)
    params = {
        "USERNAME": email,
        "PASSWORD": PASSWORD,
        "SECRET_HASH": secret_hash(email, "server", "server-secret-0123456789"),
    }

    def admin(key: tuple[str, str]) -> Any:
        return idp(pool, key)

    answer = admin(ADMIN_KEY).admin_initiate_auth(
        UserPoolId="eu-west-1_TestPool1",
        ClientId="server",
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters=params,
    )
    in_model("AdminInitiateAuth", answer)
    assert "AccessToken" in answer["AuthenticationResult"]
    forged = error_of(
        admin(("AKIDCOGNATEADMIN0001", "not-the-secret-key-0123456789abcd")).admin_initiate_auth,
        UserPoolId="eu-west-1_TestPool1",
        ClientId="server",
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters=params,
    )
    assert forged[0] in {"InvalidSignatureException", "NotAuthorizedException"}, forged
    other_pool = error_of(
        admin(ADMIN_KEY).admin_initiate_auth,
        UserPoolId="eu-west-1_OtherPool",
        ClientId="server",
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters=params,
    )
    assert other_pool == (
        "ResourceNotFoundException",
        "User pool eu-west-1_OtherPool does not exist.",
    )
    # The public InitiateAuth does not take the admin flow.
    assert (
        error_of(
            idp(pool).initiate_auth,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            ClientId="server",
            AuthParameters=params,
        )[0]
        == "InvalidParameterException"
    )


async def test_parallel_wrong_passwords_each_cost_an_attempt(pool: GatewayServer) -> None:
    # 100 wrong answers at once: every one counts (each takes its slot atomically before the
    # password is checked), so no burst gets more guesses than the limit: not one per request
    # in flight. The refusals past the limit are counted, and audited once for the window.
    import asyncio

    import httpx

    email = f"par{secrets.token_hex(4)}@example.com"
    user = await pool.add_user(email, PASSWORD, email_verified=True)
    headers = {
        "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
        "Content-Type": "application/x-amz-json-1.1",
    }
    body = {
        "AuthFlow": "USER_PASSWORD_AUTH",
        "ClientId": "mobileapp",
        "AuthParameters": {"USERNAME": email, "PASSWORD": "wrong"},
    }
    async with httpx.AsyncClient(base_url=pool.url, timeout=60) as http:
        answers = await asyncio.gather(
            *(http.post("/", json=body, headers=headers) for _ in range(100))
        )
    kinds = [(a.status_code, a.json()["__type"], a.json()["message"]) for a in answers]
    checked = kinds.count((400, "NotAuthorizedException", "Incorrect username or password."))
    # The rest were refused without their password being checked: the limit, or the argon2
    # pool shedding load (throttled: the SDKs back off and retry).
    assert checked + kinds.count((400, "NotAuthorizedException", "Password attempts exceeded"))
    assert set(kinds) <= {
        (400, "NotAuthorizedException", "Incorrect username or password."),
        (400, "NotAuthorizedException", "Password attempts exceeded"),
        (429, "TooManyRequestsException", "Too many requests."),
    }
    # (counted for the account, whichever of its names was typed)
    assert await login_count(pool, user.user_id) == checked  # every checked password counted
    assert checked <= pool.settings.rate_limits.login_per_account  # and no more than it allows
    limited = kinds.count((400, "NotAuthorizedException", "Password attempts exceeded"))
    entries = await pool.call(lambda s: s.audit.read("0", count=1_000_000))
    audited = [e for _, e in entries if e["event"] == "sign_in.limited" and email in str(e)]
    assert limited > 1 and len(audited) == 1  # not one entry per refusal: they cost nothing


async def test_a_totp_code_counts_once_in_its_window(pool: GatewayServer) -> None:
    client = idp(pool)
    email = f"w{secrets.token_hex(4)}@example.com"
    user = await pool.add_user(email, PASSWORD, email_verified=True)
    secret = await pool.call(lambda s: s.mfa.begin(user.user_id))
    await pool.call(lambda s: s.mfa.confirm(user.user_id, pyotp.TOTP(secret).at(time.time() - 30)))

    def sign_in(code: str) -> Any:
        started = client.initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId="mobileapp",
            AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
        )
        return client.respond_to_auth_challenge(
            ClientId="mobileapp",
            ChallengeName="SOFTWARE_TOKEN_MFA",
            Session=started["Session"],
            ChallengeResponses={"USERNAME": email, "SOFTWARE_TOKEN_MFA_CODE": code},
        )

    code = pyotp.TOTP(secret).now()
    assert "AccessToken" in sign_in(code)["AuthenticationResult"]
    with pytest.raises(botocore.exceptions.ClientError) as reused:
        sign_in(code)  # the same code again, inside its window
    assert reused.value.response["Error"]["Code"] == "CodeMismatchException"


async def test_an_account_gone_during_its_sign_in_is_refused_not_a_500(pool: GatewayServer) -> None:
    client = idp(pool)
    email = f"g{secrets.token_hex(4)}@example.com"
    user = await pool.add_user(email, PASSWORD, email_verified=True)
    secret = await pool.call(lambda s: s.mfa.begin(user.user_id))
    await pool.call(lambda s: s.mfa.confirm(user.user_id, pyotp.TOTP(secret).at(time.time() - 30)))
    started = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    await pool.call(lambda s: s.users.delete(user.user_id))  # meanwhile, an administrator
    refused = error_of(
        client.respond_to_auth_challenge,
        ClientId="mobileapp",
        ChallengeName="SOFTWARE_TOKEN_MFA",
        Session=started["Session"],
        ChallengeResponses={"USERNAME": email, "SOFTWARE_TOKEN_MFA_CODE": pyotp.TOTP(secret).now()},
    )
    assert refused == ("NotAuthorizedException", "Incorrect username or password.")


async def test_a_burst_past_the_hashing_queue_is_throttled_not_queued(
    redis_server: RedisServer,
) -> None:
    """More password sign-ins at once than the hasher takes: the rest are told to back off
    (TooManyRequestsException with Retry-After, which the SDKs retry), none is a 500."""
    from gateway.users.passwords import PasswordHasher

    port = free_port()
    base = make_settings(port, redis_server.url)
    clients = [c.model_dump() for c in base.clients] + [
        {
            "client_id": "mobileapp",
            "token_endpoint_auth_method": "none",
            "grant_types": ["refresh_token"],
            "explicit_auth_flows": FLOWS,
        }
    ]
    # Limits high enough not to be what answers: twelve sign-ins in flight at once take
    # twelve slots of the per-account limit (see the parallel-guessing test).
    settings = make_settings(
        port, redis_server.url, clients=clients, rate_limits={"login_per_account": 100}
    )
    server = GatewayServer(settings, hasher=PasswordHasher(workers=1, max_pending=1)).start()
    try:
        email = f"burst{secrets.token_hex(3)}@example.com"
        await server.add_user(email, PASSWORD, email_verified=True)
        body = json.dumps(
            {
                "AuthFlow": "USER_PASSWORD_AUTH",
                "ClientId": "mobileapp",
                "AuthParameters": {"USERNAME": email, "PASSWORD": PASSWORD},
            }
        )
        headers = {
            "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
            "Content-Type": "application/x-amz-json-1.1",
        }
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            answers = await asyncio.gather(
                *(http.post("/", content=body, headers=headers) for _ in range(12))
            )
        statuses = sorted(a.status_code for a in answers)
        assert 200 in statuses and 429 in statuses, statuses
        assert set(statuses) == {200, 429}
        throttled = next(a for a in answers if a.status_code == 429)
        assert throttled.json()["__type"] == "TooManyRequestsException"
        assert throttled.headers["x-amzn-ErrorType"].startswith("TooManyRequestsException")
        assert int(throttled.headers["Retry-After"]) > 0
    finally:
        server.stop()


async def test_unknown_and_existing_users_cost_the_same_work(
    pool: GatewayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timing without a stopwatch: every modular exponentiation and every argon2 run is
    counted (the server runs in this process), and an unknown user, a disabled one and a
    wrong password must cost exactly the same of each, in both SRP round trips and in a
    password sign-in, and get the same answer."""
    from pycognito.aws_srp import AWSSRP

    client = idp(pool)
    existing = f"t{secrets.token_hex(4)}@example.com"
    await pool.add_user(existing, PASSWORD, email_verified=True)
    disabled = f"d{secrets.token_hex(4)}@example.com"
    user = await pool.add_user(disabled, PASSWORD, email_verified=True)
    await pool.call(lambda s: s.users.set_status(user.user_id, "disabled"))
    unknown = f"nobody{secrets.token_hex(4)}@example.com"

    work: dict[str, int] = {}
    for name in ("_powmod", "_powmod_sec"):
        real = getattr(srp, name)

        def counted(*args: Any, _real: Any = real, _name: str = name) -> Any:
            work[_name] = work.get(_name, 0) + 1
            return _real(*args)

        monkeypatch.setattr(srp, name, counted)
    hasher = pool.services.users.hasher
    real_verify = hasher.verify

    async def counted_verify(*args: Any) -> Any:
        work["argon2"] = work.get("argon2", 0) + 1
        return await real_verify(*args)

    monkeypatch.setattr(hasher, "verify", counted_verify)

    def cost(username: str) -> tuple[dict[str, int], list[tuple[str, str]], list[int]]:
        work.clear()
        answers = []
        srp_client = AWSSRP(
            username=username, password="not the password", pool_id="eu-west-1_TestPool1",
            client_id="mobileapp", client=client,
        )  # fmt: skip
        started = client.initiate_auth(
            AuthFlow="USER_SRP_AUTH",
            ClientId="mobileapp",
            AuthParameters={"USERNAME": username, "SRP_A": format(srp_client.large_a_value, "x")},
        )
        shape = sorted(started["ChallengeParameters"])
        lengths = [len(started["ChallengeParameters"][k]) for k in ("SECRET_BLOCK",)]
        responses = srp_client.process_challenge(
            started["ChallengeParameters"], {"USERNAME": username}
        )
        answers.append(
            error_of(
                client.respond_to_auth_challenge,
                ClientId="mobileapp",
                ChallengeName="PASSWORD_VERIFIER",
                Session=started["Session"],
                ChallengeResponses=responses,
            )
        )
        answers.append(
            error_of(
                client.initiate_auth,
                AuthFlow="USER_PASSWORD_AUTH",
                ClientId="mobileapp",
                AuthParameters={"USERNAME": username, "PASSWORD": "not the password"},
            )
        )
        assert shape == ["SALT", "SECRET_BLOCK", "SRP_B", "USERNAME", "USER_ID_FOR_SRP"]
        return dict(work), answers, lengths

    wrong_password = cost(existing)
    assert wrong_password[0] == {"_powmod": 2, "_powmod_sec": 1, "argon2": 1}
    assert cost(unknown) == wrong_password
    assert cost(disabled) == wrong_password


async def test_the_account_id_the_sdks_send_back_is_a_username(
    pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    """amazon-cognito-identity-js keeps `cognito:username` (the account's id here) and sends
    it as USERNAME afterwards: every operation that takes a username takes it."""
    client = idp(pool)
    email = f"byid{secrets.token_hex(4)}@example.com"
    user = await pool.add_user(email, PASSWORD, email_verified=True)
    signed = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": user.user_id, "PASSWORD": PASSWORD},
    )
    assert "AccessToken" in signed["AuthenticationResult"]
    sent = client.forgot_password(ClientId="mobileapp", Username=user.user_id.upper())
    assert code_in(await mailbox[0].next_for(email))
    # Where it went is not said for an id (nor for a username): "***" as for an id no account
    # has, or the answer would tell which ids and usernames exist.
    nobody = client.forgot_password(ClientId="mobileapp", Username=str(uuid.uuid4()))
    assert sent["CodeDeliveryDetails"] == nobody["CodeDeliveryDetails"]
    resent = client.resend_confirmation_code(ClientId="mobileapp", Username=user.user_id)
    unknown = client.resend_confirmation_code(ClientId="mobileapp", Username=str(uuid.uuid4()))
    assert resent["CodeDeliveryDetails"] == unknown["CodeDeliveryDetails"]


async def test_pyjwt_code_written_for_cognito_verifies_the_tokens(pool: GatewayServer) -> None:
    """What a Python back end does with Cognito's tokens (PyJWT with the pool's JWKS): the
    access token needs no audience (it carries `client_id`, not `aud`, as Cognito's do), the
    ID token's audience is the app client."""
    import jwt

    client = idp(pool)
    email = f"jwt{secrets.token_hex(4)}@example.com"
    await pool.add_user(email, PASSWORD, email_verified=True)
    tokens = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    keys = jwt.PyJWKClient(f"{pool.url}/eu-west-1_TestPool1/.well-known/jwks.json")
    access = tokens["AccessToken"]
    claims = jwt.decode(
        access,
        keys.get_signing_key_from_jwt(access).key,
        algorithms=[pool.settings.keys.access_token_alg],
        issuer=pool.settings.issuer,
    )
    assert "aud" not in claims and claims["client_id"] == "mobileapp"
    assert claims["token_use"] == "access"
    id_token = tokens["IdToken"]
    identity = jwt.decode(
        id_token,
        keys.get_signing_key_from_jwt(id_token).key,
        algorithms=["RS256"],
        audience="mobileapp",
        issuer=pool.settings.issuer,
    )
    assert identity["token_use"] == "id" and identity["email"] == email
