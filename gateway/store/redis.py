"""The production store: Redis over `redis.asyncio`.

Every operation touches one key, so it works unchanged on Redis Cluster; areas that need
several keys in one atomic step put them in one hash slot with `{...}` tags. Any connection
error or timeout becomes `StoreUnavailable`: callers fail closed (503), never fall back.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from gateway.errors import StoreUnavailable

# Compare-and-swap on one key. KEEPTTL needs Redis >= 6.0.
_CAS = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""

# INCR that starts the expiry window on the first hit only (fixed-window counters).
_INCR = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


class RedisStore:
    """A `Store` on one Redis server (URL: redis://, rediss://, unix://)."""

    def __init__(
        self,
        url: str,
        prefix: str = "cognate",
        socket_timeout: float = 2.0,
        connect_timeout: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        self.prefix = prefix
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            max_connections=int(max_connections),
            health_check_interval=30,
        )
        self._cas = self._redis.register_script(_CAS)
        self._incr = self._redis.register_script(_INCR)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc
        except OSError as exc:  # socket errors that slip past redis-py's wrapping
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._call(self._redis.get(key))
        return value

    async def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await self._call(self._redis.set(key, value, px=None if ttl is None else _ms(ttl)))

    async def create(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        created = await self._call(
            self._redis.set(key, value, nx=True, px=None if ttl is None else _ms(ttl))
        )
        return bool(created)

    async def take(self, key: str) -> bytes | None:
        value: bytes | None = await self._call(self._redis.getdel(key))
        return value

    async def update(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        args: list[bytes | str] = [expected, value, "" if ttl is None else str(_ms(ttl))]
        return bool(await self._call(self._cas(keys=[key], args=args)))

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        # One DEL per key keeps this valid on Cluster, where keys may live in different slots.
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.delete(key)
            results = await self._call(pipe.execute())
        return sum(int(r) for r in results)

    async def incr(self, key: str, ttl: float) -> int:
        return int(await self._call(self._incr(keys=[key], args=[_ms(ttl)])))

    async def ttl(self, key: str) -> float | None:
        ms = int(await self._call(self._redis.pttl(key)))
        return None if ms < 0 else ms / 1000

    async def scan(self, prefix: str) -> AsyncIterator[str]:
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
        cursor = 0
        while True:
            cursor, keys = await self._call(self._redis.scan(cursor, match=pattern, count=500))
            for key in keys:
                yield key.decode() if isinstance(key, bytes) else key
            if cursor == 0:
                return

    async def ping(self) -> None:
        await self._call(self._redis.ping())

    async def durability_problem(self) -> str | None:
        try:
            config = await self._call(self._redis.config_get("maxmemory-policy"))
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, ResponseError):  # CONFIG disabled (managed Redis)
                return None
            raise
        policy = config.get("maxmemory-policy") or config.get(b"maxmemory-policy")
        if isinstance(policy, bytes):
            policy = policy.decode()
        if policy and policy != "noeviction":
            return (
                f"Redis maxmemory-policy is {policy!r}: under memory pressure it may evict users "
                "and identities; set it to 'noeviction'"
            )
        return None

    async def close(self) -> None:
        await self._redis.aclose()
