"""The token endpoint and its grants: authorization_code, refresh_token, client_credentials
(and, registered from their own modules, RFC 8628's device_code, `gateway.op.device`, and
RFC 8693's token-exchange, `gateway.op.exchange`).

Each grant is a small class with `grant_type` and `exchange(form, client)`, in the style of
dex's handlers; the endpoint only authenticates the client and dispatches. Password and implicit
grants do not exist here (RFC 9700 §2.4) and answer `unsupported_grant_type`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from gateway.clients import Client
from gateway.connectors import (
    ConnectorError,
    RefreshingConnector,
    SignInTooOld,
    UpstreamRefresh,
    UpstreamRefused,
    UpstreamSignIn,
)
from gateway.crypto import constant_time_equals, s256_challenge
from gateway.errors import (
    InvalidGrant,
    InvalidScope,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from gateway.grants import Grant
from gateway.op import cors
from gateway.op.common import Handler, json_no_store, oauth_json, read_form
from gateway.op.device import device_code_grant
from gateway.op.exchange import token_exchange_grant
from gateway.op.minting import GrantHandler, TokenMinting, claims_for_scope, required_field

if TYPE_CHECKING:
    from gateway.services import Services

_VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class AuthorizationCodeGrant(TokenMinting):
    """RFC 6749 §4.1.3 with PKCE (RFC 7636) and single-use codes."""

    grant_type = "authorization_code"

    async def exchange(self, form: FormData, client: Client) -> dict[str, Any]:
        code = required_field(form, "code")
        redirect_uri = form.get("redirect_uri")
        verifier = form.get("code_verifier")
        grants = self.services.grants
        loaded = await grants.load_code(code)
        if loaded is None:
            raise InvalidGrant("the code is invalid or has expired")
        raw, record = loaded
        if record.used_by:
            # RFC 6749 §4.1.2: a code used twice revokes what the first use obtained.
            await grants.revoke(record.used_by)
            raise InvalidGrant("the code was already used; the tokens issued for it are revoked")
        auth = record.authorization
        if auth.client_id != client.client_id:
            raise InvalidGrant("the code was issued to another client")
        if redirect_uri != record.redirect_uri:
            raise InvalidGrant("redirect_uri does not match the authorization request")
        if record.code_challenge:
            if (
                not isinstance(verifier, str)
                or not 43 <= len(verifier) <= 128
                or (set(verifier) - _VERIFIER_CHARS)
            ):
                raise InvalidGrant("a valid code_verifier is required")
            if not constant_time_equals(s256_challenge(verifier), record.code_challenge):
                raise InvalidGrant("code_verifier does not match the code_challenge")
        elif verifier is not None:
            raise InvalidGrant("code_verifier sent, but the authorization had no code_challenge")
        lifetime, with_refresh = self.family_lifetime(client)
        # Write the grant first, then claim the code: if we lose the race for the code, the
        # winner's grant already exists and the loser's revocation below reaches it.
        grant, refresh = await grants.create_grant(auth, lifetime, with_refresh)
        if not await grants.mark_code_used(code, raw, record, grant.gid):
            await grants.revoke(grant.gid)
            again = await grants.load_code(code)
            if again is not None and again[1].used_by:
                await grants.revoke(again[1].used_by)
            raise InvalidGrant("the code was already used; the tokens issued for it are revoked")
        return await self.response(grant, refresh, auth.scope, nonce=auth.nonce)


class RefreshTokenGrant(TokenMinting):
    """RFC 6749 §6 with rotation; replay of a rotated token revokes the family (RFC 9700 §4.14)."""

    grant_type = "refresh_token"

    async def exchange(self, form: FormData, client: Client) -> dict[str, Any]:
        presented = required_field(form, "refresh_token")
        grants = self.services.grants
        gid = grants.gid_of(presented)
        sessions = self.services.sessions
        loaded = await grants.live_grant(gid, sessions, refreshing=True) if gid else None
        if loaded is None:
            raise InvalidGrant("the refresh token is invalid, expired or revoked")
        raw, grant = loaded
        match = grants.refresh_matches(grant, presented)
        if match == "used":
            await grants.revoke(grant.gid)
            raise InvalidGrant("the refresh token was already used; the grant is revoked")
        if match != "current" or grant.authorization.client_id != client.client_id:
            raise InvalidGrant("the refresh token is invalid, expired or revoked")
        if int(time.time()) >= grant.expires:
            await grants.revoke(grant.gid)
            raise InvalidGrant("the refresh token has expired")
        scope = grant.authorization.scope
        if form.get("scope") is not None:
            asked = str(form.get("scope")).split()
            if not asked or set(asked) - set(scope):
                raise InvalidScope("a refresh cannot widen the original scope")
            scope = [s for s in scope if s in asked]
        refreshed = await self._upstream_still_agrees(grant)
        rotated = await grants.rotate_refresh(
            raw,
            grant,
            refreshed.tokens if refreshed else None,
            # The IdP's fresher profile (a new ID token), released as the first time was.
            claims_for_scope(refreshed.claims, grant.authorization.scope)
            if refreshed and refreshed.claims is not None
            else None,
        )
        if rotated is None:
            # Someone rotated this family between our read and our write: the same token was
            # presented twice at once. Treat it as the replay it is.
            await grants.revoke(grant.gid)
            raise InvalidGrant("the refresh token was already used; the grant is revoked")
        new_grant, refresh = rotated
        return await self.response(new_grant, refresh, scope)

    async def _upstream_still_agrees(self, grant: Grant) -> UpstreamRefresh | None:
        """A downstream refresh asks the upstream IdP too: refreshed upstream tokens (OIDC,
        OAuth2; with a new ID token, a fresher profile), or, for a SAML sign-in (nothing to
        refresh), no older than its connector's `max_session_age`. The grant ends when the
        IdP says no; an unreachable IdP is a 503 and the refresh token stays usable."""
        authorization = grant.authorization
        connector = self.services.connectors.get(authorization.connector_id or "")
        if not isinstance(connector, RefreshingConnector):
            return None
        signed_in = UpstreamSignIn(
            authorization.subject, authorization.upstream, authorization.auth_time, time.time()
        )
        try:
            return await connector.refresh(signed_in)
        except SignInTooOld:
            await self.services.grants.revoke(grant.gid)
            raise InvalidGrant("the sign-in is too old; sign in again") from None
        except UpstreamRefused:
            await self.services.grants.revoke(grant.gid)
            raise InvalidGrant("the identity provider no longer accepts this sign-in") from None
        except ConnectorError:
            raise TemporarilyUnavailable("the identity provider cannot be reached") from None


class ClientCredentialsGrant:
    """RFC 6749 §4.4: a confidential client acting for itself. No ID or refresh token, and no
    store write: the access token names no grant, so it is revoked by its `jti`."""

    grant_type = "client_credentials"

    def __init__(self, services: Services) -> None:
        self.services = services

    async def exchange(self, form: FormData, client: Client) -> dict[str, Any]:
        if client.is_public:
            raise UnauthorizedClient("client_credentials needs a confidential client")
        allowed = client.config.scopes - {"openid", "offline_access", "email", "profile", "phone"}
        asked = str(form.get("scope") or "").split()
        scope = frozenset(asked) if asked else frozenset(allowed)
        if scope - allowed:
            raise InvalidScope(
                "scope not allowed for client_credentials: " + " ".join(sorted(scope - allowed))
            )
        access, parsed = self.services.tokens.access_token(
            sub=client.client_id,
            client_id=client.client_id,
            scope=scope,
            gid=None,
        )
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": parsed.exp - parsed.iat,
            "scope": " ".join(sorted(scope)),
        }


def endpoint(services: Services) -> Handler:
    handlers: dict[str, GrantHandler] = {
        h.grant_type: h
        for h in (
            AuthorizationCodeGrant(services),
            RefreshTokenGrant(services),
            ClientCredentialsGrant(services),
            device_code_grant(services),
            token_exchange_grant(services),
        )
    }

    @oauth_json
    async def token(request: Request) -> Response:
        form = await read_form(request)
        client = services.clients.authenticate(request.headers, form)
        cors.client_of(request, client.client_id)
        grant_type = required_field(form, "grant_type")
        handler = handlers.get(grant_type)
        if handler is None:
            raise UnsupportedGrantType(f"grant_type {grant_type} is not supported")
        if grant_type not in client.config.grant_types:
            raise UnauthorizedClient(f"this client may not use the {grant_type} grant")
        body = await handler.exchange(form, client)
        services.metrics.tokens.labels(grant_type).inc()
        # Not waited for: the answer does not depend on it (written in batches, never lost
        # quietly; see gateway.audit).
        services.audit.defer(
            "token.issued",
            client_id=client.client_id,
            grant_type=grant_type,
            scope=body.get("scope"),
        )
        return json_no_store(body)

    return token
