"""The UserInfo endpoint (OIDC Core §5.3): GET or POST with a bearer access token.

The token must be one of our access tokens (an ID token is refused by its `typ`), unexpired,
and its grant still alive; the claims released are those its scopes allow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import InvalidToken, OAuthError
from gateway.forwarded import app_host
from gateway.op import cors
from gateway.op.common import Handler, bearer_token, json_no_store, oauth_json, read_form
from gateway.op.minting import claims_for_scope

if TYPE_CHECKING:
    from gateway.services import Services


class InsufficientScope(OAuthError):
    error = "insufficient_scope"
    status_code = 403


def endpoint(services: Services) -> Handler:
    @oauth_json
    async def userinfo(request: Request) -> Response:
        if "authorization" not in request.headers and request.method == "GET":
            # oauth2-proxy's /oauth2/userinfo: the session cookie, no bearer token — on the
            # gateway's host or through an app host's proxy (that host's own session).
            name = services.settings.sessions.cookie_name
            pages = services.pages
            cookie = pages.cookie(request, name, host_only=True) or pages.cookie(request, name)
            host = app_host(services.settings, request)
            session = await services.sessions.load(cookie, host=host) if cookie else None
            if session is not None:
                p = session.profile
                return json_no_store(
                    {
                        "user": p.get("preferred_username")
                        or p.get("email")
                        or session.identity_id,
                        "email": p.get("email"),
                        "preferredUsername": p.get("preferred_username"),
                        "groups": p.get("groups") or [],
                        "identityId": session.identity_id,
                    }
                )
        form = None
        if request.method == "POST" and request.headers.get("content-type"):
            form = await read_form(request)
        token = await services.tokens.verify_access_token(bearer_token(request, form))
        cors.client_of(request, token.client_id)
        # One read of the grant answers both "still in force?" and "whose claims?" (plus a
        # read of the session for a grant bound to one).
        grants, sessions = services.grants, services.sessions
        loaded = await grants.live_grant(token.gid, sessions) if token.gid else None
        if loaded is None:
            raise InvalidToken("the access token has been revoked or was not issued for a user")
        if "openid" not in token.scope:
            raise InsufficientScope("the access token lacks the openid scope")
        profile = claims_for_scope(loaded[1].authorization.profile, token.scope)
        response: JSONResponse = json_no_store({**profile, "sub": token.sub})
        return response

    return userinfo
