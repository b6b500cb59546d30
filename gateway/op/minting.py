"""What every grant of the token endpoint shares: the `GrantHandler` shape, reading a required
form field, the scopes' claims (OIDC Core §5.4), and `TokenMinting` — a grant made into the
token response (access, ID and refresh tokens, the pre_token_generation hook).

The grants themselves live in `gateway.op.token` (authorization_code, refresh_token,
client_credentials), `gateway.op.device` (RFC 8628) and `gateway.op.exchange` (RFC 8693).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from starlette.datastructures import FormData

from gateway.clients import Client
from gateway.errors import InvalidRequest, TemporarilyUnavailable
from gateway.grants import Authorization, Grant
from gateway.users.hooks import HookFailed

if TYPE_CHECKING:
    from gateway.services import Services


class GrantHandler(Protocol):
    """One grant type of the token endpoint."""

    grant_type: str

    async def exchange(self, form: FormData, client: Client) -> dict[str, Any]:
        """The token response for a valid request; raise an OAuthError otherwise."""
        ...


def required_field(form: FormData, name: str) -> str:
    """The non-empty form field `name`, or invalid_request naming it."""
    value = form.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{name} is required")
    return value


class TokenMinting:
    """Turning a grant into the token response."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def response(
        self,
        grant: Grant,
        refresh: str | None,
        scope: list[str],
        nonce: str | None = None,
    ) -> dict[str, Any]:
        auth: Authorization = grant.authorization
        tokens = self.services.tokens
        access, parsed = tokens.access_token(
            sub=auth.sub,
            client_id=auth.client_id,
            scope=frozenset(scope),
            gid=grant.gid,
            sid=auth.sid,
            auth_time=auth.auth_time,
        )
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": parsed.exp - parsed.iat,
            "scope": " ".join(scope),
        }
        if refresh:
            body["refresh_token"] = refresh
        if "openid" in scope:
            try:  # the pre_token_generation hook, when configured
                profile = await self.services.hooks.shape_claims(
                    auth.sub, auth.client_id, scope, claims_for_scope(auth.profile, scope)
                )
            except HookFailed:
                raise TemporarilyUnavailable("the token hook did not answer") from None
            body["id_token"] = tokens.id_token(
                sub=auth.sub,
                client_id=auth.client_id,
                auth_time=auth.auth_time,
                nonce=nonce,
                sid=auth.sid,
                access_token=access,
                amr=auth.amr,
                profile=profile,
            )
        return body

    def family_lifetime(self, client: Client) -> tuple[int, bool]:
        """How long a new grant lives, and whether it gets a refresh token."""
        tokens = self.services.settings.tokens
        if "refresh_token" in client.config.grant_types:
            return tokens.refresh_token_ttl, True
        return tokens.access_token_ttl + tokens.leeway, False


SCOPE_CLAIMS = {
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "profile": (
        "name",
        "given_name",
        "family_name",
        "middle_name",
        "nickname",
        "preferred_username",
        "profile",
        "picture",
        "website",
        "gender",
        "birthdate",
        "zoneinfo",
        "locale",
        "updated_at",
        # Cognito's names for user-pool groups and their IAM roles (identity pools' Token role
        # mappings read the last two).
        "groups",
        "cognito:groups",
        "cognito:roles",
        "cognito:preferred_role",
    ),
}


def claims_for_scope(profile: dict[str, Any], scope: list[str] | frozenset[str]) -> dict[str, Any]:
    """The profile claims that the granted scopes release (OIDC Core §5.4)."""
    allowed = {claim for s in scope for claim in SCOPE_CLAIMS.get(s, ())}
    custom = "profile" in scope  # custom:<attribute> claims travel with the profile scope
    return {
        k: v for k, v in profile.items() if k in allowed or (custom and k.startswith("custom:"))
    }
