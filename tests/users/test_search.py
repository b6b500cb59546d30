"""The directory's search index and Cognito's UserStatus: entries follow every save, deleted
accounts leave none, a stale entry never shows a user who no longer matches, and stored groups
(beside the settings' ones, which win) reach the claims."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from gateway.settings import GroupSettings
from gateway.store import Put, SortedAdd, Store, open_store, record_json
from gateway.users.directory import UserDirectory
from gateway.users.groups import GroupExists, GroupFromSettings
from gateway.users.passwords import PasswordHasher
from gateway.users.search import matches, user_status
from tests.helpers import RedisServer

ADMINS = "arn:aws:iam::123456789012:role/admins"
EDITORS = "arn:aws:iam::123456789012:role/editors"


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[Store]:
    s = open_store(redis_server.url, prefix=f"search{secrets.token_hex(4)}")
    yield s
    await s.close()


def directory(store: Store) -> UserDirectory:
    groups = [GroupSettings(name="admins", precedence=1, role_arn=ADMINS)]
    return UserDirectory(store, PasswordHasher(), groups=groups)


async def test_entries_follow_saves_and_deletes(store: Store) -> None:
    users = directory(store)
    ada = await users.create("ada@example.com", None, attributes={"given_name": "Ada"})
    await users.create("adam@example.com", None, attributes={"given_name": "Adam"})
    found = await users.search.page("given_name", "Ada", True, None, 10)
    assert [uid for _, uid in found] and len(found) == 2
    exact = await users.search.page("given_name", "Ada", False, None, 10)
    assert [uid for _, uid in exact] == [ada.user_id]
    await users.set_attribute(ada.user_id, "given_name", "Grace")
    assert [uid for _, uid in await users.search.page("given_name", "Ada", False, None, 10)] == []
    assert [uid for _, uid in await users.search.page("given_name", "Gr", True, None, 10)] == [
        ada.user_id
    ]
    await users.set_status(ada.user_id, "disabled")
    disabled = await users.search.page("status", "Disabled", False, None, 10)
    assert [uid for _, uid in disabled] == [ada.user_id]
    await users.delete(ada.user_id)
    for attribute in ("given_name", "status", "email", "username", "cognito:user_status"):
        pages = await users.search.page(attribute, "", True, None, 10)
        assert ada.user_id not in {uid for _, uid in pages}, attribute


async def test_a_stale_entry_is_recognised(store: Store) -> None:
    users = directory(store)
    user = await users.create("eve@example.com", None, confirmed=True)
    # A crash between the index write and the record's: an entry the record does not match.
    await store.write_many([SortedAdd(users.search.key("name"), f"Mallory\x00{user.user_id}")])
    [(_, uid)] = await users.search.page("name", "Mallory", False, None, 10)
    [loaded] = await users.get_many([uid])
    assert loaded is not None and not matches(loaded, "name", "Mallory", False)


async def test_user_status_follows_the_account(store: Store) -> None:
    users = directory(store)
    signed_up = await users.create("s@example.com", "a long enough password")
    assert user_status(signed_up) == "UNCONFIRMED"
    assert user_status(await users.mark_email_verified(signed_up.user_id)) == "CONFIRMED"
    invited = await users.create(
        "i@example.com", "a temporary password", temporary=True, confirmed=False
    )
    assert user_status(invited) == "FORCE_CHANGE_PASSWORD"
    chosen = await users.set_password(invited.user_id, "my own long password")
    assert user_status(chosen) == "CONFIRMED"
    reset = await users.require_reset(invited.user_id)
    assert user_status(reset) == "RESET_REQUIRED" and reset.password_hash is None
    assert await users.authenticate("i@example.com", "my own long password") is None
    assert user_status(await users.set_password(invited.user_id, "after the reset")) == (
        "CONFIRMED"
    )
    elsewhere = await users.create("x@example.com", None, confirmed=True)
    assert user_status(elsewhere) == "EXTERNAL_PROVIDER"
    # Records from before `confirmed` existed: a verified e-mail says it.
    old = replace(elsewhere, confirmed=None, email_verified=True, password_hash="$argon2id$x")
    assert user_status(old) == "CONFIRMED"


async def test_stored_groups_beside_settings_groups(store: Store) -> None:
    users = directory(store)
    other_replica = directory(store)
    groups = users.group_directory
    with pytest.raises(GroupExists):
        await groups.create("admins")
    await groups.create("editors", precedence=0, role_arn=EDITORS)
    with pytest.raises(GroupExists):
        await groups.create("editors")
    with pytest.raises(GroupFromSettings):
        await groups.update("admins", precedence=9)
    user = await users.create("g@example.com", None)
    await users.set_groups(user.user_id, ["admins", "editors"], [])
    # Another replica reads the stored groups with the user record.
    loaded = await other_replica.get(user.user_id)
    assert loaded is not None
    claims = other_replica.claims(loaded)
    assert claims["cognito:groups"] == ["editors", "admins"]
    assert claims["cognito:preferred_role"] == EDITORS
    await groups.update("editors", precedence=5)
    loaded = await other_replica.get(user.user_id)
    assert loaded is not None
    assert other_replica.claims(loaded)["cognito:groups"] == ["admins", "editors"]
    members = await users.search.group_page("editors", None, 10)
    assert members == [user.user_id]
    # An index rebuilt from the records (after an upgrade) finds accounts saved without one.
    bare = replace(user, user_id="00000000-0000-4000-8000-000000000000")
    await store.write_many([Put(store.key("user", bare.user_id), record_json(bare))])
    assert await users.reindex() == 2
    found = await users.search.page("email", "g@example.com", False, None, 10)
    assert bare.user_id in {uid for _, uid in found}
