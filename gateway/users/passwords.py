"""Password hashing with argon2id, off the event loop, in a bounded pool.

argon2id at OWASP's parameters (19 MiB, t=2, p=1) costs ~17 ms of CPU, so sign-in throughput is
bound by it. Hashes run in a small thread pool (argon2-cffi releases the GIL); when more than
`max_pending` are waiting we refuse with `Overloaded` (→ 503) rather than queue without end, so
a login burst cannot starve the rest of the gateway.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.errors import GatewayError

MAX_PASSWORD_BYTES = 4096  # checked before hashing: a 1 MB password must not cost 1 MB of argon2


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity: taskset, container cpusets), not the
    machine's count: two memory-hard hashes on one core only evict each other's caches."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Overloaded(GatewayError):
    """Too many password hashes are waiting; the caller answers 503 with Retry-After."""


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
        workers = workers or usable_cpus()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._slots = asyncio.Semaphore(max_pending)
        self._max_pending = max_pending
        self._pending = 0
        # Verified against when the user does not exist, so both paths cost one argon2 run.
        self._dummy = self._argon2.hash("cognate-dummy-password")

    async def _run(self, fn: object, *args: str) -> object:
        if self._pending >= self._max_pending:
            raise Overloaded("too many sign-ins are being processed; try again shortly")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, fn, *args)  # type: ignore[arg-type]
        finally:
            self._pending -= 1

    async def hash(self, password: str) -> str:
        """A new argon2id hash."""
        return str(await self._run(self._argon2.hash, password))

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True if `password` matches; with no hash, spends the same time and returns False."""
        target = stored_hash or self._dummy

        def check(h: str, p: str) -> bool:
            try:
                return bool(self._argon2.verify(h, p))
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        ok = bool(await self._run(check, target, password))
        return ok and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with other (older) parameters."""
        try:
            return bool(self._argon2.check_needs_rehash(stored_hash))
        except InvalidHashError:
            return True

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
