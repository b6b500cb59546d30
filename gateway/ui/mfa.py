"""The second-factor pages: the sign-in step, and enrollment on the account page.

Sign-in: after a right password, an account with TOTP (or any account, when the pool requires
MFA) does not get a session yet. The password step is parked on the flow (sealed, expiring with
it) and the browser goes to `/login/mfa`: a code from the authenticator app or a recovery code,
or — when the pool requires MFA and the account has none — enrollment first. Only then does
`complete_login` start the session (a new one: no fixation), with `amr` saying `otp`/`mfa`. So a
browser that passed the password but not the second factor holds nothing that reaches
authorize, token, forward-auth or the account pages (SECURITY-TESTS D36).

Account page: `/account/mfa` to set up an authenticator app (QR code and the secret as text,
confirmed with a code; ten recovery codes shown once) or to remove it (needs a current code).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import segno
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.connectors import UpstreamIdentity, local_connector_id
from gateway.errors import PageError
from gateway.flows import Flow
from gateway.ratelimit import Limit, RateLimited
from gateway.ui.csrf import COOKIE as CSRF_COOKIE
from gateway.ui.views import complete_login, flow_for, flow_form

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.services import Services
    from gateway.sessions import Session

    Handler = Callable[[Request], Awaitable[Response]]

MFA_AMR = ["otp", "mfa"]


async def park_password_step(
    services: Services, flow: Flow, upstream: UpstreamIdentity
) -> Response | None:
    """After a right password: the redirect to the second-factor step, or None when this
    account signs in with the password alone."""
    policy = services.settings.user_pool.mfa
    if policy == "off" or not is_local(services, upstream.connector_id):
        return None
    enrolled = await services.mfa.get(upstream.subject) is not None
    if not enrolled and policy != "required":
        return None
    await services.flows.save_connector_state(
        flow,
        {
            "connector": upstream.connector_id,
            "mfa_user": upstream.subject,
            "mfa_claims": upstream.claims,
            "mfa_amr": upstream.amr,
        },
    )
    return RedirectResponse(f"/login/mfa?flow={flow.flow_id}", status_code=303)


def is_local(services: Services, connector_id: str) -> bool:
    """Did this sign-in use Cognate's own user directory (the accounts MFA belongs to)?"""
    return connector_id == local_connector_id(services.connectors)


