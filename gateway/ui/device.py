"""The `/device` page of the device authorization grant (RFC 8628 §3.3).

The person enters (or, from `verification_uri_complete`, confirms) the user code, sees which
application asks and for which scopes, and approves or denies. Approving needs a signed-in
user: with a session that satisfies the client, the approval happens at once; otherwise
"approve" starts an ordinary sign-in *flow* (password, second factor, upstream IdPs, all of
`gateway.login`) whose end is `approve_device` rather than a code sent to a
redirect URI (`gateway.ui.finish.resume` dispatches on `Flow.device`).

Guessing user codes is limited per client IP (wrong codes count, as wrong passwords do at
`/login`); the number of codes alive at once is limited per client at the authorization
endpoint (`gateway.op.device`), so the chance of a hit stays negligible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.crypto import constant_time_equals
from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.errors import PageError
from gateway.forwarded import client_address
from gateway.grants import Authorization
from gateway.login import machine
from gateway.login.flows import Flow
from gateway.op.authorize import needs_step_up
from gateway.op.common import Handler
from gateway.op.device import DeviceRecord, display_user_code, normalize_user_code
from gateway.op.minting import claims_for_scope
from gateway.policy import refusal
from gateway.ratelimit import Attempt, Limit, RateLimited
from gateway.sessions import Session
from gateway.store import Write
from gateway.text import Phrase, wait_of

if TYPE_CHECKING:
    from gateway.services import Services

_WRONG = "That code is not valid, was already used or has expired."


async def _lookup(services: Services, request: Request, typed: str) -> DeviceRecord | str:
    """The pending record for a typed user code, or the message saying why not. Raises a
    429 page (with Retry-After) once this IP has guessed wrong too often."""
    config = services.settings.device
    ip = client_address(services.settings, request)
    checks = [(Limit("device-guess-ip", config.guesses_per_ip, config.window), ip)]
    try:
        attempt = Attempt(await services.limiter.take(checks))  # before the guess is checked
    except RateLimited as exc:
        await services.audit.record("device.guess_limited", ip=ip)
        raise _TooManyGuesses(exc.retry_after) from None
    try:
        code = normalize_user_code(typed)
        found = await services.device.by_user_code(code) if code else None
        if found is None:
            attempt.failed()
            return _WRONG
        return found[2]
    finally:
        await services.limiter.settle(attempt)


class _TooManyGuesses(PageError):
    def __init__(self, retry_after: int) -> None:
        wait = wait_of(retry_after)
        super().__init__(
            "Too many attempts",
            Phrase("Too many wrong codes. Try again in %(wait)s.", wait=wait),
            429,
        )
        self.retry_after = retry_after


def _render(services: Services, request: Request, status: int = 200, **context: Any) -> Response:
    browser, new_cookie = services.csrf.browser_secret(request)
    record: DeviceRecord | None = context.pop("record", None)
    context = {"done": None, "user_code": None, "error": None, "typed": "", "email": None} | context
    if record is not None:
        client = services.clients.get(record.client_id)
        context |= {
            "user_code": display_user_code(record.user_code),
            "client_id": record.client_id,  # its branding
            "client_name": client.name if client else record.client_id,
            "scopes": record.scope,
            "csrf": services.csrf.token(browser, f"device:{record.user_code}"),
        }
    response = services.pages.render(request, "device.html", context, status_code=status)
    if new_cookie:
        services.pages.set_cookie(response, CSRF_COOKIE, browser)
    return response


def device_page(services: Services) -> Handler:
    """GET/POST /device."""

    async def page(request: Request) -> Response:
        try:
            if request.method == "GET":
                return await _show(services, request)
            return await _decide(services, request)
        except _TooManyGuesses as exc:
            response = services.pages.error(request, exc.title, exc.message, 429)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response

    return page


def _result(services: Services, key: str, result: str) -> str:
    """The result page's URL, with a proof for the browser that decided (`key`: its session id,
    or its CSRF secret when it denied without signing in): a link to /device?result=approved
    from anywhere else shows the code form, never "Device connected"."""
    proof = services.csrf.token(key, f"device-result:{result}")
    return "/device?" + urlencode({"result": result, "proof": proof})


def _proven(services: Services, request: Request, result: str) -> bool:
    proof = request.query_params.get("proof", "")
    session = services.pages.cookie(request, services.settings.sessions.cookie_name) or ""
    keys = (services.pages.cookie(request, CSRF_COOKIE), session.split(".", 1)[0])
    return any(
        key and constant_time_equals(proof, services.csrf.token(key, f"device-result:{result}"))
        for key in keys
    )


async def _show(services: Services, request: Request) -> Response:
    result = request.query_params.get("result")
    if result in ("approved", "denied", "refused") and _proven(services, request, result):
        return _render(services, request, done=result)
    typed = request.query_params.get("user_code")
    if typed is None:
        return _render(services, request, typed="")
    found = await _lookup(services, request, typed[:32])
    if isinstance(found, str):
        return _render(services, request, 400, typed=typed[:16], error=found)
    session = await _session(services, request)
    email = session.profile.get("email") if session else None
    return _render(services, request, record=found, email=email)


async def _session(services: Services, request: Request) -> Session | None:
    cookie = services.pages.cookie(request, services.settings.sessions.cookie_name)
    return await services.sessions.load(cookie)


async def _decide(services: Services, request: Request) -> Response:
    form = await request.form(max_fields=8, max_part_size=1024)
    code = normalize_user_code(str(form.get("user_code") or "")) or ""
    browser = services.csrf.check(request, form, f"device:{code}")
    found = await _lookup(services, request, code)
    if isinstance(found, str):
        return _render(services, request, 400, typed="", error=found)
    decision = form.get("decision")
    if decision == "deny":
        if await services.device.decide(code, None) is None:
            return _render(services, request, 400, typed="", error=_WRONG)
        await services.audit.record("device.denied", client_id=found.client_id)
        return RedirectResponse(_result(services, browser, "denied"), status_code=303)
    if decision != "approve":
        raise PageError("Request refused", "Choose Approve or Deny.")
    cookie = services.pages.cookie(request, services.settings.sessions.cookie_name)
    session = await services.sessions.load(cookie)
    step_up = session is not None and needs_step_up(services, found.client_id, session)
    if session is not None and cookie and not step_up:
        return await _approve(services, code, session, cookie)
    # Not signed in (or not strongly enough for this client): an ordinary sign-in, whose
    # end approves this user code (`approve_device`).
    flow = await services.flows.create(
        client_id=found.client_id,
        redirect_uri=f"{services.settings.issuer}/device",  # our own origin, for CSP only
        scope=found.scope,
        browser=services.flows.browser_binding(browser),
        device=code,
    )
    if session is not None and step_up:
        parked = await machine.step_up(services, flow, session)
        return RedirectResponse(f"/login/mfa?flow={parked.flow.flow_id}", status_code=303)
    return RedirectResponse(f"/login?flow={flow.flow_id}", status_code=303)


async def approve_device(
    services: Services,
    flow: Flow,
    session: Session,
    session_cookie: str,
    batch: list[Write] | None = None,
) -> Response:
    """The end of a device flow's sign-in (`gateway.ui.finish.resume`)."""
    return await _approve(services, flow.device or "", session, session_cookie, batch)


