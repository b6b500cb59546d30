"""Password hashing with argon2id, off the event loop, in a bounded pool.

argon2id at OWASP's parameters (19 MiB, t=2, p=1) costs ~17 ms of CPU, so sign-in throughput is
bound by it. Hashes run in a `BoundedPool` (argon2-cffi releases the GIL), which sheds load with
`Overloaded` (→ 503) rather than queue without end.
"""

from __future__ import annotations

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.pool import BoundedPool
from gateway.users.legacy_hashes import is_legacy, verify_legacy

MAX_PASSWORD_BYTES = 4096  # checked before hashing: a 1 MB password must not cost 1 MB of argon2


class PasswordHasher:
    """argon2id hashing and verification, with rehash on parameter change."""

    def __init__(
        self,
        memory_cost: int = 19 * 1024,
        time_cost: int = 2,
        parallelism: int = 1,
        workers: int | None = None,
        max_pending: int = 64,
    ) -> None:
        self._argon2 = _Argon2(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
        )
        self._pool = BoundedPool("argon2", workers, max_pending)
        # Verified against when the user does not exist, so both paths cost one argon2 run.
        self._dummy = self._argon2.hash("cognate-dummy-password")

    async def hash(self, password: str) -> str:
        """A new argon2id hash."""
        return await self._pool.run(self._argon2.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True if `password` matches; with no hash, spends the same time and returns False."""
        target = stored_hash or self._dummy

        def check(h: str, p: str) -> bool:
            if is_legacy(h):  # imported from another system; rehashed after this sign-in
                return verify_legacy(h, p)
            try:
                return bool(self._argon2.verify(h, p))
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        ok = await self._pool.run(check, target, password)
        return ok and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with other (older) parameters, or by another system."""
        if is_legacy(stored_hash):
            return True
        try:
            return bool(self._argon2.check_needs_rehash(stored_hash))
        except InvalidHashError:
            return True

    def close(self) -> None:
        self._pool.close()
