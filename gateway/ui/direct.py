"""Hosted pages opened directly — a bookmark to /login, /forgot or /signup, no application
behind it: such a visit gets a flow of its own that ends on the account page (`/`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.login.flows import Flow
from gateway.proxy.endpoints import sign_in_to

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


def for_account(services: Services, flow: Flow) -> bool:
    """Does this flow end on the account page (rather than at an application)?"""
    return flow.redirect_uri == f"{services.settings.issuer}/"
