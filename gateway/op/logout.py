"""RP-Initiated Logout 1.0 (`end_session_endpoint`).

A redirect after logout goes only to a `post_logout_redirect_uri` registered (exactly) for the
client named by a valid `id_token_hint` or `client_id`; a tampered hint is an error page, never
a redirect. Without a hint that matches the signed-in user, the user is asked to confirm, so a
third-party page cannot sign people out silently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request
from starlette.responses import Response

from gateway.clients import Client
from gateway.errors import PageError
from gateway.op.authorize import MAX_CLIENT_VALUE, redirect_with
from gateway.op.common import Handler

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
        await services.sessions.end(cookie)
        if session is not None:
            await services.logout.session_ended(session.sid, session.identity_id)
            await services.audit.record(
                "sign_out", identity_id=session.identity_id, sid=session.sid
            )
        response: Response
        if redirect:
            response = redirect_with(redirect, {"state": values.get("state")})
        else:
            response = pages.render(request, "logged_out.html")
        pages.clear_cookie(response, cookie_name)
        return response

    return logout


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
