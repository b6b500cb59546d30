"""Hosted pages opened directly: a bookmark to /login, /forgot or /signup with no application
behind it gets a flow of its own that ends on the account page (`/`); Cognito's /login and
/signup with an application's authorization request (`client_id`, `redirect_uri`…) start that
application's flow, exactly as `/oauth2/authorize` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.login.flows import Flow
from gateway.op.authorize import endpoint as authorize_endpoint
from gateway.proxy.endpoints import sign_in_to

if TYPE_CHECKING:
    from gateway.op.common import Handler
    from gateway.services import Services


async def account_flow(services: Services, request: Request, page: str) -> Response:
    """`page` (/login, /forgot, /signup) opened without an application: a flow of its own that
    ends on the account page, so a person can sign in (or recover a password) from a bookmark.

    It is the flow `/oauth2/start` makes for forward-auth (same pseudo-client, so finishing it
    is a plain redirect), aimed at the issuer's own `/` — nothing taken from the request, so
    it cannot become an open redirect. A browser already signed in goes straight there."""

    home = f"{services.settings.issuer}/"
    cookie = services.pages.cookie(request, services.settings.sessions.cookie_name)
    if page == "/login" and await services.sessions.load(cookie) is not None:
        return RedirectResponse(home, status_code=303)
    return await sign_in_to(services, request, home, page)


def for_account(services: Services, flow: Flow) -> bool:
    """Does this flow end on the account page (rather than at an application)?"""
    return flow.redirect_uri == f"{services.settings.issuer}/"


def names_an_application(request: Request) -> bool:
    """A GET of /login or /signup with Cognito's hosted-UI parameters (`client_id`…) rather
    than a flow: an application sent the browser here as it would to a Cognito domain."""
    return "client_id" in request.query_params and "flow" not in request.query_params


def application_flow(services: Services, page: str) -> Handler:
    """Cognito's `GET /login` / `GET /signup` with an authorization request: its query is
    handed to the authorization endpoint as it stands, so every rule there holds (a known
    client, an exactly registered redirect URI, PKCE S256, scopes, `identity_provider`; its
    error page, or its error redirect once the redirect URI is trusted); a browser already
    signed in gets its code at once, as at `/oauth2/authorize`. A new flow then shows `page`."""
    authorize = authorize_endpoint(services)

    async def start(request: Request) -> Response:
        response = await authorize(request)
        location = response.headers.get("location", "")
        if page != "/login" and location.startswith("/login?flow="):
            # The flow the authorization endpoint made, shown on this page (only its own
            # relative redirect is rewritten: never a client's or an IdP's URL).
            response.headers["location"] = page + location.removeprefix("/login")
        return response

    return start
