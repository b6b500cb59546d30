"""The `Store` protocol: the only way any area touches shared state.

Values are opaque bytes; each domain module owns its key prefix and (de)serialisation. Every
operation is on one key, so every backend (a single Redis, Sentinel, Cluster) can run it atomically;
an area that needs several keys orders its writes so a crash between them loses nothing.

Backends: `RedisStore` (production) and `MemoryStore` (single-process demo; forgets on restart).
`open_store(url, prefix)` picks one from a URL. A backend that cannot answer raises
`gateway.errors.StoreUnavailable`; callers fail closed, nothing falls back to memory.

Usage::

    store = open_store("redis://127.0.0.1:6379/0", prefix="cognate")
    key = store.key("code", code_hash)        # "cognate:code:<hash>"
    if await store.create(key, b"...", ttl=60):
        ...

A read-modify-write of one value goes through `Store.modify`, never a hand-written loop of
`get` and `update`: it retries lost swaps a bounded number of times and raises
`gateway.errors.StoreContended` when every attempt lost, so no write is ever dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gateway.errors import StoreContended, StoreUnavailable

log = logging.getLogger("cognate.store")

# Enough for the handful of replicas and browser tabs that may change one record at once; a
# caller that expects more (a hot counter) passes its own `attempts`.
MODIFY_ATTEMPTS = 10

Change = Callable[[bytes | None], bytes | None]
"""`Store.modify`'s callback: the current value (None when absent) → the value to write, or
None to leave the key as it is. It may raise to give up; it may run more than once."""


@dataclass(frozen=True, slots=True)
class Put:
    """`Store.put` as one of `Store.write_many`'s writes."""

    key: str
    value: bytes
    ttl: float | None = None


@dataclass(frozen=True, slots=True)
class IndexAdd:
    """`Store.index_add` as one of `Store.write_many`'s writes."""

    key: str
    member: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Append:
    """`Store.append` as one of `Store.write_many`'s writes."""

    stream: str
    fields: dict[str, str]
    retention: float


@dataclass(frozen=True, slots=True)
class SortedAdd:
    """Add `member` to the sorted set `key` (one of `Store.write_many`'s writes)."""

    key: str
    member: str


@dataclass(frozen=True, slots=True)
class SortedRemove:
    """Remove `member` from the sorted set `key` (one of `Store.write_many`'s writes)."""

    key: str
    member: str


Write = Put | IndexAdd | Append | SortedAdd | SortedRemove


@dataclass(frozen=True, slots=True)
class Get:
    """`Store.get` as one of `Store.read_many`'s reads."""

    key: str


@dataclass(frozen=True, slots=True)
class Take:
    """`Store.take` as one of `Store.read_many`'s reads."""

    key: str


Read = Get | Take


@dataclass(frozen=True, slots=True)
class Slot:
    """One attempt's place in a counting window (`Store.hold_slots`): the window's `key`, the
    attempt's `member` (the same for all its windows; unique per attempt) and the window's
    length in seconds, started by its first member."""

    key: str
    member: str
    ttl: float


@dataclass(frozen=True, slots=True)
class Modified:
    """What `Store.modify` did: `written` when this call wrote `value`; otherwise `change` left
    the key as it was and `value` is what it held (None: absent) when `change` saw it."""

    value: bytes | None
    written: bool


async def write(store: Store, batch: list[Write] | None, *writes: Write) -> None:
    """`writes` now, or added to `batch` when the caller gathers a request's writes to send
    them in one round trip (`Store.write_many`) before it answers."""
    if batch is None:
        await store.write_many(writes)
    else:
        batch.extend(writes)


