"""Second factors: the sign-in step, step-up for clients that demand one, and enrollment on the
account page.

Every sign-in ends in `complete_login`, which first asks `second_factor_gate`: a local account
with a second factor (or any, when `user_pool.mfa` is required), a federated sign-in when
`user_pool.federated_mfa` says so (unless the IdP's own `amr` already reports MFA), and any
sign-in to a client whose `access` policy says `mfa: true`. Such a sign-in gets no session yet:
what was proven so far is parked on the flow (sealed, expiring with it) and the browser goes to
`/login/mfa` — a code from the authenticator app, a code by e-mail, a passkey, or a recovery
code; or, when the account has none and one is required, enrollment first. Only then does
`complete_login` start the session (a new one: no fixation), with `amr` saying how. So a browser
that passed the password but not the second factor holds nothing that reaches authorize,
token, forward-auth or the account pages (SECURITY-TESTS D36).

A session that signed in without a second factor and then asks for a client that demands one
is stepped up the same way (`step_up`): parked from the session, no password asked again.

The factors of a local account belong to its user id; those of a federated sign-in to its
identity id (TOTP only: the gateway has no verified channel of its own to such a person).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import segno
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.amr import passed_second_factor
from gateway.connectors import UpstreamIdentity, local_connector_id
from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.errors import PageError
from gateway.flows import Flow
from gateway.forwarded import client_address
from gateway.ratelimit import Limit, RateLimited
from gateway.text import Phrase
from gateway.ui import notify
from gateway.ui.views import complete_login, flow_for, flow_form

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.services import Services
    from gateway.sessions import Session
    from gateway.users.directory import User

    Handler = Callable[[Request], Awaitable[Response]]

CODE_AMR = ["otp", "mfa"]
PASSKEY_AMR = ["hwk", "mfa"]
EMAIL_CODE = "mfa-email"


def is_local(services: Services, connector_id: str) -> bool:
    """Did this sign-in use Cognate's own user directory?"""
    return connector_id == local_connector_id(services.connectors)


async def has_factor(services: Services, subject: str, local: bool) -> bool:
    if await services.mfa.get(subject) is not None:
        return True
    return local and services.passkeys.enabled and bool(await services.passkeys.list(subject))


async def second_factor_gate(
    services: Services, flow: Flow, upstream: UpstreamIdentity
) -> Response | None:
    """The redirect to the second-factor step when this sign-in needs one, else None."""
    if passed_second_factor(upstream.amr):
        return None
    local = is_local(services, upstream.connector_id)
    pool = services.settings.user_pool
    policy = pool.mfa if local else pool.federated_mfa
    client = services.settings.client(flow.client_id)
    demanded = bool(client and client.demands_mfa)
    if policy == "off" and not demanded:
        return None
    if local:
        subject = upstream.subject
    else:
        from gateway.ui.account import resolve_identity

        subject = await resolve_identity(services, upstream)
    if policy != "required" and not demanded and not await has_factor(services, subject, local):
        return None
    return await park(services, flow, upstream, subject, local)


async def step_up(services: Services, flow: Flow, session: Session) -> Response:
    """A signed-in session without a second factor, at a client that demands one."""
    upstream = UpstreamIdentity(
        connector_id=session.connector_id,
        subject=session.subject,
        claims=session.profile,
        amr=session.amr,
        tokens=session.upstream,
    )
    local = is_local(services, session.connector_id)
    subject = session.subject if local else session.identity_id
    return await park(services, flow, upstream, subject, local)


async def park(
    services: Services, flow: Flow, upstream: UpstreamIdentity, subject: str, local: bool
) -> Response:
    await services.flows.save_connector_state(
        flow,
        {
            "connector": upstream.connector_id,
            "mfa_user": subject,
            "mfa_local": local,
            "mfa_subject": upstream.subject,
            "mfa_claims": upstream.claims,
            "mfa_amr": upstream.amr,
            "mfa_tokens": upstream.tokens,
        },
    )
    return RedirectResponse(f"/login/mfa?flow={flow.flow_id}", status_code=303)


