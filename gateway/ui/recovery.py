"""Forgot password, the hosted pages: an e-mailed code, then a new password (the rules, and
what a reset ends, are `gateway.login.recovery`'s).

As with sign-up, the answer to "send me a code" is the same for existing and unknown addresses
(a code goes out only to an account that exists, in the background), requests are rate-limited
per IP and per address, and a code is bound to one account and purpose, expires and allows few
attempts. Setting the new password ends every other session and refresh token of the account.
The e-mail carries a code and a link; the link is built on the configured issuer, never on the
request's (forgeable) Host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.forwarded import client_address
from gateway.login import notify, recovery
from gateway.login.flows import Flow
from gateway.login.progress import Resetting
from gateway.login.recovery import ResetLinkExpired
from gateway.login.steps import LoginError, TooManyAttempts
from gateway.ui.direct import account_flow
from gateway.ui.flow_pages import flow_for, flow_form
from gateway.users.directory import (
    InvalidPassword,
    choose_another,
    normalize_email,
)

if TYPE_CHECKING:
    from gateway.services import Services


def routes(services: Services) -> list[BaseRoute]:
    """/forgot (ask for a code) and /forgot/reset (code + new password)."""

    def form(
        request: Request, flow: Flow, template: str, error: str | None = None, status: int = 200
    ) -> Response:
        return flow_form(
            services,
            request,
            flow,
            template,
            "reset",
            status,
            email=flow.progress.email if isinstance(flow.progress, Resetting) else "",
            usernames=services.settings.user_pool.usernames,
            error=error,
        )

    async def request_code(request: Request) -> Response:
        if request.method == "GET":
            if not request.query_params.get("flow"):  # opened directly: reset, then sign in
                return await account_flow(services, request, "/forgot")
            flow = await flow_for(services, request, request.query_params.get("flow"))
            return form(request, flow, "forgot.html")
        data = await request.form(max_fields=8, max_part_size=4096)
        flow_id = str(data.get("flow") or "")
        services.csrf.check(request, data, f"reset:{flow_id}")
        flow = await flow_for(services, request, flow_id)
        email = normalize_email(str(data.get("email") or ""))[:254]
        try:
            sent = await recovery.request_code(
                services, email, client_address(services.settings, request)
            )
        except TooManyAttempts as exc:
            page = form(request, flow, "forgot.html", exc.message, exc.status)
            page.headers["Retry-After"] = str(exc.retry_after)
            return page
        if sent is not None:
            notify.email(
                services,
                request,
                sent.user.email,
                "reset_password.txt",
                sent.user.locale,
                code=sent.code,
                # On the configured issuer, never on the request's Host (SECURITY-TESTS D34).
                link=f"{services.settings.issuer}/forgot/reset/link?token={sent.link_token}",
            )
        await services.flows.save(flow, Resetting(email))
        return RedirectResponse(f"/forgot/reset?flow={flow.flow_id}", status_code=303)

    async def reset(request: Request) -> Response:
        if request.method == "GET":
            flow = await flow_for(services, request, request.query_params.get("flow"))
            return form(request, flow, "reset.html")
        data = await request.form(max_fields=8, max_part_size=16 * 1024)
        flow_id = str(data.get("flow") or "")
        services.csrf.check(request, data, f"reset:{flow_id}")
        flow = await flow_for(services, request, flow_id)
        email = flow.progress.email if isinstance(flow.progress, Resetting) else ""
        password, code = str(data.get("password") or ""), str(data.get("code") or "")
        try:
            await recovery.reset_with_code(services, email, code, password)
        except InvalidPassword as exc:
            return form(request, flow, "reset.html", choose_another(exc), 400)
        except LoginError as exc:
            return form(request, flow, "reset.html", exc.message, exc.status)
        return RedirectResponse(f"/login?flow={flow.flow_id}", status_code=303)

    async def reset_by_link(request: Request) -> Response:
        """The link in the reset e-mail: a new-password form in any browser. The token is
        spent only once the new password passes the policy, so a weak choice can be retried."""
        browser, new_cookie = services.csrf.browser_secret(request)
        context: dict[str, Any] = {"error": None, "done": False}
        status = 200
        if request.method == "GET":
            context["token"] = request.query_params.get("token", "")[:64]
        else:
            data = await request.form(max_fields=4, max_part_size=8192)
            services.csrf.check(request, data, "reset-link")
            token, password = str(data.get("token") or "")[:64], str(data.get("password") or "")
            context["token"] = token
            try:
                await recovery.reset_with_link(services, token, password)
            except InvalidPassword as exc:
                context["error"], status = choose_another(exc), 400
            except ResetLinkExpired as exc:
                raise exc.page() from None
            else:
                context["done"] = True
        context["csrf"] = services.csrf.token(browser, "reset-link")
        response = services.pages.render(request, "reset_link.html", context, status_code=status)
        if new_cookie:
            services.pages.set_cookie(response, CSRF_COOKIE, browser)
        return response

    return [
        Route("/forgot", request_code, methods=["GET", "POST"]),
        Route("/forgot/reset", reset, methods=["GET", "POST"]),
        Route("/forgot/reset/link", reset_by_link, methods=["GET", "POST"]),
    ]
