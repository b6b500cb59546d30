"""Hooks (Cognito's Lambda triggers as signed webhooks) against a real HTTP receiver that checks
every signature: pre-sign-up (deny, auto-confirm), post-confirmation, pre-token-generation
(claims added, suppressed, groups; protocol claims untouchable) and user migration, and what a
silent hook does (fail closed)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.helpers import (
    AppServer,
    Browser,
    GatewayServer,
    RedisServer,
    code_flow_params,
    form_fields,
    free_port,
    location_query,
    make_settings,
    pkce_pair,
    redeem,
)

SECRET = "hook-secret-0123456789abcdef"
LEGACY = {"old@legacy.example": "legacy password 1"}


class Receiver:
    """The customer's hook endpoint: verifies X-Cognate-Signature, records, answers."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.server = AppServer(
            Starlette(routes=[Route("/{trigger}", self.hook, methods=["POST"])])
        )

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        header = request.headers.get("x-cognate-signature", "")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        expected = hmac.new(SECRET.encode(), f"{parts.get('t')}.".encode() + body, hashlib.sha256)
        fresh = abs(time.time() - int(parts.get("t", "0"))) < 300
        if not (fresh and hmac.compare_digest(expected.hexdigest(), parts.get("v1", ""))):
            return Response("bad signature", status_code=401)
        call = json.loads(body)
        self.calls.append(call)
        request_data = call["request"]
        trigger = request.path_params["trigger"]
        if trigger == "pre_sign_up":
            email = request_data["email"]
            if email.endswith("@blocked.example"):
                return JSONResponse({"allow": False, "message": "Use your work address."})
            return JSONResponse({"allow": True, "auto_confirm": email.endswith("@trusted.example")})
        if trigger == "pre_token_generation":
            return JSONResponse(
                {
                    "claims_to_add": {"tenant": "acme", "sub": "someone-else"},
                    "claims_to_suppress": ["email", "iss"],
                    "groups": ["hooked"],
                }
            )
        if trigger == "user_migration":
            found = LEGACY.get(request_data["email"]) == request_data["password"]
            return JSONResponse({"found": found, "email_verified": True, "name": "Old Timer"})
        return JSONResponse({})


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    hooks = Receiver()
    hooks.server.start()
    yield hooks
    hooks.server.stop()


def hooked_gateway(redis_url: str, hooks_url: str) -> GatewayServer:
    port = free_port()
    api_client = {  # for the user-pool API's USER_PASSWORD_AUTH
        "client_id": "apiclient",
        "token_endpoint_auth_method": "none",
        "grant_types": ["refresh_token"],
        "explicit_auth_flows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH"],
    }
    clients = [c.model_dump() for c in make_settings(port, redis_url).clients] + [api_client]
    return GatewayServer(
        make_settings(
            port,
            redis_url,
            clients=clients,
            user_pool={
                "self_sign_up": True,
                "hooks": {
                    "secret": SECRET,
                    "timeout": 2,
                    **{
                        t: f"{hooks_url}/{t}"
                        for t in (
                            "pre_sign_up",
                            "post_confirmation",
                            "pre_token_generation",
                            "user_migration",
                        )
                    },
                },
            },
        )
    ).start()


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer, receiver: Receiver) -> Iterator[GatewayServer]:
    server = hooked_gateway(redis_server.url, receiver.server.url)
    yield server
    server.stop()


async def sign_up(browser: Browser, email: str) -> httpx.Response:
    first = await browser.authorize(**code_flow_params())
    page = await browser.http.get(first.headers["location"].replace("/login?", "/signup?"))
    return await browser.http.post(
        "/signup",
        data={**form_fields(page.text), "email": email, "password": "a fine long password"},
    )


async def test_pre_sign_up_denies_or_auto_confirms(
    gateway: GatewayServer, receiver: Receiver
) -> None:
    browser = Browser(gateway.url)
    try:
        denied = await sign_up(browser, f"x-{secrets.token_hex(3)}@blocked.example")
        assert denied.status_code == 403 and "Use your work address." in denied.text
        email = f"t-{secrets.token_hex(3)}@trusted.example"
        welcomed = await sign_up(browser, email)
        assert welcomed.status_code == 303 and "code=" in welcomed.headers["location"]
        user = await gateway.call(lambda s: s.users.by_email(email))
        assert user.email_verified is True  # auto-confirmed: no code needed
        told = [c for c in receiver.calls if c["trigger"] == "post_confirmation"]
        assert told[-1]["request"] == {"user_id": user.user_id, "email": email}
    finally:
        await browser.aclose()


