"""Self sign-up with e-mail verification through a real SMTP server on loopback (aiosmtpd):
codes arrive by mail, are single-purpose and limited, and nothing reveals existing accounts
(SECURITY-TESTS D31, D33)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.helpers import (
    Browser,
    GatewayServer,
    RedisServer,
    code_flow_params,
    form_fields,
    free_port,
    location_query,
    make_settings,
    signup_page,
)
from tests.mail import Mailbox, code_in, smtp_settings


@pytest.fixture(scope="module")
def pool_gateway(
    redis_server: RedisServer, mailbox: tuple[Mailbox, int]
) -> Iterator[GatewayServer]:
    settings = make_settings(
        free_port(),
        redis_server.url,
        user_pool={"self_sign_up": True, "allowed_email_domains": ["example.com"]},
        email=smtp_settings(mailbox[1]),
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


async def open_signup(browser: Browser) -> dict[str, str]:
    return form_fields((await signup_page(browser)).text)


async def test_sign_up_verify_and_arrive_signed_in(
    pool_gateway: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    browser = Browser(pool_gateway.url)
    try:
        fields = await open_signup(browser)
        created = await browser.http.post(
            "/signup",
            data={
                **fields,
                "email": "New.Person@example.com",
                "password": "a fine long password",
                "name": "New Person",
            },
        )
        assert created.status_code == 303 and created.headers["location"].startswith(
            "/signup/verify?flow="
        )
        message = await mailbox[0].next_for("new.person@example.com")
        assert "verification code" in message["Subject"]
        verify_page = await browser.http.get(created.headers["location"])
        verify_fields = form_fields(verify_page.text)
        wrong = await browser.http.post("/signup/verify", data={**verify_fields, "code": "000000"})
        assert wrong.status_code == 400
        done = await browser.http.post(
            "/signup/verify", data={**verify_fields, "code": code_in(message)}
        )
        assert done.status_code == 303 and "code" in location_query(done)  # back to the app
        user = await pool_gateway.call(lambda s: s.users.by_email("new.person@example.com"))
        assert user.email_verified is True and user.name == "New Person"
        # The code was single use.
        again = await browser.http.post(
            "/signup/verify", data={**verify_fields, "code": code_in(message)}
        )
        assert again.status_code == 400
    finally:
        await browser.aclose()


async def test_existing_address_looks_the_same_and_gets_no_code(
    pool_gateway: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    await pool_gateway.add_user("taken@example.com", email_verified=True)
    answers = []
    for email in ("taken@example.com", "fresh-one@example.com"):
        browser = Browser(pool_gateway.url)
        try:
            fields = await open_signup(browser)
            answer = await browser.http.post(
                "/signup", data={**fields, "email": email, "password": "a fine long password"}
            )
            page = await browser.http.get(answer.headers["location"])
            answers.append(
                (answer.status_code, re.sub(r'value="[^"]*"', "", page.text.replace(email, "E")))
            )
        finally:
            await browser.aclose()
    assert answers[0] == answers[1]
    notice = await mailbox[0].next_for("taken@example.com")
    assert "tried to sign up" in notice["Subject"]
    assert not re.search(r"\b\d{6}\b", notice.get_payload())  # type: ignore[arg-type]


async def test_codes_allow_few_attempts(
    pool_gateway: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    browser = Browser(pool_gateway.url)
    try:
        fields = await open_signup(browser)
        created = await browser.http.post(
            "/signup",
            data={**fields, "email": "guesser@example.com", "password": "a fine long password"},
        )
        message = await mailbox[0].next_for("guesser@example.com")
        page = await browser.http.get(created.headers["location"])
        verify_fields = form_fields(page.text)
        for guess in range(5):
            wrong = await browser.http.post(
                "/signup/verify",
                data={
                    **verify_fields,
                    "code": f"{guess:06d}" if f"{guess:06d}" != code_in(message) else "999999",
                },
            )
            assert wrong.status_code == 400
        late = await browser.http.post(
            "/signup/verify", data={**verify_fields, "code": code_in(message)}
        )
        assert late.status_code == 400  # attempts used up: the right code no longer works
    finally:
        await browser.aclose()


async def test_unverified_account_is_routed_to_verification(
    pool_gateway: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    await pool_gateway.add_user("unproven@example.com")
    browser = Browser(pool_gateway.url)
    try:
        first = await browser.authorize(**code_flow_params())
        answer = await browser.sign_in(first, "unproven@example.com")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/signup/verify?flow=")
        message = await mailbox[0].next_for("unproven@example.com")
        page = await browser.http.get(answer.headers["location"])
        done = await browser.http.post(
            "/signup/verify", data={**form_fields(page.text), "code": code_in(message)}
        )
        assert done.status_code == 303 and "code" in location_query(done)
    finally:
        await browser.aclose()


async def test_domain_rules_and_closed_sign_up(
    pool_gateway: GatewayServer, gateway: GatewayServer
) -> None:
    browser = Browser(pool_gateway.url)
    try:
        fields = await open_signup(browser)
        refused = await browser.http.post(
            "/signup",
            data={
                **fields,
                "email": "someone@elsewhere.example",
                "password": "a fine long password",
            },
        )
        assert refused.status_code == 400 and "domain" in refused.text
        weak = await browser.http.post(
            "/signup", data={**fields, "email": "weak@example.com", "password": "short"}
        )
        assert weak.status_code == 400 and "at least 8" in weak.text
    finally:
        await browser.aclose()
    closed = Browser(gateway.url)  # the shared gateway keeps sign-up closed (the default)
    try:
        first = await closed.authorize(**code_flow_params())
        login = await closed.http.get(first.headers["location"])
        assert "Create an account" not in login.text
        flow = form_fields(login.text)["flow"]
        assert (await closed.http.get(f"/signup?flow={flow}")).status_code == 404
    finally:
        await closed.aclose()


async def request_reset(browser: Browser, email: str) -> tuple[int, str, dict[str, str]]:
    first = await browser.authorize(**code_flow_params())
    login = await browser.http.get(first.headers["location"])
    flow = form_fields(login.text)["flow"]
    page = await browser.http.get(f"/forgot?flow={flow}")
    sent = await browser.http.post("/forgot", data={**form_fields(page.text), "email": email})
    reset_page = await browser.http.get(sent.headers["location"])
    normalised = re.sub(r'value="[^"]*"', "", reset_page.text.replace(email, "E"))
    return sent.status_code, normalised, form_fields(reset_page.text)


async def test_password_reset_ends_other_sessions(
    pool_gateway: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    email = "forgetful@example.com"
    await pool_gateway.add_user(email, email_verified=True)
    elsewhere = Browser(pool_gateway.url)  # signed in on another device
    here = Browser(pool_gateway.url)
    try:
        await elsewhere.login_for_code(email)
        status, _, fields = await request_reset(here, email)
        assert status == 303
        message = await mailbox[0].next_for(email)
        assert "reset code" in message["Subject"]
        wrong = await here.http.post(
            "/forgot/reset", data={**fields, "code": "000000", "password": "brand new password"}
        )
        assert wrong.status_code == 400
        done = await here.http.post(
            "/forgot/reset",
            data={**fields, "code": code_in(message), "password": "brand new password"},
        )
        assert done.status_code == 303 and done.headers["location"].startswith("/login?flow=")
        stale = await elsewhere.authorize(**code_flow_params(prompt="none"))
        assert location_query(stale)["error"] == "login_required"
        old = await here.sign_in(await here.authorize(**code_flow_params()), email)
        assert old.status_code == 401
        code, _, _ = await here.login_for_code(email, password="brand new password")
        assert code
    finally:
        await elsewhere.aclose()
        await here.aclose()


async def test_reset_for_unknown_address_looks_the_same(
    pool_gateway: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    await pool_gateway.add_user("known@example.com", email_verified=True)
    answers = []
    for email in ("known@example.com", "nobody-here@example.com"):
        browser = Browser(pool_gateway.url)
        try:
            status, page, _ = await request_reset(browser, email)
            answers.append((status, page))
        finally:
            await browser.aclose()
    assert answers[0] == answers[1]
    await mailbox[0].next_for("known@example.com")  # the real account got its code
    assert not [m for m in mailbox[0].messages if m["To"] == "nobody-here@example.com"]


async def test_verification_by_link(
    pool_gateway: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    browser = Browser(pool_gateway.url)
    try:
        fields = await open_signup(browser)
        created = await browser.http.post(
            "/signup",
            data={**fields, "email": "linker@example.com", "password": "a fine long password"},
            headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
        )
        assert created.status_code == 303
        message = await mailbox[0].next_for("linker@example.com")
        text = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
        link = re.search(r"(\S+/signup/verify/link\?token=\S+)", text)
        assert link, message.get_payload()
        # Built on the issuer, whatever Host the sign-up request claimed (SECURITY-TESTS D34).
        assert link.group(1).startswith(f"{pool_gateway.url}/signup/verify/link?token=")
        clicked = Browser(pool_gateway.url)  # any browser: the link is the proof
        try:
            page = await clicked.http.get(link.group(1).removeprefix(pool_gateway.url))
            assert page.status_code == 200 and "Verify my address" in page.text
            user = await pool_gateway.call(lambda s: s.users.by_email("linker@example.com"))
            assert user.email_verified is False  # opening the link (a mail scanner) is not enough
            done = await clicked.http.post("/signup/verify/link", data=form_fields(page.text))
            assert done.status_code == 200 and "is verified" in done.text
            user = await pool_gateway.call(lambda s: s.users.by_email("linker@example.com"))
            assert user.email_verified is True
            reused = await clicked.http.post("/signup/verify/link", data=form_fields(page.text))
            assert reused.status_code == 400 and "already used" in reused.text
        finally:
            await clicked.aclose()
    finally:
        await browser.aclose()


async def test_password_reset_by_link(
    pool_gateway: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    email = "linked-reset@example.com"
    await pool_gateway.add_user(email, email_verified=True)
    elsewhere, here = Browser(pool_gateway.url), Browser(pool_gateway.url)
    try:
        await elsewhere.login_for_code(email)
        await request_reset(here, email)
        message = await mailbox[0].next_for(email)
        text = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
        link = re.search(r"(\S+/forgot/reset/link\?token=\S+)", text)
        assert link and link.group(1).startswith(f"{pool_gateway.url}/forgot/reset/link?token=")
        clicked = Browser(pool_gateway.url)  # any browser
        try:
            page = await clicked.http.get(link.group(1).removeprefix(pool_gateway.url))
            assert page.status_code == 200
            weak = await clicked.http.post(
                "/forgot/reset/link", data={**form_fields(page.text), "password": "password1"}
            )
            assert weak.status_code == 400 and "most common passwords" in weak.text
            # The weak try did not spend the link.
            done = await clicked.http.post(
                "/forgot/reset/link",
                data={**form_fields(weak.text), "password": "a linked new password"},
            )
            assert done.status_code == 200 and "Password changed" in done.text
            again = await clicked.http.post(
                "/forgot/reset/link",
                data={**form_fields(weak.text), "password": "another new password"},
            )
            assert again.status_code == 400 and "already used" in again.text
        finally:
            await clicked.aclose()
        stale = await elsewhere.authorize(**code_flow_params(prompt="none"))
        assert location_query(stale)["error"] == "login_required"  # other sessions ended
        code, _, _ = await here.login_for_code(email, password="a linked new password")
        assert code
    finally:
        await elsewhere.aclose()
        await here.aclose()
