"""Hosted pages opened directly — a bookmark to /login, /forgot or /signup, no application
behind it: such a visit gets a flow of its own that ends on the account page (`/`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.flows import Flow

if TYPE_CHECKING:
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


async def sign_in_to(
    services: Services,
    request: Request,
    destination: str,
    page: str,
    binding: str | None = None,
) -> Response:
    """A sign-in bound to this browser that ends at `destination` (checked by the caller: it
    is followed as it is), starting at `page` (/login, /forgot, /signup, or the issuer's
    /login from another host). Forward-auth's pseudo-client: finishing it is a redirect.
    `binding`: an app host's browser binding, kept as the flow's state for its ticket."""
    from gateway.proxy import FORWARD_AUTH_CLIENT

    browser, new_cookie = services.csrf.browser_secret(request)
    flow = await services.flows.create(
        client_id=FORWARD_AUTH_CLIENT,
        redirect_uri=destination,  # finish_flow goes by gateway.proxy.signed_in_return
        scope=["openid"],
        state=binding,
        nonce=None,
        code_challenge=None,
        prompt=[],
        max_age=None,
        login_hint=None,
        browser=services.flows.browser_binding(browser),
    )
    response = RedirectResponse(f"{page}?flow={flow.flow_id}", status_code=303)
    if new_cookie:
        services.pages.set_cookie(response, CSRF_COOKIE, browser)
    return response


def for_account(services: Services, flow: Flow) -> bool:
    """Does this flow end on the account page (rather than at an application)?"""
    return flow.redirect_uri == f"{services.settings.issuer}/"
