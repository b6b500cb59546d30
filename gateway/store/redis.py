"""The production store: Redis over `redis.asyncio` — one server, Sentinel, or Cluster.

URLs: `redis://` / `rediss://` / `unix://` (one server), `redis+sentinel://h1:26379,h2:26379/
<service>[/<db>]` (the master Sentinel names, followed across fail-overs), and
`redis+cluster://h1:6379,h2:6379` (`rediss+cluster://` with TLS; the other nodes are discovered).

On one server, round trips run on redis-py's connections without its pool and pipeline layers
(`_Lane`); Sentinel and Cluster use redis-py's clients throughout.

Sentinel fail-over with `replicas_acked`: a planned fail-over promotes a replica while the old
master keeps answering as a master until Sentinel demotes it, which takes up to ~15 s (its INFO
period, then a resync). Writes sent there are refused (no replica acknowledges them), and
redis-py only looks for the new master once READONLY arrives. So a durable write that no replica
acknowledged asks Sentinel where the master is and drops the connections to any other address:
the next write goes to the new master (`_durable`). While Sentinel announces a fail-over in
progress, durable writes are refused outright (`gateway.store.sentinel`): a replica not yet
re-pointed would acknowledge writes that its resync then discards.

Every operation touches one key, so it works unchanged on Redis Cluster; areas that need
several keys in one atomic step put them in one hash slot with `{...}` tags. Any connection
error or timeout becomes `StoreUnavailable`: callers fail closed (503), never fall back.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError, RedisError, ResponseError

from gateway.errors import StoreUnavailable
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
from gateway.store.sentinel import FailoverWatch

# Compare-and-swap on one key. KEEPTTL needs Redis >= 6.0.
# A subscription's heartbeat: PING when nothing was heard for PUBSUB_PING_AFTER seconds, and
# give the subscription up as lost (its caches go off) after PUBSUB_SILENCE without an answer.
PUBSUB_PING_AFTER = 1.0
PUBSUB_SILENCE = 3.0

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

# A counting window (hold_slots) is a hash: a field per attempt ("1" counted, "0" released
# while its hold may still arrive) and "#", the count. HSETNX makes a repeated hold count once
# and keeps a released member from counting again; the first member starts the window.
_HOLD = """
if redis.call('HSETNX', KEYS[1], ARGV[1], '1') == 1 then
  local n = redis.call('HINCRBY', KEYS[1], '#', 1)
  if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  return n
end
return tonumber(redis.call('HGET', KEYS[1], '#') or '0')
"""

# Uncount a member once (a repeat finds it gone or "0"); unsure (ARGV[2] "1"): leave "0" in
# its place, in a window it starts if need be, for a hold that may still arrive.
_RELEASE = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held == '1' then
  if ARGV[2] == '1' then
    redis.call('HSET', KEYS[1], ARGV[1], '0')
  else
    redis.call('HDEL', KEYS[1], ARGV[1])
  end
  redis.call('HINCRBY', KEYS[1], '#', -1)
elseif not held and ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], '0')
  if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
end
return 1
"""


