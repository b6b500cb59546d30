"""Backup round trip: export from one store, import into an empty one, compare; rerun and
resume without duplicates; conflicts are reported, never overwritten."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gateway.identity.ids import IdentityStore
from gateway.store import open_store
from gateway.users.directory import UserDirectory
from gateway.users.passwords import PasswordHasher
from tests.helpers import RedisServer

ROOT = Path(__file__).parent.parent


def config(tmp_path: Path, redis: RedisServer, prefix: str) -> Path:
    path = tmp_path / f"{prefix}.yaml"
    path.write_text(
        f"issuer: https://auth.example.com\nsecret_key: {'k' * 40}\n"
        f"store: {{url: '{redis.url}', prefix: {prefix}}}\n"
        "clients:\n  - {client_id: web, client_secret: a-secret-of-16-chars, "
        "redirect_uris: [https://app.example.com/cb]}\n"
    )
    return path


def cognate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


async def snapshot(redis: RedisServer, prefix: str) -> tuple[list[dict], list[dict]]:  # type: ignore[type-arg]
    store = open_store(redis.url, prefix=prefix)
    users = sorted(
        [u.__dict__ async for u in UserDirectory(store, PasswordHasher()).all()],
        key=lambda u: u["user_id"],
    )
    page, _ = await IdentityStore(store, "us-east-1").page(None, None, 1000)
    await store.close()
    return users, [i.__dict__ for i in page]


async def test_round_trip_resume_and_conflicts(tmp_path: Path, redis_server: RedisServer) -> None:
    source = open_store(redis_server.url, prefix="backup-src")
    users = UserDirectory(source, PasswordHasher())
    identities = IdentityStore(source, "us-east-1")
    for i in range(30):
        user = await users.create(
            f"user{i}@example.com",
            "a long enough password",
            name=f"User {i}",
            email_verified=i % 2 == 0,
        )
        identity = await identities.resolve("local", user.user_id, "us-east-1:pool")
        if i % 3 == 0:
            await identities.link(identity, "google", f"g-{i}")
    await identities.create_guest("us-east-1:pool")
    await source.close()

    backup = tmp_path / "backup.jsonl"
    exported = cognate(
        "export", "-o", str(backup), "-c", str(config(tmp_path, redis_server, "backup-src"))
    )
    assert exported.returncode == 0, exported.stderr
    assert "30 user" in exported.stderr and "31 identity" in exported.stderr
    records = [json.loads(line) for line in backup.read_text().splitlines()]
    assert records[0]["type"] == "meta"
    assert all("client_secret" not in r for r in records)  # secrets stay in settings
    assert "a long enough password" not in backup.read_text()

    target = config(tmp_path, redis_server, "backup-dst")
    first = cognate("import", str(backup), "-c", str(target))
    assert first.returncode == 0, first.stderr
    assert await snapshot(redis_server, "backup-src") == await snapshot(redis_server, "backup-dst")
    # The restored password hash still signs the user in.
    dst = open_store(redis_server.url, prefix="backup-dst")
    restored = await UserDirectory(dst, PasswordHasher()).authenticate(
        "user7@example.com", "a long enough password"
    )
    assert restored is not None and restored.name == "User 7"
    # Running it again (or resuming part-way) creates nothing twice.
    again = cognate("import", str(backup), "--skip", "10", "-c", str(target))
    assert again.returncode == 0 and "created" not in again.stderr
    assert await snapshot(redis_server, "backup-src") == await snapshot(redis_server, "backup-dst")
    # A conflicting account (same e-mail, other id) is reported and left as it is.
    conflicting = tmp_path / "conflict.jsonl"
    user_line = next(r for r in records if r["type"] == "user")
    conflicting.write_text(json.dumps({**user_line, "user_id": "another-id"}) + "\n")
    refused = cognate("import", str(conflicting), "-c", str(target))
    assert refused.returncode == 1 and "1 conflict" in refused.stderr
    assert await UserDirectory(dst, PasswordHasher()).get("another-id") is None
    await dst.close()


async def test_groups_the_api_made_travel_with_their_members(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Groups the user-pool API created live in the store: a backup without them would bring
    back members of groups that no longer exist (and no role for them)."""
    source = open_store(redis_server.url, prefix="backup-groups-src")
    users = UserDirectory(source, PasswordHasher())
    await users.group_directory.create(
        "editors", description="Edit", precedence=3, role_arn="arn:aws:iam::1:role/ed"
    )
    member = await users.create("member@example.com", "a long enough password")
    await users.set_groups(member.user_id, ["editors"], [])
    await source.close()
    backup = tmp_path / "groups.jsonl"
    exported = cognate(
        "export", "-o", str(backup), "-c", str(config(tmp_path, redis_server, "backup-groups-src"))
    )
    assert exported.returncode == 0, exported.stderr
    kinds = [json.loads(line)["type"] for line in backup.read_text().splitlines()]
    assert kinds.index("group") < kinds.index("user")  # groups before their members
    imported = cognate(
        "import", str(backup), "-c", str(config(tmp_path, redis_server, "backup-groups-dst"))
    )
    assert imported.returncode == 0, imported.stderr
    dst = open_store(redis_server.url, prefix="backup-groups-dst")
    restored = UserDirectory(dst, PasswordHasher())
    group = await restored.group_directory.get("editors")
    assert (group.description, group.precedence, group.role_arn) == (
        "Edit",
        3,
        "arn:aws:iam::1:role/ed",
    )
    user = await restored.by_email("member@example.com")
    assert user is not None and restored.claims(user)["cognito:groups"] == ["editors"]
    await dst.close()
