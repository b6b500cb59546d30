"""GetUser's account cache (`gateway.users.changes`): a replica answers GetUser from the account
it read a moment ago, and forgets it — on every replica — as soon as the account or its second
factors change anywhere: an attribute update, an administrator disabling the user, a new second
factor, the account deleted. While the replica cannot hear of changes, the cache is off."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from gateway.errors import StoreUnavailable
from gateway.services import build_services
from gateway.store.changes import ReplicaCache
from gateway.store.memory import MemoryStore
from gateway.users import accounts
from gateway.users.changes import AccountChanges
from gateway.users.directory import UserDirectory
from gateway.users.passwords import PasswordHasher
from tests.helpers import GatewayServer, RedisServer, free_port, make_settings, until
from tests.op import test_grant_cache as grant_cache

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def replicas(redis_server: RedisServer) -> Iterator[tuple[GatewayServer, GatewayServer]]:
    """Two replicas of one pool on one Redis, caching for a minute (longer than any test), so
    only a change heard over pub/sub can make the second see it in time."""
    port = free_port()
    base = make_settings(port, redis_server.url)
    clients = [c.model_dump() for c in base.clients] + [
        {
            "client_id": "mobileapp",
            "token_endpoint_auth_method": "none",
            "grant_types": ["refresh_token"],
            "explicit_auth_flows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        }
    ]
    settings = make_settings(
        port,
        redis_server.url,
        clients=clients,
        sessions={"cache_ttl": 60},
        user_pool={"id": "eu-west-1_CachePool1", "attributes": [{"name": "name"}]},
        region="eu-west-1",
    )
    one, two = GatewayServer(settings).start(), GatewayServer(settings, port=free_port()).start()
    yield one, two
    one.stop()
    two.stop()


def idp(gateway: GatewayServer) -> Any:
    return boto3.client(
        "cognito-idp",
        endpoint_url=gateway.url,
        region_name="eu-west-1",
        aws_access_key_id="unused",
        aws_secret_access_key="unused",
        config=Config(retries={"max_attempts": 1}),
    )


async def signed_in(gateway: GatewayServer) -> tuple[str, str]:
    """A new account's id and an access token of it (USER_PASSWORD_AUTH)."""
    email = f"cache{secrets.token_hex(4)}@example.com"
    user = await gateway.add_user(email, PASSWORD, email_verified=True)
    result = idp(gateway).initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId="mobileapp",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    return user.user_id, str(result["AuthenticationResult"]["AccessToken"])


def attributes(gateway: GatewayServer, token: str) -> dict[str, str]:
    answer = idp(gateway).get_user(AccessToken=token)
    found = {a["Name"]: a["Value"] for a in answer["UserAttributes"]}
    return found | {"mfa": ",".join(answer.get("UserMFASettingList", []))}


def refused(gateway: GatewayServer, token: str) -> str:
    try:
        idp(gateway).get_user(AccessToken=token)
    except botocore.exceptions.ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return ""


async def eventually(check: Callable[[], bool]) -> bool:
    """Whether the boto3 `check()` comes true within seconds (pub/sub delivery is
    asynchronous; without it the cache would hold the old account for a minute)."""
    return await grant_cache.eventually(lambda: asyncio.to_thread(check), within=5.0)


