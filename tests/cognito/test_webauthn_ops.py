"""Passkeys through stock boto3 `cognito-idp` (endpoint_url = the gateway) and the WEB_AUTHN
building blocks: an app on its own origin (app.localhost, under the RP ID `localhost`)
registers a passkey with Start/CompleteWebAuthnRegistration, lists it, signs in with it
(`webauthn_ops.request_options` / `answer`, on a flow made as an API sign-in makes one) and
deletes it; the same passkey works on the hosted pages and the other way round. Refused: a
wrong or spent challenge, an origin outside the client or the RP ID, another RP, another app
client, another user's credential, a turned-off feature, a revoked access token."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import trustme
from botocore.config import Config

from gateway.cognito import webauthn_ops
from gateway.cognito.api import UserPoolApi
from gateway.cognito.auth import API_BROWSER
from gateway.cognito.tokens import API_SCOPE
from gateway.errors import CognitoError
from gateway.login import machine
from gateway.login.flows import Flow
from gateway.login.machine import Context
from gateway.login.steps import Done, PasskeySignInRefused
from gateway.services import Services
from tests.cognito.test_user_pool_api import FLOWS, MODEL, PASSWORD, error_of, idp, in_model
from tests.helpers import (
    Browser,
    GatewayServer,
    RedisServer,
    free_port,
    location_query,
    make_settings,
    redeem,
)
from tests.ui.soft_authenticator import SoftAuthenticator
from tests.ui.test_passkeys import passwordless, signed_in_with_passkey

APP = "http://app.localhost:5173"  # the app's own origin, within the RP ID
OTHER_APP = "http://other.localhost:5174"  # within the RP ID, but another client's
OUTSIDE = "https://app.example.net"  # the client allows it, WebAuthn does not (not under it)


def pool_with(redis_server: RedisServer, passkeys: bool = True) -> GatewayServer:
    port = free_port()
    base = make_settings(port, redis_server.url)
    clients = [c.model_dump() for c in base.clients] + [
        {
            "client_id": "app",
            "token_endpoint_auth_method": "none",
            "grant_types": ["refresh_token"],
            "explicit_auth_flows": [*FLOWS, "ALLOW_USER_AUTH"],
            "allowed_origins": [APP, OUTSIDE],
        },
        {
            "client_id": "other",
            "token_endpoint_auth_method": "none",
            "grant_types": ["refresh_token"],
            "explicit_auth_flows": FLOWS,
            "allowed_origins": [OTHER_APP],
        },
    ]
    settings = make_settings(
        port,
        redis_server.url,
        issuer=f"http://localhost:{port}",  # a WebAuthn RP ID must be a domain name
        clients=clients,
        user_pool={"id": "eu-west-1_Passkeys1", "passkeys": passkeys},
        region="eu-west-1",
        rate_limits={"login_per_ip": 100_000},
    )
    return GatewayServer(settings).start()


@pytest.fixture(scope="module")
def pool(redis_server: RedisServer) -> Iterator[GatewayServer]:
    server = pool_with(redis_server)
    yield server
    server.stop()


async def new_user(pool: GatewayServer, client_id: str = "app") -> tuple[str, str, str]:
    """A user signed in through the API (before any passkey): e-mail, user id, access token."""
    email = f"wa{secrets.token_hex(4)}@example.com"
    user = await pool.add_user(email, PASSWORD, email_verified=True)
    return email, user.user_id, token_for(pool, email, client_id)


def token_for(pool: GatewayServer, email: str, client_id: str = "app") -> str:
    result = idp(pool).initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId=client_id,
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    return str(result["AuthenticationResult"]["AccessToken"])


def key_for(origin: str = APP, rp_id: str = "localhost") -> SoftAuthenticator:
    return SoftAuthenticator(origin=origin, rp_id=rp_id)


def started(client: Any, token: str) -> str:
    """StartWebAuthnRegistration's options, as the JSON a browser's page would parse."""
    answer = client.start_web_authn_registration(AccessToken=token)
    in_model("StartWebAuthnRegistration", answer)
    return json.dumps(answer["CredentialCreationOptions"])


def register(client: Any, token: str, key: SoftAuthenticator) -> None:
    credential = json.loads(key.create(started(client, token)))
    in_model(
        "CompleteWebAuthnRegistration",
        client.complete_web_authn_registration(AccessToken=token, Credential=credential),
    )


async def sign_in_options(
    pool: GatewayServer, user_id: str | None, username: str = ""
) -> tuple[Flow, str]:
    """A flow made as an API sign-in makes one, and its WEB_AUTHN options."""

    async def make(s: Services) -> tuple[Flow, str]:
        flow = await s.flows.create(
            client_id="app",
            redirect_uri=f"{s.settings.issuer}/",
            browser=API_BROWSER,
            scope=API_SCOPE,
        )
        options = await webauthn_ops.request_options(
            UserPoolApi(s), flow, user_id, username=username
        )
        return flow, options

    result: tuple[Flow, str] = await pool.call(make)
    return result


async def answered(pool: GatewayServer, flow: Flow, credential: str) -> tuple[Done, str]:
    """The building block's Done, and the identity ID the sign-in then resolves to."""

    async def run(s: Services) -> tuple[Done, str]:
        ctx = Context("127.0.0.1")
        done = await webauthn_ops.answer(UserPoolApi(s), flow, credential, ctx)
        return done, await machine.conclude(s, done, ctx)

    result: tuple[Done, str] = await pool.call(run)
    return result


