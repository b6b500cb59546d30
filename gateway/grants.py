"""Authorization codes and grants (token families) in the store.

A *grant* is everything one authorization produced: its refresh token chain and the access
tokens minted from it. The grant record (`grant:{gid}`) is the single source of truth:

- revoking the grant = deleting that one key; every access token names its `gid`, so userinfo
  and introspection see the revocation at once, on every replica;
- refresh rotation = a compare-and-swap on the record: the new token's hash becomes current and
  the old one joins `used`. Presenting a hash from `used` is replay → the whole family is revoked.
  A hash that was never issued is just `invalid_grant` (it must not let a stranger who knows a
  `gid` revoke someone else's tokens).

A grant without `offline_access` in its scope is bound to the SSO session it came from
(`Grant.session`, the Keycloak/Cognito model): it is in force only while that session exists,
so a sign-out, a session ended from the account page or by an administrator, or the session's
idle or absolute timeout ends its refresh token and its access tokens at once, on every replica
(the session record in the store is the single truth; see `live_grant`). A refresh is activity
in the session and restarts its idle timeout. With `offline_access` (which the client's
`scope` must allow) the grant outlives the session until it is revoked or expires.

A token check on a hot path (GetUser, introspection) need not read the record each time: a
replica remembers a grant it found in force for `sessions.cache_ttl` seconds (`LivenessCache`).
Revoking publishes the gid on `grant-ended` and the end of a session is already published on
`session-ended`: every replica forgets the grant at once, as it forgets a cached session. While
a replica is not subscribed to both (a store outage), its cache is off: a missed message can
never keep a revoked grant alive.

Codes (`code:{hash}`) are redeemed by a compare-and-swap from unused to used-by-gid, so exactly
one of any number of parallel redemptions wins; a later one revokes the winner's grant
(RFC 6749 §4.1.2). The grant is written *before* the swap, so the revocation can never miss it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from gateway.crypto import Sealer, random_token
from gateway.errors import StoreContended
from gateway.store import Put, Store, Write, keep_in_step, record_json, write
from gateway.store.index import MemberIndex
from gateway.tokens import AccessToken

_GRANT = "grant"
_CODE = "code"
_MAX_USED = 50  # older refresh tokens than this fall out of reuse detection; still invalid
ENDED_CHANNEL = "grant-ended"


@dataclass(frozen=True)
class Authorization:
    """Who authorized what, carried from sign-in to code to grant."""

    sub: str  # the identity ID
    client_id: str
    scope: list[str]
    auth_time: int
    sid: str | None
    amr: list[str]
    profile: dict[str, Any]  # canonical claims (email, name...) filtered by scope at issue time
    nonce: str | None = None
    connector_id: str | None = None  # where the user signed in
    upstream: dict[str, Any] | None = None  # that IdP's tokens, refreshed with ours
    subject: str | None = None  # who the user is at that connector (its own `sub`)


@dataclass(frozen=True)
class CodeRecord:
    """A pending authorization code."""

    authorization: Authorization
    redirect_uri: str
    code_challenge: str | None
    used_by: str | None = None  # gid of the grant that redeemed it


@dataclass(frozen=True)
class Grant:
    """A token family."""

    gid: str
    authorization: Authorization
    created: int
    expires: int  # absolute end of the family: no refresh after this
    refresh_hash: str | None = None
    used: list[str] = field(default_factory=list)
    session: str | None = None  # the sid this family ends with; None: offline_access


OFFLINE_ACCESS = "offline_access"


class SessionLiveness(Protocol):
    """What grants need to know about SSO sessions (`gateway.sessions.SessionManager`)."""

    async def peek(self, sid: str) -> bool:
        """Does the session still exist?"""
        ...

    async def keep_alive(self, sid: str, auth_time: int) -> bool:
        """Does it still exist? If so, restart its idle timeout."""
        ...

    def hears_ends(self) -> bool:
        """Is every session end reaching this replica right now (its subscription is up)?"""
        ...


class LivenessCache:
    """Grants found in force, by gid, for `ttl` seconds (never past the grant's own end;
    bounded, least recently used out), with the session each is bound to. Off until `listen`
    has subscribed to revocations; an entry bound to a session counts only while session ends
    are heard too (`SessionLiveness.hears_ends`)."""

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self.enabled = False
        # Moves on every eviction and switch: a read begun before one may be older than it.
        self.generation = 0
        self._entries: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._by_session: dict[str, set[str]] = {}

    def alive(self, gid: str, session_ends_heard: bool) -> bool:
        entry = self._entries.get(gid)
        if entry is None or not self.enabled:
            return False
        sid, until = entry
        if time.monotonic() >= until or (sid is not None and not session_ends_heard):
            self.evict(gid)
            return False
        return True

    def put(self, grant: Grant, generation: int) -> None:
        """Remember `grant`, found in force by a read begun at `generation`, unless a grant
        or a session ended meanwhile."""
        if not self.enabled or self.ttl <= 0 or generation != self.generation:
            return
        until = time.monotonic() + min(self.ttl, grant.expires - time.time())
        self._entries[grant.gid] = (grant.session, until)
        self._entries.move_to_end(grant.gid)
        if grant.session is not None:
            self._by_session.setdefault(grant.session, set()).add(grant.gid)
        if len(self._entries) > self.size:
            self.evict(next(iter(self._entries)))

    def evict(self, gid: str) -> None:
        self.generation += 1
        entry = self._entries.pop(gid, None)
        if entry is not None and entry[0] is not None:
            members = self._by_session.get(entry[0])
            if members is not None:
                members.discard(gid)
                if not members:
                    del self._by_session[entry[0]]

    def evict_session(self, sid: str) -> None:
        """The session ended: its grants are no longer known to be in force."""
        self.generation += 1
        for gid in self._by_session.pop(sid, set()):
            self._entries.pop(gid, None)

    def on(self) -> None:
        self.generation += 1
        self.enabled = self.ttl > 0

    def off(self) -> None:
        self.enabled = False
        self.generation += 1
        self._entries.clear()
        self._by_session.clear()


class GrantStore:
    """Codes and grants, sealed at rest."""

    def __init__(self, store: Store, sealer: Sealer, cache_ttl: float = 0.0) -> None:
        self._store = store
        self._sealer = sealer
        self.by_identity = MemberIndex(store, "identity-grants")
        self.cache = LivenessCache(cache_ttl)

    # -- codes --------------------------------------------------------------------------

    async def issue_code(
        self, record: CodeRecord, ttl: int, batch: list[Write] | None = None
    ) -> str:
        """Store a new code and return it (only its keyed hash is a key); with `batch`, the
        write joins the request's (`gateway.store.write`)."""
        code = random_token()
        await write(
            self._store, batch, Put(self._code_key(code), self._seal_code(code, record), ttl)
        )
        return code

    async def load_code(self, code: str) -> tuple[bytes, CodeRecord] | None:
        """The raw stored value (for the swap) and the record; None if unknown or expired."""
        raw = await self._store.get(self._code_key(code))
        if raw is None:
            return None
        return raw, self._open_code(code, raw)

    async def mark_code_used(self, code: str, raw: bytes, record: CodeRecord, gid: str) -> bool:
        """Atomically mark the code used by `gid`; False if someone else got there first."""
        sealed = self._seal_code(code, replace(record, used_by=gid))
        return await self._swap_once(self._code_key(code), raw, sealed)

    def _code_key(self, code: str) -> str:
        return self._store.key(_CODE, self._sealer.keyed_hash(code, purpose=_CODE))

    def _seal_code(self, code: str, record: CodeRecord) -> bytes:
        return self._sealer.seal(
            record_json(record),
            purpose=_CODE,
            context=self._code_key(code).encode(),
        )

    def _open_code(self, code: str, raw: bytes) -> CodeRecord:
        data = json.loads(
            self._sealer.open(raw, purpose=_CODE, context=self._code_key(code).encode())
        )
        return CodeRecord(**{**data, "authorization": Authorization(**data["authorization"])})

    # -- grants -------------------------------------------------------------------------

    async def create_grant(
        self,
        authorization: Authorization,
        lifetime: int,
        with_refresh: bool,
        batch: list[Write] | None = None,
    ) -> tuple[Grant, str | None]:
        """A new family; returns it and its first refresh token (if any). Without
        `offline_access` it is bound to the authorization's session. The grant and its
        identity's index are written in one round trip (with `batch`, the caller's)."""
        now = int(time.time())
        gid = uuid.uuid4().hex
        refresh = f"{gid}.{random_token()}" if with_refresh else None
        grant = Grant(
            gid=gid,
            authorization=authorization,
            created=now,
            expires=now + lifetime,
            refresh_hash=self._hash(refresh) if refresh else None,
            session=None if OFFLINE_ACCESS in authorization.scope else authorization.sid,
        )
        await write(
            self._store,
            batch,
            Put(self._grant_key(gid), self._seal_grant(grant), lifetime),
            self.by_identity.adding(authorization.sub, gid, grant.expires),
        )
        return grant, refresh

    async def load_grant(self, gid: str) -> tuple[bytes, Grant] | None:
        """The raw stored value and the grant; None when revoked or expired."""
        raw = await self._store.get(self._grant_key(gid))
        if raw is None:
            return None
        return raw, self._open_grant(gid, raw)

    async def live_grant(
        self, gid: str, sessions: SessionLiveness, refreshing: bool = False
    ) -> tuple[bytes, Grant] | None:
        """`load_grant`, and None too when the grant's session has ended (the grant is then
        revoked for good, so the next check costs one read). `refreshing`: a refresh token is
        being used, which restarts the session's idle timeout."""
        loaded = await self.load_grant(gid)
        sid = loaded[1].session if loaded is not None else None
        if loaded is None or sid is None:
            return loaded
        if refreshing:
            alive = await sessions.keep_alive(sid, loaded[1].authorization.auth_time)
        else:
            alive = await sessions.peek(sid)
        if not alive:
            await self.revoke(gid)
            return None
        return loaded

    async def grant_alive(self, gid: str) -> bool:
        """True while the family has not been revoked or expired."""
        return await self._store.get(self._grant_key(gid)) is not None

    async def rotate_refresh(
        self,
        raw: bytes,
        grant: Grant,
        upstream: dict[str, Any] | None = None,
        profile: dict[str, Any] | None = None,
    ) -> tuple[Grant, str] | None:
        """Swap in a new refresh token (and refreshed upstream tokens and profile, if given);
        None when a concurrent refresh changed the record."""
        refresh = f"{grant.gid}.{random_token()}"
        used = ([grant.refresh_hash] if grant.refresh_hash else []) + grant.used
        authorization = grant.authorization
        if upstream is not None:
            authorization = replace(authorization, upstream=upstream)
        if profile is not None:
            authorization = replace(authorization, profile=profile)
        rotated = replace(
            grant,
            authorization=authorization,
            refresh_hash=self._hash(refresh),
            used=used[:_MAX_USED],
        )
        ttl = max(1, grant.expires - int(time.time()))
        ok = await self._swap_once(self._grant_key(grant.gid), raw, self._seal_grant(rotated), ttl)
        return (rotated, refresh) if ok else None

    async def _swap_once(
        self, key: str, raw: bytes, sealed: bytes, ttl: float | None = None
    ) -> bool:
        """Replace exactly the record the caller validated (`raw`), in one try: any other
        value there now is a concurrent redemption or refresh of the same code or token, which
        the caller must treat as a replay, never retry over."""
        try:
            await self._store.modify(key, lambda _: sealed, ttl=ttl, attempts=1, seen=raw)
        except StoreContended:
            return False
        return True

    async def revoke(self, gid: str) -> None:
        """Revoke the whole family: its refresh token and every access token minted from it,
        on every replica at once (the record goes; the replicas' caches are told)."""
        await self._store.delete(self._grant_key(gid))
        self.cache.evict(gid)
        await self._store.publish(self._store.key(ENDED_CHANNEL), gid.encode())

    async def listen(self) -> None:
        """Keep this replica's liveness cache in step with revocations everywhere (runs for
        good; the cache is off whenever the subscription is not in place)."""
        await keep_in_step(
            self._store, self._store.key(ENDED_CHANNEL), self.cache, self.cache.evict,
            "grant-revocation",
        )  # fmt: skip

    async def revoke_access_token(self, token: AccessToken) -> None:
        """Revoke one access token: its whole grant if it has one, else (client_credentials)
        its `jti` until it would have expired anyway."""
        if token.gid:
            await self.revoke(token.gid)
            return
        ttl = token.exp - int(time.time())
        if ttl > 0:
            await self._store.put(self._store.key("revoked-jti", token.jti), b"1", ttl=ttl)

    async def access_token_active(self, token: AccessToken, sessions: SessionLiveness) -> bool:
        """A verified access token is active while its grant is in force (`live_grant`, or
        this replica found it so a moment ago and heard of no revocation since) and it was not
        revoked."""
        if token.gid:
            if self.cache.alive(token.gid, sessions.hears_ends()):
                return True
            generation = self.cache.generation
            loaded = await self.live_grant(token.gid, sessions)
            if loaded is not None:
                self.cache.put(loaded[1], generation)
            return loaded is not None
        return await self._store.get(self._store.key("revoked-jti", token.jti)) is None

    def refresh_matches(self, grant: Grant, refresh: str) -> str:
        """'current', 'used' (replay) or 'unknown' for a presented refresh token."""
        digest = self._hash(refresh)
        if grant.refresh_hash and digest == grant.refresh_hash:
            return "current"
        return "used" if digest in grant.used else "unknown"

    @staticmethod
    def gid_of(refresh: str) -> str | None:
        """The grant id embedded in a refresh token, if it has the right shape."""
        gid, dot, secret = refresh.partition(".")
        return gid if dot and len(gid) == 32 and secret else None

    def _hash(self, refresh: str) -> str:
        return self._sealer.keyed_hash(refresh, purpose="refresh")

    def _grant_key(self, gid: str) -> str:
        return self._store.key(_GRANT, gid)

    def _seal_grant(self, grant: Grant) -> bytes:
        return self._sealer.seal(
            record_json(grant),
            purpose=_GRANT,
            context=self._grant_key(grant.gid).encode(),
        )

    def _open_grant(self, gid: str, raw: bytes) -> Grant:
        data = json.loads(
            self._sealer.open(raw, purpose=_GRANT, context=self._grant_key(gid).encode())
        )
        return Grant(**{**data, "authorization": Authorization(**data["authorization"])})
