"""The hosted sign-in page: CSRF, browser binding, enumeration, sessions (SECURITY-TESTS D, E)."""

from __future__ import annotations

import re
import secrets
from typing import Any

import httpx

from tests.helpers import (
    PASSWORD,
    Browser,
    GatewayServer,
    code_flow_params,
    form_fields,
    location_query,
    tampered,
)

AUTH = code_flow_params(state="s")


async def login_form(browser: Browser, **changes: str) -> dict[str, str]:
    first = await browser.authorize(**{**AUTH, **changes})
    page = await browser.http.get(first.headers["location"])
    return form_fields(page.text)


def normalise(html: str) -> str:
    """The page with per-request values (flow ids, CSRF tokens) blanked out."""
    return re.sub(r"flow=[\w-]+", "flow=", re.sub(r'(value|data-options)="[^"]*"', r'\1=""', html))


async def test_unknown_user_wrong_password_and_disabled_look_the_same(
    gateway: GatewayServer, browser: Browser, user: str
) -> None:
    disabled = f"disabled-{user}"
    created = await gateway.add_user(disabled)
    await gateway.call(lambda s: s.users.set_status(created.user_id, "disabled"))
    calls = {"n": 0}
    hasher = gateway.services.users.hasher
    original = hasher.verify

    async def counting(stored: str | None, password: str) -> bool:
        calls["n"] += 1
        return await original(stored, password)

    hasher.verify = counting  # type: ignore[method-assign]
    try:
        answers = []
        for email, password in (
            (user, "wrong password!"),
            ("nobody@example.com", PASSWORD),
            (disabled, PASSWORD),
        ):
            fields = await login_form(browser)
            r = await browser.http.post(
                "/login",
                data={**fields, "email": "x", "password": "y"}
                | {"email": email, "password": password},
            )
            answers.append((r.status_code, normalise(r.text).replace(email, "EMAIL")))
    finally:
        hasher.verify = original  # type: ignore[method-assign]
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 401 and "Incorrect email or password" in answers[0][1]
    assert calls["n"] == 3  # one argon2 verification each: same cost, same timing profile


async def test_missing_or_wrong_csrf_is_403(browser: Browser, user: str) -> None:
    fields = await login_form(browser)
    for csrf in (None, "forged", tampered(fields["_csrf"], 2)):
        data = {**fields, "email": user, "password": PASSWORD}
        if csrf is None:
            del data["_csrf"]
        else:
            data["_csrf"] = csrf
        r = await browser.http.post("/login", data=data)
        assert r.status_code == 403


