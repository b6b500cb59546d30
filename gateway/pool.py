"""CPU-bound work (argon2 hashes, XML signature checks) off the event loop, in a bounded pool.

When more than `max_pending` calls are waiting we refuse with `Overloaded` (→ 503 with
Retry-After) rather than queue without end, so a burst of sign-ins cannot starve the rest of the
gateway.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from gateway.errors import Overloaded

__all__ = ["BoundedPool", "Overloaded"]  # Overloaded lives in the error tree; callers meet it here

T = TypeVar("T")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity: taskset, container cpusets), not the
    machine's count: two memory-hard hashes on one core only evict each other's caches."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _lower_priority(niceness: int) -> None:
    """Make the calling worker thread yield the CPU to the event loop (Linux: threads are
    tasks with their own nice value; raising it needs no privilege)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass


class BoundedPool:
    """A thread pool that sheds load instead of queueing without end. Its threads run at a
    lower priority (`niceness`), so a burst of hashing cannot starve the event loop that
    serves everything else (forward-auth keeps its latency during a sign-in storm)."""

    def __init__(
        self, name: str, workers: int | None = None, max_pending: int = 64, niceness: int = 10
    ) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(
            max_workers=workers or usable_cpus(),
            thread_name_prefix=name,
            initializer=_lower_priority,
            initargs=(niceness,),
        )
        self._max_pending = max_pending
        self._pending = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pending >= self._max_pending:
            raise Overloaded(f"too many {self.name} jobs are waiting; try again shortly")
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
