"""The tokens a Cognito app expects, from the same issuer and key set as every other token.

A sign-in through the user-pool API makes a grant like any other (its refresh token is the
grant's), with Cognito's claims on top: the ID token's `token_use: id`, `cognito:username`,
`cognito:groups`, `event_id`, `origin_jti`, `jti`; the access token's `token_use: access`,
`client_id`, `username`, `scope` (`aws.cognito.signin.user.admin`), `cognito:groups`,
`event_id`, `origin_jti`, `jti`. The `sub` stays the identity ID.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from gateway.clients import Client
from gateway.connectors import local_connector_id
from gateway.grants import Authorization, Grant
from gateway.op.minting import claims_for_scope
from gateway.store import Write
from gateway.users.directory import User

if TYPE_CHECKING:
    from gateway.services import Services

ADMIN_SCOPE = "aws.cognito.signin.user.admin"  # what the API's own operations ask for
API_SCOPE = ["openid", "email", "phone", "profile", ADMIN_SCOPE]


async def sign_in(
    services: Services,
    client: Client,
    user: User,
    identity_id: str,
    amr: list[str],
    batch: list[Write] | None = None,
) -> dict[str, Any]:
    """A new grant for `user` at `client`, and its AuthenticationResult (with RefreshToken).
    With `batch`, the grant's writes join the caller's, which it sends before answering."""
    profile = services.users.claims(user)
    authorization = Authorization(
        sub=identity_id,
        client_id=client.client_id,
        scope=API_SCOPE,
        auth_time=int(time.time()),
        sid=None,  # no browser session: the grant lives until revoked or expired
        amr=amr,
        profile=claims_for_scope(profile, API_SCOPE),
        connector_id=local_connector_id(services.connectors) or "local",
        subject=user.user_id,
    )
    lifetime = services.settings.tokens.refresh_token_ttl
    grant, refresh = await services.grants.create_grant(authorization, lifetime, True, batch)
    return result(services, grant, user, refresh)


def result(
    services: Services, grant: Grant, user: User, refresh: str | None = None
) -> dict[str, Any]:
    """AuthenticationResult for `grant`: a fresh ID and access token (and `refresh`)."""
    auth = grant.authorization
    tokens = services.tokens
    origin_jti = grant.gid  # one per sign-in, as Cognito's: refreshed tokens keep it
    event_id = str(uuid.uuid4())
    groups = services.users.claims(user).get("cognito:groups")
    shared: dict[str, Any] = {"event_id": event_id, "origin_jti": origin_jti}
    if groups:
        shared["cognito:groups"] = groups
    access, parsed = tokens.access_token(
        sub=auth.sub,
        client_id=auth.client_id,
        scope=frozenset(auth.scope) & {ADMIN_SCOPE, "openid", "email", "phone", "profile"},
        gid=grant.gid,
        auth_time=auth.auth_time,
        extra={**shared, "token_use": "access", "username": user.user_id},
        audience=False,  # Cognito's shape: PyJWT code written for Cognito passes no audience
    )
    id_token = tokens.id_token(
        sub=auth.sub,
        client_id=auth.client_id,
        auth_time=auth.auth_time,
        nonce=None,
        sid=None,
        access_token=None,
        amr=auth.amr,
        profile={
            **claims_for_scope(services.users.claims(user), auth.scope),
            **shared,
            "token_use": "id",
            "cognito:username": user.user_id,
            "jti": str(uuid.uuid4()),
        },
    )
    answer: dict[str, Any] = {
        "AccessToken": access,
        "ExpiresIn": parsed.exp - parsed.iat,
        "TokenType": "Bearer",
        "IdToken": id_token,
    }
    if refresh:
        answer["RefreshToken"] = refresh
    return answer
