"""Each user's SRP salt and verifier for USER_SRP_AUTH, sealed at rest. The arithmetic lives in
`gateway.users.srp`; when a verifier is (re)derived — sign-up, password change or reset,
admin set-password, a password sign-in of an account that has none — is the caller's business.

The record `srp-verifier:{user_id}` is sealed (AES-GCM under the master key, bound to its key
name, as `gateway.users.mfa` seals TOTP secrets): a verifier is password-equivalent for offline
guessing (one exponentiation per guess, no argon2 in the way), so a Redis dump must not yield it.

A verifier is only good for the pool name and USER_ID_FOR_SRP it was derived with (both are in
x): the record keeps them, and `SrpVerifier.is_for` tells a caller whether a stored verifier
still fits, e.g. after the pool id was changed. One that does not is as good as none: the
password must be seen again (USER_PASSWORD_AUTH, the hosted pages) to derive a new one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.crypto import Sealer
from gateway.store import Get, Store
from gateway.users import srp

PURPOSE = "srp-verifier"


@dataclass(frozen=True, slots=True)
class SrpVerifier:
    """What USER_SRP_AUTH needs of a user: SALT (sent as `srp.pad_hex(salt)`) and the verifier
    (never sent), with the pool name and USER_ID_FOR_SRP they were derived for."""

    salt: int
    verifier: int
    pool_name: str
    user_id_for_srp: str

    def is_for(self, pool_name: str, user_id_for_srp: str) -> bool:
        """Whether this verifier can check a sign-in as `user_id_for_srp` in `pool_name`."""
        return self.pool_name == pool_name and self.user_id_for_srp == user_id_for_srp


class SrpVerifiers:
    """Derive, keep and forget users' SRP verifiers::

    verifiers = SrpVerifiers(store, sealer)
    await verifiers.set(user_id, srp.pool_name_of(pool_id), username, password)
    record = await verifiers.get(user_id)
    """

    def __init__(self, store: Store, sealer: Sealer) -> None:
        self._store = store
        self._sealer = sealer

    async def set(
        self, user_id: str, pool_name: str, user_id_for_srp: str, password: str
    ) -> SrpVerifier:
        """Derive a new salt and verifier for `password` and keep them (replacing any)."""
        salt, verifier = srp.new_verifier(pool_name, user_id_for_srp, password)
        record = SrpVerifier(salt, verifier, pool_name, user_id_for_srp)
        key = self._key(user_id)
        data = {
            "salt": format(salt, "x"),
            "verifier": format(verifier, "x"),
            "pool_name": pool_name,
            "user_id_for_srp": user_id_for_srp,
        }
        sealed = self._sealer.seal(json.dumps(data).encode(), purpose=PURPOSE, context=key.encode())
        await self._store.put(key, sealed)
        return record

    async def get(self, user_id: str) -> SrpVerifier | None:
        """The user's verifier, or None when they have none yet. Raises ValueError when the
        record was tampered with or moved from another key (never treat that as "none")."""
        return self.read_back(user_id, await self._store.get(self._key(user_id)))

    def reading(self, user_id: str) -> Get:
        """The read of `get`, to send beside others (`Store.read_many`); its answer goes to
        `read_back`."""
        return Get(self._key(user_id))

    def read_back(self, user_id: str, raw: bytes | None) -> SrpVerifier | None:
        """The verifier from the answer to `reading`; as `get`, ValueError when tampered with."""
        if raw is None:
            return None
        key = self._key(user_id)
        data = json.loads(self._sealer.open(raw, purpose=PURPOSE, context=key.encode()))
        return SrpVerifier(
            int(data["salt"], 16),
            int(data["verifier"], 16),
            str(data["pool_name"]),
            str(data["user_id_for_srp"]),
        )

    async def delete(self, user_id: str) -> bool:
        """Forget the user's verifier (account deleted, password reset required); True if
        there was one."""
        return await self._store.delete(self._key(user_id)) > 0

    def _key(self, user_id: str) -> str:
        return self._store.key("srp-verifier", user_id)
