"""Signing keys: one shared key set per deployment, JWKS, and rotation without downtime.

The key set lives in the store as one sealed record, so every replica signs with the same keys
and serves the same JWKS. For each algorithm there are up to three kinds of key:

- `next`: published in the JWKS, not yet used. Relying parties see it before it ever signs.
- `current`: signs new tokens.
- `previous`: retired, still published until every token it signed has expired.

`rotate()` moves next → current → previous and makes a new next, with a compare-and-swap on the
record so that two replicas rotating at once rotate once. Replicas reload the record on a timer
and when they meet an unknown `kid` (at most once per cooldown).

With `keys.files` (PEM private keys) the key set is static: the files are the current keys and
rotation means deploying new files.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeyParameters, KeySet, RSAKey

from gateway.crypto import Sealer, b64url_decode
from gateway.errors import StoreContended, StoreUnavailable
from gateway.store import Store

log = logging.getLogger("cognate.keys")

_PURPOSE = "signing-keys"
SigningKey = ECKey | RSAKey


def generate_key(alg: str, kid: str | None = None) -> SigningKey:
    """A new private key for `alg` (ES256 on P-256, RS256 with 2048 bits)."""
    params: KeyParameters = {"alg": alg, "use": "sig"}
    key: SigningKey
    if alg == "ES256":
        key = ECKey.generate_key("P-256", params, private=True, auto_kid=kid is None)
    elif alg == "RS256":
        key = RSAKey.generate_key(2048, params, private=True, auto_kid=kid is None)
    else:
        raise ValueError(f"unsupported signing algorithm {alg}")
    if kid is not None:
        key = type(key).import_key(
            key.as_dict(private=True), {"alg": alg, "use": "sig", "kid": kid}
        )
    return key


@dataclass(frozen=True)
class KeyEntry:
    """One key of the shared key set and its place in the rotation."""

    kid: str
    alg: str
    jwk: dict[str, Any]
    created: int
    activated: int | None = None
    retired: int | None = None

    @property
    def state(self) -> str:
        if self.retired is not None:
            return "previous"
        return "current" if self.activated is not None else "next"


class KeyRing:
    """The key set as this replica sees it; sign with `current(alg)`, verify with `key_set`."""

    RELOAD_COOLDOWN = 5.0

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        algorithms: tuple[str, ...],
        retention: int,
        rotation_period: int,
        pem_files: tuple[str, ...] = (),
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._algorithms = tuple(dict.fromkeys(algorithms))
        self._retention = retention
        self.rotation_period = rotation_period
        self._pem_files = pem_files
        self._raw: bytes | None = None
        self._entries: list[KeyEntry] = []
        self._private: dict[str, SigningKey] = {}
        self.key_set = KeySet([])
        self.jwks: dict[str, Any] = {"keys": []}
        self._last_reload = 0.0

    @property
    def static(self) -> bool:
        return bool(self._pem_files)

    @property
    def entries(self) -> list[KeyEntry]:
        return list(self._entries)

    @property
    def _record_key(self) -> str:
        return self._store.key("keys")

    # -- loading -------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the shared key set, creating it on the very first start."""
        if self._pem_files:
            self._install(self._entries_from_pem(), raw=None)
            return
        raw = await self._store.get(self._record_key)
        if raw is None:
            now = int(time.time())
            entries = []
            for alg in self._algorithms:
                entries.append(self._new_entry(alg, now, activated=now))
                entries.append(self._new_entry(alg, now))
            blob = self._seal(entries)
            if not await self._store.create(self._record_key, blob):
                blob = await self._store.get(self._record_key) or blob  # another replica won
            raw = blob
        self._install(self._open(raw), raw)
        await self._ensure_algorithms()

    async def reload(self, force: bool = False) -> bool:
        """Re-read the record if it changed; rate-limited unless forced. True if reloaded."""
        if self._pem_files:
            return False
        now = time.monotonic()
        if not force and now - self._last_reload < self.RELOAD_COOLDOWN:
            return False
        self._last_reload = now
        raw = await self._store.get(self._record_key)
        if raw is None or raw == self._raw:
            return False
        self._install(self._open(raw), raw)
        return True

    async def _ensure_algorithms(self) -> None:
        """Add keys for an algorithm that settings now ask for (e.g. id_token_alg changed)."""
        missing = [a for a in self._algorithms if not any(e.alg == a for e in self._entries)]
        if not missing or self._raw is None:
            return
        now = int(time.time())
        entries = list(self._entries)
        for alg in missing:
            entries += [self._new_entry(alg, now, activated=now), self._new_entry(alg, now)]
        await self._swap(entries)

    # -- rotation ------------------------------------------------------------------------

    async def rotate(self, now: int | None = None) -> bool:
        """Rotate every algorithm once. False if another replica changed the record first."""
        if self._pem_files:
            raise ValueError("keys come from PEM files (keys.files): rotate by deploying new files")
        await self.reload(force=True)
        now = int(time.time()) if now is None else now
        entries: list[KeyEntry] = []
        for entry in self._entries:
            if entry.state == "previous":
                if entry.retired is not None and entry.retired + self._retention > now:
                    entries.append(entry)
            elif entry.state == "current":
                entries.append(_replace(entry, retired=now))
            else:
                entries.append(_replace(entry, activated=now))
        for alg in self._algorithms:
            if not any(e.alg == alg and e.state == "current" for e in entries):
                entries.append(self._new_entry(alg, now, activated=now))
            entries.append(self._new_entry(alg, now))
        return await self._swap(entries)

    async def rotate_if_due(self, now: int | None = None) -> bool:
        """Rotate when the current key of any algorithm is older than the rotation period."""
        if self._pem_files:
            return False
        await self.reload(force=True)
        now = int(time.time()) if now is None else now
        due = any(
            e.state == "current"
            and e.activated is not None
            and now - e.activated >= self.rotation_period
            for e in self._entries
        )
        return await self.rotate(now) if due else False

    async def _swap(self, entries: list[KeyEntry]) -> bool:
        if self._raw is None:
            raise StoreUnavailable("the key set was never loaded")
        blob = self._seal(entries)
        try:
            # One try, from the record these entries were computed from: if another replica
            # changed it first, its rotation stands and ours is recomputed by the caller.
            await self._store.modify(self._record_key, lambda _: blob, attempts=1, seen=self._raw)
        except StoreContended:
            await self.reload(force=True)
            return False
        self._install(entries, blob)
        log.info("signing keys rotated", extra={"kids": [e.kid for e in entries]})
        return True

    # -- use -----------------------------------------------------------------------------

    def current(self, alg: str) -> SigningKey:
        """The key that signs new tokens with `alg`."""
        candidates = [e for e in self._entries if e.alg == alg and e.state == "current"]
        if not candidates:
            raise StoreUnavailable(f"no current {alg} signing key is loaded")
        newest = max(candidates, key=lambda e: e.activated or 0)
        return self._private[newest.kid]

    def has(self, kid: str) -> bool:
        """Whether a key of that id is in the ring (a removed key's tokens are no longer ours)."""
        return kid in self._private

    async def decode(self, token: str, algorithms: list[str]) -> jwt.Token:
        """Verify a JWT's signature against the key set (reloading once for an unknown kid)."""
        try:
            return jwt.decode(token, self.key_set, algorithms=algorithms)
        except JoseError as exc:
            kid = _header_kid(token)
            if kid and kid not in self._private and await self.reload():
                return jwt.decode(token, self.key_set, algorithms=algorithms)
            raise exc

    # -- internals -----------------------------------------------------------------------

    def _new_entry(self, alg: str, now: int, activated: int | None = None) -> KeyEntry:
        key = generate_key(alg)
        return KeyEntry(
            kid=str(key.kid),
            alg=alg,
            jwk=key.as_dict(private=True),
            created=now,
            activated=activated,
        )

    def _entries_from_pem(self) -> list[KeyEntry]:
        entries = []
        for path in self._pem_files:
            with open(path, "rb") as handle:
                pem = handle.read()
            key: SigningKey
            try:
                key = RSAKey.import_key(pem, {"use": "sig"})
                alg = "RS256"
            except (JoseError, ValueError, TypeError):
                key = ECKey.import_key(pem, {"use": "sig"})
                alg = "ES256"
            jwk = key.as_dict(private=True)
            kid = key.thumbprint()
            entries.append(
                KeyEntry(
                    kid=kid, alg=alg, jwk={**jwk, "kid": kid, "alg": alg}, created=0, activated=0
                )
            )
        return entries

    def _install(self, entries: list[KeyEntry], raw: bytes | None) -> None:
        private: dict[str, SigningKey] = {}
        for entry in entries:
            cls = ECKey if entry.jwk["kty"] == "EC" else RSAKey
            private[entry.kid] = cls.import_key(entry.jwk)
        # Order: next first would surprise nobody, but current-first helps naive clients.
        order = {"current": 0, "next": 1, "previous": 2}
        entries = sorted(entries, key=lambda e: (order[e.state], e.alg))
        self._entries = entries
        self._private = private
        self._raw = raw
        public = [private[e.kid].as_dict(private=False) for e in entries]
        self.jwks = {"keys": public}
        self.key_set = KeySet.import_key_set({"keys": public})

    def _seal(self, entries: list[KeyEntry]) -> bytes:
        data = json.dumps([e.__dict__ for e in entries]).encode()
        return self._sealer.seal(data, purpose=_PURPOSE, context=self._record_key.encode())

    def _open(self, raw: bytes) -> list[KeyEntry]:
        try:
            data = self._sealer.open(raw, purpose=_PURPOSE, context=self._record_key.encode())
        except ValueError as exc:
            raise StoreUnavailable(
                "the stored signing keys cannot be decrypted: is secret_key the same on every "
                "replica as when they were created?"
            ) from exc
        return [KeyEntry(**item) for item in json.loads(data)]


def _replace(entry: KeyEntry, **changes: Any) -> KeyEntry:
    return KeyEntry(**{**entry.__dict__, **changes})


def _header_kid(token: str) -> str | None:
    try:
        header = json.loads(b64url_decode(token.split(".", 1)[0]))
        kid = header.get("kid")
        return kid if isinstance(kid, str) else None
    except (ValueError, AttributeError):
        return None
