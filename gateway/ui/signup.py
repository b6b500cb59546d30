"""Self sign-up (when `user_pool.self_sign_up` is on) with the pool's attributes, e-mail
verification by code or link, phone verification by text message, and new codes on request.

Nothing here tells an outsider whether an address has an account: sign-up answers the same way
(and costs the same argon2 hash) for new and existing addresses, and the e-mail — a code for a
new account, a "someone tried to sign up" notice for an existing one — is sent in the background
so the mail server's speed is not a signal either. A code is bound to its account, expires, and
allows a few attempts (`gateway.users.codes`). An account whose address is unverified can sign in
only by passing through this verification when the pool requires it.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.errors import PageError
from gateway.forwarded import client_address
from gateway.login.flows import Flow
from gateway.login.machine import resend_allowed as _resend_allowed
from gateway.login.progress import Verifying
from gateway.ratelimit import Limit, RateLimited
from gateway.settings import AttributeSettings, UserPoolSettings
from gateway.text import Phrase
from gateway.ui import notify
from gateway.ui.direct import account_flow
from gateway.ui.finish import sign_in_local
from gateway.ui.flow_pages import flow_for, flow_form
from gateway.ui.notify import VERIFY, VERIFY_PHONE, send_code, send_phone_code
from gateway.users.directory import (
    InvalidEmail,
    InvalidPassword,
    InvalidUsername,
    User,
    UserExists,
    UsernameTaken,
    choose_another,
    normalize_email,
)
from gateway.users.hooks import HookFailed

if TYPE_CHECKING:
    from gateway.op.common import Handler
    from gateway.services import Services

log = logging.getLogger("cognate.signup")


async def to_verification(services: Services, flow: Flow, email: str) -> Response:
    """Remember whose code the flow waits for, and show the code page."""
    await services.flows.save(flow, Verifying(normalize_email(email)))
    return RedirectResponse(f"/signup/verify?flow={flow.flow_id}", status_code=303)


def verifying(flow: Flow) -> Verifying | None:
    """Whose verification code the flow waits for, if it does."""
    return flow.progress if isinstance(flow.progress, Verifying) else None


E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def read_attributes(
    pool: UserPoolSettings, form: Mapping[str, Any]
) -> tuple[dict[str, str], str | None]:
    """The sign-up form's attribute values, and what is wrong with them (one message naming
    the first field at fault), per `user_pool.attributes`."""
    values: dict[str, str] = {}
    for attribute in pool.attributes:
        label = Phrase(attribute_label(attribute))  # "Name" reads "Nom" on a French page
        value = unicodedata.normalize("NFKC", str(form.get(attribute.name) or "")).strip()
        if not value:
            if attribute.required:
                return values, Phrase("%(label)s: this field is required.", label=label)
            continue
        if len(value) > attribute.max_length:
            return values, Phrase(
                "%(label)s: at most %(count)s characters.", label=label, count=attribute.max_length
            )
        if attribute.name == "phone_number":
            value = value.replace(" ", "").replace("-", "")
            if not E164.match(value):
                return values, Phrase(
                    "%(label)s: use the international format, e.g. +33612345678.", label=label
                )
        if attribute.pattern and not re.fullmatch(attribute.pattern, value):
            return values, Phrase("%(label)s: not in the expected format.", label=label)
        values[attribute.name] = value
    return values, None


def attribute_label(attribute: AttributeSettings) -> str:
    if attribute.label:
        return attribute.label
    return attribute.name.removeprefix("custom:").replace("_", " ").capitalize()


def signup(services: Services) -> Handler:
    pool = services.settings.user_pool
    fields = [
        {
            "name": a.name,
            "id": "attr-" + re.sub(r"[^a-z0-9]+", "-", a.name.lower()),
            "label": attribute_label(a),
            "required": a.required,
            "type": "tel" if a.name == "phone_number" else "text",
            "autocomplete": AUTOCOMPLETE.get(a.name, "off"),
        }
        for a in pool.attributes
    ]

    def form(
        request: Request,
        flow: Flow,
        error: str | None = None,
        status: int = 200,
        email: str = "",
        values: Mapping[str, Any] | None = None,
    ) -> Response:
        return flow_form(
            services,
            request,
            flow,
            "signup.html",
            "signup",
            status,
            error=error,
            email=email,
            fields=fields,
            values=values or {},
            usernames=pool.usernames,
            username=(values or {}).get("username", ""),
        )

    async def page(request: Request) -> Response:
        if not pool.self_sign_up:
            raise PageError("Sign-up is closed", "Ask an administrator for an account.", 404)
        if request.method == "GET":
            if not request.query_params.get("flow"):  # opened directly: ends on the account
                return await account_flow(services, request, "/signup")
            return form(
                request, await flow_for(services, request, request.query_params.get("flow"))
            )
        data = await request.form(max_fields=16 + len(fields), max_part_size=16 * 1024)
        flow_id = str(data.get("flow") or "")
        services.csrf.check(request, data, f"signup:{flow_id}")
        flow = await flow_for(services, request, flow_id)
        email = normalize_email(str(data.get("email") or ""))[:254]
        password = str(data.get("password") or "")
        given = {a.name: str(data.get(a.name) or "")[:2048] for a in pool.attributes}
        username = str(data.get("username") or "")[:64] if pool.usernames else None
        if username is not None:
            given["username"] = username
        domain = email.rpartition("@")[2]
        if pool.allowed_email_domains and domain not in pool.allowed_email_domains:
            return form(
                request,
                flow,
                "Accounts with this e-mail domain cannot be created here.",
                400,
                email,
                given,
            )
        attributes, problem = read_attributes(pool, data)
        if problem:
            return form(request, flow, problem, 400, email, given)
        attributes.setdefault("locale", services.pages.language(request))
        ip = client_address(services.settings, request)
        limit = [(Limit("signup-ip", 20, 3600), ip)]
        try:
            await services.limiter.check(limit)
        except RateLimited as exc:
            page = form(
                request, flow, "Too many sign-ups from here. Try again later.", 429, email, given
            )
            page.headers["Retry-After"] = str(exc.retry_after)
            return page
        await services.limiter.fail(limit)  # every sign-up counts
        auto_confirm = False
        if services.hooks.enabled("pre_sign_up"):
            # Asked for every sign-up, existing address or not: the answer reveals nothing.
            try:
                verdict = await services.hooks.call(
                    "pre_sign_up", {"email": email, "username": username, "attributes": attributes}
                )
            except HookFailed:
                return form(request, flow, "Sign-up is unavailable right now.", 503, email, given)
            if verdict.get("allow") is not True:
                message = str(verdict.get("message") or "This account cannot be created.")
                return form(request, flow, message[:200], 403, email, given)
            auto_confirm = verdict.get("auto_confirm") is True
        try:
            user = await services.users.create(
                email,
                password,
                name=attributes.pop("name", None),
                email_verified=auto_confirm,
                attributes=attributes,
                username=username,
            )
        except InvalidEmail:
            return form(request, flow, "That e-mail address is not valid.", 400, email, given)
        except InvalidPassword as exc:
            return form(request, flow, choose_another(exc), 400, email, given)
        except InvalidUsername as exc:
            problem = Phrase("Username: %(reason)s.", reason=Phrase(str(exc)))
            return form(request, flow, problem, 400, email, given)
        except UsernameTaken:
            return form(request, flow, "That username is taken. Choose another.", 400, email, given)
        except UserExists:
            notify.email(services, request, email, "already_registered.txt", attributes["locale"])
        else:
            await services.audit.record("user.signed_up", user_id=user.user_id, ip=ip)
            if auto_confirm:  # the hook vouched for the address: signed in at once
                await confirmed(services, user.user_id, user.email)
                return await after_email(services, request, flow, user)
            await send_code(services, request, user)
        return await to_verification(services, flow, email)

    return page


AUTOCOMPLETE = {
    "name": "name",
    "given_name": "given-name",
    "family_name": "family-name",
    "middle_name": "additional-name",
    "nickname": "nickname",
    "preferred_username": "username",
    "phone_number": "tel",
    "birthdate": "bday",
    "gender": "sex",
    "locale": "language",
    "website": "url",
    "address": "street-address",
}


async def after_email(services: Services, request: Request, flow: Flow, user: User) -> Response:
    """The e-mail is proven: on to the phone number when it needs proving, else signed in."""

    pool = services.settings.user_pool
    if pool.verify_phone and user.phone_number and not user.phone_number_verified:
        await send_phone_code(services, request, user)
        progress = flow.progress
        email = progress.email if isinstance(progress, Verifying) else user.email
        await services.flows.save(flow, Verifying(email, phone_user=user.user_id))
        return RedirectResponse(f"/signup/verify/phone?flow={flow.flow_id}", status_code=303)
    return await sign_in_local(services, request, flow, user, ["pwd"])


async def resend_allowed(services: Services, request: Request, account: str) -> int | None:
    """None when another code may be sent now; else the seconds to wait (Retry-After)."""
    return await _resend_allowed(services, account, client_address(services.settings, request))


async def confirmed(services: Services, user_id: str, email: str) -> None:
    """The post_confirmation hook: told, not asked (a failure is logged, nothing more)."""
    if services.hooks.enabled("post_confirmation"):
        try:
            await services.hooks.call("post_confirmation", {"user_id": user_id, "email": email})
        except HookFailed:
            pass  # logged by the hook client


def verify_link(services: Services) -> Handler:
    """GET/POST /signup/verify/link?token=…: the link in the verification e-mail. GET shows a
    button (mail scanners fetch links; only a person presses it), POST spends the token."""

    async def page(request: Request) -> Response:
        browser, new_cookie = services.csrf.browser_secret(request)
        if request.method == "GET":
            token = request.query_params.get("token", "")[:64]
            response = services.pages.render(
                request,
                "verify_link.html",
                {
                    "token": token,
                    "csrf": services.csrf.token(browser, "verify-link"),
                    "done": False,
                },
            )
        else:
            form = await request.form(max_fields=4, max_part_size=1024)
            services.csrf.check(request, form, "verify-link")
            user_id = await services.codes.redeem_link(VERIFY, str(form.get("token") or ""))
            user = await services.users.get(user_id) if user_id else None
            if user is None:
                raise PageError(
                    "Link expired",
                    "This link was already used or has expired. Sign in to get a new code.",
                )
            await services.users.mark_email_verified(user.user_id)
            await services.audit.record("user.email_verified", user_id=user.user_id, by="link")
            await confirmed(services, user.user_id, user.email)
            response = services.pages.render(
                request, "verify_link.html", {"done": True, "email": user.email}
            )
        if new_cookie:
            services.pages.set_cookie(response, CSRF_COOKIE, browser)
        return response

    return page


def verify(services: Services) -> Handler:
    def form(
        request: Request,
        flow: Flow,
        error: str | None = None,
        status: int = 200,
        notice: str | None = None,
    ) -> Response:
        return flow_form(
            services,
            request,
            flow,
            "verify.html",
            "verify",
            status,
            channel="email",
            action="/signup/verify",
            email=getattr(verifying(flow), "email", ""),
            error=error,
            notice=notice,
        )

    async def page(request: Request) -> Response:
        if request.method == "GET":
            flow = await flow_for(services, request, request.query_params.get("flow"))
            return form(request, flow)
        data = await request.form(max_fields=8, max_part_size=1024)
        flow_id = str(data.get("flow") or "")
        services.csrf.check(request, data, f"verify:{flow_id}")
        flow = await flow_for(services, request, flow_id)
        waiting = verifying(flow)
        email = waiting.email if waiting else ""
        user = await services.users.by_email(email) if email else None
        if data.get("action") == "resend":
            # The same answer whether or not a code was due (no enumeration here either).
            wait = await resend_allowed(services, request, email)
            if wait is not None:
                page = form(request, flow, "Too many codes sent. Try again later.", 429)
                page.headers["Retry-After"] = str(wait)
                return page
            if user is not None and user.enabled and not user.email_verified:
                await send_code(services, request, user)
            return form(request, flow, notice="A new code is on its way.")
        code = str(data.get("code") or "")
        if user is None or not await services.codes.check(VERIFY, user.user_id, code):
            return form(request, flow, "That code is not right, or it has expired.", 400)
        user = await services.users.mark_email_verified(user.user_id)
        await services.audit.record("user.email_verified", user_id=user.user_id)
        await confirmed(services, user.user_id, user.email)
        return await after_email(services, request, flow, user)

    return page


def verify_phone(services: Services) -> Handler:
    """GET/POST /signup/verify/phone: the code sent by text message, after the e-mail."""

    async def page(request: Request) -> Response:
        if request.method == "GET":
            flow = await flow_for(services, request, request.query_params.get("flow"))
            data: Any = {}
        else:
            data = await request.form(max_fields=8, max_part_size=1024)
            flow = await flow_for(services, request, str(data.get("flow") or ""))
            services.csrf.check(request, data, f"verify-phone:{flow.flow_id}")
        waiting = verifying(flow)
        user_id = waiting.phone_user if waiting and waiting.phone_user else ""
        user = await services.users.get(user_id) if user_id else None
        if user is None or not user.phone_number:
            raise PageError("Sign-in expired", "Start again from the application.")

        def form(
            error: str | None = None, status: int = 200, notice: str | None = None
        ) -> Response:
            number = str(user.phone_number)
            return flow_form(
                services,
                request,
                flow,
                "verify.html",
                "verify-phone",
                status,
                channel="phone",
                action="/signup/verify/phone",
                phone=f"{number[:3]}…{number[-2:]}",
                error=error,
                notice=notice,
            )

        if request.method == "GET":
            return form()
        if data.get("action") == "resend":
            wait = await resend_allowed(services, request, user.user_id)
            if wait is not None:
                page = form("Too many codes sent. Try again later.", 429)
                page.headers["Retry-After"] = str(wait)
                return page
            await send_phone_code(services, request, user)
            return form(notice="A new code is on its way.")
        code = str(data.get("code") or "")[:16]
        if not await services.codes.check(VERIFY_PHONE, user.user_id, code):
            return form("That code is not right, or it has expired.", 400)
        verified = await services.users.mark_phone_verified(user.user_id, user.phone_number)
        if verified is None:
            raise PageError("Sign-in expired", "Start again from the application.")
        await services.audit.record("user.phone_verified", user_id=user.user_id)
        return await sign_in_local(services, request, flow, verified, ["pwd"])

    return page