async def test_register_list_sign_in_and_delete(pool: GatewayServer) -> None:
    client = idp(pool)
    _, user_id, token = await new_user(pool)
    options = json.loads(started(client, token))
    assert options["rp"]["id"] == "localhost"
    assert base64.urlsafe_b64decode(options["user"]["id"] + "==").decode() == user_id
    assert options["authenticatorSelection"]["residentKey"] == "required"
    key = key_for()
    register(client, token, key)  # a new Start: the one above was replaced

    listed = client.list_web_authn_credentials(AccessToken=token)
    in_model("ListWebAuthnCredentials", listed)
    (described,) = listed["Credentials"]
    assert set(described) <= set(MODEL["shapes"]["WebAuthnCredentialDescription"]["members"])
    assert described["RelyingPartyId"] == "localhost"
    assert described["AuthenticatorAttachment"] == "platform"
    assert described["AuthenticatorTransports"] == ["internal"]
    assert described["FriendlyCredentialName"] and described["CreatedAt"].year >= 2026
    assert "NextToken" not in listed

    # Signing in with it on the WEB_AUTHN building blocks, from the app's origin.
    flow, request = await sign_in_options(pool, user_id)
    allowed = json.loads(request)["allowCredentials"]
    assert [c["id"] for c in allowed] == [described["CredentialId"]]
    assert json.loads(request)["userVerification"] == "required"
    done, identity_id = await answered(pool, flow, key.get(request))
    assert done.upstream.subject == user_id and "hwk" in done.upstream.amr
    sub = {a["Name"]: a["Value"] for a in client.get_user(AccessToken=token)["UserAttributes"]}
    assert identity_id == sub["sub"]

    # The same passkey on the hosted pages (the gateway's own origin).
    browser = Browser(pool.url)
    try:
        done_page, _ = await passwordless(browser, key, origin=pool.url)
        assert done_page.status_code == 303 and "code=" in done_page.headers["location"]
    finally:
        await browser.aclose()

    in_model(
        "DeleteWebAuthnCredential",
        client.delete_web_authn_credential(
            AccessToken=token, CredentialId=described["CredentialId"]
        ),
    )
    assert client.list_web_authn_credentials(AccessToken=token)["Credentials"] == []
    flow, request = await sign_in_options(pool, user_id)
    with pytest.raises(PasskeySignInRefused):
        await answered(pool, flow, key.get(request))


async def test_a_passkey_from_the_hosted_pages_is_listed_and_signs_in(
    pool: GatewayServer,
) -> None:
    browser, email, key = await signed_in_with_passkey(pool)
    await browser.aclose()
    user = await pool.call(lambda s: s.users.by_login(email))
    flow, request = await sign_in_options(pool, user.user_id)
    done, _ = await answered(pool, flow, key.get(request, origin=APP))
    assert done.upstream.subject == user.user_id
    # Its password sign-in through the API now wants the passkey as a second factor, so the
    # access token comes from the hosted pages' OAuth flow (either front end's will do).
    token = await hosted_access_token(pool, key)
    listed = idp(pool).list_web_authn_credentials(AccessToken=token)
    in_model("ListWebAuthnCredentials", listed)
    assert [c["RelyingPartyId"] for c in listed["Credentials"]] == ["localhost"]


