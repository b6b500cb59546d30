"""One-time codes: e-mail and phone verification, password reset, second-factor codes by
e-mail.

A code is six random digits, bound to one account and one purpose, stored only as a keyed hash
with a TTL, and good for a limited number of attempts: a wrong guess spends one, the right code
is consumed (GETDEL), and issuing a new code replaces the old one.

Attempts are counted by an atomic increment (`Store.incr`) on a counter of their own, named
after the issued code's random id, *before* the guess is compared: every one of any number of
parallel guesses takes its own number, and only the first `attempts` of them are compared at
all. (A read-modify-write of a "left" field lets 200 parallel guesses, which all read the same
value, cost one attempt.) A new code has a new id, hence a fresh counter.

A link token is the same promise for a click: 32 random bytes in the URL, stored only under
its keyed hash (a Redis dump yields no usable link), consumed once, with the code's lifetime.
"""

from __future__ import annotations

import json
import secrets

from gateway.crypto import Sealer, constant_time_equals
from gateway.store import Store


class Codes:
    """Issue and check one-time codes."""

    def __init__(self, store: Store, sealer: Sealer, ttl: int, attempts: int) -> None:
        self._store = store
        self._sealer = sealer
        self.ttl = ttl
        self._attempts = attempts

    def _key(self, purpose: str, user_id: str) -> str:
        return self._store.key("otp", purpose, user_id)

    async def issue(self, purpose: str, user_id: str) -> str:
        """A new code (replacing any earlier one for this account and purpose)."""
        code = f"{secrets.randbelow(10**6):06d}"
        digest = self._sealer.keyed_hash(f"{purpose}:{user_id}:{code}", purpose="otp")
        record = json.dumps({"hash": digest, "id": secrets.token_hex(8)}).encode()
        await self._store.put(self._key(purpose, user_id), record, ttl=self.ttl)
        return code

    async def issue_link(self, purpose: str, user_id: str) -> str:
        """A single-use token for a link that proves the same as a code."""
        token = secrets.token_urlsafe(32)
        await self._store.put(self._link_key(purpose, token), user_id.encode(), ttl=self.ttl)
        return token

    async def redeem_link(self, purpose: str, token: str) -> str | None:
        """The account a link token was issued for, once; None if unknown, used or expired."""
        if not 20 <= len(token) <= 64:
            return None
        owner = await self._store.take(self._link_key(purpose, token))
        return owner.decode() if owner else None

    def _link_key(self, purpose: str, token: str) -> str:
        return self._store.key("otp-link", purpose, self._sealer.keyed_hash(token, purpose="link"))

    async def check(self, purpose: str, user_id: str, code: str) -> bool:
        """True once for the right code; every guess, right or wrong, spends an attempt, and
        the code dies with the last one."""
        key = self._key(purpose, user_id)
        raw = await self._store.get(key)
        if raw is None:
            return False
        record = json.loads(raw)
        # The counter outlives no code: it starts with the code's TTL at the first guess.
        tries_key = self._store.key("otp-tries", purpose, user_id, str(record.get("id", "")))
        tries = await self._store.incr(tries_key, ttl=self.ttl)
        if tries > self._attempts:
            await self._store.delete(key)  # spent by guesses made in parallel with this one
            return False
        digest = self._sealer.keyed_hash(f"{purpose}:{user_id}:{code.strip()}", purpose="otp")
        if constant_time_equals(digest, record["hash"]):
            return await self._store.take(key) is not None  # single use, even when raced
        if tries >= self._attempts:
            await self._store.delete(key)
        return False
