"""Fail-over under load on Redis Sentinel (issue: operations, Redis at scale): sign-ins that
create identities and codes redeemed twice at once keep running while Sentinel promotes the
replica. With `store.replicas_acked: 1`, nothing acknowledged is lost — every identity handed
out still resolves to the same ID — and no code is redeemed twice. Without replicas to
acknowledge, durable writes fail closed."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter

import httpx
import pytest

from gateway.errors import StoreUnavailable
from gateway.store.redis import RedisStore
from tests.helpers import (
    PASSWORD,
    Browser,
    GatewayServer,
    RedisSentinel,
    code_flow_params,
    form_fields,
    free_port,
    location_query,
    make_settings,
    pkce_pair,
    redeem,
)

ALLOWED = {200, 303, 400, 503}


async def test_durable_writes_wait_for_a_replica_or_fail_closed() -> None:
    sentinel = RedisSentinel(replica=True)
    sentinel.start()
    store = RedisStore(sentinel.url, prefix="acks", replicas_acked=1, replica_timeout=0.3)
    try:
        assert await store.create(store.key("a"), b"1")
        assert await store.take(store.key("a")) == b"1"
        assert sentinel.replica is not None
        sentinel.replica.stop()  # no replica to acknowledge: the write must not pass as safe
        with pytest.raises(StoreUnavailable, match="0 of 1 replicas"):
            await store.create(store.key("b"), b"1")
    finally:
        await store.close()
        sentinel.stop()


async def test_sentinel_failover_under_load_loses_nothing() -> None:
    sentinel = RedisSentinel(replica=True)
    sentinel.start()
    settings = make_settings(
        free_port(),
        sentinel.url,
        store={
            "url": sentinel.url,
            "prefix": "failover",
            "socket_timeout": 1.0,
            "connect_timeout": 1.0,
            "replicas_acked": 1,
        },
    )
    gateway = GatewayServer(settings).start()
    statuses: Counter[int] = Counter()
    redeemed: Counter[str] = Counter()
    subjects: dict[str, str] = {}
    stop = asyncio.Event()

    async def worker(n: int) -> None:
        while not stop.is_set():
            email = f"fo-{n}-{secrets.token_hex(3)}@example.com"
            try:
                await gateway.add_user(email, email_verified=True)
            except StoreUnavailable:
                await asyncio.sleep(0.05)
                continue
            browser = Browser(gateway.url)
            try:
                verifier, challenge = pkce_pair()
                first = await browser.authorize(**code_flow_params(code_challenge=challenge))
                statuses[first.status_code] += 1
                if first.status_code != 303 or "/login" not in first.headers["location"]:
                    continue
                page = await browser.http.get(first.headers["location"])
                statuses[page.status_code] += 1
                if page.status_code != 200:
                    continue
                done = await browser.http.post(
                    "/login", data={**form_fields(page.text), "email": email, "password": PASSWORD}
                )
                statuses[done.status_code] += 1
                if done.status_code != 303 or "code=" not in done.headers["location"]:
                    continue
                code = location_query(done)["code"]
                answers = await asyncio.gather(
                    redeem(browser.http, code, verifier), redeem(browser.http, code, verifier)
                )
                for answer in answers:
                    statuses[answer.status_code] += 1
                    if answer.status_code == 200:
                        redeemed[code] += 1
                        claims = await gateway.call(
                            lambda s, a=answer: s.tokens.verify_own_jwt(a.json()["id_token"])
                        )
                        subjects[email] = claims["sub"]
            except httpx.HTTPError:
                statuses[-1] += 1
            finally:
                await browser.aclose()

    workers = [asyncio.create_task(worker(n)) for n in range(6)]
    try:
        await asyncio.sleep(1.5)
        before = len(subjects)
        await asyncio.to_thread(sentinel.failover)
        await asyncio.sleep(2.5)
        stop.set()
        await asyncio.gather(*workers)
        assert set(statuses) <= ALLOWED, statuses
        assert before > 0 and len(subjects) > before, statuses  # work before and after
        assert max(redeemed.values()) == 1  # no code redeemed twice
        for email, identity_id in subjects.items():
            user = await gateway.call(lambda s, e=email: s.users.by_email(e))
            assert user is not None, email  # acknowledged users survived
            found = await gateway.call(lambda s, u=user: s.identities.find("local", u.user_id))
            assert found == identity_id, email  # and so did their identities
    finally:
        stop.set()
        gateway.stop()
        sentinel.stop()