async def hosted_access_token(pool: GatewayServer, key: SoftAuthenticator) -> str:
    """An access token from the hosted pages: a passwordless sign-in, the code redeemed."""
    browser = Browser(pool.url)
    try:
        done, verifier = await passwordless(browser, key, origin=pool.url)
        code = location_query(done)["code"]
        tokens = (await redeem(browser.http, code, verifier)).json()
    finally:
        await browser.aclose()
    return str(tokens["access_token"])


async def test_registration_answers_that_must_be_refused(pool: GatewayServer) -> None:
    client = idp(pool)
    _, _, token = await new_user(pool)

    def complete(credential: str, with_token: str = token) -> tuple[str, str]:
        return error_of(
            client.complete_web_authn_registration,
            AccessToken=with_token,
            Credential=json.loads(credential),
        )

    # No Start at all (an answer to a made-up challenge), then one that is not the one given.
    made_up = {"challenge": "AAAA", "user": {"id": "AAAA"}}
    assert complete(key_for().create(json.dumps(made_up)))[0] == (
        "WebAuthnChallengeNotFoundException"
    )
    options = json.loads(started(client, token))
    options["challenge"] = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    assert complete(key_for().create(json.dumps(options)))[0] == (
        "WebAuthnChallengeNotFoundException"
    )
    # Origins: one the client allows but outside the RP ID, and another client's.
    outside = key_for(origin=OUTSIDE).create(started(client, token))
    assert complete(outside)[0] == "WebAuthnOriginNotAllowedException"
    elsewhere = key_for(origin=OTHER_APP).create(started(client, token))
    assert complete(elsewhere)[0] == "WebAuthnOriginNotAllowedException"
    # Made for another relying party.
    foreign = key_for(rp_id="example.net").create(started(client, token))
    assert complete(foreign)[0] == "WebAuthnRelyingPartyMismatchException"
    # Nothing a library could read as a credential.
    started(client, token)
    code, _ = error_of(
        client.complete_web_authn_registration,
        AccessToken=token,
        Credential={"id": "AAAA", "response": {}},
    )
    assert code == "WebAuthnCredentialNotSupportedException"
    # Started by one app client, completed with another's access token.
    email, _, _ = await new_user(pool)
    app_token, other_token = token_for(pool, email), token_for(pool, email, "other")
    mixed = key_for().create(started(client, app_token))
    assert complete(mixed, other_token)[0] == "WebAuthnClientMismatchException"
    # None of them was kept; a right answer is, once: the same answer again is refused.
    assert client.list_web_authn_credentials(AccessToken=token)["Credentials"] == []
    right = key_for().create(started(client, token))
    client.complete_web_authn_registration(AccessToken=token, Credential=json.loads(right))
    assert complete(right)[0] == "WebAuthnChallengeNotFoundException"
    assert len(client.list_web_authn_credentials(AccessToken=token)["Credentials"]) == 1


