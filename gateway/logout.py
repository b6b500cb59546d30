"""Ending sessions: one (the user signs out) or every session and token family of an identity
(an administrator, a disabled or deleted account), and telling the clients.

Clients that registered a `backchannel_logout_uri` get an OIDC Back-Channel Logout 1.0 logout
token for each ended session they were signed in to. Delivery runs in the background (a slow
client must not hold up the user's sign-out), bounded by a short timeout, and is drained on
shutdown and before a CLI command exits.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httpx

from gateway.background import Background
from gateway.clients import ClientRegistry
from gateway.errors import StoreUnavailable
from gateway.grants import GrantStore
from gateway.outbound import http_client
from gateway.sessions import SessionManager
from gateway.tokens import TokenService

if TYPE_CHECKING:
    from gateway.services import Services

log = logging.getLogger("cognate.logout")


class Logout:
    """End sessions and notify clients."""

    def __init__(
        self,
        sessions: SessionManager,
        grants: GrantStore,
        tokens: TokenService,
        clients: ClientRegistry,
        background: Background,
        timeout: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._grants = grants
        self._tokens = tokens
        self._clients = clients
        self._background = background
        self._http = http_client(timeout)

    async def session_ended(self, sid: str, identity_id: str) -> None:
        """A session is over: notify the clients it signed in to."""
        for client_id in await self._sessions.clients_of.clear(sid):
            client = self._clients.get(client_id)
            if client is None or not client.config.backchannel_logout_uri:
                continue
            token = self._tokens.logout_token(client_id=client_id, sub=identity_id, sid=sid)
            self._background.spawn(
                self._deliver(client.config.backchannel_logout_uri, client_id, token)
            )

    async def end_identity(self, identity_id: str) -> tuple[int, int]:
        """End every session and revoke every token family of an identity, on every replica
        at once (the records are gone from the store). Returns (sessions, grants) ended."""
        # The index is emptied first: one that fails (the store, or telling the replicas)
        # must not leave the others standing, so each is ended and the first failure raised
        # once all were tried.
        failed: StoreUnavailable | None = None
        ended = 0
        for sid in await self._sessions.by_identity.clear(identity_id):
            try:
                if await self._sessions.peek(sid):
                    ended += 1
                await self._sessions.end(sid)
                await self.session_ended(sid, identity_id)
            except StoreUnavailable as exc:
                failed = failed or exc
        revoked = 0
        for gid in await self._grants.by_identity.clear(identity_id):
            try:
                if await self._grants.grant_alive(gid):
                    revoked += 1
                await self._grants.revoke(gid)
            except StoreUnavailable as exc:
                failed = failed or exc
        if failed is not None:
            raise failed
        return ended, revoked

    async def _deliver(self, uri: str, client_id: str, token: str) -> None:
        try:
            response = await self._http.post(
                uri, data={"logout_token": token}, headers={"Cache-Control": "no-store"}
            )
            if response.status_code >= 400:
                log.warning(
                    "back-channel logout refused",
                    extra={"client_id": client_id, "status": response.status_code},
                )
        except httpx.HTTPError as exc:
            log.warning(
                "back-channel logout failed",
                extra={"client_id": client_id, "error": type(exc).__name__},
            )

    async def drain(self) -> None:
        """Wait for notifications in flight (and any other background work)."""
        await self._background.drain()

    async def close(self) -> None:
        await self.drain()
        await self._http.aclose()


async def end_local_user(services: Services, user_id: str) -> tuple[int, int]:
    """Every session and token family of a local user (through the identity of each `local`
    connector), after a password reset, a disable or a delete. Returns (sessions, grants)."""
    ended = revoked = 0
    for connector_id, connector in services.connectors.items():
        if connector.type != "local":
            continue
        identity_id = await services.identities.find(connector_id, user_id)
        if identity_id:
            sessions, grants = await services.logout.end_identity(identity_id)
            ended, revoked = ended + sessions, revoked + grants
    return ended, revoked
