"""The SAML service provider's endpoints: SP metadata, the ACS, and single logout.

`/saml/{connector}/metadata`  the SP metadata an IdP admin imports (stable URL).
`/saml/{connector}/acs`       the IdP POSTs the Response here (HTTP-POST binding).
`/saml/{connector}/slo`       the IdP's LogoutRequest (HTTP-Redirect or POST): ends the user's
                              sessions and tokens everywhere, answers a signed LogoutResponse.

The ACS receives a *cross-site* POST without our SameSite=Lax cookies: it re-posts the fields to
itself from our origin (`views.repost_same_site`), then checks the answer like any callback.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.connectors import ConnectorError
from gateway.connectors.saml import SamlConnector
from gateway.errors import PageError
from gateway.forwarded import client_address
from gateway.login import machine
from gateway.ui.flow_pages import context
from gateway.ui.upstream import finish_upstream, repost_same_site

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.services import Services

    Handler = Callable[[Request], Awaitable[Response]]

FLOW_RELAY_STATE = re.compile(r"^[\w-]{16,}\.[\w-]{16,}$")  # what `SamlConnector.start` sends


def saml_connector(services: Services, connector_id: str) -> SamlConnector:
    connector = services.connectors.get(connector_id)
    if not isinstance(connector, SamlConnector):
        raise PageError("Unknown sign-in method", "There is no such SAML connection.", 404)
    return connector


def metadata(services: Services) -> Handler:
    async def page(request: Request) -> Response:
        connector = saml_connector(services, request.path_params["connector"])
        try:
            xml = await connector.sp_metadata()
        except ConnectorError as exc:
            raise PageError("SAML unavailable", str(exc), 503) from None
        return Response(xml, media_type="application/samlmetadata+xml")

    return page


async def _bounded_form(request: Request, limit: int) -> dict[str, str]:
    """The urlencoded body, refused with 413 before parsing when larger than `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PageError("Too large", "The identity provider's answer is too large.", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PageError("Too large", "The identity provider's answer is too large.", 413)
    from urllib.parse import parse_qsl

    try:
        pairs = parse_qsl(body.decode("ascii"), max_num_fields=8, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise PageError("Sign-in failed", "The identity provider's answer is malformed.") from None
    return dict(pairs)


def acs(services: Services) -> Handler:
    """POST /saml/{connector}/acs: the IdP's Response, for a flow or (if enabled) unsolicited."""

    async def page(request: Request) -> Response:
        connector = saml_connector(services, request.path_params["connector"])
        limit = connector.config.max_response_bytes * 4 // 3 + 4096
        fields = await _bounded_form(request, limit)
        if not fields.get("SAMLResponse"):
            raise PageError("Sign-in failed", "The identity provider sent no SAML response.")
        relay_state = fields.get("RelayState", "")
        ip = client_address(services.settings, request)
        if not FLOW_RELAY_STATE.match(relay_state):
            if not connector.config.allow_idp_initiated:
                raise PageError(
                    "Sign-in failed",
                    "Sign-in must start at the application: this identity provider connection "
                    "does not accept IdP-initiated sign-in.",
                )
            # No flow, so no browser binding to check: setting a cookie on a cross-site
            # response works, and the redirect that follows is a plain navigation.
            return await _unsolicited(services, request, connector, fields["SAMLResponse"], ip)
        repost = repost_same_site(services, request, fields)
        if repost is not None:
            return repost
        return await finish_upstream(services, request, connector, relay_state, fields)

    return page


async def _unsolicited(
    services: Services, request: Request, connector: SamlConnector, encoded: str, ip: str | None
) -> Response:
    """IdP-initiated sign-in: a session, then the configured local page (never RelayState,
    which would make the ACS an open redirector)."""
    try:
        upstream = await connector.validate(encoded, None)
    except ConnectorError as exc:
        await machine.outcome(services, connector.id, "failure", reason=str(exc)[:200], ip=ip)
        raise PageError("Sign-in failed", str(exc), 400) from None
    cookie_name = services.settings.sessions.cookie_name
    _, cookie = await machine.start_session(
        services,
        upstream,
        context(services, request),
        client_id=None,
        replaces=services.pages.cookie(request, cookie_name),
    )
    response = RedirectResponse(connector.config.idp_initiated_redirect, status_code=303)
    services.pages.set_cookie(response, services.settings.sessions.cookie_name, cookie)
    return response


def single_logout(services: Services) -> Handler:
    """GET/POST /saml/{connector}/slo: the IdP ends the user's session (signed LogoutRequest)."""

    async def page(request: Request) -> Response:
        connector = saml_connector(services, request.path_params["connector"])
        if request.method == "POST":
            fields = await _bounded_form(request, 256 * 1024)
        else:
            fields = dict(request.query_params)
        try:
            subject, location = await connector.logout_request(fields, request.method)
        except ConnectorError as exc:
            raise PageError("Sign-out failed", str(exc), 400) from None
        identity_id = await services.identities.find(connector.id, subject)
        if identity_id:
            sessions, grants = await services.logout.end_identity(identity_id)
            await services.audit.record(
                "saml.logout",
                connector=connector.id,
                identity_id=identity_id,
                sessions=sessions,
                grants=grants,
            )
        return RedirectResponse(location, status_code=303)

    return page
