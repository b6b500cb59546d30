"""Importing accounts from other systems: bcrypt, scrypt, PBKDF2 and argon2 hashes sign in
and are replaced by argon2id on the way; the import is rerunnable and says which lines are
bad (through the real `cognate users import` command)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import bcrypt
from argon2 import PasswordHasher as Argon2

from gateway.settings_loader import load_settings
from gateway.store import open_store
from gateway.users.directory import UserDirectory
from gateway.users.passwords import PasswordHasher
from tests.helpers import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent.parent


def scrypt_hash(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")  # noqa: E731
    return f"$scrypt$ln=14,r=8,p=1${b64(salt)}${b64(digest)}"


def pbkdf2_hash(password: str) -> str:
    salt = "Na3lsalt"
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 120_000)
    return f"pbkdf2_sha256$120000${salt}${base64.b64encode(digest).decode()}"


def cognate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


async def test_legacy_hashes_import_sign_in_and_rehash(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"issuer: https://auth.example.com\nsecret_key: {'k' * 40}\n"
        f"store: {{url: '{redis_server.url}', prefix: import{free_port()}}}\n"
        "user_pool:\n  groups:\n    - {name: staff}\n"
    )
    accounts = {
        "b@old.example": (
            "bcrypt secret 1",
            bcrypt.hashpw(b"bcrypt secret 1", bcrypt.gensalt(10)).decode(),
        ),
        "s@old.example": ("scrypt secret 2", scrypt_hash("scrypt secret 2")),
        "p@old.example": ("pbkdf2 secret 3", pbkdf2_hash("pbkdf2 secret 3")),
        "a@old.example": ("argon2 secret 4", Argon2().hash("argon2 secret 4")),
    }
    lines = [
        json.dumps(
            {"email": email, "password_hash": hashed, "email_verified": True, "groups": ["staff"]}
        )
        for email, (_, hashed) in accounts.items()
    ]
    lines += [
        json.dumps({"email": "bad@old.example", "password_hash": "md5$nope"}),
        "not json",
    ]
    source = tmp_path / "users.jsonl"
    source.write_text("\n".join(lines) + "\n")
    first = cognate("users", "import", str(source), "-c", str(config))
    assert first.returncode == 1  # two bad lines, reported by number
    assert "line 5: password_hash: not argon2, bcrypt, scrypt or PBKDF2" in first.stderr
    assert "line 6:" in first.stderr and "4 created" in first.stderr
    again = cognate("users", "import", str(source), "-c", str(config))
    assert "4 existing" in again.stderr  # rerunnable

    settings = load_settings(config)
    store = open_store(settings.store.url, prefix=settings.store.prefix)
    users = UserDirectory(store, PasswordHasher(), groups=settings.user_pool.groups)
    try:
        for email, (password, _) in accounts.items():
            assert await users.authenticate(email, "wrong password") is None
            user = await users.authenticate(email, password)
            assert user is not None, email
            assert user.password_hash and user.password_hash.startswith("$argon2id$")
            assert user.groups == ["staff"] and user.email_verified
            assert await users.authenticate(email, password) is not None  # the new hash works
        exported = cognate("users", "export", "-c", str(config))
        records = [json.loads(line) for line in exported.stdout.splitlines()]
        assert {r["email"] for r in records} == set(accounts)
    finally:
        users.hasher.close()
        await store.close()
