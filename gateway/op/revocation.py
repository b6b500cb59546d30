"""Token revocation (RFC 7009) and introspection (RFC 7662).

Revocation answers 200 whatever the token was (unknown, expired, another client's) so it cannot
be used to probe tokens; it only acts on tokens issued to the calling client. Introspection needs
an authenticated confidential client and says nothing but `{"active": false}` about a bad token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import InvalidClient, InvalidRequest, InvalidToken
from gateway.op import cors
from gateway.op.common import Handler, json_no_store, oauth_json, read_form
from gateway.tokens import AccessToken

if TYPE_CHECKING:
    from gateway.services import Services


async def _as_access_token(services: Services, token: str) -> AccessToken | None:
    if token.count(".") != 2:
        return None
    try:
        return await services.tokens.verify_access_token(token)
    except InvalidToken:
        return None


def revoke_endpoint(services: Services) -> Handler:
    @oauth_json
    async def revoke(request: Request) -> Response:
        form = await read_form(request)
        client = services.clients.authenticate(request.headers, form)
        cors.client_of(request, client.client_id)
        token = str(form.get("token") or "")
        if not token:
            raise InvalidRequest("token is required")  # RFC 7009 §2.1: REQUIRED
        grants = services.grants
        access = await _as_access_token(services, token)
        if access is not None:
            if access.client_id == client.client_id:
                await grants.revoke_access_token(access)
        else:
            gid = grants.gid_of(token)
            loaded = await grants.load_grant(gid) if gid else None
            if loaded is not None:
                grant = loaded[1]
                owned = grant.authorization.client_id == client.client_id
                if owned and grants.refresh_matches(grant, token) != "unknown":
                    await grants.revoke(grant.gid)
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    return revoke


def introspect_endpoint(services: Services) -> Handler:
    issuer = services.settings.issuer

    @oauth_json
    async def introspect(request: Request) -> Response:
        form = await read_form(request)
        client = services.clients.authenticate(request.headers, form)
        if client.is_public:
            raise InvalidClient("introspection needs a confidential client")
        token = str(form.get("token") or "")
        grants = services.grants
        body: dict[str, Any] = {"active": False}
        access = await _as_access_token(services, token) if token else None
        if access is not None and await grants.access_token_active(access, services.sessions):
            body = {
                "active": True,
                "token_type": "Bearer",
                "scope": " ".join(sorted(access.scope)),
                "client_id": access.client_id,
                "sub": access.sub,
                "aud": access.client_id,
                "iss": issuer,
                "exp": access.exp,
                "iat": access.iat,
                "jti": access.jti,
            }
        elif access is None and token:
            gid = grants.gid_of(token)
            loaded = await grants.live_grant(gid, services.sessions) if gid else None
            if loaded is not None and grants.refresh_matches(loaded[1], token) == "current":
                grant = loaded[1]
                body = {
                    "active": True,
                    "token_type": "refresh_token",
                    "scope": " ".join(grant.authorization.scope),
                    "client_id": grant.authorization.client_id,
                    "sub": grant.authorization.sub,
                    "iss": issuer,
                    "exp": grant.expires,
                    "iat": grant.created,
                }
        return json_no_store(body)

    return introspect