async def _approve(
    services: Services,
    code: str,
    session: Session,
    session_cookie: str,
    batch: list[Write] | None = None,
) -> Response:
    """Approve `code` for the signed-in `session`, unless the client's access policy refuses
    this user (then the device hears access_denied)."""
    found = await services.device.by_user_code(code)
    if found is None:
        raise PageError("This code has expired", _WRONG)
    record = found[2]
    client = services.clients.get(record.client_id)
    policy = client.config.access if client else None
    if policy is not None:
        reason = refusal(policy, session, where=f"application {record.client_id}")
        if reason:
            await services.device.decide(code, None)
            await services.audit.record(
                "device.refused", client_id=record.client_id, identity_id=session.identity_id
            )
            return RedirectResponse(_result(services, session.sid, "refused"), status_code=303)
    authorization = Authorization(
        sub=session.identity_id,
        client_id=record.client_id,
        scope=record.scope,
        auth_time=session.auth_time,
        sid=session.sid,
        amr=session.amr,
        profile=claims_for_scope(session.profile, record.scope),
        connector_id=session.connector_id,
        upstream=session.upstream,
        subject=session.subject,
    )
    if await services.device.decide(code, authorization) is None:
        raise PageError("This code has expired", _WRONG)
    await services.sessions.add_client(session_cookie, session, record.client_id, batch)
    await services.audit.record(
        "device.approved", batch, client_id=record.client_id, identity_id=session.identity_id
    )
    return RedirectResponse(_result(services, session.sid, "approved"), status_code=303)
