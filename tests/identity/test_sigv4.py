"""SigV4 on the Cognito Identity admin operations: what botocore signs verifies, and every part
of the signature that keeps it from being replayed elsewhere is checked."""

from __future__ import annotations

import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.datastructures import Headers

from gateway.errors import CognitoError
from gateway.identity.sigv4 import verify

KEYS = {"AKIDCOGNATE": "secret-key-of-the-admin"}
REGION = "eu-west-1"
URL = "https://id.example.com/"
BODY = b'{"IdentityPoolId": "eu-west-1:pool"}'


def signed(
    body: bytes = BODY,
    region: str = REGION,
    service: str = "cognito-identity",
    secret: str = KEYS["AKIDCOGNATE"],
    url: str = URL,
) -> tuple[str, str, Headers]:
    """A request signed by botocore, as boto3 sends it: (path, query, headers)."""
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AWSCognitoIdentityService.ListIdentities",
        },
    )
    SigV4Auth(Credentials("AKIDCOGNATE", secret), service, region).add_auth(request)
    path, _, query = url.split("//", 1)[1].partition("/")[2].partition("?")
    host = url.split("//", 1)[1].split("/", 1)[0]
    return "/" + path, query, Headers({"host": host, **dict(request.headers.items())})


def check(path: str, query: str, headers: Headers, body: bytes = BODY, **kw: float) -> str:
    return verify("POST", path, query, headers, body, KEYS, REGION, **kw)


def refusal(path: str, query: str, headers: Headers, body: bytes = BODY, **kw: float) -> str:
    with pytest.raises(CognitoError) as caught:
        check(path, query, headers, body, **kw)
    return caught.value.type_name


def test_a_request_botocore_signed_verifies() -> None:
    assert check(*signed()) == "AKIDCOGNATE"


def test_the_query_is_part_of_the_signature() -> None:
    path, query, headers = signed(url=URL + "?b=2&a=1")  # canonical order: sorted
    assert check(path, query, headers) == "AKIDCOGNATE"
    assert refusal(path, "a=1&b=3", headers) == "InvalidSignatureException"


def test_a_changed_body_is_refused() -> None:
    path, query, headers = signed()
    assert refusal(path, query, headers, body=BODY + b" ") == "InvalidSignatureException"


def test_the_wrong_secret_is_refused() -> None:
    assert refusal(*signed(secret="guessed")) == "InvalidSignatureException"


def test_another_region_or_service_is_refused() -> None:
    assert refusal(*signed(region="us-east-1")) == "InvalidSignatureException"
    assert refusal(*signed(service="sts")) == "InvalidSignatureException"


def test_an_old_signature_is_refused() -> None:
    path, query, headers = signed()
    assert check(path, query, headers, now=time.time() + 290) == "AKIDCOGNATE"
    assert refusal(path, query, headers, now=time.time() + 301) == "InvalidSignatureException"
    assert refusal(path, query, headers, now=time.time() - 301) == "InvalidSignatureException"


def test_an_unknown_key_or_no_signature_is_refused() -> None:
    path, query, headers = signed()
    assert refusal(path, query, Headers({"host": "id.example.com"})) == (
        "MissingAuthenticationTokenException"
    )
    unknown = Headers(
        {**headers, "authorization": headers["authorization"].replace("AKIDCOGNATE", "AKIDX")}
    )
    assert refusal(path, query, unknown) == "UnrecognizedClientException"
    garbled = Headers({**headers, "authorization": "AWS4-HMAC-SHA256 nonsense"})
    assert refusal(path, query, garbled) == "IncompleteSignatureException"


def test_host_and_date_must_be_signed() -> None:
    path, query, headers = signed()
    auth = headers["authorization"]
    names = auth.split("SignedHeaders=")[1].split(",")[0]
    without_host = ";".join(n for n in names.split(";") if n != "host")
    forged = Headers({**headers, "authorization": auth.replace(names, without_host)})
    assert refusal(path, query, forged) == "IncompleteSignatureException"


def test_another_host_is_refused() -> None:
    path, query, headers = signed()
    moved = Headers({**headers, "host": "other.example.com"})
    assert refusal(path, query, moved) == "InvalidSignatureException"
