"""One conformance suite for every Store backend; the Redis one runs against a real server."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from gateway.errors import StoreContended, StoreUnavailable
from gateway.store import Append, Get, IndexAdd, Modified, Put, Slot, Store, Take, open_store
from gateway.store.memory import MemoryStore
from tests.helpers import RedisServer, free_port


@pytest.fixture(params=["memory", "redis", "cluster", "sentinel"])
async def store(request: pytest.FixtureRequest, redis_server: RedisServer) -> AsyncIterator[Store]:
    url = {
        "memory": lambda: "memory://",
        "redis": lambda: redis_server.url,
        "cluster": lambda: request.getfixturevalue("redis_cluster").url,
        "sentinel": lambda: request.getfixturevalue("redis_sentinel").url,
    }[request.param]()
    s = open_store(url, prefix=f"conf{secrets.token_hex(4)}")
    yield s
    await s.close()


async def test_put_get_delete(store: Store) -> None:
    key = store.key("a", "b")
    assert key == f"{store.prefix}:a:b"
    assert await store.get(key) is None
    await store.put(key, b"value")
    assert await store.get(key) == b"value"
    assert await store.ttl(key) is None
    assert await store.delete(key, store.key("missing")) == 1
    assert await store.get(key) is None


async def test_ttl_is_set_and_bounded(store: Store) -> None:
    key = store.key("ttl")
    await store.put(key, b"v", ttl=30)
    remaining = await store.ttl(key)
    assert remaining is not None and 25 < remaining <= 30


async def test_create_is_set_if_absent(store: Store) -> None:
    key = store.key("nx")
    assert await store.create(key, b"first", ttl=60)
    assert not await store.create(key, b"second")
    assert await store.get(key) == b"first"


async def test_create_race_has_one_winner(store: Store) -> None:
    key = store.key("race")
    results = await asyncio.gather(*(store.create(key, str(i).encode()) for i in range(50)))
    assert results.count(True) == 1
    winner = results.index(True)
    assert await store.get(key) == str(winner).encode()


async def test_take_returns_value_once(store: Store) -> None:
    key = store.key("take")
    await store.put(key, b"once")
    results = await asyncio.gather(*(store.take(key) for _ in range(50)))
    assert [r for r in results if r is not None] == [b"once"]
    assert await store.get(key) is None


async def test_update_is_compare_and_swap(store: Store) -> None:
    key = store.key("cas")
    assert not await store.update(key, b"x", b"y")  # absent
    await store.put(key, b"v1", ttl=100)
    assert not await store.update(key, b"wrong", b"v2")
    assert await store.get(key) == b"v1"
    assert await store.update(key, b"v1", b"v2")  # ttl=None keeps the expiry
    assert await store.get(key) == b"v2"
    remaining = await store.ttl(key)
    assert remaining is not None and 90 < remaining <= 100
    assert await store.update(key, b"v2", b"v3", ttl=10)
    remaining = await store.ttl(key)
    assert remaining is not None and remaining <= 10


async def test_update_race_has_one_winner(store: Store) -> None:
    key = store.key("cas-race")
    await store.put(key, b"start")
    results = await asyncio.gather(
        *(store.update(key, b"start", f"v{i}".encode()) for i in range(50))
    )
    assert results.count(True) == 1


def _add_one(current: bytes | None) -> bytes:
    return str(int(current or b"0") + 1).encode()


async def test_modify_creates_then_swaps(store: Store) -> None:
    key = store.key("modify")
    assert await store.modify(key, _add_one, ttl=100) == Modified(b"1", written=True)
    assert await store.modify(key, _add_one) == Modified(b"2", written=True)
    assert await store.get(key) == b"2"
    remaining = await store.ttl(key)  # ttl=None kept the expiry the create set
    assert remaining is not None and 90 < remaining <= 100
    await store.modify(key, _add_one, ttl=10)
    remaining = await store.ttl(key)
    assert remaining is not None and remaining <= 10


async def test_modify_can_leave_the_value_or_give_up(store: Store) -> None:
    key = store.key("modify-leave")
    assert await store.modify(key, lambda current: None) == Modified(None, written=False)
    assert await store.get(key) is None
    await store.put(key, b"kept")
    assert await store.modify(key, lambda current: None) == Modified(b"kept", written=False)

    def refuse(current: bytes | None) -> bytes:
        raise LookupError("no")

    with pytest.raises(LookupError):
        await store.modify(key, refuse)
    assert await store.get(key) == b"kept"


async def test_modify_retries_a_lost_swap_and_reports_running_out(store: Store) -> None:
    key = store.key("modify-stale")
    await store.put(key, b"5")
    seen: list[bytes | None] = []

    def record(current: bytes | None) -> bytes:
        seen.append(current)
        return _add_one(current)

    # `seen` is stale, as if another replica wrote after our read: the swap is lost once,
    # then the change runs again on what is really there.
    assert await store.modify(key, record, seen=b"4") == Modified(b"6", written=True)
    assert seen == [b"4", b"5"]
    with pytest.raises(StoreContended):
        await store.modify(key, _add_one, attempts=1, seen=b"4")
    assert await store.get(key) == b"6"  # nothing written by the call that ran out


async def test_concurrent_modifies_lose_no_update(store: Store) -> None:
    key = store.key("modify-counter")
    n = 25
    calls = 0

    def count(current: bytes | None) -> bytes:
        nonlocal calls
        calls += 1
        return _add_one(current)

    # In the worst case each round has one winner, so n attempts always suffice.
    outcomes = await asyncio.gather(*(store.modify(key, count, attempts=n) for _ in range(n)))
    assert await store.get(key) == str(n).encode()
    assert sorted(int(o.value or b"0") for o in outcomes) == list(range(1, n + 1))
    if not isinstance(store, MemoryStore):  # memory never interleaves: no swap is ever lost
        assert calls > n  # the test did make modifies collide


async def test_incr_window(store: Store) -> None:
    key = store.key("count")
    assert [await store.incr(key, ttl=60) for _ in range(3)] == [1, 2, 3]
    remaining = await store.ttl(key)
    assert remaining is not None and 55 < remaining <= 60


async def test_slots_count_each_member_once_in_its_window(store: Store) -> None:
    """`hold_slots`: a window per key (several slots on Cluster), started by its first member;
    a member held again (a hold repeated after a lost answer) counts once."""
    account, ip = store.key("slots", "account"), store.key("slots", "ip")
    first = [Slot(account, "a1", 60), Slot(ip, "a1", 30)]
    assert await store.hold_slots(first) == [1, 1]
    assert await store.hold_slots(first) == [1, 1]  # the same attempt again: no second slot
    assert await store.hold_slots([Slot(account, "a2", 60), Slot(ip, "a2", 30)]) == [2, 2]
    short = await store.ttl(ip)
    assert short is not None and 25 < short <= 30  # each its own window, set on its first hit
    assert await store.hold_slots([Slot(ip, "a3", 99)]) == [3]
    later = await store.ttl(ip)
    assert later is not None and later <= 30  # later members leave the window as it was
    assert [await store.slots_held(k) for k in (account, ip)] == [2, 3]


async def test_a_released_slot_is_uncounted_once(store: Store) -> None:
    """`release_slots`: repeated (a give-back whose answer was lost, then the owed one), it
    uncounts its own member once and never another attempt's; it never starts a window."""
    key = store.key("release", "account")
    await store.hold_slots([Slot(key, m, 60) for m in ("a1", "a2", "a3")])
    for _ in range(3):
        await store.release_slots([Slot(key, "a1", 60)])
    assert await store.slots_held(key) == 2
    remaining = await store.ttl(key)
    assert remaining is not None and 55 < remaining <= 60  # the window is unchanged
    gone = store.key("release", "none")
    await store.release_slots([Slot(gone, "a1", 60)])
    assert await store.ttl(gone) is None and await store.slots_held(gone) == 0


