"""An STS client for `AssumeRoleWithWebIdentity`, over httpx, for any AWS-compatible endpoint
(AWS regional STS, MinIO, Ceph RGW).

The call needs no AWS credentials of ours: the web-identity token is the proof. Answers are XML,
parsed with defusedxml (no entities, no DTDs). Throttling and 5xx are retried with full-jitter
exponential backoff inside a time budget; what remains is reported as a typed error so the API
layer can answer 503 (retry later), 400 NotAuthorizedException (STS refused our token, after one
fresh try) or 403 (a claim refused).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from dataclasses import dataclass
from datetime import datetime
from xml.etree.ElementTree import Element  # noqa: S405 - types only; parsing is defusedxml's

import httpx
from defusedxml import ElementTree

from gateway.credentials.errors import StsError
from gateway.outbound import http_client

log = logging.getLogger("cognate.sts")

_NS = re.compile(r"^\{[^}]*\}")
RETRYABLE_CODES = {
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalFailure",
    "IDPCommunicationError",
}


@dataclass(frozen=True)
class Credentials:
    """Temporary AWS credentials."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: int  # epoch seconds


def _text(root: Element, name: str) -> str | None:
    for element in root.iter():
        if _NS.sub("", element.tag) == name:
            return (element.text or "").strip()
    return None


def parse_credentials(body: bytes) -> Credentials:
    """Credentials from an AssumeRoleWithWebIdentity response; StsError if it is not one."""
    try:
        root = ElementTree.fromstring(body)
    except Exception as exc:  # defusedxml raises several kinds for unsafe or broken XML
        raise StsError("MalformedResponse", "STS answered with something that is not XML") from exc
    access, secret, token, expires = (
        _text(root, n) for n in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
    )
    if not (access and secret and token and expires):
        raise StsError("MalformedResponse", "STS answer lacks credentials")
    expiration = int(datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp())
    return Credentials(access, secret, token, expiration)


def parse_error(body: bytes) -> tuple[str, str]:
    """(code, message) from an STS error document, or generic values."""
    try:
        root = ElementTree.fromstring(body)
        return _text(root, "Code") or "Unknown", _text(root, "Message") or ""
    except Exception:
        return "Unknown", ""


class StsClient:
    """AssumeRoleWithWebIdentity with bounded, jittered retries."""

    def __init__(
        self,
        endpoint: str,
        timeout: float = 5.0,
        retries: int = 3,
        budget: float = 8.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._retries = retries
        self._budget = budget
        self._http = http or http_client(timeout)

    async def assume_role_with_web_identity(
        self,
        *,
        role_arn: str,
        session_name: str,
        web_identity_token: str,
        duration: int,
        policy: str | None = None,
    ) -> Credentials:
        """Call STS; StsError("Unavailable") once retries and the time budget are spent."""
        form = {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": role_arn,
            "RoleSessionName": session_name,
            "WebIdentityToken": web_identity_token,
            "DurationSeconds": str(duration),
        }
        if policy:
            form["Policy"] = policy
        deadline = time.monotonic() + self._budget
        last = StsError("Unavailable", "STS did not answer")
        for attempt in range(self._retries + 1):
            try:
                response = await self._http.post(self.endpoint, data=form)
            except httpx.HTTPError as exc:
                last = StsError("Unavailable", f"STS unreachable: {type(exc).__name__}")
            else:
                if response.status_code == 200:
                    return parse_credentials(response.content)
                code, message = parse_error(response.content)
                if response.status_code < 500 and code not in RETRYABLE_CODES:
                    raise StsError(code, message)
                last = StsError("Unavailable", f"STS {response.status_code} {code}")
            # Full jitter (AWS architecture blog): spreads retries of many callers apart.
            delay = random.uniform(0, min(1.0, 0.1 * 2**attempt))  # noqa: S311
            if attempt == self._retries or time.monotonic() + delay > deadline:
                break
            log.info("retrying STS", extra={"attempt": attempt + 1, "error": last.message})
            await asyncio.sleep(delay)
        raise last

    async def close(self) -> None:
        await self._http.aclose()
