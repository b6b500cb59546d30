"""The end of every hosted sign-in: a step the machine answered, rendered for the browser.

`proceed` takes what a transition answered — `NeedsVerification`, `SecondFactorDue` or `Done` —
and sends the browser on: to the code page, to the second factor, or (done) through
`machine.complete` (the flow consumed once, a fresh session: no fixation) to the flow's
`resume`: a code for its client (the OP's `finish_authorization`), forward-auth's way back to
the page, or the device grant's approval. A link flow instead adds the login to the session
that asked for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.connectors import UpstreamIdentity
from gateway.login import identity, machine
from gateway.login.flows import Flow
from gateway.login.notify import send_code
from gateway.login.steps import (
    FirstFactorStep,
    LoginError,
    NeedsNewPassword,
    NeedsVerification,
    SecondFactorDue,
)
from gateway.op.authorize import finish_authorization
from gateway.proxy import FORWARD_AUTH_CLIENT, signed_in_return
from gateway.ui.device import approve_device
from gateway.ui.flow_pages import context
from gateway.ui.signed_in import signed_in
from gateway.users.directory import User

if TYPE_CHECKING:
    from gateway.services import Services
    from gateway.sessions import Session
    from gateway.store import Write


async def proceed(services: Services, request: Request, step: FirstFactorStep) -> Response:
    """The browser's next page after a first factor (or a second one) was proven."""
    if isinstance(step, NeedsVerification):
        await send_code(services, request, step.user)
        return RedirectResponse(f"/signup/verify?flow={step.flow.flow_id}", status_code=303)
    if isinstance(step, NeedsNewPassword):
        return RedirectResponse(f"/login/new-password?flow={step.flow.flow_id}", status_code=303)
    if isinstance(step, SecondFactorDue):  # no session until the second factor is done
        return RedirectResponse(f"/login/mfa?flow={step.flow.flow_id}", status_code=303)
    if step.flow.link_sid is not None:
        return await _link(services, request, step.flow, step.upstream)
    ctx = context(services, request)
    cookie_name = services.settings.sessions.cookie_name
    batch: list[Write] = []
    try:
        session, cookie = await machine.complete(
            services, step, ctx, services.pages.cookie(request, cookie_name), batch
        )
    except LoginError as exc:
        raise exc.page() from None
    # The flow as read when this answer arrived: what finishing it uses never changes.
    finished = await resume(services, step.flow, session, cookie, batch)
    await services.store.write_many(batch)
    services.pages.set_cookie(finished, cookie_name, cookie)
    return finished


async def complete_login(
    services: Services, request: Request, flow: Flow, upstream: UpstreamIdentity
) -> Response:
    """A first factor proven outside the machine's own transitions (a verification code, a
    passkey alone, a sign-up): the second factor when one is due, then signed in."""
    return await proceed(services, request, await machine.after_proof(services, flow, upstream))


async def sign_in_local(
    services: Services, request: Request, flow: Flow, user: User, amr: list[str]
) -> Response:
    """Finish a sign-in to a local account (after a verification, a passkey)."""
    upstream = machine.local_upstream(services, user, amr)
    return await complete_login(services, request, flow, upstream)


async def resume(
    services: Services,
    flow: Flow,
    session: Session,
    session_cookie: str,
    batch: list[Write] | None = None,
) -> Response:
    """The flow's owner resumes: a code for a client, (forward-auth) straight back to the
    page, or (device flow) the device's user code approved."""
    if flow.device is not None:  # the end of a device approval: no code, no client redirect
        return await approve_device(services, flow, session, session_cookie, batch)
    if flow.client_id == FORWARD_AUTH_CLIENT:
        # redirect_uri was checked by safe_redirect when the flow was created; an app host the
        # session cookie does not reach gets its own session on the way (a one-time ticket).
        return RedirectResponse(
            # A forward-auth flow's `state` is the app host's browser binding, if any.
            signed_in_return(services.settings, flow.redirect_uri, flow.state),
            status_code=303,
        )
    return await finish_authorization(
        services,
        session,
        session_cookie,
        client_id=flow.client_id,
        redirect_uri=flow.redirect_uri,
        state=flow.state,
        scope=flow.scope,
        nonce=flow.nonce,
        code_challenge=flow.code_challenge,
        batch=batch,
    )


async def _link(
    services: Services, request: Request, flow: Flow, upstream: UpstreamIdentity
) -> Response:
    """The IdP answered a link flow: add its login to the identity of the session that asked."""
    session = await signed_in(services, request)
    try:
        await identity.link(services, flow, upstream, session, context(services, request).ip)
    except LoginError as exc:
        raise exc.page() from None
    return RedirectResponse(f"/?linked={upstream.connector_id}", status_code=303)
