"""CORS for browser apps (public clients such as an SPA with oidc-client-ts) at the token,
userinfo and revocation endpoints.

Each client has its `allowed_origins` (by default, for a public client, the origins of its
redirect URIs). An answer carries `Access-Control-Allow-Origin` with the page's own origin only
when that origin is allowed for the client the answer is about: the authenticated client at the
token and revocation endpoints, the access token's client at userinfo. Before a client is known
(a preflight, which carries no body; an error before authentication) any registered client's
origin may read the answer: it says nothing about anyone. Never `*`, and never
`Access-Control-Allow-Credentials`: these endpoints take tokens, not cookies, so a cross-site
page can never make the browser's session cookie count. Every answer says `Vary: Origin`, so no
cache hands one origin's answer to another. Discovery and the JWKS are public documents and
answer `*` (`gateway.op.discovery`).
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import Request
from starlette.responses import Response

from gateway.clients import ClientRegistry

PREFLIGHT_MAX_AGE = 600
# What oidc-client-ts and other browser clients send: Authorization (userinfo's bearer token,
# a confidential client's Basic) and Content-Type (forms are "simple", JSON would not be).
_ALLOWED_HEADERS = "Authorization, Content-Type"
_EXPOSED_HEADERS = "WWW-Authenticate"


def client_of(request: Request, client_id: str) -> None:
    """Record whose answer this request gets (read by `add_headers`)."""
    request.state.cors_client = client_id


def is_preflight(request: Request) -> bool:
    return (
        request.method == "OPTIONS"
        and "origin" in request.headers
        and "access-control-request-method" in request.headers
    )


def preflight(request: Request, clients: ClientRegistry, methods: Collection[str]) -> Response:
    """204 to a preflight; with the CORS headers only for an allowed origin and method."""
    response = Response(status_code=204)
    origin = request.headers["origin"]
    asked = request.headers["access-control-request-method"].upper()
    if asked in methods and clients.origin_allowed(origin, None):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = ", ".join(sorted(methods))
        response.headers["Access-Control-Allow-Headers"] = _ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    response.headers.add_vary_header("Origin")
    return response


def add_headers(request: Request, response: Response, clients: ClientRegistry) -> None:
    """The CORS headers of an actual (non-preflight) answer."""
    response.headers.add_vary_header("Origin")
    origin = request.headers.get("origin")
    if origin is None:
        return
    if clients.origin_allowed(origin, getattr(request.state, "cors_client", None)):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS
