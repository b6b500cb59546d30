"""Fixed-window failure counters in the store, for sign-in and anything else that must not be
guessed at speed.

A limit is (what, how many, window). Guesses are counted before they are checked (`take`,
then `settle`): each attempt first holds a slot in every window it counts against (one atomic
script per window, all in one round trip; the first slot starts the window) and gives them
back if it turns out not to be a failure, so a burst of parallel guesses gets the limit's
number of checks, not one per request in flight. Once a window is over its limit, attempts are
refused with its remaining time as Retry-After.

A slot is the attempt's own random id in the window (`Store.hold_slots`), not a step of a
counter: holding or giving back twice changes nothing, so an answer Redis sent but a stall
lost — a hold, or a give-back that ran before it timed out and is then repeated — neither
frees a guess nor counts one too many. Windows always expire, so an attacker can slow a
victim's sign-in down but never lock the account for good; keys are hashed, so the store
never holds the e-mail addresses or IPs being counted.
"""

from __future__ import annotations

import ipaddress
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from gateway.crypto import Sealer
from gateway.errors import GatewayError, Unavailable
from gateway.store import Slot, Store


class RateLimited(GatewayError):
    """Too many attempts; `retry_after` seconds until the window ends; `window`: its key."""

    def __init__(self, retry_after: int, window: str = "") -> None:
        self.retry_after = retry_after
        self.window = window
        super().__init__(f"too many attempts; retry after {retry_after}s")


@dataclass(frozen=True)
class Limit:
    """At most `count` failures per `window` seconds for one `scope` value."""

    scope: str
    count: int
    window: int


@dataclass
class Attempt:
    """One attempt's slots (`RateLimiter.take`): `failed()` when it is a failure (it stays
    counted); otherwise `RateLimiter.settle` gives them back."""

    slots: list[Slot]
    is_failure: bool = field(default=False)

    def failed(self) -> None:
        self.is_failure = True


class RateLimiter:
    """Take and count attempts against several limits at once."""

    OWED = 10_000  # slots owed back at most (see give_back)
    REFUSED = 10_000  # windows whose first refusal is remembered (first_refusal)

    def __init__(self, store: Store, sealer: Sealer) -> None:
        self._store = store
        self._sealer = sealer
        # Slots an attempt could not give back because the store was down at that moment,
        # each with whether its hold is known to have landed: given back by the next call
        # that reaches the store, so a Redis blip in the middle of a sign-in does not lock its
        # user out for the window once Redis is back. Giving a slot back twice is harmless
        # (`Store.release_slots`), so an answer lost either way costs no guess and adds none.
        self._owed: list[tuple[Slot, bool]] = []
        # (what was refused, window) seen refused, with when the window ends (monotonic).
        self._refused: OrderedDict[tuple[str, str], float] = OrderedDict()

    def key(self, limit: Limit, value: str) -> str:
        """The store key of `limit`'s window for `value` (hashed: the store never holds the
        addresses or names it counts)."""
        if limit.scope.endswith("-ip"):
            value = _subscriber(value)
        digest = self._sealer.keyed_hash(value, purpose="rl")
        # "rl-slots": windows of attempt ids; the "rl" counters of earlier releases are
        # strings, and expire on their own.
        return self._store.key("rl-slots", limit.scope, digest)

    async def count(self, limit: Limit, value: str) -> int:
        """The attempts `limit` counts for `value` now: failures, and attempts in flight."""
        return await self._store.slots_held(self.key(limit, value))

    async def take(self, checks: list[tuple[Limit, str]]) -> list[Slot]:
        """Count one attempt against every limit before it is made (one round trip for all):
        RateLimited, with nothing left counted, if that puts any counter over its limit.
        Returns the attempt's slots (for `give_back`). When the store fails, the attempt is
        not made (503) and its slots, which may have landed, are owed back."""
        await self._pay_owed()
        member = os.urandom(12).hex()
        slots = [Slot(self.key(limit, value), member, limit.window) for limit, value in checks]
        try:
            counts = await self._store.hold_slots(slots)
        except Unavailable:
            self._owe(slots, unsure=True)
            raise
        over = [
            (limit, slot)
            for (limit, _), slot, count in zip(checks, slots, counts, strict=True)
            if count > limit.count
        ]
        if over:
            limit, slot = over[0]
            try:
                ttl = await self._store.ttl(slot.key)
            finally:
                await self.give_back(slots)
            retry_after = max(1, math.ceil(ttl if ttl is not None else limit.window))
            raise RateLimited(retry_after, slot.key)
        return slots

    def first_refusal(self, refused: RateLimited, what: str) -> bool:
        """Whether this is the first refusal of `what` (say, a password sign-in) by that window
        in this process: what is worth an audit entry (refusals cost an attacker nothing, and
        an entry each would grow the audit stream at their rate). Each `what` has its own
        first, so refusals of one kind cannot silence the audit of another."""
        now = time.monotonic()
        key = (what, refused.window)
        ends = self._refused.get(key)
        if ends is not None and ends > now:
            return False
        self._refused[key] = now + refused.retry_after
        self._refused.move_to_end(key)
        while len(self._refused) > self.REFUSED:
            self._refused.popitem(last=False)
        return True

    async def give_back(self, slots: list[Slot]) -> None:
        """Undo `take` for an attempt that was not a failure (one round trip). With the store
        down, the slots are owed, and given back by the next `take` that reaches it."""
        if not slots:
            return
        try:
            await self._store.release_slots(slots)
        except Unavailable:
            self._owe(slots, unsure=False)

    async def settle(self, attempt: Attempt) -> None:
        """After an attempt begun with `take`: its slots back unless it `failed()` (a success,
        a refusal for another reason, an outage or an overload mid-way is no guess)."""
        if not attempt.is_failure:
            await self.give_back(attempt.slots)

    def _owe(self, slots: list[Slot], unsure: bool) -> None:
        self._owed = [*self._owed, *((slot, unsure) for slot in slots)][-self.OWED :]

    async def _pay_owed(self) -> None:
        """Give back what outages kept (a failure here leaves them owed, and fails the take:
        the store is down for it too)."""
        if not self._owed:
            return
        owed, self._owed = self._owed, []
        sure = [slot for slot, unsure in owed if not unsure]
        unsure = [slot for slot, unsure in owed if unsure]
        try:
            if sure:
                await self._store.release_slots(sure)
                sure = []
            if unsure:
                await self._store.release_slots(unsure, unsure=True)
        except Unavailable:
            self._owed = [*((s, False) for s in sure), *((s, True) for s in unsure), *self._owed]
            self._owed = self._owed[-self.OWED :]
            raise


def _subscriber(address: str) -> str:
    """What a per-IP limit counts: an IPv4 address, or the /64 of an IPv6 one (what one
    subscriber or host is usually given: counting each /128 would give a client 2^64
    fresh counters)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
