"""Pending flows and their typed progress: sealed at rest, single completion, explicit
(de)serialisation that refuses what it does not know."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator

import pytest

from gateway.connectors import OAuth2Pending, OidcPending, SamlPending, UpstreamIdentity
from gateway.crypto import Sealer
from gateway.login.flows import FlowStore
from gateway.login.progress import (
    AtIdp,
    NewPassword,
    Resetting,
    SecondFactor,
    Verifying,
    dump,
    load,
)
from gateway.store import Store, open_store
from tests.helpers import RedisServer

EVERY_KIND = [
    AtIdp("google", OidcPending("f.s", "nonce", "verifier", "https://gw/cb")),
    AtIdp("github", OAuth2Pending("f.s", "verifier", "https://gw/cb")),
    AtIdp("corp", SamlPending("f.s", "id-123")),
    SecondFactor(
        proven=UpstreamIdentity("local", "u1", {"email": "a@example.com"}, amr=["pwd"]),
        subject="u1",
        local=True,
        secret="JBSWY3DPEHPK3PXP",
    ),
    SecondFactor(
        proven=UpstreamIdentity("idp", "x", {}, amr=["fed"], tokens={"refresh_token": "r"}),
        subject="us-east-1:1",
        local=False,
        identity_id="us-east-1:1",
        enrolled=True,
    ),
    NewPassword(UpstreamIdentity("local", "u2", {"email": "b@example.com"}, amr=["pwd"])),
    Verifying("a@example.com", phone_user="u1"),
    Resetting("a@example.com"),
]


@pytest.mark.parametrize("progress", EVERY_KIND, ids=lambda p: type(p).__name__)
def test_every_kind_of_progress_survives_json(progress: object) -> None:
    data = json.loads(json.dumps(dump(progress)))  # type: ignore[arg-type]
    assert load(data) == progress


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "blackboard", "mfa_user": "u1"},  # the old connector_state shape
        {"kind": "reset"},  # a field missing
        {"kind": "reset", "email": "a@example.com", "extra": 1},  # a field unknown
        {"kind": "idp", "connector": "x", "pending": {"kind": "ldap", "state": "s"}},
    ],
)
def test_unknown_progress_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        load(data)


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[Store]:
    s = open_store(redis_server.url, prefix=f"flows{secrets.token_hex(4)}")
    yield s
    await s.close()


async def test_progress_is_kept_sealed_and_the_flow_completes_once(store: Store) -> None:
    flows = FlowStore(store, Sealer(b"f" * 32), ttl=600)
    flow = await flows.create(client_id="web", redirect_uri="https://app/cb", browser="b")
    saved = await flows.save(flow, Verifying("secret-address@example.com"))
    raw = await store.get(store.key("flow", flow.flow_id))
    assert raw is not None and b"secret-address" not in raw  # sealed at rest
    assert (await flows.get(flow.flow_id)) == saved
    assert (await flows.take(flow.flow_id)) == saved
    assert await flows.take(flow.flow_id) is None  # exactly one completion


async def test_a_flow_whose_progress_cannot_be_read_is_expired(store: Store) -> None:
    sealer = Sealer(b"f" * 32)
    flows = FlowStore(store, sealer, ttl=600)
    flow = await flows.create(client_id="web", redirect_uri="https://app/cb", browser="b")
    key = store.key("flow", flow.flow_id)
    record = {
        **json.loads(
            sealer.open(await store.get(key) or b"", purpose="flow", context=key.encode())
        ),
        "progress": {"kind": "mfa", "mfa_user": "u1"},
    }
    await store.put(
        key, sealer.seal(json.dumps(record).encode(), purpose="flow", context=key.encode()), ttl=600
    )
    assert await flows.get(flow.flow_id) is None
