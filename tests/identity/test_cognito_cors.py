"""CORS on the Cognito Identity API (issue 15: browser apps): a page of a registered client
(its allowed origins; a public client's redirect-URI origins by default) may call `POST /`
with the AWS SDK's headers, preflight included; any other origin gets no
Access-Control-Allow-Origin, and never `*`."""

from __future__ import annotations

import httpx

from tests.helpers import GatewayServer

SPA = "https://spa.example.com"  # the public test client's redirect-URI origin
TARGET = {"X-Amz-Target": "AWSCognitoIdentityService.GetId"}
JSON = {"Content-Type": "application/x-amz-json-1.1"}


async def test_an_allowed_page_may_call_the_identity_api(gateway: GatewayServer) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        for path in ("/", "/cognito-identity"):
            pre = await http.options(
                path,
                headers={
                    "Origin": SPA,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type,x-amz-target,x-amz-user-agent",
                },
            )
            assert pre.status_code == 204
            assert pre.headers["access-control-allow-origin"] == SPA
            allowed = pre.headers["access-control-allow-headers"].lower()
            assert "x-amz-target" in allowed and "x-amz-user-agent" in allowed
            assert "Origin" in pre.headers["vary"]
        # The answer itself (an error here: no such pool) carries it too, with the AWS
        # headers an SDK reads exposed.
        answer = await http.post(
            "/",
            content=b'{"IdentityPoolId": "us-east-1:00000000-0000-4000-8000-000000000000"}',
            headers={"Origin": SPA, **TARGET, **JSON},
        )
        assert answer.status_code == 400 and answer.json()["__type"]
        assert answer.headers["access-control-allow-origin"] == SPA
        assert "x-amzn-ErrorType" in answer.headers["access-control-expose-headers"]


async def test_another_origin_gets_no_cors_headers(gateway: GatewayServer) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        pre = await http.options(
            "/", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in pre.headers
        answer = await http.post(
            "/", content=b"{}", headers={"Origin": "https://evil.example", **TARGET, **JSON}
        )
        assert "access-control-allow-origin" not in answer.headers
        assert "Origin" in answer.headers["vary"]
