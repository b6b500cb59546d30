"""The signed-in session of an account page's browser (or the "sign in first" page)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from gateway.connectors import local_connector_id
from gateway.errors import PageError
from gateway.users.directory import User

if TYPE_CHECKING:
    from gateway.services import Services
    from gateway.sessions import Session


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
