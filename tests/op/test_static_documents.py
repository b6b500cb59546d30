"""Discovery and the JWKS answered before routing (gateway.op.discovery.StaticDocuments): the
same bytes and headers as their routes, request ids and counts as for every request, HEAD
without a body, the JWKS following key rotation, everything else left to the app."""

from __future__ import annotations

import json

import httpx

from gateway.op.discovery import metadata
from tests.helpers import GatewayServer

DISCOVERY, JWKS = "/.well-known/openid-configuration", "/.well-known/jwks.json"


async def test_documents_answer_like_their_routes(gateway: GatewayServer) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        config = await http.get(DISCOVERY)
        assert config.status_code == 200
        assert config.json() == json.loads(json.dumps(metadata(gateway.services)))
        assert config.headers["content-type"] == "application/json"
        assert config.headers["cache-control"] == "public, max-age=3600"
        assert config.headers["access-control-allow-origin"] == "*"
        assert config.headers["x-request-id"]
        assert int(config.headers["content-length"]) == len(config.content)
        head = await http.head(JWKS)
        assert head.status_code == 200 and head.content == b""
        keys = await http.get(JWKS)
        assert keys.headers["content-type"] == "application/jwk-set+json"
        assert int(head.headers["content-length"]) == len(keys.content)
        assert keys.json() == gateway.services.keys.jwks
        # Not a GET or HEAD: the application answers (in OAuth JSON, as for any OAuth path).
        assert (await http.post(JWKS)).status_code == 405
        metrics = (await http.get("/metrics")).text
        assert f'route="{JWKS}",status="200"' in metrics


async def test_the_jwks_follows_rotation(gateway: GatewayServer) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        before = {k["kid"] for k in (await http.get(JWKS)).json()["keys"]}
        await gateway.call(lambda s: s.keys.rotate())
        after = {k["kid"] for k in (await http.get(JWKS)).json()["keys"]}
    assert after - before, "the next key is published as soon as it exists"
