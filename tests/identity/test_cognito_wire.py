"""The Cognito Identity API's transport: body sizes as AWS allows them, and every refusal
(413, 405, bad JSON, unknown operation) in AWS JSON with `__type`, as the SDKs parse it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.helpers import GatewayServer
from tests.identity.conftest import POOL, client

HEADERS = {
    "X-Amz-Target": "AWSCognitoIdentityService.GetId",
    "Content-Type": "application/x-amz-json-1.1",
}


async def test_ten_logins_of_fifty_thousand_characters_are_read(pools: GatewayServer) -> None:
    # As large as AWS allows (two SAML responses alone pass 64 KB): the body is read and the
    # logins are judged — here refused as unknown providers, not as a too-large request.
    logins = {f"provider-{i}.example.com": "x" * 50_000 for i in range(10)}
    with pytest.raises(ClientError) as caught:
        client(pools).get_id(IdentityPoolId=POOL, Logins=logins)
    assert caught.value.response["Error"]["Code"] == "NotAuthorizedException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_refusals_are_aws_json(pools: GatewayServer) -> None:
    async with httpx.AsyncClient(base_url=pools.url) as http:
        huge = json.dumps({"IdentityPoolId": POOL, "Logins": {"a": "x" * 2_000_000}})
        for path in ("/", "/cognito-identity"):
            too_large = await http.post(path, content=huge, headers=HEADERS)
            assert too_large.status_code == 413
            assert too_large.json()["__type"] == "InvalidParameterException"
            assert too_large.headers["x-amzn-errortype"].startswith("InvalidParameterException")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused while reading
            for _ in range(40):
                yield b"x" * 65536

        streamed = await http.post("/cognito-identity", content=chunks(), headers=HEADERS)
        assert streamed.status_code == 413 and streamed.json()["__type"]
        wrong_method = await http.put("/", content=b"{}", headers=HEADERS)
        assert wrong_method.status_code == 405
        assert wrong_method.json()["__type"] == "UnknownOperationException"
        for body in (b"{not json", b"\xff\xfe", b"[1, 2]"):
            bad = await http.post("/cognito-identity", content=body, headers=HEADERS)
            assert bad.status_code == 400 and bad.json()["__type"] == "SerializationException"


async def test_every_answer_has_its_own_request_id_a_uuid_as_aws_gives(
    pools: GatewayServer,
) -> None:
    async with httpx.AsyncClient(base_url=pools.url) as http:
        seen = set()
        for target in (HEADERS["X-Amz-Target"], "AWSCognitoIdentityProviderService.GetUser"):
            for _ in range(20):
                answer = await http.post(
                    "/", content=b"{}", headers={**HEADERS, "X-Amz-Target": target}
                )
                request_id = uuid.UUID(answer.headers["x-amzn-requestid"])
                assert request_id.version == 4 and request_id.variant == uuid.RFC_4122
                assert str(request_id) == answer.headers["x-amzn-requestid"]
                seen.add(request_id)
        assert len(seen) == 40