async def test_a_slot_released_unsure_never_counts(store: Store) -> None:
    """`release_slots(unsure=True)`, for a hold whose answer was lost: whether that hold landed
    before (uncounted) or arrives after the release (not counted), the attempt counts not."""
    landed, late = store.key("unsure", "landed"), store.key("unsure", "late")
    await store.hold_slots([Slot(landed, "a1", 60), Slot(landed, "a2", 60)])
    await store.release_slots([Slot(landed, "a1", 60), Slot(late, "a1", 60)], unsure=True)
    await store.release_slots([Slot(landed, "a1", 60)], unsure=True)  # repeated: still once
    assert await store.slots_held(landed) == 1
    assert await store.hold_slots([Slot(late, "a1", 60), Slot(landed, "a1", 60)]) == [0, 1]
    assert await store.hold_slots([Slot(late, "a2", 60)]) == [1]  # others count as ever
    remaining = await store.ttl(late)
    assert remaining is not None and 55 < remaining <= 60  # the release started the window


async def test_scan_by_prefix(store: Store) -> None:
    for i in range(25):
        await store.put(store.key("scan", str(i)), b"x")
    await store.put(store.key("other", "1"), b"x")
    found = [k async for k in store.scan(store.key("scan", ""))]
    assert sorted(found) == sorted(store.key("scan", str(i)) for i in range(25))


