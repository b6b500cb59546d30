"""A second factor after federated sign-ins (`user_pool.federated_mfa`), which the IdPs' own
brokers lack: enrollment at the first federated sign-in, a code at the next, and the IdP's own
MFA (its signed `amr`) accepted in place of ours."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator

import httpx
import pyotp
import pytest

from tests.federation.conftest import Federation, local_and_fake, start_upstream_login
from tests.federation.fake_op import Behaviour
from tests.helpers import Browser, GatewayServer, RedisServer, form_fields, free_port, make_settings


@pytest.fixture(scope="module")
def strict_rp(federation: Federation, redis_server: RedisServer) -> Iterator[GatewayServer]:
    gateway = GatewayServer(
        make_settings(
            free_port(),
            redis_server.url,
            user_pool={"federated_mfa": "required"},
            connectors=local_and_fake(federation.fake.issuer),
        )
    ).start()
    yield gateway
    gateway.stop()


async def federated_sign_in(gateway: GatewayServer) -> tuple[Browser, httpx.Response]:
    browser = Browser(gateway.url)
    to_idp = await start_upstream_login(browser, "fake")
    async with httpx.AsyncClient() as idp:
        back = await idp.get(to_idp.headers["location"])
    return browser, await browser.http.get(back.headers["location"].removeprefix(gateway.url))


async def test_federated_sign_ins_enroll_then_use_a_second_factor(
    federation: Federation, strict_rp: GatewayServer
) -> None:
    federation.fake.behaviour = Behaviour(subject=f"fed-{secrets.token_hex(4)}")
    browser, answer = await federated_sign_in(strict_rp)
    try:
        assert answer.headers["location"].startswith("/login/mfa?")
        assert "cognate_session" not in browser.http.cookies  # nothing before the factor
        page = await browser.http.get(answer.headers["location"])
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
        assert secret
        codes = await browser.http.post(
            "/login/mfa", data={**form_fields(page.text), "code": pyotp.TOTP(secret.group(1)).now()}
        )
        done = await browser.http.post("/login/mfa", data=form_fields(codes.text))
        assert done.status_code == 303 and "code=" in done.headers["location"]
    finally:
        await browser.aclose()

    browser, answer = await federated_sign_in(strict_rp)  # the next sign-in asks for a code
    try:
        page = await browser.http.get(answer.headers["location"])
        assert "Enter your code" in page.text
        fields = form_fields(page.text)
        assert (
            await browser.http.post("/login/mfa", data={**fields, "code": "000000"})
        ).status_code == 401
        code = pyotp.TOTP(secret.group(1)).at(time.time() + 30)
        done = await browser.http.post("/login/mfa", data={**fields, "code": code})
        assert done.status_code == 303 and "code=" in done.headers["location"]
        # The account page manages the identity's factor (no passkeys or e-mail codes here).
        account = await browser.http.get("/account/mfa")
        assert account.status_code == 200 and "Authenticator app: set up." in account.text
        assert "Use codes sent by e-mail" not in account.text
        assert "/account/passkeys" not in (await browser.http.get("/")).text
    finally:
        await browser.aclose()
    federation.fake.reset()


async def test_the_idps_own_mfa_counts(federation: Federation, strict_rp: GatewayServer) -> None:
    federation.fake.behaviour = Behaviour(
        subject=f"fed-{secrets.token_hex(4)}", claims={"amr": ["pwd", "mfa"]}
    )
    browser, answer = await federated_sign_in(strict_rp)
    try:
        assert answer.status_code == 303 and "code=" in answer.headers["location"]
    finally:
        await browser.aclose()
        federation.fake.reset()
