"""The audit trail: who did what, when, from where — in a Redis Stream with a retention.

Events: sign-in success and failure, token issue, credential vend, identity linking, pool role
changes and every admin command. Each entry has `event`, `ts`, `request_id` and the fields the
event names (connector, identity, client, role, ip, actor); never a password, token, code or
credential. Writing is best effort: an audit write that fails is logged and does not fail the
request (the store being down fails the request anyway); a sign-in's success goes out with the
new session's writes, in the same round trip. Read with `cognate audit tail`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from gateway.errors import StoreUnavailable
from gateway.observability import request_id
from gateway.store import Append, Store, Write

log = logging.getLogger("cognate.audit")


class Audit:
    """Record and read audit events."""

    def __init__(self, store: Store, retention: int) -> None:
        self._store = store
        self._retention = retention
        self.stream = store.key("audit")

    async def record(self, event: str, batch: list[Write] | None = None, **fields: Any) -> None:
        """Append one event; values are stringified, None values dropped. With `batch` (a
        request gathering its writes, see `gateway.store.write`) the entry joins it, and
        fails with it."""
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
        log.info("audit", extra={"audit": entry})
        if batch is not None:
            batch.append(Append(self.stream, entry, self._retention))
            return
        try:
            await self._store.append(self.stream, entry, self._retention)
        except StoreUnavailable:
            log.warning("audit event not stored", extra={"audit_event": event})

    async def read(
        self, after: str = "0", count: int = 100, block: float | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        """Entries after id `after` ("0": from the oldest kept; "$": only new ones)."""
        return await self._store.read(self.stream, after, count, block)
