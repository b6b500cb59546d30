"""In-process store for the demo and single-process development.

It forgets everything on restart and is invisible to other processes, so `cognate serve` warns
loudly when it is used. It implements the same contract as the Redis store and runs the same
conformance suite. Each method does its work without awaiting, so it is atomic on the event loop.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import AsyncIterator, Sequence

from gateway.store import (
    IndexAdd,
    Put,
    Read,
    Slot,
    SortedAdd,
    SortedRemove,
    Store,
    Take,
    Write,
)


class MemoryStore(Store):
    """A dict with expiry times."""

    def __init__(self, prefix: str = "cognate") -> None:
        self.prefix = prefix
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._streams: dict[str, list[tuple[str, dict[str, str]]]] = {}
        self._indexes: dict[str, dict[str, float]] = {}
        self._sorted: dict[str, list[bytes]] = {}  # sorted sets: members kept in byte order
        # Counting windows (hold_slots): member → counted (False: released unsure), deadline.
        self._windows: dict[str, tuple[dict[str, bool], float]] = {}
        self._changed = asyncio.Event()
        self._subscribers: dict[str, set[asyncio.Queue[bytes]]] = {}

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _live(self, key: str) -> tuple[bytes, float | None] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= time.monotonic():
            del self._data[key]
            return None
        return entry

    @staticmethod
    def _deadline(ttl: float | None) -> float | None:
        return None if ttl is None else time.monotonic() + ttl

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key)
        return None if entry is None else entry[0]

    async def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._data[key] = (value, self._deadline(ttl))

    async def create(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        if self._live(key) is not None:
            return False
        self._data[key] = (value, self._deadline(ttl))
        return True

    async def take(self, key: str) -> bytes | None:
        entry = self._live(key)
        if entry is None:
            return None
        del self._data[key]
        return entry[0]

    async def update(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        entry = self._live(key)
        if entry is None or entry[0] != expected:
            return False
        self._data[key] = (value, entry[1] if ttl is None else self._deadline(ttl))
        return True

    async def delete(self, *keys: str) -> int:
        existing = [k for k in keys if self._live(k) is not None]
        for key in existing:
            del self._data[key]
        sets = [k for k in keys if self._sorted.pop(k, None)]
        windows = [k for k in keys if self._window(k) is not None]
        for key in windows:
            del self._windows[key]
        return len(existing) + len(sets) + len(windows)

    async def incr(self, key: str, ttl: float) -> int:
        entry = self._live(key)
        count = int(entry[0]) + 1 if entry else 1
        self._data[key] = (str(count).encode(), entry[1] if entry else self._deadline(ttl))
        return count

    def _window(self, key: str) -> dict[str, bool] | None:
        entry = self._windows.get(key)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self._windows[key]
            return None
        return entry[0]

    def _open_window(self, slot: Slot) -> dict[str, bool]:
        members = self._window(slot.key)
        if members is None:
            members = {}
            self._windows[slot.key] = (members, time.monotonic() + slot.ttl)
        return members

    async def hold_slots(self, holds: Sequence[Slot]) -> list[int]:
        counts = []
        for slot in holds:
            members = self._open_window(slot)
            members.setdefault(slot.member, True)
            counts.append(sum(members.values()))
        return counts

    async def release_slots(self, holds: Sequence[Slot], unsure: bool = False) -> None:
        for slot in holds:
            members = self._open_window(slot) if unsure else self._window(slot.key)
            if members is None:
                continue
            if unsure:
                members[slot.member] = False
            else:
                members.pop(slot.member, None)

    async def slots_held(self, key: str) -> int:
        members = self._window(key)
        return 0 if members is None else sum(members.values())

    async def ttl(self, key: str) -> float | None:
        if self._window(key) is not None:
            return max(0.0, self._windows[key][1] - time.monotonic())
        entry = self._live(key)
        if entry is None or entry[1] is None:
            return None
        return max(0.0, entry[1] - time.monotonic())

    async def index_add(self, key: str, member: str, expires_at: float) -> None:
        members = self._indexes.setdefault(key, {})
        now = time.time()
        for old in [m for m, t in members.items() if t <= now]:
            del members[old]
        members[member] = expires_at

    async def read_many(self, reads: Sequence[Read]) -> list[bytes | None]:
        return [
            await (self.take(read.key) if isinstance(read, Take) else self.get(read.key))
            for read in reads
        ]

    async def write_many(self, writes: Sequence[Write]) -> None:
        for write in writes:
            if isinstance(write, Put):
                await self.put(write.key, write.value, write.ttl)
            elif isinstance(write, IndexAdd):
                await self.index_add(write.key, write.member, write.expires_at)
            elif isinstance(write, SortedAdd):
                members = self._sorted.setdefault(write.key, [])
                member = write.member.encode()
                at = bisect.bisect_left(members, member)
                if at == len(members) or members[at] != member:
                    members.insert(at, member)
            elif isinstance(write, SortedRemove):
                members = self._sorted.get(write.key, [])
                member = write.member.encode()
                at = bisect.bisect_left(members, member)
                if at < len(members) and members[at] == member:
                    del members[at]
                if not members:
                    self._sorted.pop(write.key, None)
            else:
                await self.append(write.stream, write.fields, write.retention)

    async def index_members(self, key: str) -> list[str]:
        now = time.time()
        return [m for m, t in self._indexes.get(key, {}).items() if t > now]

    async def sorted_page(self, key: str, prefix: str, after: str | None, count: int) -> list[str]:
        members = self._sorted.get(key, [])
        start = prefix.encode()
        at = bisect.bisect_left(members, start)
        if after is not None and after.encode() >= start:
            at = bisect.bisect_right(members, after.encode())
        page: list[str] = []
        for member in members[at:]:
            if len(page) >= count or not member.startswith(start):
                break
            page.append(member.decode())
        return page

    async def index_take(self, key: str) -> list[str]:
        now = time.time()
        return [m for m, t in self._indexes.pop(key, {}).items() if t > now]

    async def append(self, stream: str, fields: dict[str, str], retention: float) -> str:
        entries = self._streams.setdefault(stream, [])
        now_ms = int(time.time() * 1000)
        last = entries[-1][0] if entries else "0-0"
        last_ms, last_seq = (int(x) for x in last.split("-"))
        entry_id = f"{now_ms}-0" if now_ms > last_ms else f"{last_ms}-{last_seq + 1}"
        entries.append((entry_id, dict(fields)))
        horizon = now_ms - int(retention * 1000)
        while entries and int(entries[0][0].split("-")[0]) < horizon:
            entries.pop(0)
        self._changed.set()
        self._changed = asyncio.Event()
        return entry_id

    async def read(
        self, stream: str, after: str, count: int, block: float | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        existing = self._streams.get(stream, [])
        # "$" means "after whatever is there now": pin it before waiting.
        floor = _entry_key((existing[-1][0] if existing else "0-0") if after == "$" else after)

        def newer() -> list[tuple[str, dict[str, str]]]:
            entries = self._streams.get(stream, [])
            return [e for e in entries if _entry_key(e[0]) > floor][:count]

        found = newer()
        if found or not block:
            return found
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout=block)
        except TimeoutError:
            return []
        return newer()

    async def scan(self, prefix: str) -> AsyncIterator[str]:
        for key in list(self._data):
            if key.startswith(prefix) and self._live(key) is not None:
                yield key

    async def publish(self, channel: str, message: bytes) -> None:
        for queue in self._subscribers.get(channel, set()):
            queue.put_nowait(message)

    async def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._subscribers.setdefault(channel, set()).add(queue)
        try:
            yield b""
            while True:
                yield await queue.get()
        finally:
            self._subscribers[channel].discard(queue)

    async def ping(self) -> None:
        return None

    async def durability_problem(self) -> str | None:
        return "the memory store keeps data only in this process and forgets it on restart"

    async def close(self) -> None:
        return None


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
