"""The account pages of a signed-in user: linking another sign-in method, changing the
password, and the list of their sessions.

`GET /account/link/{connector}` explains what linking means and asks to confirm;
`POST /account/link/{connector}` (CSRF-checked, signed-in) starts a *link flow* at that IdP.
When the IdP answers, `gateway.login.identity.link` adds the login to the session's identity —
only for the very session that started it, and never a login that already belongs to another
identity. Automatic linking by verified e-mail is the machine's (`gateway.login.identity`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from gateway.connectors import local_connector_id
from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.errors import PageError
from gateway.login import identity
from gateway.logout import end_local_user
from gateway.ratelimit import Attempt, Limit, RateLimited
from gateway.text import Phrase, wait_of
from gateway.ui.signed_in import signed_in
from gateway.ui.upstream import redirect_connector, start_redirect
from gateway.users.directory import InvalidPassword

if TYPE_CHECKING:
    from gateway.op.common import Handler
    from gateway.services import Services


def link(services: Services) -> Handler:
    """GET: the confirmation page. POST: confirmed, off to the IdP."""

    async def page(request: Request) -> Response:
        connector = redirect_connector(services, request.path_params["connector"])
        step = identity.ask_to_link(await signed_in(services, request), connector.id)
        purpose = f"link:{connector.id}:{step.session.sid}"
        if request.method == "GET":
            browser, new_cookie = services.csrf.browser_secret(request)
            response = services.pages.render(
                request,
                "link_confirm.html",
                {
                    "connector": connector,
                    "email": step.email,
                    "csrf": services.csrf.token(browser, purpose),
                },
            )
            if new_cookie:
                services.pages.set_cookie(response, CSRF_COOKIE, browser)
            return response
        form = await request.form(max_fields=4, max_part_size=4096)
        browser = services.csrf.check(request, form, purpose)
        flow = await identity.confirm_link(services, step, browser)
        return await start_redirect(services, request, flow, connector)

    return page


def change_password(services: Services) -> Handler:
    """GET/POST /account/password: a signed-in local user sets a new password. Every other
    session and token of theirs ends; this browser gets a fresh session (new id)."""

    class WrongPassword(Exception):
        """The current password did not match (not a policy problem: its own message)."""

    async def page(request: Request) -> Response:
        session = await signed_in(services, request)
        if session.connector_id != local_connector_id(services.connectors):
            raise PageError("Not available", "This account signs in elsewhere.", 404)
        browser, new_cookie = services.csrf.browser_secret(request)
        purpose = f"password:{session.sid}"
        context: dict[str, object] = {"error": None, "done": False}
        status = 200
        retry_after: int | None = None
        if request.method == "POST":
            form = await request.form(max_fields=4, max_part_size=8192)
            services.csrf.check(request, form, purpose)
            config = services.settings.rate_limits
            checks = [
                (Limit("login-account", config.login_per_account, config.window), session.subject)
            ]
            user = await services.users.get(session.subject)
            current, new = str(form.get("current") or ""), str(form.get("password") or "")
            try:
                attempt = Attempt(await services.limiter.take(checks))
                try:
                    if (
                        user is None
                        or await services.users.authenticate(user.email, current) is None
                    ):
                        attempt.failed()
                        raise WrongPassword
                finally:
                    await services.limiter.settle(attempt)
                await services.users.set_password(user.user_id, new)
            except RateLimited as exc:
                wait = wait_of(exc.retry_after)
                context["error"] = Phrase("Too many attempts. Try again in %(wait)s.", wait=wait)
                status = 429
                retry_after = exc.retry_after
            except WrongPassword:
                context["error"], status = "The current password is not right.", 400
            except InvalidPassword as exc:
                context["error"] = Phrase("The new password %(reason)s.", reason=exc.reason)
                status = 400
            else:
                await end_local_user(services, session.subject)
                await services.audit.record("user.password_changed", user_id=session.subject)
                _, cookie = await services.sessions.create(
                    identity_id=session.identity_id,
                    connector_id=session.connector_id,
                    subject=session.subject,
                    amr=session.amr,
                    profile=session.profile,
                )
                response = services.pages.render(
                    request, "account_password.html", {"done": True, "error": None}
                )
                services.pages.set_cookie(response, services.settings.sessions.cookie_name, cookie)
                return response
        context["csrf"] = services.csrf.token(browser, purpose)
        response = services.pages.render(
            request, "account_password.html", context, status_code=status
        )
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        if new_cookie:
            services.pages.set_cookie(response, CSRF_COOKIE, browser)
        return response

    return page


def sessions_page(services: Services) -> Handler:
    """GET/POST /account/sessions: the signed-in identity's sessions, each can be ended."""

    async def page(request: Request) -> Response:
        session = await signed_in(services, request)
        browser, new_cookie = services.csrf.browser_secret(request)
        purpose = f"sessions:{session.sid}"
        ended = False
        if request.method == "POST":
            form = await request.form(max_fields=4, max_part_size=1024)
            services.csrf.check(request, form, purpose)
            target = str(form.get("sid") or "")
            mine = {s["sid"] for s in await services.sessions.of_identity(session.identity_id)}
            if target not in mine or target == session.sid:
                raise PageError("Not found", "There is no such session to end here.", 404)
            await services.sessions.end(target)
            await services.logout.session_ended(target, session.identity_id)
            await services.audit.record(
                "session.ended", identity_id=session.identity_id, by="account_page"
            )
            ended = True
        listed = [
            {
                **s,
                "current": s["sid"] == session.sid,
                "since": time.strftime(
                    "%Y-%m-%d %H:%M UTC", time.gmtime(int(s.get("created") or 0))
                ),
            }
            for s in await services.sessions.of_identity(session.identity_id)
        ]
        response = services.pages.render(
            request,
            "account_sessions.html",
            {
                "sessions": listed,
                "ended": ended,
                "csrf": services.csrf.token(browser, purpose),
            },
        )
        if new_cookie:
            services.pages.set_cookie(response, CSRF_COOKIE, browser)
        return response

    return page