def qr_data_uri(uri: str) -> str:
    """The otpauth:// URI as an SVG QR code (a data: URI the page's CSP allows)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=4, border=2))


def login_step(services: Services) -> Handler:
    """GET/POST /login/mfa: the code (or the enrollment) that finishes a parked sign-in."""

    def limits(request: Request, user_id: str) -> list[tuple[Limit, str]]:
        config = services.settings.rate_limits
        return [
            (Limit("mfa-account", config.login_per_account, config.window), user_id),
            (
                Limit("login-ip", config.login_per_ip, config.window),
                request.client.host if request.client else "unknown",
            ),
        ]

    async def page(request: Request) -> Response:
        if request.method == "GET":
            flow_id = request.query_params.get("flow") or ""
            form: Any = {}
        else:
            form = await request.form(max_fields=8, max_part_size=4096)
            flow_id = str(form.get("flow") or "")
            services.csrf.check(request, form, f"mfa:{flow_id}")
        flow = await flow_for(services, request, flow_id)
        saved = flow.connector_state
        user_id = str(saved.get("mfa_user") or "")
        if not user_id:
            raise PageError("Sign-in expired", "Start again from the application.")
        user = await services.users.get(user_id)
        if user is None or not user.enabled:
            raise PageError("Sign-in failed", "Start again from the application.")
        record = await services.mfa.get(user_id)

        def render(error: str | None = None, status: int = 200, **extra: Any) -> Response:
            context: dict[str, Any] = {"error": error, "enrolled": record is not None, **extra}
            if record is None and "recovery_codes" not in extra:
                secret = extra.get("secret") or str(saved.get("mfa_secret") or "")
                context |= {
                    "secret": secret,
                    "qr": qr_data_uri(services.mfa.provisioning_uri(secret, user.email)),
                }
            return flow_form(services, request, flow, "mfa.html", "mfa", status, **context)

        if saved.get("mfa_passed"):  # enrolled just now; the recovery codes were shown
            if request.method == "POST":
                return await finish(services, request, flow, saved)
            return render(recovery_codes=[], continue_only=True)
        if request.method == "GET":
            if record is None:  # the pool requires MFA: enroll now
                secret = await services.mfa.begin(user_id)
                await services.flows.save_connector_state(flow, {**saved, "mfa_secret": secret})
                return render(secret=secret)
            return render()
        checks = limits(request, user_id)
        try:
            await services.limiter.check(checks)
        except RateLimited as exc:
            answer = render("Too many attempts. Wait a few minutes and try again.", 429)
            answer.headers["Retry-After"] = str(exc.retry_after)
            return answer
        code = str(form.get("code") or "")[:32]
        if record is None:
            codes = await services.mfa.confirm(user_id, code)
            if codes is None:
                await outcome(services, "totp", "failure", user_id)
                await services.limiter.fail(checks)
                return render("That code is not right. Check the app and try again.", 400)
            await outcome(services, "totp", "enrolled", user_id)
            await services.flows.save_connector_state(flow, {**saved, "mfa_passed": True})
            return render(recovery_codes=codes, continue_only=True)
        method = await services.mfa.verify(user_id, code)
        if method is None:
            await outcome(services, "code", "failure", user_id)
            await services.limiter.fail(checks)
            return render("That code is not right, or it was already used.", 401)
        await outcome(services, method, "success", user_id)
        return await finish(services, request, flow, saved)

    return page


async def finish(
    services: Services, request: Request, flow: Flow, saved: dict[str, Any]
) -> Response:
    upstream = UpstreamIdentity(
        connector_id=str(saved["connector"]),
        subject=str(saved["mfa_user"]),
        claims=dict(saved.get("mfa_claims") or {}),
        amr=[*list(saved.get("mfa_amr") or []), *MFA_AMR],
    )
    return await complete_login(services, request, flow, upstream)


async def outcome(services: Services, method: str, result: str, user_id: str) -> None:
    services.metrics.mfa.labels(method, result).inc()
    await services.audit.record(f"mfa.{result}", method=method, user_id=user_id)


def account_mfa(services: Services) -> Handler:
    """GET/POST /account/mfa: set up or remove the authenticator app of the signed-in user."""

    async def page(request: Request) -> Response:
        if services.settings.user_pool.mfa == "off":
            raise PageError("Not available", "Two-step sign-in is turned off here.", 404)
        cookie = services.pages.cookie(request, services.settings.sessions.cookie_name)
        session = await services.sessions.load(cookie)
        if session is None or not is_local(services, session.connector_id):
            raise PageError("Not available", "Sign in with your e-mail and password first.", 401)
        user = await services.users.get(session.subject)
        if user is None:
            raise PageError("Not available", "Sign in again.", 401)
        browser, new_cookie = services.csrf.browser_secret(request)
        purpose = f"account-mfa:{session.sid}"
        context: dict[str, Any] = {"csrf": services.csrf.token(browser, purpose)}
        record = await services.mfa.get(user.user_id)
        status = 200
        if request.method == "POST":
            form = await request.form(max_fields=8, max_part_size=4096)
            services.csrf.check(request, form, purpose)
            action, code = str(form.get("action") or ""), str(form.get("code") or "")[:32]
            context, status = await _account_action(services, session, user.email, action, code)
            context["csrf"] = services.csrf.token(browser, purpose)
            record = await services.mfa.get(user.user_id)
        response = services.pages.render(
            request,
            "account_mfa.html",
            {"enrolled": record is not None, "email": user.email, "error": None, **context},
            status_code=status,
        )
        if new_cookie:
            services.pages.set_cookie(response, CSRF_COOKIE, browser)
        return response

    return page


async def _account_action(
    services: Services, session: Session, email: str, action: str, code: str
) -> tuple[dict[str, Any], int]:
    user_id = session.subject
    if action == "begin":
        secret = await services.mfa.begin(user_id)
        uri = services.mfa.provisioning_uri(secret, email)
        return {"setup": True, "secret": secret, "qr": qr_data_uri(uri)}, 200
    if action == "confirm":
        codes = await services.mfa.confirm(user_id, code)
        if codes is None:
            await outcome(services, "totp", "failure", user_id)
            return {"error": "That code is not right. Start the setup again."}, 400
        await outcome(services, "totp", "enrolled", user_id)
        return {"recovery_codes": codes}, 200
    if action == "remove":
        if await services.mfa.verify(user_id, code) is None:
            await outcome(services, "code", "failure", user_id)
            return {"error": "Enter a current code (or a recovery code) to remove it."}, 400
        await services.mfa.remove(user_id)
        await outcome(services, "totp", "removed", user_id)
        return {"removed": True}, 200
    return {"error": "Unknown action."}, 400
