"""Browser SSO sessions, stored as "tickets" (the oauth2-proxy design).

The cookie holds `<sid>.<secret>`. The store holds the session record under `session:{sid}`,
sealed with a key derived from the master key *and* the per-session secret, so neither a Redis
dump nor the master key alone can read or forge a session. A login always makes a new `sid`
(no fixation); logout deletes the record, which ends the session on every replica at once.

Idle timeout = the record's TTL, refreshed at most once per tenth of it; absolute timeout is
checked against `created`.

A session made for an app on another host (`host`, through a one-time ticket at that host's
`/oauth2/callback`, see `gateway.proxy.tickets`) is the child of the gateway's own session
(`parent`): it is valid only for requests to that host, and ending any session of the family
ends them all, so signing out on one app ends the sign-in on every host.

The forward-auth hot path may read sessions through `SessionCache`: verified sessions kept
in-process for a few seconds (`sessions.cache_ttl`). Ending a session publishes its sid on the
store's `session-ended` channel and every replica evicts it at once; while a replica is not
subscribed (store outage), its cache is off, so a missed message cannot keep a session alive.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.crypto import Sealer, constant_time_equals, random_token
from gateway.errors import StoreContended
from gateway.settings import SessionSettings
from gateway.store import Put, Store, Write, keep_in_step, record_json, write
from gateway.store.changes import ReplicaCache
from gateway.store.index import MemberIndex

_PURPOSE = "session"
ENDED_CHANNEL = "session-ended"

log = logging.getLogger("cognate.sessions")


@dataclass(frozen=True)
class Session:
    """One signed-in browser."""

    sid: str
    identity_id: str
    connector_id: str
    subject: str
    auth_time: int
    amr: list[str]
    profile: dict[str, Any]
    created: int
    last_seen: int
    clients: list[str] = field(default_factory=list)
    upstream: dict[str, Any] | None = None  # the IdP's tokens (encrypted with the record)
    host: str | None = None  # an app host's own session: valid for requests to that host only
    parent: str | None = None  # the gateway's session it was made from (host sessions)


def _for_host(session: Session | None, host: str | None) -> Session | None:
    """The session if it may be used for a request to `host` (None: the gateway's own host).
    A host session copied to another host, or to the gateway's pages, is worthless there."""
    if session is None or session.host is None or session.host == host:
        return session
    return None


class SessionCache(ReplicaCache[tuple[str, Session]]):
    """Verified sessions by sid, with the cookie that proved each, for `ttl` seconds (bounded,
    least recently used out; `gateway.store.changes.ReplicaCache`). Off until `listen()` has
    subscribed to session ends, and off again whenever that subscription is lost."""

    def session(self, sid: str, cookie: str) -> Session | None:
        """The session kept for `sid` if `cookie` is the one that proved it (compared in
        constant time: another secret for a known sid is a forgery, never a hit)."""
        entry = self.get(sid)
        if entry is None or not constant_time_equals(entry[0], cookie):
            return None
        return entry[1]

    def keep(self, sid: str, cookie: str, session: Session, generation: int) -> None:
        """Keep `session`, read since `generation`, unless a session ended meanwhile."""
        self.put(sid, (cookie, session), generation)


class SessionManager:
    """Create, load and end sessions; the cookie value is the only handle."""

    def __init__(self, store: Store, sealer: Sealer, settings: SessionSettings) -> None:
        self._store = store
        self._sealer = sealer
        self._settings = settings
        self.cache = SessionCache(settings.cache_ttl)
        self.by_identity = MemberIndex(store, "identity-sessions")
        # Which clients a session signed in to, readable without the session's secret, so an
        # administrator's "end every session" can still tell each client (back-channel logout).
        self.clients_of = MemberIndex(store, "session-clients")
        self.children = MemberIndex(store, "session-children")  # host sessions of a session
        # Told each sid that ended anywhere (`listen`), as the cache is: other in-process caches
        # keyed by session (the grants' liveness cache) evict with it.
        self.ended: list[Callable[[str], None]] = []

    async def create_for_host(self, parent: Session, host: str) -> tuple[Session, str] | None:
        """A session for an app on `host`, the child of the gateway's `parent` session: same
        identity, sign-in time and methods, ending with it (and it with them). None when the
        parent ended meanwhile."""
        child, cookie = await self.create(
            identity_id=parent.identity_id,
            connector_id=parent.connector_id,
            subject=parent.subject,
            amr=parent.amr,
            profile=parent.profile,
            auth_time=parent.auth_time,
            created=parent.created,  # the parent's absolute timeout applies
            host=host,
            parent=parent.sid,
        )
        ends = parent.created + self._settings.absolute_timeout
        await self.children.add(parent.sid, child.sid, ends)
        if not await self.peek(parent.sid):
            # The parent ended while the child was made: it must not outlive it.
            await self.end(cookie)
            return None
        return child, cookie

    async def create(
        self,
        *,
        identity_id: str,
        connector_id: str,
        subject: str,
        amr: list[str],
        profile: dict[str, Any],
        upstream: dict[str, Any] | None = None,
        client_id: str | None = None,
        device: str | None = None,
        batch: list[Write] | None = None,
        auth_time: int | None = None,
        created: int | None = None,
        host: str | None = None,
        parent: str | None = None,
    ) -> tuple[Session, str]:
        """A fresh session (new id, new secret) and its cookie value; `client_id` when it is
        created to sign in to that client (saves `add_client` a second write). With `batch`,
        its writes join the request's (`gateway.store.write`). `auth_time`, `created`, `host`
        and `parent`: a host session's (see `create_for_host`)."""
        now = int(time.time())
        session = Session(
            sid=uuid.uuid4().hex,
            identity_id=identity_id,
            connector_id=connector_id,
            subject=subject,
            auth_time=auth_time or now,
            amr=amr,
            profile=profile,
            created=created or now,
            last_seen=now,
            upstream=upstream,
            clients=[client_id] if client_id else [],
            host=host,
            parent=parent,
        )
        secret = random_token(24)
        ends = session.created + self._settings.absolute_timeout
        # What the account page shows about this session, readable without its secret
        # (sealed under the master key only; no token, no profile).
        info_key = self._store.key("session-info", session.sid)
        info = json.dumps({"created": now, "device": (device or "")[:120]}).encode()
        writes: list[Write] = [
            self._sealed(session, secret),
            self.by_identity.adding(identity_id, session.sid, ends),
            Put(
                info_key,
                self._sealer.seal(info, purpose="session-info", context=info_key.encode()),
                ttl=max(1, ends - now),
            ),
        ]
        if client_id:
            writes.append(self.clients_of.adding(session.sid, client_id, ends))
        # One round trip. Any prefix of these writes is harmless: the cookie is only handed
        # out once they all landed.
        await write(self._store, batch, *writes)
        return session, f"{session.sid}.{secret}"

    def cached(self, cookie: str | None, host: str | None = None) -> Session | None:
        """The session for a cookie from the in-process cache only (None: ask `load`)."""
        parsed = _parse(cookie)
        if parsed is None or cookie is None:
            return None
        return _for_host(self.cache.session(parsed[0], cookie), host)

    async def load(
        self, cookie: str | None, cached: bool = False, host: str | None = None
    ) -> Session | None:
        """The live session for a cookie value, or None (garbage, forged, expired, ended, or
        another host's). `cached`: may answer from the in-process cache (the forward-auth hot
        path). `host`: the app host the request is for (None: the gateway's own pages)."""
        parsed = _parse(cookie)
        if parsed is None or cookie is None:
            return None
        sid, secret = parsed
        if cached:
            hit = self.cache.session(sid, cookie)
            if hit is not None:
                return _for_host(hit, host)
        generation = self.cache.generation
        session = await self._load(sid, secret)
        if cached and session is not None:
            self.cache.keep(sid, cookie, session, generation)
        return _for_host(session, host)

    async def _load(self, sid: str, secret: str) -> Session | None:
        raw = await self._store.get(self._key(sid))
        if raw is None:
            return None
        try:
            data = self._sealer.open(
                raw, purpose=_PURPOSE, context=self._key(sid).encode(), extra_key=secret.encode()
            )
        except ValueError:
            return None  # wrong secret: a forged or tampered cookie
        session = Session(**json.loads(data))
        now = int(time.time())
        if now - session.created >= self._settings.absolute_timeout:
            await self._store.delete(self._key(sid))
            return None
        if now - session.last_seen >= self._settings.idle_timeout // 10:
            session = replace(session, last_seen=now)
            await self._save(session, secret)
        return session

    async def of_identity(self, identity_id: str) -> list[dict[str, Any]]:
        """The live sessions of an identity: sid, created, device (newest first)."""
        found: list[dict[str, Any]] = []
        for sid in await self.by_identity.members(identity_id):
            if not await self.peek(sid):
                continue
            key = self._store.key("session-info", sid)
            raw = await self._store.get(key)
            info: dict[str, Any] = {"created": 0, "device": ""}
            if raw is not None:
                try:
                    info = json.loads(
                        self._sealer.open(raw, purpose="session-info", context=key.encode())
                    )
                except ValueError:
                    pass
            found.append({"sid": sid, **info})
        return sorted(found, key=lambda s: -int(s.get("created") or 0))

    def hears_ends(self) -> bool:
        """Is this replica subscribed to session ends right now (so a cache that `ended`
        keeps in step cannot miss one)?"""
        return self.cache.enabled

    async def peek(self, sid: str) -> bool:
        """Does a session with this id still exist? (Its content needs the cookie's secret.)"""
        return _looks_like_sid(sid) and await self._store.get(self._key(sid)) is not None

    async def keep_alive(self, sid: str, auth_time: int) -> bool:
        """Does session `sid` still exist? If so, its idle timeout starts again, never past its
        absolute timeout (`auth_time` is when it was created). A refresh token bound to the
        session (`gateway.grants`) is activity in it, as in Keycloak."""
        if not _looks_like_sid(sid):
            return False
        key = self._key(sid)
        raw = await self._store.get(key)
        remaining = auth_time + self._settings.absolute_timeout - int(time.time())
        if raw is None or remaining <= 0:
            return False
        # The same sealed value with a new TTL (no secret needed). A lost swap means the
        # browser's own request rewrote the record just now (that restarted the timeout too)
        # or the session ended in between (a sign-out): read again to tell which.
        try:
            outcome = await self._store.modify(
                key,
                lambda current: current,  # None (ended): leave it ended
                ttl=min(self._settings.idle_timeout, remaining),
                seen=raw,
            )
        except StoreContended:
            return True  # rewritten on every try: the browser is busy in it, so it is alive
        return outcome.written

    async def add_client(
        self, cookie: str, session: Session, client_id: str, batch: list[Write] | None = None
    ) -> Session:
        """Remember that `client_id` received tokens from this session (for logout)."""
        parsed = _parse(cookie)
        if parsed is None or client_id in session.clients:
            return session
        session = replace(session, clients=[*session.clients, client_id])
        ends = session.created + self._settings.absolute_timeout
        await write(
            self._store,
            batch,
            self._sealed(session, parsed[1]),
            self.clients_of.adding(session.sid, client_id, ends),
        )
        return session

    async def end(self, cookie_or_sid: str | None) -> None:
        """End a session by cookie value or bare sid, with its whole family (the gateway's
        session and every app host's session made from it); ending an unknown one is fine."""
        if not cookie_or_sid:
            return
        sid = cookie_or_sid.split(".", 1)[0]
        if not _looks_like_sid(sid):
            return
        root = sid
        parsed = _parse(cookie_or_sid)
        if parsed is not None:  # a host session's cookie names its parent inside the record
            session = await self._load(*parsed)
            if session is not None and session.parent and _looks_like_sid(session.parent):
                root = session.parent
        family = {sid, root, *await self.children.clear(root)}
        for member in sorted(family):
            await self._store.delete(self._key(member))
            self._evict(member)
            await self._store.publish(self._store.key(ENDED_CHANNEL), member.encode())

    async def listen(self) -> None:
        """Keep this replica's cache in step with session ends everywhere (runs for good;
        the cache is off whenever the subscription is not in place)."""
        await keep_in_step(
            self._store, self._store.key(ENDED_CHANNEL), self.cache, self._evict, "session-end"
        )

    def _evict(self, sid: str) -> None:
        self.cache.evict(sid)
        for evict in self.ended:
            evict(sid)

    async def _save(self, session: Session, secret: str) -> None:
        write = self._sealed(session, secret)
        await self._store.put(write.key, write.value, write.ttl)

    def _sealed(self, session: Session, secret: str) -> Put:
        """The session's record, sealed with the cookie's secret, until its idle or absolute
        timeout (whichever is first)."""
        now = int(time.time())
        remaining_absolute = session.created + self._settings.absolute_timeout - now
        ttl = max(1, min(self._settings.idle_timeout, remaining_absolute))
        blob = self._sealer.seal(
            record_json(session),
            purpose=_PURPOSE,
            context=self._key(session.sid).encode(),
            extra_key=secret.encode(),
        )
        return Put(self._key(session.sid), blob, ttl=ttl)

    def _key(self, sid: str) -> str:
        return self._store.key(_PURPOSE, sid)


_SID = re.compile(r"[0-9a-f]{32}")


def _looks_like_sid(sid: str) -> bool:
    return _SID.fullmatch(sid) is not None


def _parse(cookie: str | None) -> tuple[str, str] | None:
    if not cookie or len(cookie) > 256:
        return None
    sid, dot, secret = cookie.partition(".")
    if not dot or not _looks_like_sid(sid) or not secret:
        return None
    return sid, secret
