"""Vending role-scoped AWS credentials: mint a web-identity token, call STS, cache the answer.

The cache key is (identity, role, session policy); the value is sealed at rest and lives until
shortly before the credentials expire. Concurrent requests for one key make one STS call: within
a process they await the same task; across replicas a short lock in the store lets one replica
call while the others wait briefly for its result.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass

from gateway.credentials.errors import (
    CredentialError,
    RoleNotAllowed,
    StsError,
    StsFailed,
    StsRefusedToken,
    StsRejectedClaim,
    StsUnavailable,
)
from gateway.credentials.sts import Credentials, StsClient
from gateway.credentials.web_identity import token_audience
from gateway.crypto import Sealer
from gateway.metrics import Metrics
from gateway.settings import IdentityPoolSettings
from gateway.store import Store, record_json
from gateway.tokens import TokenService

log = logging.getLogger("cognate.credentials")

# Cached credentials are renewed this long before they expire, so every answer has at least
# this much left: SDKs ask again from 15 minutes before expiry (botocore's credential_process
# and refreshable credentials; `cognate aws-credentials` too), and an answer with less would
# have them ask on every call. Short-lived credentials (STS allows 15 minutes) are renewed
# once half their life is gone instead, so they are still cached at all.
REFRESH_MARGIN = 900


def refresh_margin(duration: int) -> int:
    """Seconds before expiry at which cached credentials `duration` seconds long renew."""
    return min(REFRESH_MARGIN, duration // 2)


LOCK_TTL = 15
_SESSION_NAME = re.compile(r"[^\w+=,.@-]")


def session_name(preferred: str | None, identity_id: str) -> str:
    """A RoleSessionName naming the user (CloudTrail shows it): only `[\\w+=,.@-]`, ≤ 64."""
    name = _SESSION_NAME.sub("-", preferred or identity_id.split(":")[-1])[:64]
    return name if len(name) >= 2 else identity_id.split(":")[-1][:64]


@dataclass(frozen=True)
class VendRequest:
    """Everything needed to vend credentials for one identity and role."""

    pool: IdentityPoolSettings
    identity_id: str
    role_arn: str
    amr: list[str]
    tags: dict[str, str]
    session_name: str


class CredentialVendor:
    """STS calls with caching and single flight."""

    def __init__(
        self, store: Store, sealer: Sealer, tokens: TokenService, metrics: Metrics | None = None
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._tokens = tokens
        self._metrics = metrics
        self._clients: dict[str, StsClient] = {}
        self._inflight: dict[str, asyncio.Task[Credentials]] = {}
        self.sts_calls = 0

    def client(self, pool: IdentityPoolSettings) -> StsClient:
        client = self._clients.get(pool.sts.endpoint)
        if client is None:
            client = StsClient(
                pool.sts.endpoint, timeout=pool.sts.timeout, retries=pool.sts.retries
            )
            self._clients[pool.sts.endpoint] = client
        return client

    async def credentials(self, request: VendRequest) -> Credentials:
        """Cached credentials, or fresh ones from STS."""
        policy = self._policy(request)
        digest = hashlib.sha256(f"{request.role_arn}\n{policy or ''}".encode()).hexdigest()[:32]
        key = self._store.key("creds", request.identity_id, digest)
        margin = refresh_margin(request.pool.sts.duration)
        cached = await self._cached(key, margin)
        if self._metrics is not None:
            self._metrics.credential_cache.labels("hit" if cached else "miss").inc()
        if cached is not None:
            return cached
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(key, request, policy))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    def _policy(self, request: VendRequest) -> str | None:
        if not request.pool.session_policy:
            return None
        return request.pool.session_policy.replace("${cognate:identity_id}", request.identity_id)

    async def _cached(self, key: str, margin: int) -> Credentials | None:
        raw = await self._store.get(key)
        if raw is None:
            return None
        try:
            data = json.loads(self._sealer.open(raw, purpose="creds", context=key.encode()))
        except ValueError:
            return None
        creds = Credentials(**data)
        return creds if creds.expiration - time.time() > margin else None

    async def _fetch(self, key: str, request: VendRequest, policy: str | None) -> Credentials:
        margin = refresh_margin(request.pool.sts.duration)
        lock = f"{key}:lock"
        if not await self._store.create(lock, b"1", ttl=LOCK_TTL):
            # Another replica is calling STS for this key: wait a little for its answer.
            for attempt in range(20):
                await asyncio.sleep(min(0.5, 0.02 * 2**attempt))
                cached = await self._cached(key, margin)
                if cached is not None:
                    return cached
                if await self._store.get(lock) is None:
                    break
        try:
            creds = await self._call_sts(request, policy)
            ttl = creds.expiration - int(time.time()) - margin
            if ttl > 0:
                blob = self._sealer.seal(record_json(creds), purpose="creds", context=key.encode())
                await self._store.put(key, blob, ttl=ttl)
            return creds
        finally:
            await self._store.delete(lock)

    async def _call_sts(self, request: VendRequest, policy: str | None) -> Credentials:
        pool = request.pool
        duration = pool.sts.duration
        fresh_token = False
        while True:
            token = self._tokens.web_identity_token(
                identity_id=request.identity_id,
                audience=token_audience(pool.id, "authenticated" in request.amr),
                amr=request.amr,
                ttl=pool.token_ttl,
                tags=request.tags,
                source_identity=request.session_name,
            )
            try:
                self.sts_calls += 1
                creds = await self.client(pool).assume_role_with_web_identity(
                    role_arn=request.role_arn,
                    session_name=request.session_name,
                    web_identity_token=token,
                    duration=duration,
                    policy=policy,
                )
                self._count("ok")
                return creds
            except StsError as exc:
                self._count(exc.code)
                if exc.code == "InvalidIdentityToken" and not fresh_token:
                    fresh_token = True  # e.g. STS fetched our JWKS before a rotation
                    continue
                if _over_role_maximum(exc) and duration > ANY_ROLE_ALLOWS:
                    # SECURITY-TESTS F45: the duration is clamped to the role's maximum,
                    # which only STS knows; every role allows an hour (IAM's least maximum).
                    log.warning(
                        "role %s allows less than %d s: asking for %d s",
                        request.role_arn,
                        duration,
                        ANY_ROLE_ALLOWS,
                    )
                    duration = ANY_ROLE_ALLOWS
                    continue
                raise _refusal(exc) from None

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.sts_calls.labels(result[:40]).inc()

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()


ANY_ROLE_ALLOWS = 3600  # seconds: IAM's smallest MaxSessionDuration, so any role allows it


def _over_role_maximum(exc: StsError) -> bool:
    """STS's answer to a DurationSeconds above the role's MaxSessionDuration."""
    return exc.code == "ValidationError" and "MaxSessionDuration" in exc.message


def _refusal(exc: StsError) -> CredentialError:
    """What STS's answer means for the caller (rendered by the API that asked)."""
    if exc.code == "Unavailable":
        return StsUnavailable("The security token service is unavailable; try again.")
    if exc.code in ("InvalidIdentityToken", "ExpiredTokenException"):
        # Refused even after one freshly minted token: as AWS answers a web-identity token
        # STS will not take, a NotAuthorizedException (400). A 502 here made every SDK retry
        # (5xx is retryable), each retry another round of STS calls that cannot succeed.
        return StsRefusedToken(
            "Invalid login token. The security token service refused the web identity token "
            f"({exc.code}): check the IAM OIDC provider of this gateway's issuer."
        )
    if exc.code == "IDPRejectedClaim":
        return StsRejectedClaim(f"A claim was rejected: {exc.message}")
    if exc.code in ("AccessDenied", "AccessDeniedException"):
        return RoleNotAllowed("The role's trust policy does not allow this identity.")
    return StsFailed(f"STS error {exc.code}.")
