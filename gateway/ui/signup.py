"""Self sign-up and e-mail verification (when `user_pool.self_sign_up` is on).

Nothing here tells an outsider whether an address has an account: sign-up answers the same way
(and costs the same argon2 hash) for new and existing addresses, and the e-mail — a code for a
new account, a "someone tried to sign up" notice for an existing one — is sent in the background
so the mail server's speed is not a signal either. A code is bound to its account, expires, and
allows a few attempts (`gateway.users.codes`). An account whose address is unverified can sign in
only by passing through this verification when the pool requires it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.connectors import UpstreamIdentity, local_connector_id
from gateway.errors import PageError
from gateway.flows import Flow
from gateway.ratelimit import Limit, RateLimited
from gateway.ui.csrf import COOKIE as CSRF_COOKIE
from gateway.users.directory import InvalidPassword, UserExists, normalize_email
from gateway.users.hooks import HookFailed
from gateway.users.senders import render

if TYPE_CHECKING:
    from gateway.op.common import Handler
    from gateway.services import Services

log = logging.getLogger("cognate.signup")
VERIFY = "verify-email"


async def send_code(services: Services, user_id: str, email: str) -> None:
    """Issue a verification code and a link, and e-mail them (in the background). The link
    is built on the configured issuer, never on the request's Host (no forged-host links)."""
    code = await services.codes.issue(VERIFY, user_id)
    token = await services.codes.issue_link(VERIFY, user_id)
    subject, body = render(
        "verify_email.txt",
        code=code,
        link=f"{services.settings.issuer}/signup/verify/link?token={token}",
        issuer=services.settings.issuer,
        minutes=services.codes.ttl // 60,
    )
    services.background.spawn(services.email.send(email, subject, body))


async def to_verification(services: Services, flow: Flow, email: str) -> Response:
    """Remember whose code the flow waits for, and show the code page."""
    await services.flows.save_connector_state(flow, {"verify_email": normalize_email(email)})
    return RedirectResponse(f"/signup/verify?flow={flow.flow_id}", status_code=303)


def signup(services: Services) -> Handler:
    from gateway.ui.views import complete_login, flow_for, flow_form

    pool = services.settings.user_pool

    def form(
        request: Request, flow: Flow, error: str | None = None, status: int = 200, email: str = ""
    ) -> Response:
        return flow_form(
            services, request, flow, "signup.html", "signup", status, error=error, email=email
        )

    async def page(request: Request) -> Response:
        if not pool.self_sign_up:
            raise PageError("Sign-up is closed", "Ask an administrator for an account.", 404)
        if request.method == "GET":
            return form(
                request, await flow_for(services, request, request.query_params.get("flow"))
            )
        data = await request.form(max_fields=16, max_part_size=16 * 1024)
        flow_id = str(data.get("flow") or "")
        services.csrf.check(request, data, f"signup:{flow_id}")
        flow = await flow_for(services, request, flow_id)
        email = normalize_email(str(data.get("email") or ""))[:254]
        password, name = str(data.get("password") or ""), str(data.get("name") or "")[:128]
        domain = email.rpartition("@")[2]
        if pool.allowed_email_domains and domain not in pool.allowed_email_domains:
            return form(
                request,
                flow,
                "Accounts with this e-mail domain cannot be created here.",
                400,
                email,
            )
        ip = request.client.host if request.client else "unknown"
        limit = [(Limit("signup-ip", 20, 3600), ip)]
        try:
            await services.limiter.check(limit)
        except RateLimited as exc:
            page = form(request, flow, "Too many sign-ups from here. Try again later.", 429, email)
            page.headers["Retry-After"] = str(exc.retry_after)
            return page
        await services.limiter.fail(limit)  # every sign-up counts
        auto_confirm = False
        if services.hooks.enabled("pre_sign_up"):
            # Asked for every sign-up, existing address or not: the answer reveals nothing.
            try:
                verdict = await services.hooks.call(
                    "pre_sign_up", {"email": email, "attributes": {"name": name or None}}
                )
            except HookFailed:
                return form(request, flow, "Sign-up is unavailable right now.", 503, email)
            if verdict.get("allow") is not True:
                message = str(verdict.get("message") or "This account cannot be created.")
                return form(request, flow, message[:200], 403, email)
            auto_confirm = verdict.get("auto_confirm") is True
        try:
            user = await services.users.create(
                email, password, name=name or None, email_verified=auto_confirm
            )
        except InvalidPassword as exc:
            return form(request, flow, f"Choose another password: it {exc}.", 400, email)
        except UserExists:
            subject, body = render("already_registered.txt", issuer=services.settings.issuer)
            services.background.spawn(services.email.send(email, subject, body))
        else:
            await services.audit.record("user.signed_up", user_id=user.user_id, ip=ip)
            if auto_confirm:  # the hook vouched for the address: signed in at once
                await confirmed(services, user.user_id, user.email)
                local = local_connector_id(services.connectors) or "local"
                return await complete_login(
                    services,
                    request,
                    flow,
                    UpstreamIdentity(local, user.user_id, services.users.claims(user), amr=["pwd"]),
                )
            await send_code(services, user.user_id, user.email)
        return await to_verification(services, flow, email)

    return page


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
    from gateway.ui.views import complete_login, flow_for, flow_form

    def form(request: Request, flow: Flow, error: str | None = None, status: int = 200) -> Response:
        return flow_form(
            services,
            request,
            flow,
            "verify.html",
            "verify",
            status,
            email=flow.connector_state.get("verify_email", ""),
            error=error,
        )

    async def page(request: Request) -> Response:
        if request.method == "GET":
            flow = await flow_for(services, request, request.query_params.get("flow"))
            return form(request, flow)
        data = await request.form(max_fields=8, max_part_size=1024)
        flow_id = str(data.get("flow") or "")
        services.csrf.check(request, data, f"verify:{flow_id}")
        flow = await flow_for(services, request, flow_id)
        email = str(flow.connector_state.get("verify_email") or "")
        user = await services.users.by_email(email) if email else None
        code = str(data.get("code") or "")
        if user is None or not await services.codes.check(VERIFY, user.user_id, code):
            return form(request, flow, "That code is not right, or it has expired.", 400)
        user = await services.users.mark_email_verified(user.user_id)
        await services.audit.record("user.email_verified", user_id=user.user_id)
        await confirmed(services, user.user_id, user.email)
        local = local_connector_id(services.connectors) or "local"
        return await complete_login(
            services,
            request,
            flow,
            UpstreamIdentity(local, user.user_id, services.users.claims(user), amr=["pwd"]),
        )

    return page
