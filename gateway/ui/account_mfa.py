"""The account page's second factors (`/account/mfa`): the authenticator app and codes by
e-mail of the signed-in user — set up, confirm, turn off (with a current code).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from gateway import amr
from gateway.connectors import local_connector_id
from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.errors import PageError
from gateway.login.machine import mfa_outcome
from gateway.ui.mfa import qr_data_uri
from gateway.ui.signed_in import signed_in

if TYPE_CHECKING:
    from gateway.op.common import Handler
    from gateway.services import Services
    from gateway.sessions import Session
    from gateway.users.directory import User


async def account_subject(services: Services, request: Request) -> tuple[Session, str, bool]:
    """The signed-in session of an account page, its MFA subject and whether it is local."""
    session = await signed_in(services, request)
    if session.connector_id == local_connector_id(services.connectors):
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
            record = await services.mfa.get(subject)
            if (
                action in ("begin", "confirm")
                and record is not None
                and record.totp_secret
                and not amr.passed_second_factor(session.amr)
            ):
                # Replacing the app takes what removing it takes: a sign-in that passed it.
                context, status = {"error": "Sign in with your second factor to replace it."}, 403
            else:
                context, status = await _account_action(
                    services, subject, user, email, action, code
                )
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
                "sms_codes": bool(record and record.sms_otp),
                "sms_codes_offered": _texts_offered(services, user),
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
            await mfa_outcome(services, "totp", "failure", subject)
            # As at sign-in: the secret the app already holds stays, so a typo costs one retry,
            # not a new scan (until the pending secret expires).
            pending = await services.mfa.pending(subject)
            if pending is None:
                return {"error": "The setup has expired. Start it again."}, 400
            return {
                **setup(pending),
                "error": "That code is not right. Check the app and try again.",
            }, 400
        await mfa_outcome(services, "totp", "enrolled", subject)
        return {"recovery_codes": codes}, 200
    if action == "email":
        if user is None or not user.email_verified or not services.settings.user_pool.email_mfa:
            return {"error": "Codes by e-mail need a verified e-mail address."}, 400
        codes = await services.mfa.enable(subject, "email")
        await mfa_outcome(services, "email", "enrolled", subject)
        return {"recovery_codes": codes}, 200
    if action == "sms":
        if not _texts_offered(services, user):
            return {"error": "Codes by text message need a verified phone number."}, 400
        codes = await services.mfa.enable(subject, "sms")
        await mfa_outcome(services, "sms", "enrolled", subject)
        return {"recovery_codes": codes}, 200
    if action == "remove":
        if await services.mfa.verify(subject, code) is None:
            await mfa_outcome(services, "code", "failure", subject)
            return {"error": "Enter a current code (or a recovery code) to turn it off."}, 400
        await services.mfa.remove(subject)
        await mfa_outcome(services, "totp", "removed", subject)
        return {"removed": True}, 200
    return {"error": "Unknown action."}, 400


def _texts_offered(services: Services, user: User | None) -> bool:
    """Codes by text message: a local account with a verified number, where the pool sends them."""
    return bool(
        user
        and user.phone_number
        and user.phone_number_verified
        and services.settings.user_pool.sms_mfa
    )
