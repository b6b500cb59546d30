"""The account page (`/`): who is signed in, their profile, linked sign-in methods and the
account pages they may use; and `/logout` (Cognito's sign-out, or a shortcut to the OP's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.connectors import local_connector_id
from gateway.op import logout

if TYPE_CHECKING:
    from gateway.op.common import Handler
    from gateway.services import Services


def home(services: Services) -> Handler:
    async def page(request: Request) -> Response:
        cookie = services.pages.cookie(request, services.settings.sessions.cookie_name)
        session = await services.sessions.load(cookie)
        identity = await services.identities.get(session.identity_id) if session else None
        linked = {login.provider for login in identity.logins} if identity else set()
        local = session is not None and session.connector_id == local_connector_id(
            services.connectors
        )
        user = await services.users.get(session.subject) if session and local else None
        claims = services.users.claims(user) if user else (session.profile if session else {})
        return services.pages.render(
            request,
            "home.html",
            {
                "email": session.profile.get("email") if session else None,
                "identity_id": session.identity_id if session else None,
                "demo": services.settings.demo,
                "local_account": local,
                "profile": profile_rows(claims),
                "mfa_on": services.settings.user_pool.mfa != "off",
                "passkeys_on": services.passkeys.enabled,
                "federated_mfa": session is not None
                and services.settings.user_pool.federated_mfa != "off",
                "linked": [c for c in services.connectors.values() if c.id in linked],
                "linkable": [c for c in services.redirects.values() if c.id not in linked]
                if session
                else [],
            },
        )

    return page


PROFILE_LABELS = {
    "name": "Name",
    "given_name": "Given name",
    "family_name": "Family name",
    "preferred_username": "Username",
    "phone_number": "Phone number",
    "locale": "Language",
    "groups": "Groups",
}


def profile_rows(claims: dict[str, Any]) -> list[tuple[str, str]]:
    """What the account page shows of a profile: known claims by label, then custom ones."""
    rows = []
    for claim, label in PROFILE_LABELS.items():
        value = claims.get(claim)
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        if value:
            verified = claim == "phone_number" and claims.get("phone_number_verified") is True
            rows.append((label, f"{value} (verified)" if verified else str(value)))
    rows += [
        (k.removeprefix("custom:"), str(v)) for k, v in claims.items() if k.startswith("custom:")
    ]
    return rows


def logout_page(services: Services) -> Handler:
    """`/logout`: Cognito's sign-out when it names an application (`client_id`, in the query,
    or in the body its confirmation page posts); else a shortcut to `/oauth2/logout`."""
    cognito = logout.cognito_endpoint(services)

    async def page(request: Request) -> Response:
        if "client_id" in request.query_params:
            return await cognito(request)
        if request.method == "POST" and request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            form = await request.form(max_fields=16)  # kept on the request for the handler
            if "client_id" in form:
                return await cognito(request)
        return RedirectResponse("/oauth2/logout", status_code=303)

    return page
