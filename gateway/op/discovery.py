"""OpenID Provider metadata (Discovery 1.0, RFC 8414) and the JWKS.

Both are cheap and hot: the metadata is built once; the JWKS body is rebuilt only when the key
set changes, and may be cached by clients for a short time (rotation publishes keys ahead of use).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.op.common import Handler
from gateway.settings import GRANT_TYPES

if TYPE_CHECKING:
    from gateway.services import Services

JWKS_MAX_AGE = 300


def metadata(services: Services) -> dict[str, Any]:
    """The discovery document."""
    issuer = services.settings.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth2/authorize",
        "token_endpoint": f"{issuer}/oauth2/token",
        "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "device_authorization_endpoint": f"{issuer}/oauth2/device_authorization",
        "end_session_endpoint": f"{issuer}/oauth2/logout",
        "scopes_supported": ["openid", "email", "profile", "phone", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": services.settings.id_token_algs,
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "amr",
            "sid",
            "email",
            "email_verified",
            "name",
            "given_name",
            "family_name",
            "preferred_username",
        ],
        "prompt_values_supported": ["none", "login"],
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }


class Documents:
    """The two documents as bytes with their headers: the metadata built once, the JWKS
    re-encoded only when the key ring publishes a new set. Served by the routes below and,
    before any routing, by `StaticDocuments`."""

    def __init__(self, services: Services) -> None:
        self._keys = services.keys
        self.configuration = json.dumps(metadata(services)).encode()
        self.configuration_headers = {
            "Cache-Control": "public, max-age=3600",
            "Access-Control-Allow-Origin": "*",
            "Content-Type": "application/json",
        }
        self.jwks_headers = {
            "Cache-Control": f"public, max-age={JWKS_MAX_AGE}",
            "Access-Control-Allow-Origin": "*",
            "Content-Type": "application/jwk-set+json",
        }
        self._source: Any = None
        self._jwks = b""
        # Also where tools that build Cognito-shaped URLs look: <issuer>/<pool id>/.well-known/…
        # (not in sidecar mode, where every path but the reserved ones is the app's).
        pool = f"/{services.settings.user_pool_id}"
        self.paths = dict(PATHS)
        if services.settings.sidecar is None:
            self.paths |= {pool + path: which for path, which in PATHS.items()}

    @property
    def jwks(self) -> bytes:
        current = self._keys.jwks
        if self._source is not current:
            self._source, self._jwks = current, json.dumps(current).encode()
        return self._jwks


def configuration(documents: Documents) -> Handler:
    async def endpoint(request: Request) -> Response:
        return Response(documents.configuration, headers=documents.configuration_headers)

    return endpoint


def jwks(documents: Documents) -> Handler:
    async def endpoint(request: Request) -> Response:
        return Response(documents.jwks, headers=documents.jwks_headers)

    return endpoint


PATHS = {"/.well-known/openid-configuration": "configuration", "/.well-known/jwks.json": "jwks"}


class _Route:
    """What the metrics middleware reads from `scope["route"]`."""

    def __init__(self, path: str) -> None:
        self.path = path


class StaticDocuments:
    """ASGI: GET/HEAD of the metadata and the JWKS answered before Starlette's routing (they
    are constant documents, fetched by every relying party and resource server), the same
    bytes and headers as the routes give. Inside the request-id and metrics middleware, so
    request ids, access logs and request counts stay the same; anything else goes on."""

    def __init__(self, app: ASGIApp, documents: Documents) -> None:
        self.app = app
        self.documents = documents
        self._paths = documents.paths
        self._routes = {path: _Route(path) for path in self._paths}
        self._heads = {
            "configuration": _encoded(documents.configuration_headers),
            "jwks": _encoded(documents.jwks_headers),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        which = self._paths.get(scope["path"]) if scope["type"] == "http" else None
        if which is None or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        body: bytes = getattr(self.documents, which)
        scope["route"] = self._routes[scope["path"]]
        headers = [*self._heads[which], (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in headers.items()]
