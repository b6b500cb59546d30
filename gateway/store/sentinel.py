"""What Sentinel announces about a fail-over of our master, for `RedisStore`'s durable writes.

Why: with two replicas and `replicas_acked: 1`, the old master goes on taking writes after
Sentinel has promoted a replica, and the replica Sentinel has not re-pointed yet goes on
acknowledging them — writes that its resync from the new master then discards. Measured with
`bench/failover.py`: thousands of acknowledged writes lost in one planned fail-over. Sentinel
says on its pub/sub channels when it starts one (`+try-failover`, before it picks the replica)
and when it is over (`+switch-master`, or a `-failover-abort-*`), so in between durable writes
are refused (503, nothing handed out) instead of being sent where they may vanish.

    watch = FailoverWatch(sentinel_clients, "mymaster")
    if watch.in_progress(): ...          # refuse the durable write
    epoch = watch.epoch; ...write...; watch.epoch != epoch  # a fail-over began meanwhile

Not here: finding the new master (redis-py's SentinelConnectionPool) and the retry after a
fail-over (`RedisStore._durable`). If the subscription is lost, nothing is known and nothing is
refused on its account: the store falls back to what WAIT says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

log = logging.getLogger("cognate.store")

STARTS = ("+try-failover",)
# +failover-end comes before +switch-master on the leader; either means the promotion is done.
ENDS = (
    "+switch-master",
    "+failover-end",
    "+failover-end-for-timeout",
    "-failover-abort-not-elected",
    "-failover-abort-no-good-slave",
    "-failover-abort-slave-timeout",
)


class FailoverWatch:
    """Listens to every Sentinel for fail-overs of `service` (started on first use)."""

    def __init__(self, sentinels: list[Any], service: str, limit: float = 30.0) -> None:
        self._sentinels = sentinels
        self._service = service
        self._limit = limit  # a missed end message does not refuse writes for longer
        self._since: float | None = None
        self.epoch = 0  # counts fail-overs announced; a write compares it before and after
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Subscribe (idempotent; needs the running loop, hence not in __init__)."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._listen(s), name="sentinel-events")
                for s in self._sentinels
            ]

    def in_progress(self) -> bool:
        """A fail-over of our master was announced and is not over yet."""
        return self._since is not None and time.monotonic() - self._since < self._limit

    def heard(self, channel: str, data: str) -> None:
        """One Sentinel event (`+try-failover master <name> <ip> <port>`, `+switch-master
        <name> <old ip> <old port> <new ip> <new port>`, ...)."""
        words = data.split() or [""]
        name = words[1] if words[0] == "master" and len(words) > 1 else words[0]
        if name != self._service:
            return
        if channel in STARTS:
            self._since = time.monotonic()
            self.epoch += 1
            log.warning("sentinel: fail-over of %s started; durable writes wait", self._service)
        elif channel in ENDS and self._since is not None:
            self._since = None
            log.warning("sentinel: fail-over of %s over (%s)", self._service, channel)

    async def _listen(self, sentinel: Any) -> None:
        while True:
            pubsub = sentinel.pubsub()
            try:
                await pubsub.subscribe(*STARTS, *ENDS)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self.heard(_text(message["channel"]), _text(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:  # any failure: not listening (nothing refused); retry shortly
                log.debug("sentinel events: subscription lost", exc_info=True)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
