"""OpenID Provider metadata (Discovery 1.0, RFC 8414) and the JWKS.

Both are cheap and hot: the metadata is built once; the JWKS body is rebuilt only when the key
set changes, and may be cached by clients for a short time (rotation publishes keys ahead of use).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.op.common import Handler
from gateway.services import Services
from gateway.settings import DEVICE_CODE_GRANT, GRANT_TYPES

JWKS_MAX_AGE = 300


def metadata(services: Services) -> dict[str, Any]:
    """The discovery document."""
    issuer = services.settings.issuer
    keys = services.settings.keys
    # No device grant in sidecar mode (`gateway.op.device_routes`).
    device = services.settings.sidecar is None
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth2/authorize",
        "token_endpoint": f"{issuer}/oauth2/token",
        "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        **(
            {"device_authorization_endpoint": f"{issuer}/oauth2/device_authorization"}
            if device
            else {}
        ),
        "end_session_endpoint": f"{issuer}/oauth2/logout",
        "scopes_supported": ["openid", "email", "profile", "phone", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [g for g in GRANT_TYPES if device or g != DEVICE_CODE_GRANT],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [keys.id_token_alg],
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


def configuration(services: Services) -> Handler:
    body = json.dumps(metadata(services)).encode()

    async def endpoint(request: Request) -> Response:
        return Response(
            body,
            media_type="application/json",
            headers={"Cache-Control": "public, max-age=3600", "Access-Control-Allow-Origin": "*"},
        )

    return endpoint


def jwks(services: Services) -> Handler:
    cache: dict[str, Any] = {"source": None, "body": b""}

    async def endpoint(request: Request) -> Response:
        current = services.keys.jwks
        if cache["source"] is not current:
            cache["source"], cache["body"] = current, json.dumps(current).encode()
        return Response(
            cache["body"],
            media_type="application/jwk-set+json",
            headers={
                "Cache-Control": f"public, max-age={JWKS_MAX_AGE}",
                "Access-Control-Allow-Origin": "*",
            },
        )

    return endpoint