# Expiring set as a sorted set scored by expiry: add, prune the expired, keep the key alive as
# long as its longest member (one script, so concurrent adds never conflict).
_INDEX_ADD = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(last[2])))
return 1
"""

_INDEX_TAKE = """
local live = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
redis.call('DEL', KEYS[1])
return live
"""


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


def _px(ttl: float | None) -> tuple[Any, ...]:
    return () if ttl is None else ("PX", _ms(ttl))


def _index_add(key: str, member: str, expires_at: float) -> tuple[Any, ...]:
    return ("EVAL", _INDEX_ADD, 1, key, str(expires_at), member, str(time.time()))


def _xadd(stream: str, fields: dict[str, str], retention: float) -> tuple[Any, ...]:
    pairs = [part for pair in fields.items() for part in pair]
    return ("XADD", stream, "MINID", "~", _minid(retention), "*", *pairs)


def _minid(retention: float) -> str:
    """XADD's trimming threshold for a stream that keeps `retention` seconds. MINID trims by
    age: the entry ids are millisecond timestamps. With "~" Redis trims whole macro nodes,
    which is much cheaper and keeps at least the retention asked for."""
    return str(max(int((time.time() - retention) * 1000), 0))


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    hosts = []
    for item in netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
        hosts.append((host or item, int(port) if port else default_port))
    return hosts


def connect(url: str, socket_timeout: float, connect_timeout: float, max_connections: int) -> Any:
    """A redis.asyncio client for any of the supported URL forms."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
    }
    scheme, _, rest = url.partition("://")
    netloc, _, path = rest.partition("/")
    if scheme in ("redis+cluster", "rediss+cluster"):
        nodes = [ClusterNode(host, port) for host, port in _hosts(netloc, 6379)]
        return RedisCluster(
            startup_nodes=nodes,
            ssl=scheme.startswith("rediss"),
            max_connections=max_connections,
            **options,
        )
    if scheme == "redis+sentinel":
        service, _, db = path.partition("/")
        if not service:
            raise ValueError("redis+sentinel:// needs the service name: .../<service>[/<db>]")
        sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            _hosts(netloc, 26379), sentinel_kwargs=dict(options), **options
        )
        client = sentinel.master_for(service, db=int(db or 0), max_connections=max_connections)
        client.cognate_sentinels = sentinel.sentinels  # closed with the client (see close())
        client.cognate_service = service
        return client
    # One server: RedisStore bounds each operation itself. redis-py's socket_timeout would
    # wrap every send in asyncio.wait_for (a task per command) and every reply in a timeout
    # scope of its own: ~5% of a federated sign-in's CPU, for the same guarantee.
    options["socket_timeout"] = None
    return aioredis.Redis.from_url(
        url, max_connections=max_connections, health_check_interval=30, **options
    )


