"""Ending sessions: one (the user signs out) or every session and token family of an identity
(an administrator, a disabled or deleted account), and telling the clients.

Clients that registered a `backchannel_logout_uri` get an OIDC Back-Channel Logout 1.0 logout
token for each ended session they were signed in to. Delivery is asynchronous (a slow client
must not hold up the user's sign-out), bounded by a short timeout, and `drain()` waits for what
is in flight (on shutdown, and before a CLI command exits).
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from gateway.op.clients import ClientRegistry
from gateway.op.grants import GrantStore
from gateway.sessions import SessionManager
from gateway.tokens import TokenService

log = logging.getLogger("cognate.logout")


class Logout:
    """End sessions and notify clients."""

    def __init__(
        self,
        sessions: SessionManager,
        grants: GrantStore,
        tokens: TokenService,
        clients: ClientRegistry,
        timeout: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._grants = grants
        self._tokens = tokens
        self._clients = clients
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._pending: set[asyncio.Task[None]] = set()

    async def session_ended(self, sid: str, identity_id: str) -> None:
        """A session is over: notify the clients it signed in to."""
        for client_id in await self._sessions.clients_of.clear(sid):
            client = self._clients.get(client_id)
            if client is None or not client.config.backchannel_logout_uri:
                continue
            token = self._tokens.logout_token(client_id=client_id, sub=identity_id, sid=sid)
            task = asyncio.create_task(
                self._deliver(client.config.backchannel_logout_uri, client_id, token)
            )
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def end_identity(self, identity_id: str) -> tuple[int, int]:
        """End every session and revoke every token family of an identity, on every replica
        at once (the records are gone from the store). Returns (sessions, grants) ended."""
        sids = await self._sessions.by_identity.clear(identity_id)
        ended = 0
        for sid in sids:
            if await self._sessions.peek(sid):
                ended += 1
            await self._sessions.end(sid)
            await self.session_ended(sid, identity_id)
        gids = await self._grants.by_identity.clear(identity_id)
        revoked = 0
        for gid in gids:
            if await self._grants.grant_alive(gid):
                revoked += 1
            await self._grants.revoke(gid)
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
        """Wait for notifications in flight."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        await self._http.aclose()
