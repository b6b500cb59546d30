"""Self sign-up pages (when `user_pool.self_sign_up` is on): the form with the pool's
attributes, e-mail verification by code or link, phone verification by text message, and new
codes on request. The rules — one answer for new and existing addresses, the pre_sign_up and
post_confirmation hooks, what each code proves — are `gateway.login.registration`'s; these
pages parse forms, send the messages (in the background) and render the answers. An account
whose address is unverified signs in only through this verification when the pool requires
it (`gateway.login.machine.password` answers NeedsVerification).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway import amr
from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.errors import PageError
from gateway.forwarded import client_address
from gateway.login import notify, registration
from gateway.login.flows import Flow
from gateway.login.machine import resend_allowed as _resend_allowed
from gateway.login.notify import send_code, send_phone_code
from gateway.login.progress import Verifying
from gateway.login.registration import attribute_label
from gateway.login.steps import LoginError, SignInExpired, TooManyAttempts, TooManyCodes
from gateway.text import Phrase
from gateway.ui.direct import account_flow, application_flow, names_an_application
from gateway.ui.finish import sign_in_local
from gateway.ui.flow_pages import flow_for, flow_form
from gateway.users.directory import (
    InvalidEmail,
    InvalidPassword,
    InvalidUsername,
    User,
    UsernameTaken,
    choose_another,
    normalize_email,
)

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

    from_application = application_flow(services, "/signup")

    async def page(request: Request) -> Response:
        if not pool.self_sign_up:
            raise PageError("Sign-up is closed", "Ask an administrator for an account.", 404)
        if request.method == "GET":
            if names_an_application(request):  # Cognito's /signup?client_id=…&redirect_uri=…
                return await from_application(request)
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
        try:
            result = await registration.sign_up(
                services,
                email,
                password,
                data,
                username,
                client_address(services.settings, request),
                services.pages.language(request),
            )
        except TooManyAttempts as exc:
            page = form(request, flow, exc.message, exc.status, email, given)
            page.headers["Retry-After"] = str(exc.retry_after)
            return page
        except LoginError as exc:
            return form(request, flow, exc.message, exc.status, email, given)
        except InvalidEmail:
            return form(request, flow, "That e-mail address is not valid.", 400, email, given)
        except InvalidPassword as exc:
            return form(request, flow, choose_another(exc), 400, email, given)
        except InvalidUsername as exc:
            problem = Phrase("Username: %(reason)s.", reason=Phrase(str(exc)))
            return form(request, flow, problem, 400, email, given)
        except UsernameTaken:
            return form(request, flow, "That username is taken. Choose another.", 400, email, given)
        if result.existing:
            locale = str(data.get("locale") or "") or services.pages.language(request)
            notify.email(services, request, email, "already_registered.txt", locale)
        elif result.user is not None and result.confirmed:  # signed in at once
            return await after_email(services, request, flow, result.user)
        elif result.user is not None:
            await send_code(services, request, result.user)
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

    if registration.phone_due(services, user):
        await send_phone_code(services, request, user)
        progress = flow.progress
        email = progress.email if isinstance(progress, Verifying) else user.email
        await services.flows.save(flow, Verifying(email, phone_user=user.user_id))
        return RedirectResponse(f"/signup/verify/phone?flow={flow.flow_id}", status_code=303)
    return await sign_in_local(services, request, flow, user, amr.PASSWORD)


async def resend_allowed(services: Services, request: Request, account: str) -> int | None:
    """None when another code may be sent now; else the seconds to wait (Retry-After)."""
    return await _resend_allowed(services, account, client_address(services.settings, request))


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
            token = str(form.get("token") or "")
            try:
                user = await registration.confirm_email_link(services, token)
            except LoginError as exc:
                raise exc.page() from None
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
                page = form(request, flow, TooManyCodes(wait).message, 429)
                page.headers["Retry-After"] = str(wait)
                return page
            if user is not None and user.enabled and not user.email_verified:
                await send_code(services, request, user)
            return form(request, flow, notice="A new code is on its way.")
        try:
            user = await registration.confirm_email(services, email, str(data.get("code") or ""))
        except LoginError as exc:
            return form(request, flow, exc.message, exc.status)
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
                page = form(TooManyCodes(wait).message, 429)
                page.headers["Retry-After"] = str(wait)
                return page
            await send_phone_code(services, request, user)
            return form(notice="A new code is on its way.")
        try:
            verified = await registration.confirm_phone(
                services, user, str(data.get("code") or "")[:16]
            )
        except SignInExpired as exc:
            raise exc.page() from None
        except LoginError as exc:
            return form(exc.message, exc.status)
        return await sign_in_local(services, request, flow, verified, amr.PASSWORD)

    return page