def qr_data_uri(uri: str) -> str:
    """The otpauth:// URI as an SVG QR code (a data: URI the page's CSP allows)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=4, border=2))


def login_step(services: Services) -> Handler:
    """GET/POST /login/mfa: the second factor (or its enrollment) that finishes a sign-in."""
    pool = services.settings.user_pool

    def limits(request: Request, subject: str) -> list[tuple[Limit, str]]:
        config = services.settings.rate_limits
        return [
            (Limit("mfa-account", config.login_per_account, config.window), subject),
            (
                Limit("login-ip", config.login_per_ip, config.window),
                client_address(services.settings, request),
            ),
        ]

    async def page(request: Request) -> Response:
        if request.method == "GET":
            flow_id = request.query_params.get("flow") or ""
            form: Any = {}
        else:
            form = await request.form(max_fields=8, max_part_size=32 * 1024)
            flow_id = str(form.get("flow") or "")
            services.csrf.check(request, form, f"mfa:{flow_id}")
        flow = await flow_for(services, request, flow_id)
        saved = flow.connector_state
        subject = str(saved.get("mfa_user") or "")
        if not subject:
            raise PageError("Sign-in expired", "Start again from the application.")
        local = bool(saved.get("mfa_local", True))
        claims = dict(saved.get("mfa_claims") or {})
        email = str(claims.get("email") or "")
        if local:
            user = await services.users.get(subject)
            if user is None or not user.enabled:
                raise PageError("Sign-in failed", "Start again from the application.")
            email = user.email
        record = await services.mfa.get(subject)
        passkeys = (
            await services.passkeys.list(subject) if local and services.passkeys.enabled else []
        )
        email_codes = bool(record and record.email_otp and local and pool.email_mfa)

        async def render(error: str | None = None, status: int = 200, **extra: Any) -> Response:
            context: dict[str, Any] = {
                "error": error,
                "enrolled": record is not None or bool(passkeys),
                "totp": bool(record and record.totp_secret),
                "email_codes": email_codes,
                "masked_email": mask(email),
                **extra,
            }
            if context["enrolled"] and passkeys and "continue_only" not in extra:
                context["passkey_options"] = await services.passkeys.authentication_options(
                    "mfa", flow.flow_id, subject
                )
            if not context["enrolled"] and "recovery_codes" not in extra:
                secret = extra.get("secret") or str(saved.get("mfa_secret") or "")
                context |= {
                    "secret": secret,
                    "qr": qr_data_uri(services.mfa.provisioning_uri(secret, email or subject)),
                }
            return flow_form(
                services,
                request,
                flow,
                "mfa.html",
                "mfa",
                status,
                allow_scripts="passkey_options" in context,
                **context,
            )

        if saved.get("mfa_passed"):  # enrolled just now; the recovery codes were shown
            if request.method == "POST":
                return await finish(services, request, flow, saved, CODE_AMR)
            return await render(recovery_codes=[], continue_only=True)
        if request.method == "GET":
            if record is None and not passkeys:  # a second factor is required: enroll now
                secret = await services.mfa.begin(subject)
                await services.flows.save_connector_state(flow, {**saved, "mfa_secret": secret})
                return await render(secret=secret)
            return await render()
        if form.get("action") == "email" and email_codes:
            from gateway.ui.signup import resend_allowed

            wait = await resend_allowed(services, request, subject)
            if wait is not None:
                answer = await render("Too many codes sent. Try again later.", 429)
                answer.headers["Retry-After"] = str(wait)
                return answer
            code = await services.codes.issue(EMAIL_CODE, subject)
            notify.email(services, request, email, "mfa_code.txt", claims.get("locale"), code=code)
            return await render(
                notice=Phrase("We sent a code to %(address)s.", address=mask(email))
            )
        checks = limits(request, subject)
        try:
            await services.limiter.check(checks)
        except RateLimited as exc:
            answer = await render("Too many attempts. Wait a few minutes and try again.", 429)
            answer.headers["Retry-After"] = str(exc.retry_after)
            return answer
        credential = str(form.get("credential") or "")
        if credential and passkeys:
            use = await services.passkeys.authenticate("mfa", flow.flow_id, credential, subject)
            if use is None:
                await outcome(services, "passkey", "failure", subject)
                await services.limiter.fail(checks)
                return await render("That passkey could not be used. Try again.", 401)
            await outcome(services, "passkey", "success", subject)
            return await finish(services, request, flow, saved, PASSKEY_AMR)
        code = str(form.get("code") or "")[:32]
        if record is None and not passkeys:
            codes = await services.mfa.confirm(subject, code)
            if codes is None:
                await outcome(services, "totp", "failure", subject)
                await services.limiter.fail(checks)
                return await render("That code is not right. Check the app and try again.", 400)
            await outcome(services, "totp", "enrolled", subject)
            await services.flows.save_connector_state(flow, {**saved, "mfa_passed": True})
            return await render(recovery_codes=codes, continue_only=True)
        method: str | None = await services.mfa.verify(subject, code) if record else None
        if method is None and email_codes and await services.codes.check(EMAIL_CODE, subject, code):
            method = "email"
        if method is None:
            await outcome(services, "code", "failure", subject)
            await services.limiter.fail(checks)
            return await render("That code is not right, or it was already used.", 401)
        await outcome(services, method, "success", subject)
        return await finish(services, request, flow, saved, CODE_AMR)

    return page


def mask(email: str) -> str:
    """j•••@example.com: enough for the owner to recognise, little for anyone else."""
    name, _, domain = email.partition("@")
    return f"{name[:1]}•••@{domain}" if domain else ""


async def finish(
    services: Services, request: Request, flow: Flow, saved: dict[str, Any], amr: list[str]
) -> Response:
    upstream = UpstreamIdentity(
        connector_id=str(saved["connector"]),
        subject=str(saved.get("mfa_subject") or saved["mfa_user"]),
        claims=dict(saved.get("mfa_claims") or {}),
        amr=[*list(saved.get("mfa_amr") or []), *amr],
        tokens=saved.get("mfa_tokens"),
    )
    return await complete_login(services, request, flow, upstream)


async def outcome(services: Services, method: str, result: str, user_id: str) -> None:
    services.metrics.mfa.labels(method, result).inc()
    await services.audit.record(f"mfa.{result}", method=method, user_id=user_id)


async def account_subject(services: Services, request: Request) -> tuple[Session, str, bool]:
    """The signed-in session of an account page, its MFA subject and whether it is local."""
    from gateway.ui.account import signed_in

    session = await signed_in(services, request)
    if is_local(services, session.connector_id):
        return session, session.subject, True
    if services.settings.user_pool.federated_mfa == "off":
        raise PageError("Not available", "Sign in with your e-mail and password first.", 401)
    return session, session.identity_id, False


def account_mfa(services: Services) -> Handler:
    """GET/POST /account/mfa: the authenticator app and codes by e-mail of the signed-in user."""

    async def page(request: Request) -> Response:
        if services.settings.user_pool.mfa == "off":
            raise PageError("Not available", "Two-step sign-in is turned off here.", 404)
        session, subject, local = await account_subject(services, request)
        user = await services.users.get(subject) if local else None
        if local and user is None:
            raise PageError("Not available", "Sign in again.", 401)
        email = user.email if user else str(session.profile.get("email") or "")
        browser, new_cookie = services.csrf.browser_secret(request)
        purpose = f"account-mfa:{session.sid}"
        context: dict[str, Any] = {"csrf": services.csrf.token(browser, purpose)}
        status = 200
        if request.method == "POST":
            form = await request.form(max_fields=8, max_part_size=4096)
            services.csrf.check(request, form, purpose)
            action, code = str(form.get("action") or ""), str(form.get("code") or "")[:32]
            context, status = await _account_action(services, subject, user, email, action, code)
            context["csrf"] = services.csrf.token(browser, purpose)
        record = await services.mfa.get(subject)
        response = services.pages.render(
            request,
            "account_mfa.html",
            {
                "enrolled": record is not None,
                "totp": bool(record and record.totp_secret),
                "email_codes": bool(record and record.email_otp),
                "email_codes_offered": bool(
                    user and user.email_verified and services.settings.user_pool.email_mfa
                ),
                "email": email,
                "error": None,
                **context,
            },
            status_code=status,
        )
        if new_cookie:
            services.pages.set_cookie(response, CSRF_COOKIE, browser)
        return response

    return page


async def _account_action(
    services: Services, subject: str, user: User | None, email: str, action: str, code: str
) -> tuple[dict[str, Any], int]:
    def setup(secret: str) -> dict[str, Any]:
        uri = services.mfa.provisioning_uri(secret, email or subject)
        return {"setup": True, "secret": secret, "qr": qr_data_uri(uri)}

    if action == "begin":
        return setup(await services.mfa.begin(subject)), 200
    if action == "confirm":
        codes = await services.mfa.confirm(subject, code)
        if codes is None:
            await outcome(services, "totp", "failure", subject)
            # As at sign-in: the secret the app already holds stays, so a typo costs one retry,
            # not a new scan (until the pending secret expires).
            pending = await services.mfa.pending(subject)
            if pending is None:
                return {"error": "The setup has expired. Start it again."}, 400
            return {
                **setup(pending),
                "error": "That code is not right. Check the app and try again.",
            }, 400
        await outcome(services, "totp", "enrolled", subject)
        return {"recovery_codes": codes}, 200
    if action == "email":
        if user is None or not user.email_verified or not services.settings.user_pool.email_mfa:
            return {"error": "Codes by e-mail need a verified e-mail address."}, 400
        codes = await services.mfa.enable_email(subject)
        await outcome(services, "email", "enrolled", subject)
        return {"recovery_codes": codes}, 200
    if action == "remove":
        if await services.mfa.verify(subject, code) is None:
            await outcome(services, "code", "failure", subject)
            return {"error": "Enter a current code (or a recovery code) to turn it off."}, 400
        await services.mfa.remove(subject)
        await outcome(services, "totp", "removed", subject)
        return {"removed": True}, 200
    return {"error": "Unknown action."}, 400