async def test_cross_site_post_is_403(browser: Browser, user: str) -> None:
    fields = await login_form(browser)
    data = {**fields, "email": user, "password": PASSWORD}
    r = await browser.http.post("/login", data=data, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = await browser.http.post("/login", data=data, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403


async def test_flow_from_another_browser_is_refused(
    gateway: GatewayServer, browser: Browser, user: str
) -> None:
    first = await browser.authorize(**AUTH)
    other = Browser(gateway.url)
    try:
        page = await other.http.get(first.headers["location"])
        assert page.status_code == 400 and "another browser" in page.text
    finally:
        await other.aclose()


async def test_flow_is_used_once(browser: Browser, user: str) -> None:
    fields = await login_form(browser)
    data = {**fields, "email": user, "password": PASSWORD}
    assert (await browser.http.post("/login", data=data)).status_code == 303
    again = await browser.http.post("/login", data=data)
    assert again.status_code == 400 and "expired" in again.text


async def test_a_flow_submitted_twice_at_once_signs_in_once(browser: Browser, user: str) -> None:
    """Both submissions pass the flow check and the password; the take that ends the flow lets
    one of them through. The other gets the friendly page, and no code or session of its own."""
    import asyncio

    fields = await login_form(browser)
    data = {**fields, "email": user, "password": PASSWORD}
    answers = await asyncio.gather(*(browser.http.post("/login", data=data) for _ in range(2)))
    assert sorted(a.status_code for a in answers) == [303, 400]
    loser = next(a for a in answers if a.status_code == 400)
    assert "expired" in loser.text and "location" not in loser.headers
    assert "cognate_session=" not in loser.headers.get("set-cookie", "")


async def test_new_session_id_on_every_login(browser: Browser, user: str) -> None:
    await browser.login_for_code(user)
    first = browser.http.cookies.get("cognate_session")
    await browser.login_for_code(user, prompt="login")
    second = browser.http.cookies.get("cognate_session")
    assert first and second and first.split(".")[0] != second.split(".")[0]


async def test_session_cookie_attributes(browser: Browser, user: str) -> None:
    fields = await login_form(browser)
    r = await browser.http.post("/login", data={**fields, "email": user, "password": PASSWORD})
    cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith("cognate_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert len(cookie) < 4096


async def test_forged_tampered_and_garbage_session_cookies_are_not_sessions(
    gateway: GatewayServer, browser: Browser, user: str
) -> None:
    await browser.login_for_code(user)
    real = browser.http.cookies["cognate_session"]
    sid, secret = real.split(".")
    forged_values = [
        f"{sid}.{tampered(secret, 2)}",  # tampered secret
        f"{sid}.x",  # short secret
        f"{'0' * 32}.{secret}",  # another id
        "garbage",
        "",
        "." * 5,
        "a" * 5000,
    ]
    for value in forged_values:
        other = Browser(gateway.url)
        other.http.cookies.set("cognate_session", value)
        try:
            r = await other.authorize(**{**AUTH, "prompt": "none"})
            assert location_query(r)["error"] == "login_required", value
        finally:
            await other.aclose()


async def test_session_gone_from_store_is_signed_out(
    gateway: GatewayServer, browser: Browser, user: str
) -> None:
    await browser.login_for_code(user)
    sid = browser.http.cookies["cognate_session"].split(".")[0]
    await gateway.call(lambda s: s.sessions.end(sid))
    r = await browser.authorize(**{**AUTH, "prompt": "none"})
    assert location_query(r)["error"] == "login_required"


async def test_oversized_passwords_are_refused_before_hashing(
    gateway: GatewayServer, browser: Browser, user: str
) -> None:
    fields = await login_form(browser)
    long = await browser.http.post("/login", data={**fields, "email": user, "password": "p" * 5000})
    assert long.status_code == 400 and "too long" in long.text
    huge = await browser.http.post(
        "/login", data={**fields, "email": user, "password": "p" * 1_000_000}
    )
    assert huge.status_code == 413


async def test_login_hint_is_escaped(browser: Browser) -> None:
    first = await browser.authorize(**{**AUTH, "login_hint": '"><script>alert(1)</script>'})
    page = await browser.http.get(first.headers["location"])
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text


async def test_disabled_user_cannot_sign_in_and_unicode_passwords_work(
    gateway: GatewayServer, browser: Browser
) -> None:
    password = "pässwörd-𝔘𝔫𝔦𝔠𝔬𝔡𝔢-" + "ж" * 200
    created: Any = await gateway.add_user("unicode@example.com", password)
    code, _, _ = await browser.login_for_code("unicode@example.com", password=password)
    assert code
    await gateway.call(lambda s: s.users.set_status(created.user_id, "disabled"))
    fields = await login_form(browser, prompt="login")
    r = await browser.http.post(
        "/login", data={**fields, "email": "unicode@example.com", "password": password}
    )
    assert r.status_code == 401


async def test_expired_or_unknown_flow_is_a_friendly_page(http: httpx.AsyncClient) -> None:
    r = await http.get("/login?flow=doesnotexist")
    assert r.status_code == 400 and "expired" in r.text
    assert "Traceback" not in r.text


async def test_a_temporary_password_asks_for_a_new_one_before_the_code(
    gateway: GatewayServer, browser: Browser
) -> None:
    email = f"temp-{secrets.token_hex(4)}@example.com"
    created = await gateway.add_user(email, email_verified=True)
    await gateway.call(
        lambda s: s.users.set_password(created.user_id, "temporary passphrase 1", True)
    )
    fields = await login_form(browser)
    signed = await browser.http.post(
        "/login", data={**fields, "email": email, "password": "temporary passphrase 1"}
    )
    assert signed.status_code == 303
    assert signed.headers["location"].startswith("/login/new-password?flow=")  # no code yet
    page = await browser.http.get(signed.headers["location"])
    form = form_fields(page.text)
    weak = await browser.http.post("/login/new-password", data={**form, "password": "short"})
    assert weak.status_code == 400
    done = await browser.http.post(
        "/login/new-password", data={**form, "password": "my own passphrase"}
    )
    assert done.status_code == 303 and "code" in location_query(done)
    forged = await browser.http.post(
        "/login/new-password", data={**form, "_csrf": tampered(form["_csrf"])}
    )
    assert forged.status_code == 403