class _Lane:
    """Round trips to one Redis server on redis-py's connections, without its pool and pipeline.

    redis-py 8's pool takes an asyncio lock, records connection metrics and dispatches an event
    on every checkout and return, and its pipeline runs each execute in a task of its own:
    ~35 µs of CPU per round trip, a tenth of a federated sign-in. The connections are still
    redis-py's own (the pool's class and URL options: AUTH, SELECT, TLS, timeouts, health-check
    PINGs, the hiredis parser), and hiredis packs the commands. A connection goes back to the
    idle list only after every reply of its round trip was read; any failure or cancellation
    part-way disconnects it, so a late reply can never answer the next command. A lost
    connection drops the idle ones too (a restarted server closed them all), so RedisStore's one
    retry of an idempotent operation runs on a fresh connection. RedisStore._slots bounds how
    many are in use."""

    def __init__(self, pool: aioredis.ConnectionPool) -> None:
        self._pool = pool
        self._idle: list[Any] = []

    async def run(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        if self._idle:
            connection = self._idle.pop()
        else:
            connection = self._pool.connection_class(**self._pool.connection_kwargs)
        try:
            # hiredis packs what redis-py's pure-Python packer does, byte for byte, 7x faster.
            await connection.send_packed_command(b"".join(map(hiredis.pack_command, commands)))
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as error:  # read in full: the connection stays in step
                    replies.append(error)
        except BaseException as exc:
            await connection.disconnect(nowait=True)
            if isinstance(exc, ConnectionError):  # a restart or fail-over: all idle ones are stale
                await self.close(nowait=True)
            raise
        self._idle.append(connection)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    async def close(self, nowait: bool = False) -> None:
        while self._idle:
            await self._idle.pop().disconnect(nowait=nowait)


class _NotAcknowledged(StoreUnavailable):
    """A durable write that too few replicas confirmed in time."""


def _demoted(exc: StoreUnavailable) -> bool:
    """The master refused a write with READONLY (redis-py's Sentinel connection turns that into
    this ConnectionError): it is a replica now, and the write did not run."""
    cause = exc.__cause__
    return isinstance(cause, ConnectionError) and "previous master is now a slave" in str(cause)


class RedisStore(Store):
    """A `Store` on Redis (one server, Sentinel or Cluster; see the module docstring)."""

    def __init__(
        self,
        url: str,
        prefix: str = "cognate",
        socket_timeout: float = 2.0,
        connect_timeout: float = 2.0,
        max_connections: int = 64,
        replicas_acked: int = 0,
        replica_timeout: float = 0.5,
    ) -> None:
        self.prefix = prefix
        self._replicas = replicas_acked
        self._replica_wait_ms = int(replica_timeout * 1000)
        self._timeout = socket_timeout  # for each attempt of each operation, on every backend
        self._redis = connect(url, socket_timeout, connect_timeout, int(max_connections))
        # redis-py's pools raise "Too many connections" when exhausted instead of waiting; at
        # most max_connections operations at a time makes a burst queue here briefly instead.
        self._slots = asyncio.Semaphore(int(max_connections))
        # Called as observer(operation, seconds, ok) around every operation (metrics).
        self.observer: Callable[[str, float, bool], None] | None = None
        # One server: round trips skip redis-py's pool and pipeline layers (see _Lane).
        pool = getattr(self._redis, "connection_pool", None)
        self._lane: _Lane | None = None
        if isinstance(pool, aioredis.ConnectionPool) and not isinstance(
            pool, SentinelConnectionPool
        ):
            self._lane = _Lane(pool)
        self._sentinel_pool = pool if isinstance(pool, SentinelConnectionPool) else None
        # redis-py 8.1's cluster client, asked many commands at once before it has read the
        # slot map, breaks connections ("Connection closed by server") and then re-sends the
        # commands, CAS scripts too: a swap can land twice. Reading the map alone, once,
        # before the first command avoids that (tests/store/test_conformance.py's contention
        # test found it).
        self._cluster_ready: asyncio.Lock | None = (
            asyncio.Lock() if isinstance(self._redis, RedisCluster) else None
        )
        self._failovers: FailoverWatch | None = None
        if self._sentinel_pool is not None and replicas_acked:
            self._failovers = FailoverWatch(
                self._redis.cognate_sentinels, self._redis.cognate_service
            )

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def _call(
        self,
        operation: str,
        make: Callable[[], Awaitable[Any]],
        retry: bool = True,
        idempotent: bool = False,
        waits: float = 0.0,
    ) -> Any:
        """Run one client call; every failure becomes StoreUnavailable (fail closed), and so
        does an attempt that takes longer than the socket timeout (plus `waits`, the time a
        blocking command may wait on the server by design).

        `idempotent` calls (reads, plain writes) get one more try after a lost connection: a
        pooled connection to a Redis that restarted or failed over fails once ("closed by
        server") before the pool reconnects, and repeating a GET or a SET changes nothing.
        Never for CAS, GETDEL or counters, where a second run could undo or double the first."""
        start = time.perf_counter()
        ok = False
        if self._cluster_ready is not None:
            await self._initialize_cluster()
        try:
            async with self._slots:
                limit = self._timeout + waits
                try:
                    result = await self._attempts(make, retry, limit)
                except StoreUnavailable as exc:
                    if not (idempotent and isinstance(exc.__cause__, ConnectionError)):
                        raise
                    result = await self._attempts(make, retry, limit)
            ok = True
            return result
        finally:
            if self.observer is not None:
                self.observer(operation, time.perf_counter() - start, ok)

    async def _initialize_cluster(self) -> None:
        lock = self._cluster_ready
        if lock is None:
            return
        async with lock:
            if self._cluster_ready is not None:
                try:
                    async with asyncio.timeout(self._timeout):
                        await self._redis.initialize()
                except (RedisError, OSError, TimeoutError) as exc:
                    raise StoreUnavailable(f"redis: cluster unreachable: {exc}") from exc
                self._cluster_ready = None

    async def _attempts(self, make: Callable[[], Awaitable[Any]], retry: bool, limit: float) -> Any:
        try:
            for attempt in (1, 2) if retry else (2,):
                try:
                    # A cancelled command closes its connection (redis-py disconnects on any
                    # interruption), so a late reply can never answer the next command.
                    async with asyncio.timeout(limit):
                        return await make()
                except (AttributeError, TypeError) as exc:
                    # redis-py 8.1 leaks these when it writes to a transport that was torn
                    # down (redis/redis-py#4287, fixed after 8.1.0): nothing was sent, so one
                    # retry on a fresh connection is safe, even for writes.
                    if attempt == 2:
                        raise StoreUnavailable(f"redis: connection lost ({exc})") from exc
        except RedisError as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:
            raise StoreUnavailable(f"redis: no answer within {limit:g} s") from exc
        except OSError as exc:  # socket errors that slip past redis-py's wrapping
            raise StoreUnavailable(f"redis: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _round_trip(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Raw commands in one round trip, replies as Redis sends them. Not a MULTI: on Cluster
        the keys may live on different nodes, and redis-py splits the pipeline by node. Scripts
        go as EVAL: a cluster pipeline does not load scripts first, and Redis caches the
        compiled script either way. A fresh pipeline per attempt keeps _call's retry honest."""
        if self._lane is not None:
            return await self._lane.run(commands)
        if len(commands) == 1:
            return [await self._redis.execute_command(*commands[0])]
        async with self._redis.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute())

    async def _one(self, operation: str, *command: Any, idempotent: bool = False) -> Any:
        replies = await self._call(
            operation, lambda: self._round_trip((command,)), idempotent=idempotent
        )
        return replies[0]

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._one("get", "GET", key, idempotent=True)
        return value

    async def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await self._one("put", "SET", key, value, *_px(ttl), idempotent=True)

    async def create(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return bool(await self._durable("create", ("SET", key, value, "NX", *_px(ttl))))

    async def take(self, key: str) -> bytes | None:
        value: bytes | None = await self._durable("take", ("GETDEL", key))
        return value

    async def update(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        ms = "" if ttl is None else str(_ms(ttl))
        return bool(await self._durable("update", ("EVAL", _CAS, 1, key, expected, value, ms)))

    async def _durable(self, operation: str, command: tuple[Any, ...]) -> Any:
        """One of the writes a fail-over must not lose. With `replicas_acked`, WAIT follows it
        in the same round trip on the same connection (WAIT counts that connection's writes),
        and it fails closed when too few replicas have it in time: the caller answers 503 and
        nothing was handed out that a promoted replica would not know."""
        if not self._replicas:
            return await self._one(operation, *command)
        watch = self._failovers
        if watch is not None:
            watch.start()
            if watch.in_progress():
                # Between the promotion and Sentinel re-pointing the other replicas, the old
                # master's writes can be acknowledged and still be lost (see store.sentinel).
                raise StoreUnavailable(f"redis: {operation} refused: Sentinel is failing over")
        epoch = watch.epoch if watch is not None else 0
        try:
            result = await self._acknowledged(operation, command)
        except _NotAcknowledged:
            # Perhaps the master moved: drop connections to the old one, so the next write
            # goes to the new master. This one fails closed (nothing was handed out): it may
            # have run on either server, and running it again could undo it (GETDEL) or report
            # it wrongly (SET NX).
            await self._follow_master()
            raise
        except StoreUnavailable as exc:
            if not _demoted(exc):
                raise
            # READONLY from a demoted master: the write did not run. Send it once, to the
            # master Sentinel names now.
            await self._follow_master()
            result = await self._acknowledged(operation, command)
        if watch is not None and watch.epoch != epoch:
            # Acknowledged, but a fail-over began meanwhile: maybe by a replica about to resync.
            raise StoreUnavailable(f"redis: {operation} overlapped a fail-over; not trusted")
        return result

    async def _acknowledged(self, operation: str, command: tuple[Any, ...]) -> Any:
        wait = ("WAIT", self._replicas, self._replica_wait_ms)
        result, acked = await self._call(operation, lambda: self._round_trip((command, wait)))
        if int(acked) < self._replicas:
            raise _NotAcknowledged(
                f"redis: {operation} reached {acked} of {self._replicas} replicas in time"
            )
        return result

    async def _follow_master(self) -> None:
        """Ask Sentinel where the master is now and drop every connection to another address,
        idle or in use (redis-py leaves in-use connections on the old master after a fail-over
        until READONLY arrives), so the next command connects to the new one."""
        pool = self._sentinel_pool
        if pool is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                master = await pool.get_master_address()  # type: ignore[no-untyped-call]
        except (RedisError, OSError, TimeoutError):
            return  # Sentinel cannot say: nothing to follow
        stale = [
            c
            # redis-py 8 keeps these two collections; nothing public lists in-use connections.
            for c in (*pool._available_connections, *pool._in_use_connections)
            if (getattr(c, "host", None), getattr(c, "port", None)) != tuple(master)
        ]
        for connection in stale:
            await connection.disconnect(nowait=True)

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        # One DEL per key keeps this valid on Cluster, where keys may live in different slots.
        commands = [("DEL", key) for key in keys]
        results = await self._call("delete", lambda: self._round_trip(commands), idempotent=True)
        return sum(int(r) for r in results)

    async def incr(self, key: str, ttl: float) -> int:
        # Not retried: an INCR that landed before a lost answer would count twice.
        return int(await self._one("incr", "EVAL", _INCR, 1, key, _ms(ttl)))

    async def hold_slots(self, holds: Sequence[Slot]) -> list[int]:
        commands = [("EVAL", _HOLD, 1, h.key, h.member, _ms(h.ttl)) for h in holds]
        # Retried after a lost connection: a hold that landed counts once however often.
        counts = await self._call("hold", lambda: self._round_trip(commands), idempotent=True)
        return [int(n) for n in counts]

    async def release_slots(self, holds: Sequence[Slot], unsure: bool = False) -> None:
        flag = "1" if unsure else "0"
        commands = [("EVAL", _RELEASE, 1, h.key, h.member, flag, _ms(h.ttl)) for h in holds]
        await self._call("release", lambda: self._round_trip(commands), idempotent=True)

    async def slots_held(self, key: str) -> int:
        count = await self._one("slots_held", "HGET", key, "#", idempotent=True)
        return int(count or 0)

    async def ttl(self, key: str) -> float | None:
        ms = int(await self._one("ttl", "PTTL", key, idempotent=True))
        return None if ms < 0 else ms / 1000

    async def index_add(self, key: str, member: str, expires_at: float) -> None:
        await self._one("index_add", *_index_add(key, member, expires_at))

    async def read_many(self, reads: Sequence[Read]) -> list[bytes | None]:
        takes = any(isinstance(read, Take) for read in reads)
        if takes and self._replicas:
            # WAIT counts one connection's writes, on one node: each take waits on its own.
            return [
                await (self.take(read.key) if isinstance(read, Take) else self.get(read.key))
                for read in reads
            ]
        commands = [("GETDEL" if isinstance(read, Take) else "GET", read.key) for read in reads]
        # A GETDEL must not run twice: a repeat would answer None for a value taken once.
        answers: list[bytes | None] = await self._call(
            "read_many", lambda: self._round_trip(commands), idempotent=not takes
        )
        return answers

    async def write_many(self, writes: Sequence[Write]) -> None:
        commands: list[tuple[Any, ...]] = []
        for write in writes:
            if isinstance(write, Put):
                commands.append(("SET", write.key, write.value, *_px(write.ttl)))
            elif isinstance(write, IndexAdd):
                commands.append(_index_add(write.key, write.member, write.expires_at))
            elif isinstance(write, SortedAdd):
                commands.append(("ZADD", write.key, 0, write.member))
            elif isinstance(write, SortedRemove):
                commands.append(("ZREM", write.key, write.member))
            else:
                commands.append(_xadd(write.stream, write.fields, write.retention))
        # SET, ZADD, ZREM and the index script repeat harmlessly after a lost connection; an
        # XADD that had landed appears twice (an audit entry: the same request id says it is
        # one event).
        await self._call("write_many", lambda: self._round_trip(commands), idempotent=True)

    async def index_members(self, key: str) -> list[str]:
        members = await self._one("index_members", "ZRANGEBYSCORE", key, time.time(), "+inf")
        return [_text(m) for m in members]

    async def sorted_page(self, key: str, prefix: str, after: str | None, count: int) -> list[str]:
        start = prefix.encode()
        low = b"(" + after.encode() if after is not None and after.encode() >= start else None
        if low is None:
            low = b"[" + start if prefix else b"-"
        # No UTF-8 text contains the byte 0xff: prefix + 0xff is above every member with it.
        high = b"[" + start + b"\xff" if prefix else b"+"
        members = await self._one(
            "sorted_page", "ZRANGEBYLEX", key, low, high, "LIMIT", 0, count, idempotent=True
        )
        return [_text(m) for m in members]

    async def index_take(self, key: str) -> list[str]:
        members = await self._one("index_take", "EVAL", _INDEX_TAKE, 1, key, str(time.time()))
        return [_text(m) for m in members]

    async def append(self, stream: str, fields: dict[str, str], retention: float) -> str:
        return _text(await self._one("append", *_xadd(stream, fields, retention)))

    async def read(
        self, stream: str, after: str, count: int, block: float | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        answer = await self._call(
            "read",
            lambda: self._redis.xread(
                {stream: after}, count=count, block=None if block is None else int(block * 1000)
            ),
            waits=block or 0.0,
        )
        entries: list[tuple[str, dict[str, str]]] = []
        for _, items in answer or []:
            for entry_id, fields in items:
                entries.append((_text(entry_id), {_text(k): _text(v) for k, v in fields.items()}))
        return entries

    async def scan(self, prefix: str) -> AsyncIterator[str]:
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
        # scan_iter walks every primary on a Cluster and the one server elsewhere.
        iterator = self._redis.scan_iter(match=pattern, count=500)
        while True:
            try:
                # An async iterator cannot be resumed after a failure: no retry here.
                key = await self._call("scan", lambda: iterator.__anext__(), retry=False)
            except StopAsyncIteration:
                return
            yield key.decode() if isinstance(key, bytes) else key

    async def publish(self, channel: str, message: bytes) -> None:
        # A Redis Cluster broadcasts PUBLISH to every node, so any subscriber anywhere hears it.
        # Retried on a fresh connection like a plain write: our messages are evictions, and
        # one heard twice costs nothing, while one lost keeps a stale cache entry.
        await self._one("publish", "PUBLISH", channel, message, idempotent=True)

    async def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        if isinstance(self._redis, RedisCluster):
            # Its pub/sub picks a node from the slot map, which exists only once initialised.
            await self._call("initialize", self._redis.initialize, retry=False)
        pubsub = self._redis.pubsub()
        clock = asyncio.get_running_loop().time
        try:
            await self._call("subscribe", lambda: pubsub.subscribe(channel), retry=False)
            confirmed = False
            heard = pinged = clock()
            while True:
                try:
                    message = await pubsub.get_message(timeout=PUBSUB_PING_AFTER / 2)
                    now = clock()
                    if message is None and now - max(heard, pinged) >= PUBSUB_PING_AFTER:
                        pinged = now
                        async with asyncio.timeout(PUBSUB_PING_AFTER):
                            await pubsub.ping()  # its PONG is the connection's sign of life
                except (RedisError, OSError, AttributeError, TypeError, TimeoutError) as exc:
                    raise StoreUnavailable(f"redis: subscription lost ({exc!r})") from exc
                if message is not None:
                    heard = now
                    kind = message.get("type")
                    if kind == "subscribe" and not confirmed:
                        # Redis has it: from now on nothing published can be missed.
                        confirmed = True
                        yield b""
                    elif kind == "message" and confirmed:
                        yield bytes(message["data"])
                elif now - heard > PUBSUB_SILENCE:
                    # A frozen network or a stopped server gives no error, only silence: the
                    # caches this subscription keeps in step must not outlive it.
                    raise StoreUnavailable(f"redis: subscription silent for {now - heard:.1f} s")
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def ping(self) -> None:
        # Idempotent: /readyz right after a Redis restart must not fail on a stale connection.
        await self._one("ping", "PING", idempotent=True)

    async def durability_problem(self) -> str | None:
        try:
            config = await self._call(
                "config", lambda: self._redis.config_get("maxmemory-policy"), idempotent=True
            )
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, ResponseError):  # CONFIG disabled (managed Redis)
                return None
            raise
        if config and all(isinstance(v, dict) for v in config.values()):
            config = next(iter(config.values()))  # Cluster: one answer per node
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
        if self._failovers is not None:
            await self._failovers.close()
        if self._lane is not None:
            await self._lane.close()
        await self._redis.aclose()
        for sentinel in getattr(self._redis, "cognate_sentinels", ()):
            await sentinel.aclose()  # the connections that ask Sentinel where the master is


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