async def test_glob_characters_in_prefix_are_literal(store: Store) -> None:
    await store.put(store.key("g*", "1"), b"x")
    await store.put(store.key("gX", "1"), b"x")
    assert [k async for k in store.scan(store.key("g*", ""))] == [store.key("g*", "1")]


async def test_ping(store: Store) -> None:
    await store.ping()


async def test_redis_down_raises_store_unavailable() -> None:
    store = open_store(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.5)
    with pytest.raises(StoreUnavailable):
        await store.get(store.key("x"))
    with pytest.raises(StoreUnavailable):
        await store.create(store.key("x"), b"v")
    with pytest.raises(StoreUnavailable):
        await store.write_many([Put(store.key("x"), b"v"), IndexAdd(store.key("i"), "m", 1.0)])
    await store.close()


async def test_a_slow_answer_is_a_timeout_and_never_answers_the_next_command(
    redis_server: RedisServer,
) -> None:
    from tests.helpers import writes_paused

    store = open_store(redis_server.url, prefix=f"slow{secrets.token_hex(4)}", socket_timeout=0.3)
    key, other = store.key("a"), store.key("b")
    await store.put(other, b"other")
    try:
        with writes_paused(redis_server.url, seconds=1.0):
            with pytest.raises(StoreUnavailable, match="no answer within 0.3 s"):
                await store.put(key, b"late")
            # Reads still answer meanwhile, each with its own reply.
            assert await store.get(other) == b"other"
        # Whatever became of the cancelled SET, its reply cannot reach another command.
        assert await store.get(other) == b"other"
        assert await store.get(key) in (None, b"late")
        assert await store.read(store.key("stream"), "0", 10, block=0.5) == []  # waits 0.5 s
    finally:
        await store.close()


async def test_durability_problem_reported_for_evicting_redis(redis_server: RedisServer) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server.url)
    store = open_store(redis_server.url)
    try:
        assert await store.durability_problem() is None
        await client.config_set("maxmemory-policy", "allkeys-lru")
        problem = await store.durability_problem()
        assert problem is not None and "allkeys-lru" in problem
    finally:
        await client.config_set("maxmemory-policy", "noeviction")
        await client.aclose()
        await store.close()


async def test_stream_append_and_read(store: Store) -> None:
    stream = store.key("stream")
    ids = [await store.append(stream, {"n": str(i)}, retention=3600) for i in range(5)]
    assert ids == sorted(ids, key=lambda i: tuple(int(x) for x in i.split("-")))
    assert len(set(ids)) == 5
    everything = await store.read(stream, "0", 100)
    assert [fields["n"] for _, fields in everything] == ["0", "1", "2", "3", "4"]
    assert [entry_id for entry_id, _ in everything] == ids
    after_two = await store.read(stream, ids[1], 2)
    assert [fields["n"] for _, fields in after_two] == ["2", "3"]
    assert await store.read(stream, ids[-1], 10) == []
    assert await store.read(store.key("no-such-stream"), "0", 10) == []


