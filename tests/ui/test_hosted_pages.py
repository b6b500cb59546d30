"""Hosted pages a person opens directly (no application), their languages, their dead ends and
error pages, and the mail they send (issue 15, part A)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import (
    PASSWORD,
    Browser,
    GatewayServer,
    RedisServer,
    form_fields,
    free_port,
    make_settings,
)
from tests.mail import Mailbox, code_in, smtp_settings


@pytest.fixture(scope="module")
def site(redis_server: RedisServer, mailbox: tuple[Mailbox, int]) -> Iterator[GatewayServer]:
    settings = make_settings(
        free_port(),
        redis_server.url,
        user_pool={
            "self_sign_up": True,
            "attributes": [{"name": "name", "required": False}],
        },
        email=smtp_settings(mailbox[1]),
        ui={"languages": ["en", "fr"]},
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


async def new_user(site: GatewayServer) -> str:
    email = f"direct-{secrets.token_hex(4)}@example.com"
    await site.add_user(email, email_verified=True)
    return email


async def test_login_opened_without_an_application_signs_in_to_the_account_page(
    site: GatewayServer,
) -> None:
    email = await new_user(site)
    browser = Browser(site.url)
    try:
        home = await browser.http.get("/")
        assert 'href="/login"' in home.text  # no dead end: the page offers a way in
        first = await browser.http.get("/login")
        assert first.status_code == 303 and first.headers["location"].startswith("/login?flow=")
        page = await browser.http.get(first.headers["location"])
        assert page.status_code == 200 and "to continue to your account" in page.text
        done = await browser.http.post(
            "/login",
            data={**form_fields(page.text), "email": email, "password": PASSWORD},
        )
        assert done.status_code == 303 and done.headers["location"] == f"{site.url}/"
        account = await browser.http.get("/")
        assert "Signed in" in account.text and email in account.text
        again = await browser.http.get("/login")  # signed in already: straight to the account
        assert again.status_code == 303 and again.headers["location"] == f"{site.url}/"
    finally:
        await browser.aclose()


async def test_forgot_opened_directly_resets_and_then_signs_in(
    site: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    email = await new_user(site)
    browser = Browser(site.url)
    try:
        first = await browser.http.get("/forgot")
        assert first.status_code == 303 and first.headers["location"].startswith("/forgot?flow=")
        page = await browser.http.get(first.headers["location"])
        assert page.status_code == 200 and "expired" not in page.text
        sent = await browser.http.post("/forgot", data={**form_fields(page.text), "email": email})
        reset = await browser.http.get(sent.headers["location"])
        code = code_in(await mailbox[0].next_for(email))
        done = await browser.http.post(
            "/forgot/reset",
            data={**form_fields(reset.text), "code": code, "password": "a brand new passphrase"},
        )
        assert done.status_code == 303 and done.headers["location"].startswith("/login?flow=")
        login = await browser.http.get(done.headers["location"])
        signed = await browser.http.post(
            "/login",
            data={**form_fields(login.text), "email": email, "password": "a brand new passphrase"},
        )
        assert signed.headers["location"] == f"{site.url}/"
        assert "Signed in" in (await browser.http.get("/")).text
    finally:
        await browser.aclose()


async def signed_in(site: GatewayServer, email: str, **headers: str) -> Browser:
    """A browser signed in to the account page (no application), sending `headers`."""
    browser = Browser(site.url)
    browser.http.headers.update(headers)
    page = await browser.http.get((await browser.http.get("/login")).headers["location"])
    done = await browser.http.post(
        "/login", data={**form_fields(page.text), "email": email, "password": PASSWORD}
    )
    assert done.status_code == 303, done.text
    return browser


FRENCH = {"Accept-Language": "fr-FR,fr;q=0.9"}


async def test_password_policy_and_form_errors_speak_the_pages_language(
    site: GatewayServer,
) -> None:
    browser = Browser(site.url)
    browser.http.headers.update(FRENCH)
    try:
        page = await browser.http.get((await browser.http.get("/signup")).headers["location"])
        assert '<label for="attr-name">Nom' in page.text  # the "Name" label, translated
        short = await browser.http.post(
            "/signup",
            data={**form_fields(page.text), "email": "fr-user@example.com", "password": "court"},
        )
        assert short.status_code == 400
        assert "Choisissez un autre mot de passe : il doit comporter au moins 8 caractères." in (
            short.text
        )
        assert "Choose another" not in short.text and "at least" not in short.text
        common = await browser.http.post(
            "/signup",
            data={
                **form_fields(page.text),
                "email": "fr-user@example.com",
                "password": "password1",
            },
        )
        assert "fait partie des mots de passe les plus courants" in common.text
    finally:
        await browser.aclose()
    # The account page's password change, in French: the same policy message, and the
    # current password's own message (once "The password the current password is not right.").
    email = await new_user(site)
    account = await signed_in(site, email, **FRENCH)
    try:
        form = await account.http.get("/account/password")
        assert "Mot de passe actuel" in form.text
        wrong = await account.http.post(
            "/account/password",
            data={**form_fields(form.text), "current": "not it", "password": "a new long one"},
        )
        assert "Le mot de passe actuel n’est pas le bon." in wrong.text
        weak = await account.http.post(
            "/account/password",
            data={**form_fields(form.text), "current": PASSWORD, "password": "court"},
        )
        assert "Le nouveau mot de passe doit comporter au moins 8 caractères." in weak.text
    finally:
        await account.aclose()


async def test_post_logout_redirect_has_no_bare_question_mark(site: GatewayServer) -> None:
    async with httpx.AsyncClient(base_url=site.url) as http:
        bye = "https://app.example.com/bye"
        plain = await http.get(
            "/oauth2/logout", params={"client_id": "web", "post_logout_redirect_uri": bye}
        )
        assert plain.status_code == 303 and plain.headers["location"] == bye
        with_state = await http.get(
            "/oauth2/logout",
            params={"client_id": "web", "post_logout_redirect_uri": bye, "state": "s 1"},
        )
        assert with_state.headers["location"] == f"{bye}?state=s+1"


async def test_unknown_paths_answer_in_the_format_of_their_area(site: GatewayServer) -> None:
    async with httpx.AsyncClient(base_url=site.url) as http:
        page = await http.get("/no-such-page", headers={"Accept": "text/html", **FRENCH})
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert "Page introuvable" in page.text and '<link rel="stylesheet"' in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        api = await http.get("/oauth2/no-such-endpoint")
        assert api.status_code == 404 and api.json()["error"] == "not_found"
        wrong_method = await http.delete("/oauth2/token")
        assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "invalid_request"
        aws = await http.get("/cognito-identity")  # POST only: AWS JSON even for a 405
        assert aws.status_code == 405 and aws.json()["__type"] == "UnknownOperationException"
        assert aws.headers["x-amzn-errortype"].startswith("UnknownOperationException")
        icon = await http.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
        assert b"<svg" in icon.content
        static = await http.get("/static/no-such-file.css")
        assert static.status_code == 404 and "text/html" in static.headers["content-type"]


async def test_mail_carries_date_and_message_id(
    site: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    import email.utils
    import time

    email_address = await new_user(site)
    browser = Browser(site.url)
    try:
        page = await browser.http.get((await browser.http.get("/forgot")).headers["location"])
        await browser.http.post("/forgot", data={**form_fields(page.text), "email": email_address})
        message = await mailbox[0].next_for(email_address)
    finally:
        await browser.aclose()
    sent = email.utils.parsedate_to_datetime(message["Date"])  # RFC 5322 date-time
    assert sent.tzinfo is not None and abs(sent.timestamp() - time.time()) < 300
    assert re.fullmatch(r"<[^<>@\s]+@example\.com>", message["Message-ID"])
    again = Browser(site.url)
    try:
        page = await again.http.get((await again.http.get("/forgot")).headers["location"])
        await again.http.post("/forgot", data={**form_fields(page.text), "email": email_address})
        second = await mailbox[0].next_for(email_address, seen=1)
    finally:
        await again.aclose()
    assert second["Message-ID"] != message["Message-ID"]
