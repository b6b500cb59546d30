"""The second-factor page of a sign-in (`/login/mfa`): a renderer of the machine's
second-factor steps (`gateway.login.machine`) — a code from the authenticator app, a code by
e-mail, a passkey or a recovery code; or, when the account has none and one is required,
enrolment first, then its recovery codes, then on.

Which sign-ins get here, and why nothing is signed in until the second factor is done, is the
machine's to say (`gateway.login.machine.after_proof`). The account page's own second-factor
settings are in `gateway.ui.account_mfa`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import segno
from starlette.requests import Request
from starlette.responses import Response

from gateway.login import machine, notify
from gateway.login.steps import (
    AccountUnavailable,
    Enrolled,
    LoginError,
    NeedsEnrolment,
    NeedsSecondFactor,
    SecondFactorStep,
    SignInExpired,
    TooManyAttempts,
)
from gateway.text import Phrase
from gateway.ui.finish import proceed
from gateway.ui.flow_pages import context, flow_for, flow_form

if TYPE_CHECKING:
    from gateway.op.common import Handler
    from gateway.services import Services


def qr_data_uri(uri: str) -> str:
    """The otpauth:// URI as an SVG QR code (a data: URI the page's CSP allows)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=4, border=2))


def login_step(services: Services) -> Handler:
    """GET/POST /login/mfa: the second factor (or its enrolment) that finishes a sign-in; a
    renderer of the machine's second-factor steps."""

    async def page(request: Request) -> Response:
        if request.method == "GET":
            flow_id = request.query_params.get("flow") or ""
            form: Any = {}
        else:
            form = await request.form(max_fields=8, max_part_size=32 * 1024)
            flow_id = str(form.get("flow") or "")
            services.csrf.check(request, form, f"mfa:{flow_id}")
        flow = await flow_for(services, request, flow_id)
        try:
            step = await machine.second_factor(services, flow, enrol_anew=request.method == "GET")
        except LoginError as exc:
            raise exc.page() from None
        if request.method == "GET":
            return await render(services, request, step)
        try:
            return await submit(services, request, step, form)
        except LoginError as exc:
            if isinstance(exc, (SignInExpired, AccountUnavailable)):
                raise exc.page() from None
            answer = await render(services, request, step, exc.message, exc.status)
            if isinstance(exc, TooManyAttempts):
                answer.headers["Retry-After"] = str(exc.retry_after)
            return answer

    return page


async def submit(
    services: Services, request: Request, step: SecondFactorStep, form: Any
) -> Response:
    """The input of a second-factor step, to the machine; its answer, to the browser."""
    ctx = context(services, request)
    if isinstance(step, Enrolled):  # the recovery codes were shown: continue
        return await proceed(services, request, machine.continue_enrolled(step))
    if isinstance(step, NeedsSecondFactor):
        channel = str(form.get("action") or "")
        if channel in ("email", "sms") and channel in step.methods:
            sent = await machine.send_code(services, step, channel, ctx)
            notify.code(services, request, sent)
            notice = (
                Phrase("We sent a code to %(address)s.", address=mask(step.email))
                if channel == "email"
                else Phrase(
                    "We sent a code by text message to %(phone)s.", phone=mask_phone(step.phone)
                )
            )
            return await render(services, request, step, notice=notice)
        credential = str(form.get("credential") or "")
        if credential and "passkey" in step.methods:
            done = await machine.submit_passkey(services, step, credential, ctx)
            return await proceed(services, request, done)
    answer = await machine.submit_code(services, step, str(form.get("code") or "")[:32], ctx)
    if isinstance(answer, Enrolled):
        return await render(services, request, answer)
    return await proceed(services, request, answer)


async def render(
    services: Services,
    request: Request,
    step: SecondFactorStep,
    error: str | None = None,
    status: int = 200,
    notice: str | None = None,
) -> Response:
    """mfa.html for a second-factor step."""
    flow = step.flow
    context: dict[str, Any] = {
        "error": error,
        "notice": notice,
        "enrolled": not isinstance(step, NeedsEnrolment),
        "totp": False,
        "email_codes": False,
        "masked_email": "",
        "sms_codes": False,
        "masked_phone": "",
    }
    if isinstance(step, Enrolled):
        context |= {"recovery_codes": step.recovery_codes, "continue_only": True}
    elif isinstance(step, NeedsEnrolment):
        context |= {"secret": step.secret, "qr": qr_data_uri(step.uri)}
    else:
        context |= {
            "totp": "totp" in step.methods,
            "email_codes": "email" in step.methods,
            "masked_email": mask(step.email),
            "sms_codes": "sms" in step.methods,
            "masked_phone": mask_phone(step.phone),
        }
        if "passkey" in step.methods:
            context["passkey_options"] = await services.passkeys.authentication_options(
                "mfa", flow.flow_id, step.subject
            )
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


def mask(email: str) -> str:
    """j•••@example.com: enough for the owner to recognise, little for anyone else."""
    name, _, domain = email.partition("@")
    return f"{name[:1]}•••@{domain}" if domain else ""


def mask_phone(number: str) -> str:
    """•••• 1234: the last four digits of a number."""
    return f"•••• {number[-4:]}" if number else ""
