"""Pending logins ("flows"): an authorization request waiting for the user to sign in.

`/oauth2/authorize` validates the request and stores it as a flow (sealed, with a TTL); the
hosted pages and connectors refer to it by id, and it is consumed exactly once (GETDEL) when
the login completes. The flow is bound to the browser that started it: it stores a hash of that
browser's CSRF cookie, so a flow id lifted from one browser is useless in another.

What the sign-in has gathered so far is its typed `progress` (`gateway.login.progress`): the
connector's pending state while at an IdP (connectors keep none of their own), the proven first
factor while a second one is due, the address being verified.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields, replace
from typing import Any

from gateway.crypto import Sealer, random_token
from gateway.login.progress import Progress, dump, load
from gateway.store import Get, Put, Store, Take, Write, write

_PURPOSE = "flow"


@dataclass(frozen=True)
class Flow:
    """A validated authorization request, plus what the login has gathered so far."""

    flow_id: str
    client_id: str
    redirect_uri: str
    scope: list[str]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    prompt: list[str]
    max_age: int | None
    login_hint: str | None
    browser: str  # keyed hash of the browser's CSRF cookie
    created: int
    progress: Progress | None = None
    # Set when the flow links another sign-in to the signed-in session's identity (the account
    # page), rather than signing in for a client.
    link_sid: str | None = None
    # Set when the flow approves a device's user code (RFC 8628, `gateway.ui.device`) rather
    # than sending a code to a client's redirect URI.
    device: str | None = None


class FlowStore:
    """Flows in the store, sealed (they may carry connector secrets such as PKCE verifiers)."""

    def __init__(self, store: Store, sealer: Sealer, ttl: int) -> None:
        self._store = store
        self._sealer = sealer
        self.ttl = ttl

    def browser_binding(self, csrf_cookie: str) -> str:
        """What a flow stores to recognise its browser."""
        return self._sealer.keyed_hash(csrf_cookie, purpose="flow-browser")

    async def create(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        browser: str,
        scope: list[str] | None = None,
        state: str | None = None,
        nonce: str | None = None,
        code_challenge: str | None = None,
        prompt: list[str] | None = None,
        max_age: int | None = None,
        login_hint: str | None = None,
        link_sid: str | None = None,
        device: str | None = None,
        batch: list[Write] | None = None,
    ) -> Flow:
        """Store a new flow with a fresh unguessable id (with `batch`, its write joins the
        caller's, sent in one round trip: `gateway.store.write`)."""
        flow = Flow(
            flow_id=random_token(18),
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=scope or [],
            state=state,
            nonce=nonce,
            code_challenge=code_challenge,
            prompt=prompt or [],
            max_age=max_age,
            login_hint=login_hint,
            browser=browser,
            created=int(time.time()),
            link_sid=link_sid,
            device=device,
        )
        await write(self._store, batch, Put(self._key(flow.flow_id), self._seal(flow), self.ttl))
        return flow

    async def get(self, flow_id: str) -> Flow | None:
        """The flow, or None when unknown or expired."""
        if not _plausible(flow_id):
            return None
        return self.read_back(flow_id, await self._store.get(self._key(flow_id)))

    def reading(self, flow_id: str) -> Get:
        """`get` as a read for `Store.read_many`, beside the caller's own; the answer goes to
        `read_back`."""
        return Get(self._key(flow_id if _plausible(flow_id) else "-"))

    def read_back(self, flow_id: str, raw: bytes | None) -> Flow | None:
        """The flow from the answer to `reading` (None when unknown or expired)."""
        if raw is None or not _plausible(flow_id):
            return None
        return self._open(flow_id, raw)

    async def save(self, flow: Flow, progress: Progress | None) -> Flow:
        """Keep what the sign-in has gathered on the flow (within the flow's own lifetime)."""
        flow = replace(flow, progress=progress)
        remaining = max(1, flow.created + self.ttl - int(time.time()))
        await self._store.put(self._key(flow.flow_id), self._seal(flow), ttl=remaining)
        return flow

    async def take(self, flow_id: str) -> Flow | None:
        """Consume the flow: only one completion per flow, ever."""
        if not _plausible(flow_id):
            return None
        raw = await self._store.take(self._key(flow_id))
        return None if raw is None else self._open(flow_id, raw)

    def taking(self, flow: Flow) -> Take:
        """Consuming `flow` as a read for `Store.read_many`: an answer (not None) means this
        caller, and no other, completes it."""
        return Take(self._key(flow.flow_id))

    def _key(self, flow_id: str) -> str:
        return self._store.key(_PURPOSE, flow_id)

    def _seal(self, flow: Flow) -> bytes:
        data = {f.name: getattr(flow, f.name) for f in fields(flow)}
        data["progress"] = dump(flow.progress)
        return self._sealer.seal(
            json.dumps(data).encode(),
            purpose=_PURPOSE,
            context=self._key(flow.flow_id).encode(),
        )

    def _open(self, flow_id: str, raw: bytes) -> Flow | None:
        try:
            data = self._sealer.open(raw, purpose=_PURPOSE, context=self._key(flow_id).encode())
            record: dict[str, Any] = json.loads(data)
            record["progress"] = load(record.get("progress"))
            return Flow(**record)
        except (ValueError, TypeError):  # not ours, or written by an incompatible version
            return None


def _plausible(flow_id: str) -> bool:
    return 0 < len(flow_id) <= 64 and all(c.isalnum() or c in "-_" for c in flow_id)
