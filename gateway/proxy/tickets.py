"""One-time, host-bound tickets: how an app on another domain gets its own session.

The browser signs in on the gateway's host, where the session cookie lives. An app on
`app.other.example` never sees that cookie, so the gateway sends the browser to the app host's
`/oauth2/callback?ticket=…` (routed by the app's proxy to the gateway), where the ticket is
exchanged for a session of that host only (`SessionManager.create_for_host`).

A ticket is 32 random bytes; the store keeps it under its keyed hash, sealed, for
`TICKET_TTL` seconds, and it is taken (GETDEL) on first use. It names the host it was made for,
the page to return to, and the browser it is for: the keyed hash of a random binding cookie
that the app host's own /oauth2/start set before sending the browser to sign in. Redeemed
through any other host, or by a browser without that cookie (an attacker's ticket opened by a
victim: login CSRF), it is spent and worth nothing.

A binding is registered in the store by the app host's /oauth2/start, with the exact origin
(scheme, host, port) it was made on, so the gateway never takes one from a link: a `bind` that
was not registered, or a page to return to on another origin (another port on the same host,
plain http), gets no ticket. The ticket only ever goes to the registered origin, where the
browser being sent is the one that must hold the cookie.

Not here: the routes (`gateway.proxy`), sessions (`gateway.sessions`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.crypto import Sealer, constant_time_equals, random_token
from gateway.store import Store

TICKET_TTL = 60  # seconds: the redirect to the app host follows at once
_PURPOSE = "host-ticket"
BINDING_COOKIE = "cognate_bind"  # on an app host, from its /oauth2/start to its /oauth2/session
BINDING_TTL = 900  # seconds: long enough to sign in, with MFA
LOOP_LIMIT = 5  # hand-overs for one session and host within LOOP_WINDOW: a proxy that drops cookies
LOOP_WINDOW = 60


@dataclass(frozen=True)
class Ticket:
    """What a ticket stands for: the gateway session's cookie, the host, the page."""

    cookie: str
    host: str
    target: str
    binding: str


class Tickets:
    def __init__(self, store: Store, sealer: Sealer) -> None:
        self._store = store
        self._sealer = sealer

    def _key(self, ticket: str) -> str:
        return self._store.key(_PURPOSE, self._sealer.keyed_hash(ticket, purpose=_PURPOSE))

    def binding(self, browser: str) -> str:
        """The keyed hash of an app host's binding cookie, as it travels through the gateway
        (the cookie itself never leaves its host)."""
        return self._sealer.keyed_hash(browser, purpose=_PURPOSE + "-browser")

    async def bind(self, browser: str, origin: str) -> str:
        """Register this browser's binding, made on `origin` (the app host's scheme://host:port
        as its proxy names it); the binding that travels to the gateway."""
        binding = self.binding(browser)
        await self._store.put(self._binding_key(binding), origin.encode(), ttl=BINDING_TTL)
        return binding

    async def bound_origin(self, binding: str) -> str | None:
        """The origin a registered binding was made on, or None (never registered, expired)."""
        if not binding or len(binding) > 100:
            return None
        raw = await self._store.get(self._binding_key(binding))
        return raw.decode() if raw is not None else None

    def _binding_key(self, binding: str) -> str:
        return self._store.key("host-binding", binding)

    async def issue(self, cookie: str, host: str, target: str, binding: str) -> str:
        """A fresh ticket for the gateway session `cookie`, valid once, on `host` only, for
        the browser whose binding cookie hashes to `binding`."""
        ticket = random_token(32)
        key = self._key(ticket)
        record = json.dumps(
            {"cookie": cookie, "host": host, "target": target, "binding": binding}
        ).encode()
        sealed = self._sealer.seal(record, purpose=_PURPOSE, context=key.encode())
        await self._store.put(key, sealed, ttl=TICKET_TTL)
        return ticket

    async def redeem(self, ticket: str, host: str, browser: str | None) -> Ticket | None:
        """The ticket's contents if it is live, was made for `host`, and `browser` (the
        binding cookie this browser sent) is the one it was made for; spent either way."""
        if not ticket or len(ticket) > 100 or not browser:
            return None
        key = self._key(ticket)
        raw = await self._store.take(key)
        if raw is None:
            return None
        try:
            data = json.loads(self._sealer.open(raw, purpose=_PURPOSE, context=key.encode()))
        except ValueError:
            return None
        found = Ticket(data["cookie"], data["host"], data["target"], data["binding"])
        if found.host != host or not constant_time_equals(found.binding, self.binding(browser)):
            return None
        return found

    async def looping(self, browser: str, host: str) -> bool:
        """Count a trip of this browser (its gateway-host browser id) to `host`; True when it
        keeps coming back (the app host never kept its cookie: a proxy that does not route
        /oauth2/ or drops Set-Cookie), so the sign-in stops with a page, not an endless chain."""
        who = self._sealer.keyed_hash(f"{browser}\n{host}", purpose=_PURPOSE + "-trips")
        return (
            await self._store.incr(self._store.key("host-trips", who), ttl=LOOP_WINDOW) > LOOP_LIMIT
        )
