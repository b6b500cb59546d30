"""Verifying AWS Signature Version 4 on the Cognito Identity admin operations.

The signature is recomputed from the request exactly as the SDKs compute it (canonical request →
string to sign → HMAC chain from the secret) and compared in constant time. The request time must
be within five minutes of ours, the credential scope must name `cognito-identity` and our region,
and `host` plus `x-amz-date` must be among the signed headers, so a signature cannot be replayed
later or against another service or host.

Reference: AWS General Reference, "Create a signed AWS API request" (SigV4).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from calendar import timegm
from urllib.parse import quote

from starlette.datastructures import Headers

from gateway.errors import CognitoError

SERVICE = "cognito-identity"
MAX_SKEW = 300
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<headers>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """The SigV4 key for one day, region and service."""
    k_date = _hmac(("AWS4" + secret).encode(), date)
    return _hmac(_hmac(_hmac(k_date, region), service), "aws4_request")


def canonical_request(
    method: str, path: str, query: str, headers: Headers, signed: list[str], body: bytes
) -> str:
    """The canonical request the client signed."""
    canonical_headers = "".join(
        f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed
    )
    pairs = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
        for k, _, v in (part.partition("=") for part in query.split("&") if part)
    )
    return "\n".join(
        [
            method,
            quote(path or "/", safe="/-_.~"),
            "&".join(f"{k}={v}" for k, v in pairs),
            canonical_headers,
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )


def verify(
    method: str,
    path: str,
    query: str,
    headers: Headers,
    body: bytes,
    keys: dict[str, str],
    region: str,
    now: float | None = None,
    service: str = SERVICE,
) -> str:
    """The access key id of a correctly signed request for `service` (cognito-identity, or
    the user-pool API's cognito-idp); CognitoError (as AWS words it) if not."""
    header = headers.get("authorization")
    if not header:
        raise CognitoError(
            "MissingAuthenticationTokenException", "Missing Authentication Token", 400
        )
    match = _AUTH.match(header.strip())
    if match is None:
        raise CognitoError(
            "IncompleteSignatureException", "Authorization header is not a valid SigV4 header.", 400
        )
    secret = keys.get(match["key"])
    if secret is None:
        raise CognitoError(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            400,
        )
    signed = match["headers"].split(";")
    amz_date = headers.get("x-amz-date", "")
    dated = re.fullmatch(r"\d{8}T\d{6}Z", amz_date)
    if "host" not in signed or "x-amz-date" not in signed or not dated:
        raise CognitoError(
            "IncompleteSignatureException", "host and x-amz-date must be signed.", 400
        )
    if match["service"] != service or match["region"] != region or amz_date[:8] != match["date"]:
        raise CognitoError(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region ({region}) and service ({service}).",
            403,
        )
    sent = timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    if abs((time.time() if now is None else now) - sent) > MAX_SKEW:
        raise CognitoError(
            "InvalidSignatureException",
            "Signature expired: the request time is more than 5 minutes from the server's.",
            403,
        )
    scope = f"{match['date']}/{match['region']}/{service}/aws4_request"
    request_hash = hashlib.sha256(
        canonical_request(method, path, query, headers, signed, body).encode()
    ).hexdigest()
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{request_hash}"
    expected = hmac.new(
        signing_key(secret, match["date"], match["region"], service),
        to_sign.encode(),
        hashlib.sha256,
    ).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        raise CognitoError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
            403,
        )
    return match["key"]
