"""The user directory: argon2id parameters, rehash on change, uniqueness, policy."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from gateway.store import Store, open_store
from gateway.users.directory import InvalidPassword, UserDirectory, UserExists
from gateway.users.passwords import PasswordHasher
from tests.helpers import RedisServer


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[Store]:
    s = open_store(redis_server.url, prefix=f"users{secrets.token_hex(4)}")
    yield s
    await s.close()


async def test_hashes_are_argon2id_at_owasp_parameters(store: Store) -> None:
    users = UserDirectory(store, PasswordHasher())
    user = await users.create("a@example.com", "a long enough password")
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_rehash_on_login_when_parameters_rise(store: Store) -> None:
    weak = UserDirectory(store, PasswordHasher(memory_cost=8192, time_cost=1))
    created = await weak.create("b@example.com", "a long enough password")
    assert created.password_hash is not None and "m=8192,t=1" in created.password_hash
    strong = UserDirectory(store, PasswordHasher())
    assert await strong.authenticate("b@example.com", "wrong password here") is None
    assert (await strong.get(created.user_id)).password_hash == created.password_hash  # type: ignore[union-attr]
    user = await strong.authenticate("B@EXAMPLE.com", "a long enough password")
    assert user is not None and user.password_hash is not None
    assert "m=19456,t=2,p=1" in user.password_hash
    assert (await strong.get(created.user_id)).password_hash == user.password_hash  # type: ignore[union-attr]


async def test_email_is_unique_even_under_races(store: Store) -> None:
    users = UserDirectory(store, PasswordHasher())
    results = await asyncio.gather(
        *(users.create("race@example.com", None) for _ in range(20)), return_exceptions=True
    )
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1
    assert all(isinstance(r, UserExists) for r in results if isinstance(r, Exception))


async def test_dangling_email_index_is_reclaimed(store: Store) -> None:
    users = UserDirectory(store, PasswordHasher())
    await store.put(store.key("user-email", "ghost@example.com"), b"no-such-user")
    user = await users.create("ghost@example.com", None)
    assert (await users.by_email("ghost@example.com")) == user


async def test_password_policy(store: Store) -> None:
    users = UserDirectory(store, PasswordHasher())
    with pytest.raises(InvalidPassword, match="at least 8"):
        await users.create("c@example.com", "short")
    with pytest.raises(InvalidPassword, match="at most"):
        await users.create("c@example.com", "x" * 5000)
    long_unicode = "ü" * 1000  # 2000 bytes: accepted, never truncated
    await users.create("c@example.com", long_unicode)
    assert await users.authenticate("c@example.com", long_unicode) is not None
    assert await users.authenticate("c@example.com", "ü" * 999) is None


async def test_overload_is_refused_not_queued(store: Store) -> None:
    from gateway.pool import Overloaded

    hasher = PasswordHasher(workers=1, max_pending=2)
    results = await asyncio.gather(
        *(hasher.hash("p" * 10) for _ in range(6)), return_exceptions=True
    )
    assert sum(isinstance(r, Overloaded) for r in results) == 4
    assert sum(isinstance(r, str) for r in results) == 2
    hasher.close()


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "at least 8 characters"),
        ("password1", "most common passwords"),
        ("Sunshine1", "most common passwords"),  # case does not hide it
        ("x" * 5000, "at most 4096 bytes"),
    ],
)
def test_password_policy_says_what_is_wrong(password: str, problem: str) -> None:
    from gateway.users.directory import check_password_policy

    with pytest.raises(InvalidPassword, match=problem):
        check_password_policy(password)


def test_password_policy_options() -> None:
    from gateway.settings import PasswordPolicySettings
    from gateway.users.directory import check_password_policy

    strict = PasswordPolicySettings(min_length=12, require=["uppercase", "digit", "symbol"])
    with pytest.raises(InvalidPassword, match="an uppercase character, a digit"):
        check_password_policy("only lowercase here!", strict)
    check_password_policy("Fine Passw0rd!", strict)
    # Long Unicode passes whole (NFKC, never truncated); the breached list can be turned off.
    check_password_policy("ｐａｓｓｗｏｒｄ　ｗｉｔｈ　ｗｉｄｅ　ｌｅｔｔｅｒｓ　" * 20)
    check_password_policy("password1", PasswordPolicySettings(breached_top=0))