async def test_stream_read_blocks_until_an_entry_arrives(store: Store) -> None:
    stream = store.key("blocking")
    first = await store.append(stream, {"n": "first"}, retention=3600)
    # Reading after the last entry waits; whichever runs first, the reader gets the new entry.
    reader = asyncio.create_task(store.read(stream, first, 10, block=1.5))
    await store.append(stream, {"n": "second"}, retention=3600)
    assert [fields["n"] for _, fields in await reader] == ["second"]


async def test_redis_client_leaks_become_one_retry_then_store_unavailable(
    redis_server: RedisServer,
) -> None:
    """redis-py 8.1 can leak AttributeError/TypeError from a torn-down transport (nothing was
    sent): one retry, then StoreUnavailable — never an exception the app would answer 500 to."""
    from gateway.store.redis import RedisStore

    store = RedisStore(redis_server.url)
    calls = {"n": 0}

    async def flaky() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise AttributeError("'NoneType' object has no attribute 'writelines'")
        return "ok"

    assert await store._call("get", flaky) == "ok" and calls["n"] == 2

    async def broken() -> str:
        raise TypeError("'NoneType' object is not callable")

    with pytest.raises(StoreUnavailable):
        await store._call("get", broken)
    with pytest.raises(StoreUnavailable):
        await store._call("scan", broken, retry=False)
    await store.close()


async def test_expiring_index_has_no_lost_updates(store: Store) -> None:
    import time

    key = store.key("index")
    now = time.time()
    await asyncio.gather(*(store.index_add(key, f"m{i}", now + 3600) for i in range(200)))
    await store.index_add(key, "gone", now - 1)  # already expired: never listed
    members = await store.index_members(key)
    assert sorted(members) == sorted(f"m{i}" for i in range(200))
    if not isinstance(store, MemoryStore):  # the key lives as long as its longest member
        remaining = await store.ttl(key)
        assert remaining is not None and 3500 < remaining <= 3601
    taken = await store.index_take(key)
    assert sorted(taken) == sorted(members)
    assert await store.index_members(key) == [] and await store.index_take(key) == []


async def test_write_many_lands_every_write_in_order(store: Store) -> None:
    import time

    now = time.time()
    # Keys with different names: on Cluster they hash to slots on different nodes.
    keys = [store.key("many", str(i)) for i in range(12)]
    index = store.key("many-index")
    await store.index_add(index, "old", now + 7200)
    await store.write_many(
        [
            *(Put(k, f"v{i}".encode(), ttl=60) for i, k in enumerate(keys)),
            IndexAdd(index, "a", now + 3600),
            IndexAdd(index, "gone", now - 1),
            Append(store.key("many-stream"), {"event": "one", "n": "1"}, 3600),
            Append(store.key("many-stream"), {"event": "two"}, 3600),
            Put(keys[0], b"second", ttl=None),  # in order: the later write wins
        ]
    )
    entries = await store.read(store.key("many-stream"), "0", 10)
    assert [fields for _, fields in entries] == [{"event": "one", "n": "1"}, {"event": "two"}]
    assert [await store.get(k) for k in keys[1:]] == [f"v{i}".encode() for i in range(1, 12)]
    assert await store.get(keys[0]) == b"second" and await store.ttl(keys[0]) is None
    ttl = await store.ttl(keys[1])
    assert ttl is not None and 55 < ttl <= 60
    assert sorted(await store.index_members(index)) == ["a", "old"]
    if not isinstance(store, MemoryStore):  # still as long as its longest member
        remaining = await store.ttl(index)
        assert remaining is not None and 7100 < remaining <= 7201
    await store.write_many([])  # nothing to do is fine


async def test_read_many_answers_in_order_and_takes_once(store: Store) -> None:
    keys = [store.key("rm", str(i)) for i in range(6)]  # several nodes on Cluster
    for i, key in enumerate(keys):
        await store.put(key, f"v{i}".encode())
    reads = [Take(keys[0]), Get(keys[1]), Get(store.key("rm", "absent")), Take(keys[2])]
    assert await store.read_many(reads) == [b"v0", b"v1", None, b"v2"]
    assert await store.read_many(reads) == [None, b"v1", None, None]  # taken once, ever
    assert await store.get(keys[1]) == b"v1"
    # Concurrent takes of one key: exactly one caller sees it.
    await store.put(keys[3], b"once")
    answers = await asyncio.gather(*(store.read_many([Take(keys[3])]) for _ in range(20)))
    assert sorted(a[0] for a in answers if a[0] is not None) == [b"once"]


