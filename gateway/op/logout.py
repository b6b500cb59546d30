"""RP-Initiated Logout 1.0 (`end_session_endpoint`), and Cognito's hosted-UI `/logout`.

A redirect after logout goes only to a `post_logout_redirect_uri` registered (exactly) for the
client named by a valid `id_token_hint` or `client_id`; a tampered hint is an error page, never
a redirect. Without a hint that matches the signed-in user, the user is asked to confirm, so a
third-party page cannot sign people out silently.

Cognito's `GET /logout?client_id=…&logout_uri=…` (`cognito_endpoint`) has no hint: it goes to
`logout_uri` only if that is one of the client's `post_logout_redirect_uris` (Cognito's
"allowed sign-out URLs"), exactly; with `redirect_uri=…&response_type=…` instead, the browser
signs in again at `/login` with those parameters (a redirect URI registered for the client).
It signs out without asking, as Cognito does, when the session signed in to that client; any
other session is asked first, as here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.clients import Client
from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.errors import InvalidRequest, PageError
from gateway.op.authorize import MAX_CLIENT_VALUE, redirect_with
from gateway.op.common import Handler, reject_repeats
from gateway.sessions import Session

if TYPE_CHECKING:
    from gateway.services import Services

_FIELDS = ("id_token_hint", "post_logout_redirect_uri", "state", "client_id")


def endpoint(services: Services) -> Handler:
    pages = services.pages
    cookie_name = services.settings.sessions.cookie_name

    async def logout(request: Request) -> Response:
        params: QueryParams | FormData
        params = (
            await request.form(max_fields=16) if request.method == "POST" else request.query_params
        )
        confirmed = False
        if request.method == "POST" and "_csrf" in params:
            services.csrf.check(request, params, "logout")  # type: ignore[arg-type]
            confirmed = True
        values = {k: str(params[k]) for k in _FIELDS if params.get(k)}
        claims, redirect = await _validate(services, values)
        cookie = pages.cookie(request, cookie_name)
        session = await services.sessions.load(cookie)
        hint_matches = (
            claims is not None
            and session is not None
            and (claims.get("sub") == session.identity_id)
        )
        if session is not None and not confirmed and not hint_matches:
            browser, new_cookie = services.csrf.browser_secret(request)
            target = urlsplit(redirect) if redirect else None
            page = pages.render(
                request,
                "logout_confirm.html",
                {
                    "fields": values,
                    "csrf": services.csrf.token(browser, "logout"),
                    "email": session.profile.get("email", ""),
                },
                form_targets=f"{target.scheme}://{target.netloc}" if target else "",
            )
            if new_cookie:
                pages.set_cookie(page, "cognate_csrf", browser)
            return page
        await end_session(services, cookie, session)
        response: Response
        if redirect:
            response = redirect_with(redirect, {"state": values.get("state")})
        else:
            response = pages.render(request, "logged_out.html")
        pages.clear_cookie(response, cookie_name)
        return response

    return logout


async def end_session(services: Services, cookie: str | None, session: Session | None) -> None:
    """Sign the browser out: its session (and every app host's made from it) ends, the clients
    it signed in to hear of it (back-channel logout), and the audit log says so."""
    await services.sessions.end(cookie)
    if session is not None:
        await services.logout.session_ended(session.sid, session.identity_id)
        await services.audit.record("sign_out", identity_id=session.identity_id, sid=session.sid)


async def _validate(
    services: Services, values: dict[str, str]
) -> tuple[dict[str, Any] | None, str | None]:
    """The verified hint's claims and the redirect target (or None); PageError when invalid."""
    claims = None
    if "id_token_hint" in values:
        try:
            claims = await services.tokens.verify_id_token_hint(values["id_token_hint"])
        except ValueError:
            raise PageError(
                "Invalid sign-out request",
                "The application's sign-out request could not be verified. You are still "
                "signed in; sign out from this page instead.",
            ) from None
    client: Client | None = None
    if "client_id" in values:
        client = services.clients.get(values["client_id"])
        audience = claims.get("aud") if claims else None
        audiences = audience if isinstance(audience, list) else [audience]
        if client is None or (claims is not None and client.client_id not in audiences):
            raise PageError("Invalid sign-out request", "The application is not recognised.")
    elif claims is not None:
        audience = claims["aud"]
        client = services.clients.get(audience[0] if isinstance(audience, list) else audience)
    if len(values.get("state", "")) > MAX_CLIENT_VALUE:
        raise PageError("Invalid sign-out request", "The application's request is too long.")
    redirect = values.get("post_logout_redirect_uri")
    if redirect is not None and (
        client is None or redirect not in client.config.post_logout_redirect_uris
    ):
        raise PageError(
            "Invalid sign-out request",
            "The application asked to send you to an address it has not registered.",
        )
    return claims, redirect


_COGNITO_PURPOSE = "cognito_logout"
_BAD_REQUEST = "Invalid sign-out request"


def cognito_endpoint(services: Services) -> Handler:
    """Cognito's `/logout` for requests naming a `client_id` (`gateway.ui.home` sends the rest
    to `/oauth2/logout`): GET from the application, or POST from the confirmation page."""
    pages = services.pages
    cookie_name = services.settings.sessions.cookie_name

    async def logout(request: Request) -> Response:
        params: QueryParams | FormData = request.query_params
        confirmed = request.method == "POST"
        if confirmed:
            params = await request.form(max_fields=16)
            services.csrf.check(request, params, _COGNITO_PURPOSE)
        values = {k: str(v) for k, v in params.multi_items() if k != "_csrf"}
        try:
            reject_repeats([k for k, _ in params.multi_items()])
        except InvalidRequest:
            raise PageError(_BAD_REQUEST, "The application's request is malformed.") from None
        client, target = _cognito_target(services, values)
        cookie = pages.cookie(request, cookie_name)
        session = await services.sessions.load(cookie)
        if session is not None and not confirmed and client.client_id not in session.clients:
            # Not a sign-out of the application this browser signed in to: a page elsewhere
            # may not sign people out silently, so ask (the form posts the same request).
            browser, new_cookie = services.csrf.browser_secret(request)
            destination = urlsplit(target)
            page = pages.render(
                request,
                "logout_confirm.html",
                {
                    "action": "/logout",
                    "fields": values,
                    "csrf": services.csrf.token(browser, _COGNITO_PURPOSE),
                    "email": session.profile.get("email", ""),
                },
                form_targets=(
                    f"{destination.scheme}://{destination.netloc}" if destination.netloc else ""
                ),
            )
            if new_cookie:
                pages.set_cookie(page, CSRF_COOKIE, browser)
            return page
        await end_session(services, cookie, session)
        response = RedirectResponse(target, status_code=303)
        pages.clear_cookie(response, cookie_name)
        return response

    return logout


def _cognito_target(services: Services, values: dict[str, str]) -> tuple[Client, str]:
    """The client and where the browser goes after signing out; PageError (never a redirect)
    for an unknown client or an address the client has not registered."""
    client = services.clients.get(values.get("client_id"))
    if client is None:
        raise PageError(_BAD_REQUEST, "The application is not recognised.")
    logout_uri = values.get("logout_uri")
    if logout_uri is not None:
        # Exact match, as for post_logout_redirect_uri: anything else is an open redirector.
        if logout_uri not in client.config.post_logout_redirect_uris:
            raise PageError(
                _BAD_REQUEST,
                "The application asked to send you to an address it has not registered.",
            )
        return client, logout_uri
    redirect_uri = values.get("redirect_uri")
    if redirect_uri is None:
        raise PageError(
            _BAD_REQUEST, "The application did not say where to send you after signing out."
        )
    if services.clients.match_redirect_uri(client, redirect_uri) is None:
        # Checked before signing out (the sign-in at /login would refuse it anyway).
        raise PageError(
            _BAD_REQUEST,
            "The application asked to return you to an address it has not registered.",
        )
    # Sign in again: /login takes the rest as an authorization request, with all its checks.
    return client, "/login?" + urlencode(values)
