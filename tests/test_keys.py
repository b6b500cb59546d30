"""Signing keys: publish-before-use rotation, shared key set, old tokens keep verifying."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from gateway.crypto import Sealer
from gateway.keys import KeyRing
from gateway.store import Store, open_store
from tests.helpers import GatewayServer, RedisServer


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[Store]:
    s = open_store(redis_server.url, prefix=f"keys{secrets.token_hex(4)}")
    yield s
    await s.close()


def ring(store: Store, retention: int = 3600) -> KeyRing:
    return KeyRing(store, Sealer(b"k" * 32), ("ES256", "RS256"), retention, 86400)


def states(keys: KeyRing) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in keys.entries:
        out.setdefault(e.state, []).append(e.kid)
    return out


async def test_next_key_is_published_before_it_signs(store: Store) -> None:
    keys = ring(store)
    await keys.load()
    published = {k["kid"] for k in keys.jwks["keys"]}
    upcoming = set(states(keys)["next"])
    assert upcoming <= published
    await keys.rotate()
    signing = {keys.current("ES256").kid, keys.current("RS256").kid}
    assert signing == upcoming  # the keys that now sign were published one rotation ahead


async def test_tokens_signed_before_rotation_still_verify(store: Store) -> None:
    keys = ring(store)
    await keys.load()
    key = keys.current("ES256")
    old = jwt.encode({"alg": "ES256", "kid": key.kid}, {"sub": "a"}, key)
    await keys.rotate()
    assert keys.current("ES256").kid != key.kid
    assert (await keys.decode(old, ["ES256"])).claims["sub"] == "a"
    assert key.kid in states(keys)["previous"]


async def test_previous_keys_are_dropped_after_retention(store: Store) -> None:
    keys = ring(store, retention=100)
    await keys.load()
    first = keys.current("ES256").kid
    await keys.rotate(now=1_000)
    assert first in states(keys)["previous"]
    await keys.rotate(now=1_050)  # within retention: still published
    assert first in {e.kid for e in keys.entries}
    await keys.rotate(now=1_200)  # past retention: gone
    assert first not in {e.kid for e in keys.entries}


async def test_replicas_share_one_key_set_and_rotate_once(store: Store) -> None:
    a, b = ring(store), ring(store)
    await asyncio.gather(a.load(), b.load())
    assert a.jwks == b.jwks
    results = await asyncio.gather(a.rotate(), b.rotate())
    assert results.count(True) >= 1
    await a.reload(force=True)
    await b.reload(force=True)
    assert a.jwks == b.jwks


async def test_replica_learns_new_key_on_unknown_kid(store: Store) -> None:
    a, b = ring(store), ring(store)
    await a.load()
    await b.load()
    await a.rotate()
    key = a.current("ES256")
    token = jwt.encode({"alg": "ES256", "kid": key.kid}, {"sub": "b"}, key)
    b._last_reload = 0  # the cooldown has passed
    assert (await b.decode(token, ["ES256"])).claims["sub"] == "b"


async def test_key_set_is_sealed_at_rest(store: Store) -> None:
    keys = ring(store)
    await keys.load()
    raw = await store.get(store.key("keys"))
    assert raw is not None and b'"d"' not in raw and b"kty" not in raw
    wrong = KeyRing(store, Sealer(b"z" * 32), ("ES256",), 3600, 86400)
    from gateway.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable, match="secret_key"):
        await wrong.load()


async def test_pem_files_are_static_keys(store: Store, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "key.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    keys = KeyRing(store, Sealer(b"k" * 32), ("ES256",), 3600, 86400, pem_files=(str(path),))
    await keys.load()
    assert keys.current("ES256").kid == keys.entries[0].kid
    with pytest.raises(ValueError):
        await keys.rotate()


async def test_gateway_jwks_verifies_tokens_across_rotation(
    gateway: GatewayServer, http: httpx.AsyncClient
) -> None:
    service = ("service", "service-secret-0123456789")
    before = (
        await http.post("/oauth2/token", auth=service, data={"grant_type": "client_credentials"})
    ).json()["access_token"]
    assert await gateway.call(lambda s: s.keys.rotate())
    after = (
        await http.post("/oauth2/token", auth=service, data={"grant_type": "client_credentials"})
    ).json()["access_token"]
    jwks = KeySet.import_key_set((await http.get("/.well-known/jwks.json")).json())
    for token in (before, after):
        assert jwt.decode(token, jwks, algorithms=["ES256"]).claims["client_id"] == "service"
    for token in (before, after):
        r = await http.post("/oauth2/introspect", auth=service, data={"token": token})
        assert r.json()["active"] is True


async def test_scheduled_rotation_happens_when_due_and_only_then(store: Store) -> None:
    import time

    keys = ring(store)
    await keys.load()
    current = keys.current("ES256").kid
    assert not await keys.rotate_if_due(now=int(time.time()) + 60)
    assert keys.current("ES256").kid == current
    assert await keys.rotate_if_due(now=int(time.time()) + keys.rotation_period + 1)
    assert keys.current("ES256").kid != current


async def test_a_remembered_token_dies_with_its_key(
    store: Store, redis_server: RedisServer
) -> None:
    """TokenService checks a signature once and remembers the token; a key that leaves the
    ring (past retention) must take the remembered tokens with it."""
    from gateway.errors import InvalidToken
    from gateway.tokens import TokenService
    from tests.helpers import free_port, make_settings

    keys = ring(store, retention=100)
    await keys.load()
    tokens = TokenService(make_settings(free_port(), redis_server.url), keys)
    token, _ = tokens.access_token(sub="a", client_id="web", scope=frozenset(), gid=None)
    assert (await tokens.verify_access_token(token)).sub == "a"  # checked, and remembered
    await keys.rotate(now=1_000)
    assert (await tokens.verify_access_token(token)).sub == "a"  # a previous key still verifies
    await keys.rotate(now=1_200)  # past retention: its key is gone
    with pytest.raises(InvalidToken, match="badly signed"):
        await tokens.verify_access_token(token)
