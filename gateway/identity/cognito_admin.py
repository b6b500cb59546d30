"""The SigV4-signed Cognito Identity operations: developer identities and administration
(`CognitoAdminApi`).

Beside the unsigned ones in `cognito` to keep modules small; `cognito`'s dispatcher checks the
signature before any of these run, and the steps both take live in `cognito_steps`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.credentials.web_identity import token_audience
from gateway.errors import CognitoError, invalid_parameter, not_found
from gateway.identity.cognito_steps import (
    Body,
    IdentitySteps,
    Operation,
    identity_id_in,
    logins_in,
)
from gateway.identity.ids import Identity, LoginTaken
from gateway.identity.pools import roles_as_aws
from gateway.identity.providers import VerifiedLogin
from gateway.settings import IdentityPoolSettings

if TYPE_CHECKING:
    from gateway.services import Services


def _developer_provider(pool: IdentityPoolSettings, name: str | None = None) -> str:
    names = [p.name for p in pool.providers if p.type == "developer" and p.name]
    if not names or (name is not None and name not in names):
        raise invalid_parameter("The developer provider name does not match the identity pool.")
    return name or names[0]


def _limit(body: Body, default: int | None = None) -> int:
    value = body.get("MaxResults", default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 60:
        raise invalid_parameter("MaxResults must be between 1 and 60.")
    return value


class CognitoAdminApi:
    """The signed operations; each takes and returns an AWS JSON body. `operations` is the
    dispatcher's table, by `X-Amz-Target` operation name."""

    def __init__(self, services: Services, steps: IdentitySteps) -> None:
        self.s = services
        self.steps = steps
        self.operations: dict[str, Operation] = {
            "GetOpenIdTokenForDeveloperIdentity": self.get_open_id_token_for_developer_identity,
            "DescribeIdentity": self.describe_identity,
            "ListIdentities": self.list_identities,
            "DeleteIdentities": self.delete_identities,
            "LookupDeveloperIdentity": self.lookup_developer_identity,
            "MergeDeveloperIdentities": self.merge_developer_identities,
            "UnlinkDeveloperIdentity": self.unlink_developer_identity,
            "GetIdentityPoolRoles": self.get_identity_pool_roles,
            "SetIdentityPoolRoles": self.set_identity_pool_roles,
        }

    def describe(self, identity: Identity) -> Body:
        """An identity as DescribeIdentity and ListIdentities show it."""
        return {
            "IdentityId": identity.identity_id,
            "Logins": list(
                dict.fromkeys(
                    self.steps.login_name(identity, login.provider) for login in identity.logins
                )
            ),
            "CreationDate": identity.created,
            "LastModifiedDate": identity.last_modified,
        }

    async def get_open_id_token_for_developer_identity(self, body: Body) -> Body:
        pool = await self.s.pools.get(identity_id_in(body, "IdentityPoolId"))
        logins = logins_in(body)
        developer = _developer_provider(pool)
        if developer not in logins:
            raise invalid_parameter(f"Logins must contain the developer provider {developer}.")
        user = logins.pop(developer)
        duration = body.get("TokenDuration", pool.token_ttl)
        if not isinstance(duration, int) or not 1 <= duration <= 86400:
            raise invalid_parameter("TokenDuration must be between 1 and 86400 seconds.")
        tags = body.get("PrincipalTags") or {}
        if not isinstance(tags, dict) or len(tags) > 50:
            raise invalid_parameter("PrincipalTags must map up to 50 tag keys to values.")
        verified = await self.steps.verify_logins(pool, logins)
        start = identity_id_in(body) if body.get("IdentityId") else None
        owner = await self.s.identities.find(developer, user)
        if start and owner and owner != start:
            raise CognitoError(
                "DeveloperUserAlreadyRegisteredException",
                "The developer user is already registered with another identity.",
            )
        verified.append(VerifiedLogin(developer, user, {}))
        if start and await self.s.identities.get(start) is None:
            raise not_found(f"Identity '{start}' not found.")
        identity_id = await self.steps.identity_for(pool, verified, start=start)
        token = self.s.tokens.web_identity_token(
            identity_id=identity_id,
            audience=token_audience(pool.id, True, for_sts=pool.allow_classic_flow),
            amr=["authenticated", *dict.fromkeys(v.provider for v in verified)],
            ttl=duration,
            tags={str(k): str(v) for k, v in tags.items()},
        )
        return {"IdentityId": identity_id, "Token": token}

    async def describe_identity(self, body: Body) -> Body:
        identity_id = identity_id_in(body)
        identity = await self.s.identities.get(identity_id)
        if identity is None:
            raise not_found(f"Identity '{identity_id}' not found.")
        return self.describe(identity)

    async def list_identities(self, body: Body) -> Body:
        pool = await self.s.pools.get(identity_id_in(body, "IdentityPoolId"))
        token = body.get("NextToken")
        if token is not None and not isinstance(token, str):
            raise invalid_parameter("NextToken is not valid.")
        page, following = await self.s.identities.page(
            pool.id, token, _limit(body), hide_disabled=bool(body.get("HideDisabled"))
        )
        result: Body = {"IdentityPoolId": pool.id, "Identities": [self.describe(i) for i in page]}
        if following:
            result["NextToken"] = following
        return result

    async def delete_identities(self, body: Body) -> Body:
        ids = body.get("IdentityIdsToDelete")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 60:
            raise invalid_parameter("IdentityIdsToDelete must list 1 to 60 identity IDs.")
        for identity_id in ids:
            await self.s.identities.delete(identity_id_in({"IdentityId": identity_id}))
        return {"UnprocessedIdentityIds": []}

    async def lookup_developer_identity(self, body: Body) -> Body:
        pool = await self.s.pools.get(identity_id_in(body, "IdentityPoolId"))
        developer = _developer_provider(pool)
        user = body.get("DeveloperUserIdentifier")
        identity_id = identity_id_in(body) if body.get("IdentityId") else None
        if user is None and identity_id is None:
            raise invalid_parameter("Give IdentityId or DeveloperUserIdentifier.")
        if user is not None:
            owner = await self.s.identities.find(developer, str(user))
            if owner is None or (identity_id and owner != identity_id):
                raise not_found("Developer user identifier not found.")
            identity_id = owner
        identity = await self.s.identities.get(identity_id or "")
        if identity is None:
            raise not_found(f"Identity '{identity_id}' not found.")
        users = [x.subject for x in identity.logins if x.provider == developer]
        return {
            "IdentityId": identity.identity_id,
            "DeveloperUserIdentifierList": users[: _limit(body, 60)],
        }

    async def merge_developer_identities(self, body: Body) -> Body:
        pool = await self.s.pools.get(identity_id_in(body, "IdentityPoolId"))
        developer = _developer_provider(pool, body.get("DeveloperProviderName"))
        source, target = body.get("SourceUserIdentifier"), body.get("DestinationUserIdentifier")
        if not isinstance(source, str) or not isinstance(target, str):
            raise invalid_parameter(
                "SourceUserIdentifier and DestinationUserIdentifier are required."
            )
        source_id = await self.s.identities.find(developer, source)
        target_id = await self.s.identities.find(developer, target)
        if source_id is None or target_id is None:
            raise not_found("Developer user identifier not found.")
        if source_id != target_id:
            moving = await self.s.identities.get(source_id)
            for login in moving.logins if moving else []:
                await self.s.identities.unlink(source_id, login.provider, login.subject)
                try:
                    await self.s.identities.link(target_id, login.provider, login.subject)
                except LoginTaken:
                    raise CognitoError(
                        "ResourceConflictException", "A login moved concurrently."
                    ) from None
            await self.s.identities.delete(source_id)
        return {"IdentityId": target_id}

    async def unlink_developer_identity(self, body: Body) -> Body:
        pool = await self.s.pools.get(identity_id_in(body, "IdentityPoolId"))
        developer = _developer_provider(pool, body.get("DeveloperProviderName"))
        identity_id = identity_id_in(body)
        user = str(body.get("DeveloperUserIdentifier") or "")
        if await self.s.identities.find(developer, user) != identity_id:
            raise not_found("Developer user identifier not found for this identity.")
        await self.s.identities.unlink(identity_id, developer, user)
        return {}

    async def get_identity_pool_roles(self, body: Body) -> Body:
        pool = await self.s.pools.get(identity_id_in(body, "IdentityPoolId"))
        return roles_as_aws(pool)

    async def set_identity_pool_roles(self, body: Body) -> Body:
        roles, mappings = body.get("Roles"), body.get("RoleMappings") or {}
        if not isinstance(roles, dict) or not isinstance(mappings, dict):
            raise invalid_parameter("Roles (and RoleMappings) must be maps.")
        await self.s.pools.set_roles(identity_id_in(body, "IdentityPoolId"), roles, mappings)
        await self.s.audit.record(
            "pool.roles_changed", pool=body["IdentityPoolId"], roles=roles, actor="admin-api"
        )
        return {}
