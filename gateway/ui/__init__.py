"""The hosted pages: sign-in, sign-out confirmation, error pages, and the demo app.

`pages` renders templates with the security headers every page carries; each page module
renders the steps of the login machine (`gateway.login`) or an account page; `finish` ends a
sign-in and resumes its flow; `routes(services)` mounts them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

if TYPE_CHECKING:
    from gateway.services import Services


def routes(services: Services) -> list[BaseRoute]:
    """The hosted UI's routes (and the demo app's, in demo mode)."""
    from pathlib import Path

    from gateway.ui import (
        account,
        account_mfa,
        demo,
        device,
        home,
        http_errors,
        login,
        mfa,
        passkeys,
        recovery,
        saml,
        signup,
        upstream,
    )

    static = Path(__file__).parent / "static"
    if any(c.type == "saml" for c in services.settings.connectors):
        from gateway.saml_logging import quiet_saml2_logs

        quiet_saml2_logs()  # refused SAML input is a warning of one line, not an ERROR dump

    async def theme_css(request: Request) -> Response:
        css = services.pages.theme_css(request.query_params.get("client"))
        return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=300"})

    found: list[BaseRoute] = [
        Route("/", home.home(services), methods=["GET"]),
        Route("/login", login.login(services), methods=["GET", "POST"]),
        Route("/signup", signup.signup(services), methods=["GET", "POST"]),
        Route("/signup/verify", signup.verify(services), methods=["GET", "POST"]),
        Route("/signup/verify/link", signup.verify_link(services), methods=["GET", "POST"]),
        Route("/signup/verify/phone", signup.verify_phone(services), methods=["GET", "POST"]),
        Route("/login/{connector}/start", upstream.connector_start(services), methods=["POST"]),
        Route(
            "/login/{connector}/callback",
            upstream.connector_callback(services),
            methods=["GET", "POST"],
        ),
        Route("/logout", home.logout_page(services), methods=["GET", "POST"]),
        Route(
            "/oauth2/callback",
            upstream.shared_callback(services, "/oauth2/callback"),
            methods=["GET", "POST"],
        ),
        Route(  # Cognito's redirect URI for federated IdPs (connectors with cognito_callback)
            "/oauth2/idpresponse",
            upstream.shared_callback(services, "/oauth2/idpresponse"),
            methods=["GET", "POST"],
        ),
        Route("/account/link/{connector}", account.link(services), methods=["GET", "POST"]),
        Route("/account/mfa", account_mfa.account_mfa(services), methods=["GET", "POST"]),
        Route("/account/password", account.change_password(services), methods=["GET", "POST"]),
        Route("/account/sessions", account.sessions_page(services), methods=["GET", "POST"]),
        Route("/login/mfa", mfa.login_step(services), methods=["GET", "POST"]),
        Route("/login/new-password", login.new_password(services), methods=["GET", "POST"]),
        Route("/login/passkey", passkeys.passwordless(services), methods=["POST"]),
        Route("/account/passkeys", passkeys.account_passkeys(services), methods=["GET", "POST"]),
        Route("/saml/{connector}/metadata", saml.metadata(services), methods=["GET"]),
        Route("/saml/{connector}/acs", saml.acs(services), methods=["POST"]),
        Route("/saml/{connector}/slo", saml.single_logout(services), methods=["GET", "POST"]),
        Route("/theme.css", theme_css, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=static), name="static"),
    ]
    if services.settings.sidecar is None:
        # Behind a sidecar the app keeps /favicon.ico; the pages link /static/favicon.svg.
        found.append(Route("/favicon.ico", http_errors.favicon, methods=["GET"]))
    found += recovery.routes(services)
    # The device grant's page, also in sidecar mode (where RESERVED keeps it from the app):
    # verification_uri names it, and a user typing their code must reach the gateway.
    found.append(Route("/device", device.device_page(services), methods=["GET", "POST"]))
    if services.settings.demo:
        found += demo.routes(services)
    return found