async def test_another_users_credential(pool: GatewayServer) -> None:
    client = idp(pool)
    _, owner_id, owner_token = await new_user(pool)
    _, stranger_id, stranger_token = await new_user(pool)
    key = key_for()
    register(client, owner_token, key)
    credential_id = client.list_web_authn_credentials(AccessToken=owner_token)["Credentials"][0][
        "CredentialId"
    ]
    # The owner's authenticator answering the stranger's registration: one credential, one
    # account.
    again = json.loads(key.create(started(client, stranger_token)))
    code, _ = error_of(
        client.complete_web_authn_registration, AccessToken=stranger_token, Credential=again
    )
    assert code == "InvalidParameterException"
    # The stranger cannot delete it, nor sign in as itself with it.
    gone = error_of(
        client.delete_web_authn_credential, AccessToken=stranger_token, CredentialId=credential_id
    )
    assert gone[0] == "ResourceNotFoundException"
    flow, request = await sign_in_options(pool, stranger_id)
    with pytest.raises(PasskeySignInRefused):
        await answered(pool, flow, key.get(request))
    # Nor does a sign-in that named the stranger end as the owner, whose passkey it is.
    stranger_key = key_for()
    register(client, stranger_token, stranger_key)
    flow, request = await sign_in_options(pool, stranger_id)
    with pytest.raises(PasskeySignInRefused):
        await answered(pool, flow, key.get(request))
    # Presence without user verification, or the wrong origin, does not sign in either.
    flow, request = await sign_in_options(pool, owner_id)
    with pytest.raises(PasskeySignInRefused):
        await answered(pool, flow, key.get(request, user_verified=False))
    flow, request = await sign_in_options(pool, owner_id)
    with pytest.raises(PasskeySignInRefused):
        await answered(pool, flow, key.get(request, origin=OUTSIDE))
    flow, request = await sign_in_options(pool, owner_id)
    done, _ = await answered(pool, flow, key.get(request))
    assert done.upstream.subject == owner_id
    # Replayed on a new flow: that flow's challenge is another.
    replay = key.get(request)
    flow, _ = await sign_in_options(pool, owner_id)
    with pytest.raises(PasskeySignInRefused):
        await answered(pool, flow, replay)


async def test_an_unknown_user_gets_options_of_the_same_shape(pool: GatewayServer) -> None:
    client = idp(pool)
    _, user_id, token = await new_user(pool)
    register(client, token, key_for())
    _, real = await sign_in_options(pool, user_id)
    _, ghost = await sign_in_options(pool, None, username="ghost@example.com")
    _, ghost_again = await sign_in_options(pool, None, username="ghost@example.com")
    real_options, ghost_options = json.loads(real), json.loads(ghost)

    def shape(value: Any) -> Any:
        if isinstance(value, dict):  # transports differ between real passkeys too
            return {k: shape(v) if k != "transports" else "known" for k, v in value.items()}
        if isinstance(value, list):
            return [shape(v) for v in value]
        return type(value).__name__ if not isinstance(value, str) else len(value)

    assert shape(ghost_options) == shape(real_options)
    known = {"usb", "nfc", "ble", "internal", "hybrid", "cable"}
    assert set(ghost_options["allowCredentials"][0]["transports"]) <= known
    # The same decoy on every try, as a real user's own list is the same.
    assert json.loads(ghost_again)["allowCredentials"] == ghost_options["allowCredentials"]
    assert ghost_options["allowCredentials"] != real_options["allowCredentials"]
    # No passkey answers a decoy (the real user's own included).
    flow, ghost = await sign_in_options(pool, None, username="ghost@example.com")
    with pytest.raises(PasskeySignInRefused):
        await answered(pool, flow, key_for().get(ghost))


async def test_pages_of_credentials(pool: GatewayServer) -> None:
    client = idp(pool)
    _, _, token = await new_user(pool)
    for _ in range(3):
        register(client, token, key_for())
    first = client.list_web_authn_credentials(AccessToken=token, MaxResults=2)
    in_model("ListWebAuthnCredentials", first)
    assert len(first["Credentials"]) == 2 and first["NextToken"]
    rest = client.list_web_authn_credentials(
        AccessToken=token, MaxResults=2, NextToken=first["NextToken"]
    )
    assert len(rest["Credentials"]) == 1 and "NextToken" not in rest
    ids = {c["CredentialId"] for c in first["Credentials"] + rest["Credentials"]}
    assert len(ids) == 3
    bad = error_of(client.list_web_authn_credentials, AccessToken=token, NextToken="nothing")
    assert bad[0] == "InvalidParameterException"


async def test_a_revoked_or_bad_access_token(pool: GatewayServer) -> None:
    client = idp(pool)
    _, _, token = await new_user(pool)
    register(client, token, key_for())
    client.global_sign_out(AccessToken=token)
    for call, extra in (
        (client.start_web_authn_registration, {}),
        (client.complete_web_authn_registration, {"Credential": {"id": "x"}}),
        (client.list_web_authn_credentials, {}),
        (client.delete_web_authn_credential, {"CredentialId": "x"}),
    ):
        assert error_of(call, AccessToken=token, **extra) == (
            "NotAuthorizedException",
            "Access Token has been revoked",
        )
        assert error_of(call, AccessToken="not.a.token", **extra)[0] == ("NotAuthorizedException")


