"""AWS credentials for identities: role choice (`roles`), the STS client (`sts`), the cached,
single-flight vendor (`vendor`), and `GET /credentials` for signed-in browsers.

`GET /credentials?pool=<id>` is for single-page apps that do not use an AWS SDK: the SSO session
cookie is the login (the provider is this gateway), the answer is the same credentials
GetCredentialsForIdentity would give, with `Cache-Control: no-store` and CORS only for the
pool's `cors_origins`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.errors import CognitoError

if TYPE_CHECKING:
    from gateway.services import Services


def routes(services: Services) -> list[BaseRoute]:
    from gateway.credentials.roles import choose_role
    from gateway.credentials.vendor import VendRequest, session_name
    from gateway.credentials.web_identity import provider_name

    own = provider_name(services.settings.issuer)

    def cors(request: Request, origins: list[str]) -> dict[str, str]:
        origin = request.headers.get("origin")
        if origin and origin in origins:
            return {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true",
                "Vary": "Origin",
            }
        return {}

    async def credentials(request: Request) -> Response:
        pools = services.pools.configured()
        pool_id = request.query_params.get("pool") or (pools[0].id if pools else "")
        headers = {"Cache-Control": "no-store"}
        try:
            pool = await services.pools.get(pool_id)
            headers |= cors(request, pool.cors_origins)
            cookie = services.pages.cookie(request, services.settings.sessions.cookie_name)
            session = await services.sessions.load(cookie)
            if session is None:
                return JSONResponse({"error": "not signed in"}, 401, headers=headers)
            identity_id = session.identity_id
            await services.identities.add_pool(identity_id, pool.id)
            role = choose_role(pool, own, session.profile)
            tags = {
                tag: str(session.profile[claim])
                for tag, claim in pool.principal_tags.get(own, {}).items()
                if claim in session.profile
            }
            creds = await services.vendor.credentials(
                VendRequest(
                    pool=pool,
                    identity_id=identity_id,
                    role_arn=role,
                    amr=["authenticated", own],
                    tags=tags,
                    session_name=session_name(session.profile.get("email"), identity_id),
                )
            )
        except CognitoError as exc:
            status = exc.status_code
            if exc.type_name == "ResourceNotFoundException":
                status = 404
            elif status == 400:
                status = 403
            return JSONResponse(
                {"error": exc.type_name, "message": exc.message}, status, headers=headers
            )
        return JSONResponse(
            {
                "IdentityId": identity_id,
                "AccessKeyId": creds.access_key_id,
                "SecretAccessKey": creds.secret_access_key,
                "SessionToken": creds.session_token,
                "Expiration": creds.expiration,
            },
            headers=headers,
        )

    return [Route("/credentials", credentials, methods=["GET"])]