async def test_an_error_reply_mid_batch_fails_it_and_later_replies_stay_in_step(
    store: Store,
) -> None:
    if isinstance(store, MemoryStore):
        pytest.skip("error replies are Redis's")
    text, first, last = store.key("eb", "text"), store.key("eb", "a"), store.key("eb", "b")
    await store.put(text, b"a string, not a stream")
    with pytest.raises(StoreUnavailable, match="WRONGTYPE"):
        await store.write_many([Put(first, b"1"), Append(text, {"e": "x"}, 60), Put(last, b"2")])
    # Every reply of that round trip was read: the next commands get their own answers.
    assert await store.read_many([Get(first), Get(text), Get(last)]) == [
        b"1",
        b"a string, not a stream",
        b"2",
    ]


async def test_a_restarted_redis_costs_an_idempotent_read_one_retry_and_a_take_nothing() -> None:
    server = RedisServer()
    server.start()
    store = open_store(server.url, prefix="restart")
    key = store.key("k")
    try:
        await asyncio.gather(*(store.put(store.key(str(i)), b"v") for i in range(8)))  # 8 idle
        server.stop()
        server.start()  # the same port; every pooled connection is now closed
        assert await store.get(key) is None  # retried once, on a fresh connection
        await store.put(key, b"after")
        assert await store.take(key) == b"after"  # never retried: it must not meet a stale one
    finally:
        await store.close()
        server.stop()


async def test_a_restarted_redis_costs_the_readiness_checks_nothing() -> None:
    # /readyz PINGs and reads the eviction policy: right after a Redis restart, a stale pooled
    # connection must not make it answer 503 (and take the pod out of service) once more.
    server = RedisServer()
    server.start()
    store = open_store(server.url, prefix="restart")
    try:
        await asyncio.gather(*(store.ping() for _ in range(8)))  # 8 idle
        await store.durability_problem()  # its connection is idle too
        server.stop()
        server.start()
        await store.ping()
        await store.durability_problem()
    finally:
        await store.close()
        server.stop()


async def test_publish_reaches_a_subscriber(store: Store) -> None:
    channel = store.key("channel", secrets.token_hex(4))
    messages = store.subscribe(channel)
    assert await anext(messages) == b""  # subscribed: nothing published from now on is missed
    await store.publish(channel, b"one")
    await store.publish(channel, b"two")
    assert [await anext(messages), await anext(messages)] == [b"one", b"two"]
    await messages.aclose()  # type: ignore[attr-defined]


async def test_sorted_pages_by_prefix_after_a_member(store: Store) -> None:
    from gateway.store import SortedAdd, SortedRemove

    key = store.key("sorted")
    members = ["ab\x00" + str(i) for i in range(5)] + ["abc\x001", "b\x001", "é\x001", "a\x009"]
    await store.write_many([SortedAdd(key, m) for m in members])
    await store.write_many([SortedAdd(key, "ab\x000"), SortedRemove(key, "a\x009")])  # repeats
    assert await store.sorted_page(key, "ab", None, 10) == [
        *("ab\x00" + str(i) for i in range(5)),
        "abc\x001",
    ]
    assert await store.sorted_page(key, "ab\x00", None, 2) == ["ab\x000", "ab\x001"]
    # Resuming after a page's last member, while members are added before and after it.
    await store.write_many([SortedAdd(key, "ab\x00!"), SortedAdd(key, "ab\x002a")])
    assert await store.sorted_page(key, "ab\x00", "ab\x001", 2) == ["ab\x002", "ab\x002a"]
    assert await store.sorted_page(key, "", "b\x001", 5) == ["é\x001"]  # UTF-8 byte order
    assert await store.sorted_page(key, "", None, 1) == ["ab\x00!"]
    assert await store.sorted_page(key, "ab", "zz", 5) == []
    assert await store.sorted_page(key, "zz", "a", 5) == []
    assert await store.sorted_page(store.key("no-such-set"), "", None, 5) == []
    assert await store.delete(key) == 1
    assert await store.sorted_page(key, "", None, 5) == []
