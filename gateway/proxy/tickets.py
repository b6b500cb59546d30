"""One-time, host-bound tickets: how an app on another domain gets its own session.

The browser signs in on the gateway's host, where the session cookie lives. An app on
`app.other.example` never sees that cookie, so the gateway sends the browser to the app host's
`/oauth2/callback?ticket=…` (routed by the app's proxy to the gateway), where the ticket is
exchanged for a session of that host only (`SessionManager.create_for_host`).

A ticket is 32 random bytes; the store keeps it under its keyed hash, sealed, for
`TICKET_TTL` seconds, and it is taken (GETDEL) on first use. It names the host it was made for
and the page to return to; redeemed through any other host it is spent and worth nothing.

Not here: the routes (`gateway.proxy`), sessions (`gateway.sessions`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.crypto import Sealer, random_token
from gateway.store import Store

TICKET_TTL = 60  # seconds: the redirect to the app host follows at once
_PURPOSE = "host-ticket"
LOOP_LIMIT = 5  # tickets for one session and host within LOOP_WINDOW: a proxy that drops cookies
LOOP_WINDOW = 60


@dataclass(frozen=True)
class Ticket:
    """What a ticket stands for: the gateway session's cookie, the host, the page."""

    cookie: str
    host: str
    target: str


class Tickets:
    def __init__(self, store: Store, sealer: Sealer) -> None:
        self._store = store
        self._sealer = sealer

    def _key(self, ticket: str) -> str:
        return self._store.key(_PURPOSE, self._sealer.keyed_hash(ticket, purpose=_PURPOSE))

    async def issue(self, cookie: str, host: str, target: str) -> str:
        """A fresh ticket for the gateway session `cookie`, valid once, on `host` only."""
        ticket = random_token(32)
        key = self._key(ticket)
        record = json.dumps({"cookie": cookie, "host": host, "target": target}).encode()
        sealed = self._sealer.seal(record, purpose=_PURPOSE, context=key.encode())
        await self._store.put(key, sealed, ttl=TICKET_TTL)
        return ticket

    async def redeem(self, ticket: str, host: str) -> Ticket | None:
        """The ticket's contents if it is live and was made for `host`; spent either way."""
        if not ticket or len(ticket) > 100:
            return None
        key = self._key(ticket)
        raw = await self._store.take(key)
        if raw is None:
            return None
        try:
            data = json.loads(self._sealer.open(raw, purpose=_PURPOSE, context=key.encode()))
        except ValueError:
            return None
        found = Ticket(cookie=data["cookie"], host=data["host"], target=data["target"])
        return found if found.host == host else None

    async def looping(self, sid: str, host: str) -> bool:
        """Count a ticket for this session and host; True when the browser keeps coming back
        (the app host never kept its cookie: a proxy that does not route /oauth2/ or drops
        Set-Cookie), so the sign-in stops with a page instead of redirecting for ever."""
        key = self._store.key("host-ticket-count", sid, host)
        return await self._store.incr(key, ttl=LOOP_WINDOW) > LOOP_LIMIT
