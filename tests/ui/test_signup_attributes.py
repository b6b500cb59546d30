"""Sign-up with the pool's own attributes (required, custom, patterns), the phone number proven
by a code sent through the SMS webhook (a real HTTP receiver on loopback that checks the
signature), and new codes on request within limits."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.text import wait_of
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
from tests.mail import Mailbox, SmsReceiver, code_in, sms_settings, smtp_settings


@pytest.fixture(scope="module")
def phone_gateway(
    redis_server: RedisServer, mailbox: tuple[Mailbox, int], sms: SmsReceiver
) -> Iterator[GatewayServer]:
    settings = make_settings(
        free_port(),
        redis_server.url,
        user_pool={
            "self_sign_up": True,
            "attributes": [
                {"name": "given_name", "required": True},
                {"name": "phone_number", "required": True},
                {"name": "custom:team", "pattern": "[a-z]{2,16}", "label": "Team"},
            ],
            "sms": sms_settings(sms),
            "resend_per_account": 2,
        },
        email=smtp_settings(mailbox[1]),
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


async def signup_fields(browser: Browser) -> dict[str, str]:
    page = await signup_page(browser)
    assert 'name="phone_number"' in page.text and 'autocomplete="tel"' in page.text
    assert "Team" in page.text
    return form_fields(page.text)


async def test_attributes_are_checked_and_the_phone_is_verified_by_sms(
    phone_gateway: GatewayServer, mailbox: tuple[Mailbox, int], sms: SmsReceiver
) -> None:
    email = f"phone-{secrets.token_hex(3)}@example.com"
    number = f"+3361{secrets.randbelow(10**7):07d}"
    good = {"email": email, "password": "a fine long password", "given_name": "Ada"}
    browser = Browser(phone_gateway.url)
    try:
        fields = await signup_fields(browser)
        for wrong, message in (
            ({"phone_number": ""}, "Phone number: this field is required."),
            ({"phone_number": "0612345678"}, "Phone number: use the international format"),
            ({"phone_number": number, "custom:team": "Not A Team!"}, "Team: not in the expected"),
        ):
            refused = await browser.http.post("/signup", data={**fields, **good, **wrong})
            assert refused.status_code == 400 and message in refused.text
            assert 'value="Ada"' in refused.text  # what was typed is kept
        assert await phone_gateway.call(lambda s: s.users.by_email(email)) is None

        created = await browser.http.post(
            "/signup",
            data={
                **fields,
                **good,
                "phone_number": number[:4] + " " + number[4:],
                "custom:team": "ops",
            },
        )
        assert created.headers["location"].startswith("/signup/verify?")
        page = await browser.http.get(created.headers["location"])
        mail = await mailbox[0].next_for(email)
        to_phone = await browser.http.post(
            "/signup/verify", data={**form_fields(page.text), "code": code_in(mail)}
        )
        assert to_phone.headers["location"].startswith("/signup/verify/phone?")
        page = await browser.http.get(to_phone.headers["location"])
        assert "Check your phone" in page.text and number[-2:] in page.text
        first_code = await sms.code_for(number)
        assert sms.messages[-1]["purpose"] == "verify-phone"
        # A new code replaces the first.
        resent = await browser.http.post(
            "/signup/verify/phone", data={**form_fields(page.text), "action": "resend"}
        )
        assert resent.status_code == 200 and "A new code is on its way" in resent.text
        second_code = await sms.code_for(number, seen=1)
        if first_code != second_code:
            stale = await browser.http.post(
                "/signup/verify/phone", data={**form_fields(page.text), "code": first_code}
            )
            assert stale.status_code == 400
        done = await browser.http.post(
            "/signup/verify/phone", data={**form_fields(page.text), "code": second_code}
        )
        assert done.status_code == 303 and "code" in location_query(done)
        user = await phone_gateway.call(lambda s: s.users.by_email(email))
        claims = user.profile()
        assert claims["phone_number"] == number and claims["phone_number_verified"] is True
        assert claims["given_name"] == "Ada" and claims["custom:team"] == "ops"
        assert claims["locale"] == "en"  # the language the sign-up page spoke
        home = await browser.http.get("/")  # the account page shows the profile
        assert f"<dd>{number} (verified)</dd>" in home.text and "<dd>ops</dd>" in home.text
    finally:
        await browser.aclose()


async def test_new_codes_on_request_are_limited(
    phone_gateway: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    email = f"resend-{secrets.token_hex(3)}@example.com"
    browser = Browser(phone_gateway.url)
    try:
        fields = await signup_fields(browser)
        created = await browser.http.post(
            "/signup",
            data={
                **fields,
                "email": email,
                "password": "a fine long password",
                "given_name": "Bo",
                "phone_number": "+33612345678",
            },
        )
        page = await browser.http.get(created.headers["location"])
        await mailbox[0].next_for(email)
        verify = {**form_fields(page.text), "action": "resend"}
        answers = [await browser.http.post("/signup/verify", data=verify) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert int(answers[-1].headers["retry-after"]) > 0
        # The page says when, in words (it used to say "later").
        wait = wait_of(int(answers[-1].headers["retry-after"]))
        assert f"Too many codes sent. Try again in {wait}." in answers[-1].text
        # Two new codes were sent (three messages in all); the last one works.
        latest = await mailbox[0].next_for(email, seen=2)
        done = await browser.http.post(
            "/signup/verify", data={**form_fields(page.text), "code": code_in(latest)}
        )
        assert done.headers["location"].startswith("/signup/verify/phone?")
    finally:
        await browser.aclose()


def test_attribute_settings_are_validated() -> None:
    from pydantic import ValidationError

    from gateway.settings import UserPoolSettings

    for bad, says in (
        ({"name": "shoe_size"}, "not a standard attribute"),
        ({"name": "custom:x", "pattern": "(["}, "not a regular expression"),
    ):
        with pytest.raises(ValidationError, match=says):
            UserPoolSettings.model_validate({"attributes": [bad]})
    with pytest.raises(ValidationError, match="needs url and secret"):
        UserPoolSettings.model_validate({"sms": {"sender": "webhook"}})


def test_message_templates_follow_the_language_and_the_deployers_files(tmp_path: Path) -> None:
    from gateway.users.senders import MessageTemplates

    bundled = MessageTemplates()
    subject, body = bundled.render(
        "verify_email.txt", "fr", code="123456", link="L", issuer="I", minutes=15
    )
    assert subject == "Votre code de vérification : 123456" and "expirent dans 15" in body
    subject, _ = bundled.render("verify_email.txt", "de", code="1", link="L", issuer="I", minutes=1)
    assert subject.startswith("Your verification code")  # no German catalogue: English
    own = tmp_path / "messages" / "fr"
    own.mkdir(parents=True)
    (own / "verify_email.txt").write_text("Subject: Code {{ code }}\n\nBonjour de chez nous.\n")
    subject, body = MessageTemplates(tmp_path).render(
        "verify_email.txt", "fr", code="9", link="L", issuer="I", minutes=1
    )
    assert (subject, body.strip()) == ("Code 9", "Bonjour de chez nous.")
    subject, _ = MessageTemplates(tmp_path).render(
        "verify_email.txt", "en", code="9", link="L", issuer="I", minutes=1
    )
    assert subject.startswith("Your verification code")  # only the file given is replaced


@pytest.fixture(scope="module")
def username_pool(
    redis_server: RedisServer, mailbox: tuple[Mailbox, int]
) -> Iterator[GatewayServer]:
    settings = make_settings(
        free_port(),
        redis_server.url,
        user_pool={"self_sign_up": True, "usernames": True},
        email=smtp_settings(mailbox[1]),
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


async def test_usernames_sign_up_sign_in_and_reset(
    username_pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    gateway = username_pool
    name = f"ada-{secrets.token_hex(3)}"
    email = f"{name}@example.com"
    browser = Browser(gateway.url)
    try:
        first = await browser.authorize(**code_flow_params())
        login = await browser.http.get(first.headers["location"])
        assert "Email or username" in login.text
        page = await browser.http.get(f"/signup?flow={form_fields(login.text)['flow']}")
        fields = {**form_fields(page.text), "email": email, "password": "a fine long password"}
        bad = await browser.http.post("/signup", data={**fields, "username": "a b"})
        assert bad.status_code == 400 and "Username: 3 to 64 letters" in bad.text
        taken_by = await gateway.add_user(f"other-{name}@example.com", username=f"{name}-x")
        assert taken_by.username == f"{name}-x"
        taken = await browser.http.post(
            "/signup",
            data={**fields, "username": f"{name.upper()}-X"},  # case-insensitive
        )
        assert taken.status_code == 400 and "That username is taken" in taken.text
        created = await browser.http.post("/signup", data={**fields, "username": name.upper()})
        assert created.headers["location"].startswith("/signup/verify?")
        verify = await browser.http.get(created.headers["location"])
        code = code_in(await mailbox[0].next_for(email))
        done = await browser.http.post(
            "/signup/verify", data={**form_fields(verify.text), "code": code}
        )
        assert done.status_code == 303 and "code" in location_query(done)
    finally:
        await browser.aclose()

    again = Browser(gateway.url)
    try:
        code, _, _ = await again.login_for_code(name.upper(), password="a fine long password")
        assert code  # the username signs in, whatever its case
        user = await gateway.call(lambda s: s.users.by_username(name))
        assert user.profile()["preferred_username"] == name
        # Forgot password by username: the code goes to the account's e-mail.
        first = await again.authorize(**code_flow_params(prompt="login"))
        login = await again.http.get(first.headers["location"])
        flow = form_fields(login.text)["flow"]
        forgot = await again.http.get(f"/forgot?flow={flow}")
        asked = await again.http.post("/forgot", data={**form_fields(forgot.text), "email": name})
        assert asked.status_code == 303
        reset_mail = await mailbox[0].next_for(email, seen=1)
        assert "reset" in reset_mail["Subject"].lower()
    finally:
        await again.aclose()
