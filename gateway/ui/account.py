"""The account page's linking of sign-in methods: one identity, several ways in.

`GET /account/link/{connector}` explains what linking means and asks to confirm;
`POST /account/link/{connector}` (CSRF-checked, signed-in) starts a *link flow* at that IdP.
When the IdP answers, `complete_link` adds the login to the session's identity — only for the
very session that started it, and never a login that already belongs to another identity.

Automatic linking (`user_pool.link_by_verified_email`) lives in `resolve_identity`: a first
federated sign-in whose IdP vouches for the e-mail joins the local user with that same verified
e-mail. Unverified e-mails never link anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.connectors import UpstreamIdentity, local_connector_id
from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.errors import PageError
from gateway.flows import Flow
from gateway.forwarded import client_address
from gateway.identity.ids import LoginTaken, TooManyLogins
from gateway.text import Phrase
from gateway.users.directory import User, normalize_email

# One string (not split over lines), so the catalogue test finds it in the source.
ALREADY_LINKED = (
    "That %(name)s account already signs in as someone else here. Unlink it there first."  # noqa: E501
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.services import Services
    from gateway.sessions import Session

    Handler = Callable[[Request], Awaitable[Response]]

ACCOUNT_CLIENT = "_account"  # the client_id of link flows: they end on the account page


async def signed_in(services: Services, request: Request) -> Session:
    """The session of an account page's browser, or the "sign in first" page."""
    cookie = services.pages.cookie(request, services.settings.sessions.cookie_name)
    session = await services.sessions.load(cookie)
    if session is None:
        raise PageError("Not signed in", "Sign in first.", 401)
    return session


async def local_account(services: Services, request: Request) -> tuple[Session, User]:
    """The session and local account of an account page that only local accounts have."""
    session = await signed_in(services, request)
    if session.connector_id != local_connector_id(services.connectors):
        raise PageError("Not available", "Sign in with your e-mail and password first.", 401)
    user = await services.users.get(session.subject)
    if user is None:
        raise PageError("Not available", "Sign in again.", 401)
    return session, user


def link(services: Services) -> Handler:
    """GET: the confirmation page. POST: confirmed, off to the IdP."""
    from gateway.ui.views import redirect_connector, start_redirect

    async def page(request: Request) -> Response:
        connector = redirect_connector(services, request.path_params["connector"])
        session = await signed_in(services, request)
        purpose = f"link:{connector.id}:{session.sid}"
        if request.method == "GET":
            browser, new_cookie = services.csrf.browser_secret(request)
            response = services.pages.render(
                request,
                "link_confirm.html",
                {
                    "connector": connector,
                    "email": session.profile.get("email"),
                    "csrf": services.csrf.token(browser, purpose),
                },
            )
            if new_cookie:
                services.pages.set_cookie(response, CSRF_COOKIE, browser)
            return response
        form = await request.form(max_fields=4, max_part_size=4096)
        browser = services.csrf.check(request, form, purpose)
        flow = await services.flows.create(
            client_id=ACCOUNT_CLIENT,
            redirect_uri=f"{services.settings.issuer}/",
            scope=[],
            state=None,
            nonce=None,
            code_challenge=None,
            prompt=[],
            max_age=None,
            login_hint=None,
            browser=services.flows.browser_binding(browser),
            link_sid=session.sid,
        )
        return await start_redirect(services, request, flow, connector)

    return page


async def complete_link(
    services: Services, request: Request, flow: Flow, upstream: UpstreamIdentity
) -> Response:
    """The IdP answered a link flow: add its login to the identity of the session that asked."""
    if await services.flows.take(flow.flow_id) is None:
        raise PageError("Link expired", "This link request was already used. Start again.")
    session = await signed_in(services, request)
    if session.sid != flow.link_sid:
        raise PageError(
            "Link refused",
            "You signed in or out since you asked to link this account. Start again.",
        )
    name = services.connectors[upstream.connector_id].name
    try:
        await services.identities.link(session.identity_id, upstream.connector_id, upstream.subject)
    except LoginTaken:
        raise PageError(
            "Already linked elsewhere",
            Phrase(ALREADY_LINKED, name=name),
            409,
        ) from None
    except TooManyLogins:
        raise PageError("Too many sign-in methods", "Unlink one first.", 409) from None
    await services.audit.record(
        "identity.linked",
        identity_id=session.identity_id,
        connector=upstream.connector_id,
        ip=client_address(services.settings, request),
    )
    return RedirectResponse(f"/?linked={upstream.connector_id}", status_code=303)


async def resolve_identity(services: Services, upstream: UpstreamIdentity) -> str:
    """The identity of a sign-in: its own login's, or (when the pool allows it, on a first
    federated sign-in with an IdP-verified e-mail) the local user's with that verified e-mail,
    or a new one."""
    known = await services.identities.find(upstream.connector_id, upstream.subject)
    if known is not None:
        return known
    email = upstream.claims.get("email")
    local = local_connector_id(services.connectors)
    if (
        services.settings.user_pool.link_by_verified_email
        and local is not None
        and local != upstream.connector_id
        and upstream.claims.get("email_verified") is True
        and isinstance(email, str)
    ):
        user = await services.users.by_email(normalize_email(email))
        owner = await services.identities.find(local, user.user_id) if user else None
        if user is not None and user.email_verified and owner is not None:
            try:
                await services.identities.link(owner, upstream.connector_id, upstream.subject)
                await services.audit.record(
                    "identity.linked",
                    identity_id=owner,
                    connector=upstream.connector_id,
                    by="verified_email",
                )
                return owner
            except (LoginTaken, TooManyLogins):
                pass  # someone got there first, or no room: fall through to its own identity
    return await services.identities.resolve(upstream.connector_id, upstream.subject)


def change_password(services: Services) -> Handler:
    """GET/POST /account/password: a signed-in local user sets a new password. Every other
    session and token of theirs ends; this browser gets a fresh session (new id)."""
    from gateway.logout import end_local_user
    from gateway.ratelimit import Limit, RateLimited
    from gateway.users.directory import InvalidPassword

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
                await services.limiter.check(checks)
                if user is None or await services.users.authenticate(user.email, current) is None:
                    await services.limiter.fail(checks)
                    raise WrongPassword
                await services.users.set_password(user.user_id, new)
            except RateLimited:
                context["error"], status = "Too many attempts. Try again in a few minutes.", 429
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
        if new_cookie:
            services.pages.set_cookie(response, CSRF_COOKIE, browser)
        return response

    return page


def sessions_page(services: Services) -> Handler:
    """GET/POST /account/sessions: the signed-in identity's sessions, each can be ended."""
    import time as _time

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
                "since": _time.strftime(
                    "%Y-%m-%d %H:%M UTC", _time.gmtime(int(s.get("created") or 0))
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
