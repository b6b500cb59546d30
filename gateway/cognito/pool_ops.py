"""DescribeUserPool, DescribeUserPoolClient and ListUserPoolClients: the pool and its app
clients as the settings define them, in Cognito's shapes (read-only: settings are changed in
the settings file, so there is no UpdateUserPool here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.cognito.auth import Call, this_pool
from gateway.cognito.group_ops import limit_of, page_of
from gateway.cognito.wire import Body, string, unknown_client

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.cognito.api import UserPoolApi
    from gateway.settings import ClientSettings

ACCOUNT = "000000000000"  # ARNs name an AWS account; a self-hosted pool has none


async def describe_user_pool(api: UserPoolApi, call: Call) -> Body:
    this_pool(api, call.body)
    settings = api.s.settings
    pool = settings.user_pool
    policy = pool.password
    mfa = {"off": "OFF", "optional": "OPTIONAL", "required": "ON"}[pool.mfa]
    return {
        "UserPool": {
            "Id": api.pool_id,
            "Name": api.pool_name,
            "Arn": f"arn:aws:cognito-idp:{settings.region}:{ACCOUNT}:userpool/{api.pool_id}",
            "Status": "Enabled",
            "Policies": {
                "PasswordPolicy": {
                    "MinimumLength": policy.min_length,
                    "RequireUppercase": "uppercase" in policy.require,
                    "RequireLowercase": "lowercase" in policy.require,
                    "RequireNumbers": "digit" in policy.require,
                    "RequireSymbols": "symbol" in policy.require,
                }
            },
            "UsernameAttributes": ["email"],
            "AliasAttributes": ["preferred_username"] if pool.usernames else [],
            "AutoVerifiedAttributes": ["email"],
            "MfaConfiguration": mfa,
            "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": not pool.self_sign_up},
        }
    }


def client_type(api: UserPoolApi, client: ClientSettings) -> Body:
    """Cognito's UserPoolClientType of one configured client."""
    tokens = api.s.settings.tokens
    flows = [f for f in ("code", "implicit", "client_credentials") if _grant(client, f)]
    view: Body = {
        "UserPoolId": api.pool_id,
        "ClientName": client.client_name or client.client_id,
        "ClientId": client.client_id,
        "RefreshTokenValidity": tokens.refresh_token_ttl,
        "AccessTokenValidity": tokens.access_token_ttl,
        "IdTokenValidity": tokens.id_token_ttl,
        "TokenValidityUnits": {
            "AccessToken": "seconds", "IdToken": "seconds", "RefreshToken": "seconds",
        },
        "ExplicitAuthFlows": list(client.explicit_auth_flows),
        "CallbackURLs": [str(u) for u in client.redirect_uris],
        "LogoutURLs": [str(u) for u in client.post_logout_redirect_uris],
        "AllowedOAuthFlows": flows,
        "AllowedOAuthScopes": client.scope.split(),
        "AllowedOAuthFlowsUserPoolClient": bool(flows),
        "PreventUserExistenceErrors": "ENABLED",
        "EnableTokenRevocation": True,
    }  # fmt: skip
    if client.client_secret:
        view["ClientSecret"] = client.client_secret
    return view


def _grant(client: ClientSettings, flow: str) -> bool:
    grant = {"code": "authorization_code", "client_credentials": "client_credentials"}.get(flow)
    return grant is not None and grant in client.grant_types


async def describe_user_pool_client(api: UserPoolApi, call: Call) -> Body:
    this_pool(api, call.body)
    client_id = string(call.body, "ClientId", high=128)
    client = api.s.clients.get(client_id)
    if client is None:
        raise unknown_client(client_id)
    return {"UserPoolClient": client_type(api, client.config)}


async def list_user_pool_clients(api: UserPoolApi, call: Call) -> Body:
    this_pool(api, call.body)
    clients = {c.client_id: c for c in api.s.settings.clients}
    limit = limit_of(call.body, "MaxResults")
    ids, more = page_of(api, "ListUserPoolClients", "", sorted(clients), call.body, limit)
    return {
        "UserPoolClients": [
            {"ClientId": i, "UserPoolId": api.pool_id, "ClientName": clients[i].client_name or i}
            for i in ids
        ],
        **more,
    }


OPERATIONS: dict[str, Callable[[UserPoolApi, Call], Awaitable[Body]]] = {
    "DescribeUserPool": describe_user_pool,
    "DescribeUserPoolClient": describe_user_pool_client,
    "ListUserPoolClients": list_user_pool_clients,
}
