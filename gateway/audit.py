"""The audit trail: who did what, when, from where — in a Redis Stream with a retention.

Events: sign-in success and failure, token issue, credential vend, identity linking, pool role
changes and every admin command. Each entry has `event`, `ts`, `request_id` and the fields the
event names (connector, identity, client, role, ip, actor); never a password, token, code or
credential. A sign-in's success goes out with the new session's writes, in the same round trip
(and fails with them). Read with `cognate audit tail`.

Some requests succeed without the store (client_credentials needs no Redis write), so their audit
entry can fail alone. Such an entry is not lost quietly: it is held in memory (in order, with its
own `ts`; at most `audit.buffer` entries, the oldest dropped first) and written when the store
answers again. What is still lost (buffer full, or the process stopping with entries held) is
counted in `cognate_audit_events_dropped_total{event}`; `cognate_audit_events_pending` says how
many wait. An outage logs one summary line per interval, not one line per event:
"audit: 221 events not stored in the last 10 s (store unavailable); 221 held, 0 dropped".

The token endpoint does not wait for its entry at all (`defer`): entries queue in memory and
one writer stores them in batches, one round trip for many, in order; what the store refuses
joins the held entries above. An entry so reaches Redis within moments of its answer, and is
lost only as held entries are (counted), if the process ends before it is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from typing import Any

from gateway.errors import StoreUnavailable
from gateway.metrics import Metrics
from gateway.observability import request_id
from gateway.store import Append, Store, Write

log = logging.getLogger("cognate.audit")


class Audit:
    """Record and read audit events; hold the ones the store could not take (see above)."""

    def __init__(
        self,
        store: Store,
        retention: int,
        metrics: Metrics,
        buffer: int = 10_000,
        *,
        report_every: float = 10.0,
        retry_every: float = 1.0,
    ) -> None:
        self._store = store
        self._retention = retention
        self.stream = store.key("audit")
        self._metrics = metrics
        self._limit = buffer
        self._report_every = report_every
        self._retry_every = retry_every
        self._held: deque[dict[str, str]] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._queue: deque[dict[str, str]] = deque()  # deferred, not yet sent
        self._writer: asyncio.Task[None] | None = None
        # Counted since the last summary line, which covers [_window_start, now].
        self._window_start: float | None = None
        self._unstored = self._dropped = self._stored_late = 0

    def _entry(self, event: str, fields: dict[str, Any]) -> dict[str, str]:
        entry = {
            "event": event,
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "request_id": request_id.get(),
        }
        entry |= {
            k: v if isinstance(v, str) else json.dumps(v)
            for k, v in fields.items()
            if v is not None
        }
        if log.isEnabledFor(logging.INFO):
            log.info("audit", extra={"audit": entry})
        return entry

    def defer(self, event: str, **fields: Any) -> None:
        """Record one event without waiting for the store (see the module docstring)."""
        if len(self._queue) >= max(self._limit, 1):
            self._drop(self._queue.popleft())
        self._queue.append(self._entry(event, fields))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queue(), name="audit-write")

    async def _write_queue(self) -> None:
        """Store deferred entries in batches until none is left; hold what the store refuses."""
        while self._queue:
            await asyncio.sleep(0)  # let the requests of this loop turn join the batch
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), 512))]
            if self._held:  # an outage is being waited out: queue behind what it holds
                for entry in batch:
                    self._hold(entry)
                continue
            try:
                await self._store.write_many(
                    [Append(self.stream, entry, self._retention) for entry in batch]
                )
            except StoreUnavailable:
                for entry in batch:
                    self._hold(entry)

    async def record(self, event: str, batch: list[Write] | None = None, **fields: Any) -> None:
        """Append one event; values are stringified, None values dropped. With `batch` (a
        request gathering its writes, see `gateway.store.write`) the entry joins it, and
        fails with it."""
        entry = self._entry(event, fields)
        if batch is not None:
            batch.append(Append(self.stream, entry, self._retention))
            return
        if not self._held:  # while entries wait, new ones queue behind them: the order holds
            try:
                await self._store.append(self.stream, entry, self._retention)
                return
            except StoreUnavailable:
                pass
        self._hold(entry)

    @property
    def pending(self) -> int:
        """Entries held in memory until the store answers."""
        return len(self._held)

    def _hold(self, entry: dict[str, str]) -> None:
        if self._window_start is None:
            self._window_start = time.monotonic()
        self._unstored += 1
        if self._limit == 0:
            self._drop(entry)
        else:
            if len(self._held) >= self._limit:
                self._drop(self._held.popleft())  # bounded: the oldest goes first
            self._held.append(entry)
        self._metrics.audit_pending.set(len(self._held))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="audit-flush")

    def _drop(self, entry: dict[str, str]) -> None:
        self._dropped += 1
        self._metrics.audit_dropped.labels(entry.get("event", "unknown")).inc()

    async def _write_held(self) -> None:
        """Write held entries oldest first, until all are stored or the store fails again."""
        while self._held:
            entry = self._held[0]
            try:
                await self._store.append(self.stream, entry, self._retention)
            except StoreUnavailable:
                return
            finally:
                self._metrics.audit_pending.set(len(self._held))
            # A burst may have dropped this very entry (the oldest) while it was being written:
            # then it is stored and counted dropped once, and the next one is still held.
            if self._held and self._held[0] is entry:
                self._held.popleft()
            self._stored_late += 1
        self._metrics.audit_pending.set(0)

    async def _flush(self) -> None:
        """Retry every `retry_every` seconds until nothing is held; one summary line per
        `report_every` seconds of an outage, and one when it is over."""
        while True:
            await asyncio.sleep(self._retry_every)
            await self._write_held()
            started = self._window_start or time.monotonic()
            if not self._held or time.monotonic() - started >= self._report_every:
                self._report()
            if not self._held:
                return

    def _report(self) -> None:
        now = time.monotonic()
        seconds = now - (self._window_start or now)
        if self._unstored or self._dropped:
            log.warning(
                "audit: %d events not stored in the last %.0f s (store unavailable); "
                "%d held, %d dropped",
                self._unstored,
                max(seconds, 1),
                len(self._held),
                self._dropped,
                extra={
                    "audit_not_stored": self._unstored,
                    "audit_held": len(self._held),
                    "audit_dropped": self._dropped,
                },
            )
        if self._stored_late and not self._held:
            log.info("audit: store back; %d held events stored", self._stored_late)
        self._unstored = self._dropped = self._stored_late = 0
        self._window_start = now if self._held else None

    async def close(self) -> None:
        """On shutdown: one last try to store what is queued and held, then count the rest as
        dropped."""
        if self._writer is not None:
            await self._writer  # it ends when the queue is empty (stored or held)
            self._writer = None
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if not self._held:
            return
        await self._write_held()
        while self._held:
            self._drop(self._held.popleft())
        self._metrics.audit_pending.set(0)
        self._report()

    async def read(
        self, after: str = "0", count: int = 100, block: float | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        """Entries after id `after` ("0": from the oldest kept; "$": only new ones)."""
        return await self._store.read(self.stream, after, count, block)
