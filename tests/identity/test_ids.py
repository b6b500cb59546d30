"""Identity IDs: stable, race-safe, never minted without being stored (SECURITY-TESTS G49)."""

from __future__ import annotations

import asyncio
import re
import secrets

import pytest

from gateway.errors import StoreUnavailable
from gateway.identity.ids import IdentityStore
from gateway.store import open_store
from tests.helpers import RedisServer, free_port, until

ID_FORMAT = re.compile(r"^eu-west-1:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")


async def test_hundred_parallel_first_logins_make_one_identity(redis_server: RedisServer) -> None:
    stores = [open_store(redis_server.url, prefix="ids-" + secrets.token_hex(2)) for _ in range(1)]
    prefix = stores[0].prefix
    # Several independent connections, as several replicas would have.
    stores += [open_store(redis_server.url, prefix=prefix) for _ in range(3)]
    resolvers = [IdentityStore(s, "eu-west-1") for s in stores]
    ids = await asyncio.gather(
        *(resolvers[i % len(resolvers)].resolve("google", "subject-1") for i in range(100))
    )
    assert len(set(ids)) == 1
    assert ID_FORMAT.match(ids[0])
    identity = await resolvers[0].get(ids[0])
    assert identity is not None and [(x.provider, x.subject) for x in identity.logins] == [
        ("google", "subject-1")
    ]
    for s in stores:
        await s.close()


async def test_same_subject_other_connector_is_another_identity(redis_server: RedisServer) -> None:
    store = open_store(redis_server.url, prefix="ids-" + secrets.token_hex(4))
    resolver = IdentityStore(store, "eu-west-1")
    a = await resolver.resolve("google", "same@example.com")
    b = await resolver.resolve("github", "same@example.com")
    assert a != b
    assert await resolver.resolve("google", "same@example.com") == a
    await store.close()


async def test_missing_record_is_repaired(redis_server: RedisServer) -> None:
    store = open_store(redis_server.url, prefix="ids-" + secrets.token_hex(4))
    resolver = IdentityStore(store, "eu-west-1")
    identity_id = await resolver.resolve("local", "u1")
    await store.delete(store.key("identity", identity_id))  # as if we crashed between writes
    assert await resolver.resolve("local", "u1") == identity_id
    assert await resolver.get(identity_id) is not None
    await store.close()


async def test_store_down_mints_nothing() -> None:
    store = open_store(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.3)
    resolver = IdentityStore(store, "eu-west-1")
    with pytest.raises(StoreUnavailable):
        await resolver.resolve("local", "u1")
    await store.close()


async def test_link_limits_conflicts_unlink_and_delete(redis_server: RedisServer) -> None:
    from gateway.identity.ids import MAX_LOGINS, LoginTaken, TooManyLogins

    store = open_store(redis_server.url, prefix="ids-" + secrets.token_hex(4))
    ids = IdentityStore(store, "eu-west-1")
    first = await ids.resolve("p0", "s")
    for i in range(1, MAX_LOGINS):
        await ids.link(first, f"p{i}", "s")
    with pytest.raises(TooManyLogins):
        await ids.link(first, "one-too-many", "s")
    assert await ids.find("one-too-many", "s") is None  # the link was rolled back
    other = await ids.resolve("q", "s")
    with pytest.raises(LoginTaken):
        await ids.link(other, "p1", "s")
    await ids.unlink(first, "p1", "s")
    assert await ids.find("p1", "s") is None
    await ids.link(other, "p1", "s")  # now free to move
    assert await ids.find("p1", "s") == other
    assert await ids.delete(first)
    assert await ids.find("p0", "s") is None and await ids.get(first) is None
    assert not await ids.delete(first)
    await store.close()