async def test_get_user_is_answered_from_the_cache(
    replicas: tuple[GatewayServer, GatewayServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, two = replicas
    user_id, token = await signed_in(two)
    assert attributes(two, token)["email_verified"] == "true"  # read, and kept
    reads: list[list[Any]] = []
    real = two.services.store.read_many

    async def counted(ops: list[Any]) -> Any:
        reads.append(ops)
        return await real(ops)

    monkeypatch.setattr(two.services.store, "read_many", counted)
    assert attributes(two, token)["sub"]
    assert not [ops for ops in reads if any(f":user:{user_id}" in op.key for op in ops)], reads


async def test_an_update_on_one_replica_is_seen_on_the_other(
    replicas: tuple[GatewayServer, GatewayServer],
) -> None:
    one, two = replicas
    _, token = await signed_in(one)
    assert "name" not in attributes(two, token)  # kept by the second replica
    idp(one).update_user_attributes(
        AccessToken=token, UserAttributes=[{"Name": "name", "Value": "Ada"}]
    )
    assert attributes(one, token)["name"] == "Ada"  # the replica that wrote: at once
    assert await eventually(lambda: attributes(two, token).get("name") == "Ada")


async def test_a_user_disabled_or_deleted_elsewhere_is_refused(
    replicas: tuple[GatewayServer, GatewayServer],
) -> None:
    one, two = replicas
    user_id, token = await signed_in(one)
    assert attributes(two, token)
    await one.call(lambda s: s.users.set_status(user_id, "disabled"))
    assert await eventually(lambda: refused(two, token) == "NotAuthorizedException")

    user_id, token = await signed_in(one)
    assert attributes(two, token)
    await one.call(lambda s: s.users.delete(user_id))
    assert await eventually(lambda: refused(two, token) == "NotAuthorizedException")


async def test_a_second_factor_turned_on_elsewhere_is_listed(
    replicas: tuple[GatewayServer, GatewayServer],
) -> None:
    one, two = replicas
    user_id, token = await signed_in(one)
    assert attributes(two, token)["mfa"] == ""
    await one.call(lambda s: s.mfa.enable(user_id, "email"))
    assert await eventually(lambda: attributes(two, token)["mfa"] == "EMAIL_OTP")
    await one.call(lambda s: s.mfa.remove(user_id))
    assert await eventually(lambda: attributes(two, token)["mfa"] == "")


def test_a_read_begun_before_a_change_is_not_kept() -> None:
    cache: ReplicaCache[str] = ReplicaCache(ttl=60)
    cache.on()
    before = cache.generation
    cache.evict("someone")  # a change lands while a read is on its way
    cache.put("u1", "what the read found", before)
    assert cache.get("u1") is None
    cache.put("u1", "a read after it", cache.generation)
    assert cache.get("u1") == "a read after it"
    cache.off()  # the subscription is lost: a change may be missed from now on
    before = cache.generation
    cache.on()  # subscribed again, while a read begun in the gap is still on its way
    cache.put("u1", "what the read found", before)
    assert cache.get("u1") is None


async def test_the_cache_is_off_until_it_can_hear_of_changes_and_when_it_cannot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryStore()
    changes = AccountChanges(store, ttl=60)
    cache: ReplicaCache[Any] = changes.cache
    cache.put("u1", "x", cache.generation)
    assert cache.get("u1") is None  # not subscribed yet: nothing kept
    lost = asyncio.Event()
    subscribe = store.subscribe

    async def until_lost(channel: str) -> AsyncIterator[bytes]:
        async for message in subscribe(channel):
            yield message  # b"" first: subscribed
            await lost.wait()
            raise StoreUnavailable("connection reset")

    monkeypatch.setattr(store, "subscribe", until_lost)
    listening = asyncio.create_task(changes.listen())
    try:
        assert await until(lambda: cache.enabled)
        cache.put("u1", "x", cache.generation)
        assert cache.get("u1") == "x"
        lost.set()  # the subscription breaks: what is kept might miss a change
        assert await until(lambda: not cache.enabled)
        assert cache.get("u1") is None
    finally:
        listening.cancel()


@contextlib.asynccontextmanager
async def listening() -> AsyncIterator[tuple[MemoryStore, ReplicaCache[Any], asyncio.Task[None]]]:
    """A replica's account cache listening to changes on a store, subscribed."""
    store = MemoryStore()
    changes = AccountChanges(store, ttl=60)
    task = asyncio.create_task(changes.listen())
    try:
        assert await until(lambda: changes.cache.enabled)
        yield store, changes.cache, task
    finally:
        task.cancel()


async def test_a_change_told_by_another_replica_evicts_the_account() -> None:
    async with listening() as (store, cache, _):
        cache.put("u1", "x", cache.generation)
        await AccountChanges(store).changed("u1")  # another replica, or the command line
        assert await until(lambda: cache.get("u1") is None)


async def test_a_message_that_is_not_one_empties_the_cache_and_the_listener_goes_on() -> None:
    async with listening() as (store, cache, task):
        cache.put("u1", "x", cache.generation)
        # Anyone who can PUBLISH on the store can send anything: not a user id.
        await store.publish(store.key("account-changed"), b"\xff\xfe")
        assert await until(lambda: cache.get("u1") is None)
        assert cache.enabled and not task.done()
        cache.put("u2", "y", cache.generation)
        await AccountChanges(store).changed("u2")  # still heard
        assert await until(lambda: cache.get("u2") is None)


class _AnswerLost(MemoryStore):
    """A store whose writes land but whose answers are lost (a timeout after the write)."""

    losing = False

    async def write_many(self, writes: Any) -> None:
        await super().write_many(writes)
        if self.losing:
            raise StoreUnavailable("redis: no answer within 2 s")


async def test_a_write_whose_answer_was_lost_is_still_told_to_every_replica() -> None:
    store = _AnswerLost()
    users = UserDirectory(store, PasswordHasher())
    user = await users.create("lost@example.com", PASSWORD, email_verified=True)
    other = AccountChanges(store, ttl=60)  # another replica, which read the account
    listening = asyncio.create_task(other.listen())
    try:
        assert await until(lambda: other.cache.enabled)
        other.cache.put(user.user_id, "the old account", other.cache.generation)  # type: ignore[arg-type]
        store.losing = True
        with pytest.raises(StoreUnavailable):
            await users.set_attribute(user.user_id, "name", "Ada")  # landed; answer lost
        assert (await users.get(user.user_id)).name == "Ada"  # type: ignore[union-attr]
        assert await until(lambda: other.cache.get(user.user_id) is None)
    finally:
        listening.cancel()


async def test_a_disable_whose_answer_was_lost_still_ends_the_sessions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = build_services(make_settings(free_port(), "memory://"))
    user = await services.users.create("half@example.com", PASSWORD, email_verified=True)
    set_status = services.users.set_status

    async def lost_answer(user_id: str, status: Any) -> Any:
        await set_status(user_id, status)
        raise StoreUnavailable("redis: no answer within 2 s")

    ended: list[str] = []

    async def end(s: Any, user_id: str) -> tuple[int, int]:
        ended.append(user_id)
        return 1, 1

    monkeypatch.setattr(services.users, "set_status", lost_answer)
    monkeypatch.setattr(accounts, "end_local_user", end)
    with pytest.raises(StoreUnavailable):  # the administrator is told, and may retry
        await accounts.set_enabled(services, user, False, "cli")
    assert ended == [user.user_id]  # but what may have landed took full effect