async def test_a_pool_with_passkeys_off(redis_server: RedisServer) -> None:
    server = pool_with(redis_server, passkeys=False)
    try:
        client = idp(server)
        _, user_id, token = await new_user(server)
        for call, extra in (
            (client.start_web_authn_registration, {}),
            (client.complete_web_authn_registration, {"Credential": {"id": "x"}}),
            (client.list_web_authn_credentials, {}),
            (client.delete_web_authn_credential, {"CredentialId": "x"}),
        ):
            assert error_of(call, AccessToken=token, **extra)[0] == "WebAuthnNotEnabledException"
        with pytest.raises(CognitoError) as caught:
            await sign_in_options(server, user_id)
        assert caught.value.type_name == "WebAuthnNotEnabledException"
    finally:
        server.stop()


async def test_an_app_on_a_sibling_host_shares_a_parent_domain_rp_id(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """As deployed: the gateway on https://auth.example.test, the app on
    https://app.example.test, `passkey_relying_party_id: example.test` (FIELD-TESTS: TLS from a
    local CA; the API is reached on 127.0.0.1, as a name resolver would send it there)."""
    ca = trustme.CA()
    issued = ca.issue_cert("auth.example.test", "127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    issued.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    port = free_port()
    issuer = f"https://auth.example.test:{port}"
    settings = make_settings(
        port,
        redis_server.url,
        issuer=issuer,
        clients=[
            {
                "client_id": "app",
                "token_endpoint_auth_method": "none",
                "grant_types": ["refresh_token"],
                "explicit_auth_flows": FLOWS,
                "allowed_origins": ["https://app.example.test", "https://app.example.net"],
            }
        ],
        user_pool={"id": "eu-west-1_Sibling01", "passkey_relying_party_id": "example.test"},
        region="eu-west-1",
    )
    server = GatewayServer(settings, tls=(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")))
    server.start()
    client = boto3.client(
        "cognito-idp",
        endpoint_url=f"https://127.0.0.1:{port}",
        verify=str(tmp_path / "ca.pem"),
        region_name="eu-west-1",
        aws_access_key_id="unused",
        aws_secret_access_key="unused",
        config=Config(retries={"max_attempts": 1}),
    )
    # No kept-alive TLS connection, which would hold the server's shutdown until it times out.
    client.meta.events.register("before-send", _connection_close)
    try:
        email = f"sib{secrets.token_hex(4)}@example.com"
        user = await server.add_user(email, PASSWORD, email_verified=True)
        token = client.initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId="app",
            AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
        )["AuthenticationResult"]["AccessToken"]
        options = started(client, token)
        assert json.loads(options)["rp"]["id"] == "example.test"
        key = key_for(origin="https://app.example.test", rp_id="example.test")
        client.complete_web_authn_registration(
            AccessToken=token, Credential=json.loads(key.create(options))
        )
        (listed,) = client.list_web_authn_credentials(AccessToken=token)["Credentials"]
        assert listed["RelyingPartyId"] == "example.test"
        # The client allows this origin for CORS, but it is not under the RP ID.
        outside = key_for(origin="https://app.example.net", rp_id="example.test")
        code, _ = error_of(
            client.complete_web_authn_registration,
            AccessToken=token,
            Credential=json.loads(outside.create(started(client, token))),
        )
        assert code == "WebAuthnOriginNotAllowedException"
        # Signing in from the app, and from the gateway's own pages' origin.
        for origin in ("https://app.example.test", issuer):
            flow, request = await sign_in_options(server, user.user_id)
            done, _ = await answered(server, flow, key.get(request, origin=origin))
            assert done.upstream.subject == user.user_id
    finally:
        server.stop()


def _connection_close(request: Any, **_: Any) -> None:
    request.headers["Connection"] = "close"


def user_auth(client: Any, username: str, **params: str) -> dict[str, Any]:
    return dict(
        client.initiate_auth(
            AuthFlow="USER_AUTH", ClientId="app", AuthParameters={"USERNAME": username, **params}
        )
    )


def answer_with(client: Any, asked: dict[str, Any], username: str, credential: str) -> Any:
    return client.respond_to_auth_challenge(
        ClientId="app",
        ChallengeName="WEB_AUTHN",
        Session=asked["Session"],
        ChallengeResponses={"USERNAME": username, "CREDENTIAL": credential},
    )


async def test_user_auth_signs_in_with_a_passkey_through_the_wire(pool: GatewayServer) -> None:
    """USER_AUTH's WEB_AUTHN, as Amplify's signIn({authFlowType: 'USER_AUTH',
    preferredChallenge: 'WEB_AUTHN'}) drives it: the options, the assertion, tokens."""
    client = idp(pool)
    email, user_id, token = await new_user(pool)
    key = key_for()
    register(client, token, key)
    listed = user_auth(client, email)
    assert "WEB_AUTHN" in listed["AvailableChallenges"]
    for asked in (
        user_auth(client, email, PREFERRED_CHALLENGE="WEB_AUTHN"),
        client.respond_to_auth_challenge(
            ClientId="app",
            ChallengeName="SELECT_CHALLENGE",
            Session=listed["Session"],
            ChallengeResponses={"USERNAME": email, "ANSWER": "WEB_AUTHN"},
        ),
    ):
        in_model("RespondToAuthChallenge", asked)
        assert asked["ChallengeName"] == "WEB_AUTHN"
        options = asked["ChallengeParameters"]["CREDENTIAL_REQUEST_OPTIONS"]
        done = answer_with(client, asked, email, key.get(options, origin=APP))
        in_model("RespondToAuthChallenge", done)
        tokens = done["AuthenticationResult"]
        assert client.get_user(AccessToken=tokens["AccessToken"])["Username"] == user_id
    # Another user's passkey cannot answer this user's challenge; a refusal ends the Session.
    _, _, other_token = await new_user(pool)
    other_key = key_for()
    register(client, other_token, other_key)
    asked = user_auth(client, email, PREFERRED_CHALLENGE="WEB_AUTHN")
    options = asked["ChallengeParameters"]["CREDENTIAL_REQUEST_OPTIONS"]
    assert error_of(
        answer_with,
        client=client,
        asked=asked,
        username=email,
        credential=other_key.get(options, origin=APP),
    ) == ("NotAuthorizedException", "Incorrect username or password.")
    # An unknown name gets options of the same shape, which nothing answers.
    ghost = user_auth(client, "ghost@example.com", PREFERRED_CHALLENGE="WEB_AUTHN")
    assert ghost["ChallengeName"] == "WEB_AUTHN"
    assert sorted(json.loads(ghost["ChallengeParameters"]["CREDENTIAL_REQUEST_OPTIONS"])) == (
        sorted(json.loads(options))
    )


async def test_a_passkey_is_the_second_factor_after_a_password(pool: GatewayServer) -> None:
    """An account whose only second factor is a passkey (added on the hosted pages or
    here): a password sign-in through the API asks for it (WEB_AUTHN) rather than failing."""
    client = idp(pool)
    email, user_id, token = await new_user(pool)
    key = key_for()
    register(client, token, key)
    started_in = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="app",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    assert started_in["ChallengeName"] == "WEB_AUTHN", started_in
    options = started_in["ChallengeParameters"]["CREDENTIAL_REQUEST_OPTIONS"]
    assert json.loads(options)["allowCredentials"], "the account's own passkeys are named"
    done = answer_with(client, started_in, email, key.get(options, origin=APP))
    tokens = done["AuthenticationResult"]
    assert client.get_user(AccessToken=tokens["AccessToken"])["Username"] == user_id
    # A page on an origin outside the RP ID cannot answer it.
    again = client.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="app",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    options = again["ChallengeParameters"]["CREDENTIAL_REQUEST_OPTIONS"]
    assert error_of(
        answer_with,
        client=client,
        asked=again,
        username=email,
        credential=key.get(options, origin=OUTSIDE),
    )[0] == ("NotAuthorizedException")