async def test_a_complete_link_is_answered_from_memory_and_forgotten_when_removed_anywhere(
    redis_server: RedisServer,
) -> None:
    prefix = "ids-" + secrets.token_hex(4)
    store, elsewhere = (
        open_store(redis_server.url, prefix=prefix),
        open_store(redis_server.url, prefix=prefix),
    )
    ids = IdentityStore(store, "eu-west-1", cache_ttl=60)  # this replica
    other = IdentityStore(elsewhere, "eu-west-1")  # another replica, or the command line
    listening = asyncio.create_task(ids.links.listen())
    try:
        assert await until(lambda: ids.links.cache.enabled)
        assert await ids.linked("ci", "repo:org/app") is None  # never seen: resolve creates
        first = await ids.resolve("ci", "repo:org/app")
        assert await ids.linked("ci", "repo:org/app") == first
        reads = 0
        get = store.get

        async def counted(key: str) -> bytes | None:
            nonlocal reads
            reads += 1
            return await get(key)

        store.get = counted  # type: ignore[method-assign]
        assert await ids.linked("ci", "repo:org/app") == first
        assert reads == 0  # from memory: no round trip
        # Removed elsewhere: this replica must not keep naming the old identity.
        await other.unlink(first, "ci", "repo:org/app")
        assert await until(
            lambda: ids.links.cache.get(ids._login_key("ci", "repo:org/app")) is None
        )
        assert await ids.linked("ci", "repo:org/app") is None
        second = await ids.resolve("ci", "repo:org/app")
        assert second != first and await ids.linked("ci", "repo:org/app") == second
        await other.delete(second)
        assert await until(
            lambda: ids.links.cache.get(ids._login_key("ci", "repo:org/app")) is None
        )
        assert await ids.linked("ci", "repo:org/app") is None
    finally:
        listening.cancel()
        await store.close()
        await elsewhere.close()


async def test_an_incomplete_link_is_not_kept(redis_server: RedisServer) -> None:
    store = open_store(redis_server.url, prefix="ids-" + secrets.token_hex(4))
    ids = IdentityStore(store, "eu-west-1", cache_ttl=60)
    listening = asyncio.create_task(ids.links.listen())
    try:
        assert await until(lambda: ids.links.cache.enabled)
        identity_id = await ids.resolve("ci", "job")
        await store.delete(store.key("identity", identity_id))  # as if we crashed between writes
        assert await ids.linked("ci", "job") is None  # resolve repairs it
        assert ids.links.cache.get(ids._login_key("ci", "job")) is None
        assert await ids.resolve("ci", "job") == identity_id
        assert await ids.linked("ci", "job") == identity_id
    finally:
        listening.cancel()
        await store.close()


async def test_a_removal_whose_publish_failed_is_told_when_it_is_retried(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The link is deleted, then the PUBLISH is lost (the store went away in between): the
    # removal answers 503, and the operator's retry must reach the replicas that keep it.
    prefix = "ids-" + secrets.token_hex(4)
    store, elsewhere = (open_store(redis_server.url, prefix=prefix) for _ in range(2))
    ids = IdentityStore(store, "eu-west-1", cache_ttl=60)
    other = IdentityStore(elsewhere, "eu-west-1")
    listening = asyncio.create_task(ids.links.listen())
    publish = elsewhere.publish
    lost: list[bool] = []

    async def losing(channel: str, message: bytes) -> None:
        if lost and lost.pop():
            raise StoreUnavailable("redis: connection reset")
        await publish(channel, message)

    monkeypatch.setattr(elsewhere, "publish", losing)
    link = ids._login_key("ci", "repo:org/app")
    try:
        assert await until(lambda: ids.links.cache.enabled)
        for remove in ("delete", "unlink"):
            first = await ids.resolve("ci", "repo:org/app")
            assert await ids.linked("ci", "repo:org/app") == first  # kept by this replica
            lost.append(True)

            async def again(identity_id: str = first, how: str = remove) -> None:
                if how == "delete":
                    await other.delete(identity_id)
                else:
                    await other.unlink(identity_id, "ci", "repo:org/app")

            with pytest.raises(StoreUnavailable):
                await again()
            assert ids.links.cache.get(link) == first  # not told: still kept
            await again()  # the retry finds the link gone, and still tells
            assert await until(lambda: ids.links.cache.get(link) is None), remove
    finally:
        listening.cancel()
        await store.close()
        await elsewhere.close()
