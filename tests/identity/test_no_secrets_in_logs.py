"""No password, code, token, cookie or AWS credential ever appears in a log line
(SECURITY-TESTS B22, F47): a whole flow runs with every logger at DEBUG, through the JSON
formatter the gateway uses, and the captured text is searched for each secret."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from gateway.observability import JsonFormatter, quiet_libraries
from tests.helpers import PASSWORD, Browser, GatewayServer, redeem
from tests.identity.conftest import POOL, StsFront, client


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # everything at DEBUG, except what the gateway itself quiets
    quiet_libraries()
    yield buffer
    root.removeHandler(handler)
    root.setLevel(previous)


async def test_secrets_stay_out_of_logs(
    pools: GatewayServer, sts: StsFront, captured: io.StringIO
) -> None:
    email = "logs@example.com"
    await pools.add_user(email, email_verified=True)
    browser = Browser(pools.url)
    code, verifier, _ = await browser.login_for_code(email, scope="openid email offline_access")
    secret = "web-secret-0123456789"
    tokens = (await redeem(browser.http, code, verifier, auth=("web", secret))).json()
    refreshed = (
        await browser.http.post(
            "/oauth2/token",
            auth=("web", secret),
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
    ).json()
    await browser.http.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {refreshed['access_token']}"}
    )
    api = client(pools)
    logins = {pools.url.removeprefix("http://"): tokens["id_token"]}
    identity = api.get_id(IdentityPoolId=POOL, Logins=logins)["IdentityId"]
    creds = api.get_credentials_for_identity(IdentityId=identity, Logins=logins)["Credentials"]
    cookie = browser.http.cookies["cognate_session"]
    await browser.aclose()
    # A failed sign-in must not log the attempt's password either.
    wrong = "wrong-password-that-must-not-leak"
    bad = Browser(pools.url)
    try:
        first = await bad.authorize(
            client_id="web",
            response_type="code",
            redirect_uri="https://app.example.com/cb",
            scope="openid",
            code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            code_challenge_method="S256",
        )
        assert (await bad.sign_in(first, email, wrong)).status_code == 401
    finally:
        await bad.aclose()

    text = captured.getvalue()
    assert '"msg": "request"' in text  # the capture did see the gateway's access log
    secrets = {
        "password": PASSWORD,
        "wrong password": wrong,
        "code": code,
        "verifier": verifier,
        "client secret": secret,
        "access token": tokens["access_token"],
        "refresh token": tokens["refresh_token"],
        "id token": tokens["id_token"],
        "rotated refresh": refreshed["refresh_token"],
        "session cookie": cookie,
        "aws secret": creds["SecretKey"],
        "aws session token": creds["SessionToken"],
    }
    for name, value in secrets.items():
        assert value not in text, f"{name} leaked into the logs"
        assert value[:24] not in text, f"a prefix of the {name} leaked into the logs"