@runtime_checkable
class Store(Protocol):
    """Key/value storage with the few atomic primitives the gateway's protocols need."""

    prefix: str

    def key(self, *parts: str) -> str:
        """The namespaced key for `parts` (`prefix:part1:part2`)."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""
        ...

    async def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Set unconditionally; `ttl` in seconds (None: no expiry)."""
        ...

    async def create(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Set only if absent (SET NX). True if this call created it."""
        ...

    async def take(self, key: str) -> bytes | None:
        """Get and delete in one step (GETDEL): at most one caller ever sees a value."""
        ...

    async def update(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        """Compare-and-swap: replace only if the current value is exactly `expected`.
        `ttl` None keeps the current expiry. True if this call replaced it."""
        ...

    async def modify(
        self,
        key: str,
        change: Change,
        ttl: float | None = None,
        attempts: int = MODIFY_ATTEMPTS,
        seen: bytes | None = None,
    ) -> Modified:
        """Read-modify-write of one value with compare-and-swap: `change(current)` (None when
        absent) returns the new value, or None to leave the key alone. An absent key is
        created (SET NX), a present one swapped (`update`), and a swap lost to a concurrent
        writer reads again and calls `change` again, up to `attempts` times in all; then it
        raises `StoreContended` (a write is never dropped silently). `ttl`: as in `update`
        (None keeps the expiry; a created value then has none). `seen`: a value the caller
        has just read, so the first attempt saves a round trip.

        `change` must be a pure function of its argument (it may run several times) and may
        raise to give up; the exception reaches the caller and nothing is written::

            def add_one(current: bytes | None) -> bytes:
                return str(int(current or b"0") + 1).encode()

            outcome = await store.modify(store.key("visits", page), add_one, ttl=86400)
            visits = int(outcome.value or b"0")

        Backends inherit this from the protocol: it needs only `get`, `create` and `update`,
        which every backend already makes atomic on one key.
        """
        current = seen if seen is not None else await self.get(key)
        for attempt in range(attempts):
            if attempt:
                current = await self.get(key)
            new = change(current)
            if new is None:
                return Modified(current, written=False)
            if current is None:
                won = await self.create(key, new, ttl)
            else:
                won = await self.update(key, current, new, ttl)
            if won:
                return Modified(new, written=True)
        raise StoreContended(f"{key} changed under {attempts} attempts to modify it; try again")

    async def delete(self, *keys: str) -> int:
        """Delete keys; returns how many existed."""
        ...

    async def incr(self, key: str, ttl: float) -> int:
        """Increment a counter; the first increment starts its `ttl` window."""
        ...

    async def hold_slots(self, holds: Sequence[Slot]) -> list[int]:
        """Count each hold's `member` in its window (`key`), in one round trip; each window's
        count afterwards, in order. Each window is its own (on Cluster they may live on
        different nodes); the first member starts its `ttl`. Idempotent: a member counts once
        however often it is held, so a hold repeated after a lost answer counts once, and a
        member released `unsure` (below) never counts."""
        ...

    async def release_slots(self, holds: Sequence[Slot], unsure: bool = False) -> None:
        """Uncount each hold's member (its window unchanged), in one round trip; idempotent:
        a release repeated after a lost answer uncounts once, never another hold's slot.
        `unsure`: the hold itself may still be on its way (its answer was lost), so the member
        is remembered as released for the window and a hold of it arriving late counts not."""
        ...

    async def slots_held(self, key: str) -> int:
        """How many members a window counts now (0 when it has ended)."""
        ...

    async def ttl(self, key: str) -> float | None:
        """Seconds left to live; None when absent or without expiry."""
        ...

    async def index_add(self, key: str, member: str, expires_at: float) -> None:
        """Add `member` to an expiring set until `expires_at` (epoch seconds). Atomic, without
        read-modify-write, so any number of concurrent adds all land."""
        ...

    async def read_many(self, reads: Sequence[Read]) -> list[bytes | None]:
        """Several `get`s and `take`s in one round trip, answered in order. A `Take` is what
        `take` is: at most one caller ever sees the value."""
        ...

    async def write_many(self, writes: Sequence[Write]) -> None:
        """Several `put`s, `index_add`s, `append`s and sorted-set changes in one round trip,
        run in order. Not atomic: after a failure some may have landed, as with the same
        writes one by one, so the order must make every prefix harmless."""
        ...

    async def index_members(self, key: str) -> list[str]:
        """The members that have not expired."""
        ...

    async def sorted_page(self, key: str, prefix: str, after: str | None, count: int) -> list[str]:
        """Up to `count` members of the sorted set `key` (written with `SortedAdd` and
        `SortedRemove`) that start with `prefix`, in the order of their UTF-8 bytes, strictly
        after `after` when given (Redis: one ZRANGEBYLEX on one key, so it is Cluster-safe).
        A search index: "value\x00id" members answer `=` and prefix queries in O(log n + count),
        and a page's last member resumes the next page however many members were added."""
        ...

    async def index_take(self, key: str) -> list[str]:
        """The live members, and the set deleted, in one step."""
        ...

    async def append(self, stream: str, fields: dict[str, str], retention: float) -> str:
        """Add an entry to an append-only stream (XADD); entries older than `retention` seconds
        are trimmed. Returns the entry id (`<ms>-<seq>`, increasing)."""
        ...

    async def read(
        self, stream: str, after: str, count: int, block: float | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        """Up to `count` entries after id `after` ("0" = from the start; "$" = only new ones),
        waiting up to `block` seconds for one when there are none."""
        ...

    def scan(self, prefix: str) -> AsyncIterator[str]:
        """Iterate keys starting with `prefix` (a full key prefix from `key()`), any order."""
        ...

    async def publish(self, channel: str, message: bytes) -> None:
        """Tell every replica subscribed to `channel` (fire and forget: no delivery promise)."""
        ...

    def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        """First `b""` once the subscription is in place, then the messages published to
        `channel`. Raises StoreUnavailable when the subscription is lost (messages may have
        been missed: callers must assume the worst)."""
        ...

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the backend answers."""
        ...

    async def durability_problem(self) -> str | None:
        """Why durable data (users, identities) could be lost here, or None when it is safe."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


async def follow(
    store: Store,
    channel: str,
    message: Callable[[bytes], None],
    subscribed: Callable[[bool], None],
    what: str,
) -> None:
    """Run for good: hand every message published on `channel` to `message`, and say through
    `subscribed` when none can be missed (True, once the subscription is in place) and when
    some may have been (False, when it is lost; then it is tried again every second). In-process
    caches that revocations keep in step (sessions, grants) switch themselves on and off by it."""
    while True:
        try:
            messages = store.subscribe(channel)
            async with contextlib.aclosing(messages):  # type: ignore[type-var]
                async for received in messages:
                    if not received:  # subscribed: from now on nothing published can be missed
                        subscribed(True)
                        continue
                    try:
                        message(received)
                    except Exception:  # not one of ours: whatever it meant, forget everything
                        log.warning("%s: unreadable message %r; cache emptied", what, received[:64])
                        subscribed(False)
                        subscribed(True)
        except StoreUnavailable as exc:
            log.warning("%s subscription lost; its cache is off: %s", what, exc)
        except Exception:  # anything else: off, and tried again, never a listener gone for good
            log.exception("%s subscription failed; its cache is off", what)
        subscribed(False)
        await asyncio.sleep(1.0)


class Evicting(Protocol):
    """An in-process cache kept in step with changes elsewhere by a subscription: `on` once
    nothing can be missed, `off` (emptied) when something may have been. Each moves the
    cache's generation, so a store read begun before cannot fill it with what it found."""

    def on(self) -> None: ...

    def off(self) -> None: ...


async def keep_in_step(
    store: Store, channel: str, cache: Evicting, evict: Callable[[str], None], what: str
) -> None:
    """Run for good: `evict` every id published on `channel`; `cache` is on (when its ttl
    allows) while the subscription is in place, and off whenever it is not (`follow`)."""

    def subscribed(up: bool) -> None:
        if up:
            cache.on()
        else:
            cache.off()

    await follow(store, channel, lambda raw: evict(raw.decode()), subscribed, what)


def record_json(record: Any) -> bytes:
    """A dataclass record (nested ones too) as JSON bytes: what `json.dumps(asdict(record))`
    gives, without asdict's deep copy of every list and dict on the way (hot paths save
    sessions and codes on every sign-in)."""
    return json.dumps(record, default=vars).encode()


def open_store(url: str, prefix: str = "cognate", **options: float) -> Store:
    """A backend for `url`: `redis://`, `rediss://`, `unix://` or `memory://`."""
    if url.startswith("memory:"):
        from gateway.store.memory import MemoryStore

        return MemoryStore(prefix=prefix)
    from gateway.store.redis import RedisStore

    return RedisStore(
        url,
        prefix=prefix,
        socket_timeout=options.get("socket_timeout", 2.0),
        connect_timeout=options.get("connect_timeout", 2.0),
        max_connections=int(options.get("max_connections", 64)),
        replicas_acked=int(options.get("replicas_acked", 0)),
        replica_timeout=options.get("replica_timeout", 0.5),
    )
