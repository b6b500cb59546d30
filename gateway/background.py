"""Work that must not hold up a response (e-mail, back-channel logout notices) but must not be
lost either: tracked tasks that `drain()` waits for on shutdown and before a CLI command exits.

    background.spawn(sender.send(to, subject, body))
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("cognate.background")


class Background:
    """A set of fire-and-forget tasks that are awaited before the process stops."""

    def __init__(self) -> None:
        self._pending: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` without waiting for it; its failure is logged, never raised."""
        task = asyncio.ensure_future(self._guard(work))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _guard(work: Coroutine[Any, Any, Any]) -> None:
        try:
            await work
        except Exception:
            log.warning("background work failed", exc_info=True)

    async def drain(self) -> None:
        """Wait for everything spawned so far."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
