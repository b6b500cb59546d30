"""Passkey pages: passwordless sign-in (`POST /login/passkey`, the sign-in page's passkey
button) and the account's passkeys (`/account/passkeys`: add, see, remove).

A passkey used with user verification (PIN or biometrics on the authenticator) is two factors
in one gesture, so a passwordless sign-in has `amr` ["hwk", "user", "mfa"] and needs no second
step. Failures look the same whatever went wrong (unknown credential, wrong signature, stale
challenge) and count against the same per-IP limit as passwords.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.errors import PageError
from gateway.login import machine
from gateway.login.machine import mfa_outcome
from gateway.login.steps import LoginError, TooManyAttempts
from gateway.ui.finish import proceed
from gateway.ui.flow_pages import context, flow_for
from gateway.ui.login import login_form
from gateway.ui.signed_in import local_account

if TYPE_CHECKING:
    from gateway.op.common import Handler
    from gateway.services import Services

OFF = PageError(
    "Not available", "Passkeys are turned off here (or the gateway has no domain name).", 404
)


def passwordless(services: Services) -> Handler:
    """POST /login/passkey: a discoverable passkey signs in on its own."""

    async def page(request: Request) -> Response:
        if not services.passkeys.enabled:
            raise OFF
        form = await request.form(max_fields=8, max_part_size=32 * 1024)
        flow_id = str(form.get("flow") or "")
        services.csrf.check(request, form, f"login:{flow_id}")
        flow = await flow_for(services, request, flow_id)
        credential = str(form.get("credential") or "")
        try:
            step = await machine.passkey(services, flow, credential, context(services, request))
        except LoginError as exc:
            answer = await login_form(services, request, flow, error=exc.message, status=exc.status)
            if isinstance(exc, TooManyAttempts):
                answer.headers["Retry-After"] = str(exc.retry_after)
            return answer
        return await proceed(services, request, step)

    return page


def account_passkeys(services: Services) -> Handler:
    """GET/POST /account/passkeys: the signed-in user's passkeys."""

    async def page(request: Request) -> Response:
        if not services.passkeys.enabled:
            raise OFF
        session, user = await local_account(services, request)
        browser, new_cookie = services.csrf.browser_secret(request)
        purpose = f"account-passkeys:{session.sid}"
        context: dict[str, Any] = {"error": None, "notice": None}
        status = 200
        if request.method == "POST":
            form = await request.form(max_fields=8, max_part_size=32 * 1024)
            services.csrf.check(request, form, purpose)
            action = form.get("action")
            if action == "remove":
                removed = await services.passkeys.remove(user.user_id, str(form.get("id") or ""))
                if removed:
                    await mfa_outcome(services, "passkey", "removed", user.user_id)
                context["notice"] = "Passkey removed." if removed else None
            elif action == "add":
                added = await services.passkeys.register(
                    session.sid,
                    user.user_id,
                    str(form.get("credential") or ""),
                    str(form.get("name") or ""),
                )
                if added is None:
                    context["error"] = "The passkey could not be added. Try again."
                    status = 400
                else:
                    await mfa_outcome(services, "passkey", "enrolled", user.user_id)
                    context["notice"] = f"Passkey “{added.name}” added."
            else:
                context["error"] = "Unknown action."
                status = 400
        options = await services.passkeys.registration_options(
            session.sid, user.user_id, user.email
        )
        response = services.pages.render(
            request,
            "account_passkeys.html",
            {
                **context,
                "csrf": services.csrf.token(browser, purpose),
                "email": user.email,
                "passkeys": [
                    {
                        "name": k.name,
                        "credential_id": k.credential_id,
                        "added": day(k.created),
                        "last_used": day(k.last_used) if k.last_used else None,
                    }
                    for k in await services.passkeys.list(user.user_id)
                ],
                "options": options,
            },
            status_code=status,
            allow_scripts=True,
        )
        if new_cookie:
            services.pages.set_cookie(response, CSRF_COOKIE, browser)
        return response

    return page


def day(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))
