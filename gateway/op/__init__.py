"""The OpenID Provider that downstream applications trust: discovery, JWKS, authorize, token,
userinfo, revocation, introspection and RP-initiated logout.

`routes(services, documents)` returns this area's routes; `gateway.app` mounts them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute, Route

if TYPE_CHECKING:
    from gateway.op.discovery import Documents
    from gateway.services import Services


def routes(services: Services, documents: Documents) -> list[BaseRoute]:
    """The OP's endpoints, each a small module of its own; `documents`: the metadata and JWKS
    (also answered before routing, by `discovery.StaticDocuments`)."""
    from gateway.op import authorize, discovery, logout, revocation, token, userinfo
    from gateway.op.common import oauth_route

    return [
        *(
            Route(
                path,
                discovery.jwks(documents)
                if which == "jwks"
                else discovery.configuration(documents),
            )
            for path, which in documents.paths.items()
        ),
        Route("/oauth2/authorize", authorize.endpoint(services), methods=["GET", "POST"]),
        # Browser apps call these three (CORS for their clients' allowed origins).
        oauth_route("/oauth2/token", token.endpoint(services), ["POST"], services.clients),
        oauth_route(
            "/oauth2/userinfo", userinfo.endpoint(services), ["GET", "POST"], services.clients
        ),
        # Cognito's spelling (its hosted-UI domain serves /oauth2/userInfo): the same endpoint,
        # so an app configured against a Cognito domain reads the same claims and errors.
        oauth_route(
            "/oauth2/userInfo", userinfo.endpoint(services), ["GET", "POST"], services.clients
        ),
        oauth_route(
            "/oauth2/revoke", revocation.revoke_endpoint(services), ["POST"], services.clients
        ),
        oauth_route("/oauth2/introspect", revocation.introspect_endpoint(services), ["POST"]),
        Route("/oauth2/logout", logout.endpoint(services), methods=["GET", "POST"]),
        *device_routes(services),
    ]


def device_routes(services: Services) -> list[BaseRoute]:
    """RFC 8628's endpoint (CLIs and devices: no browser origin, so no CORS). In sidecar mode
    too: `/device` is among `gateway.proxy.sidecar.RESERVED` there."""
    from gateway.op import device
    from gateway.op.common import oauth_route

    endpoint = device.authorization_endpoint(services)
    return [oauth_route("/oauth2/device_authorization", endpoint, ["POST"])]