async def test_pre_token_generation_shapes_the_id_token(gateway: GatewayServer) -> None:
    email = f"tok-{secrets.token_hex(3)}@example.com"
    await gateway.add_user(email, email_verified=True)
    browser = Browser(gateway.url)
    try:
        code, verifier, _ = await browser.login_for_code(email)
        tokens = (await redeem(browser.http, code, verifier)).json()
        keys = KeySet.import_key_set(httpx.get(f"{gateway.url}/.well-known/jwks.json").json())
        claims = jwt.decode(tokens["id_token"], keys).claims
        assert claims["tenant"] == "acme" and claims["groups"] == ["hooked"]
        assert "email" not in claims
        assert claims["iss"] == gateway.url and claims["sub"].startswith("us-east-1:")
    finally:
        await browser.aclose()


async def test_user_migration_imports_on_first_sign_in(
    gateway: GatewayServer, receiver: Receiver
) -> None:
    browser = Browser(gateway.url)
    try:
        verifier, challenge = pkce_pair()
        wrong = await browser.sign_in(
            await browser.authorize(**code_flow_params(code_challenge=challenge)),
            "old@legacy.example",
            "not the legacy password",
        )
        assert wrong.status_code == 401
        assert await gateway.call(lambda s: s.users.by_email("old@legacy.example")) is None
        done = await browser.sign_in(
            await browser.authorize(**code_flow_params(code_challenge=challenge)),
            "old@legacy.example",
            LEGACY["old@legacy.example"],
        )
        assert done.status_code == 303 and "code=" in done.headers["location"]
        user = await gateway.call(lambda s: s.users.by_email("old@legacy.example"))
        assert user.name == "Old Timer" and user.password_hash.startswith("$argon2id$")
        asked = len([c for c in receiver.calls if c["trigger"] == "user_migration"])
        again = Browser(gateway.url)
        code, _, _ = await again.login_for_code(
            "old@legacy.example", password=LEGACY["old@legacy.example"]
        )
        await again.aclose()
        assert code
        # Migrated once: the legacy system is not asked again.
        assert len([c for c in receiver.calls if c["trigger"] == "user_migration"]) == asked
        assert location_query(done)["code"]
    finally:
        await browser.aclose()


async def test_a_silent_hook_fails_closed(redis_server: RedisServer) -> None:
    gateway = hooked_gateway(redis_server.url, f"http://127.0.0.1:{free_port()}")
    browser = Browser(gateway.url)
    try:
        refused = await sign_up(browser, f"s-{secrets.token_hex(3)}@example.com")
        assert refused.status_code == 503 and "unavailable" in refused.text
        email = f"silent-{secrets.token_hex(3)}@example.com"
        await gateway.add_user(email, email_verified=True)
        code, verifier, _ = await browser.login_for_code(email)
        token = await redeem(browser.http, code, verifier)
        assert token.status_code == 503
        assert token.json()["error"] == "temporarily_unavailable"
    finally:
        await browser.aclose()
        gateway.stop()


async def test_user_migration_on_the_user_pool_apis_password_sign_in(
    gateway: GatewayServer,
) -> None:
    # The hook is the local directory's: USER_PASSWORD_AUTH migrates as the hosted page does,
    # and the migrated account gets its SRP verifier at once (its password was just seen).
    import boto3
    from pycognito.aws_srp import AWSSRP

    email, password = "api@legacy.example", "legacy password 2"
    LEGACY[email] = password
    idp = boto3.client(
        "cognito-idp",
        endpoint_url=gateway.url,
        region_name="us-east-1",
        aws_access_key_id="unused",
        aws_secret_access_key="unused",
    )
    answer = idp.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="apiclient",
        AuthParameters={"USERNAME": email, "PASSWORD": password},
    )
    assert "AccessToken" in answer["AuthenticationResult"]
    user = await gateway.call(lambda s: s.users.by_email(email))
    assert user is not None and user.name == "Old Timer"
    srp = AWSSRP(
        username=email,
        password=password,
        pool_id=gateway.settings.user_pool_id,
        client_id="apiclient",
        client=idp,
    )
    assert "AccessToken" in srp.authenticate_user()["AuthenticationResult"]
