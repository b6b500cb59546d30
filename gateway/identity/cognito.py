"""The Cognito Identity wire API (AWS JSON 1.1), so boto3 and the other AWS SDKs work unchanged.

`POST /` (and `POST /cognito-identity`) with `X-Amz-Target: AWSCognitoIdentityService.<Op>`.
GetId, GetOpenIdToken, GetCredentialsForIdentity and UnlinkIdentity are unsigned, as in AWS
(the login tokens are the proof); every other operation needs a SigV4 signature by one of the
`admin_keys`. Errors are `{"__type": ..., "message": ...}` with `x-amzn-ErrorType`, as AWS sends
them; timestamps are epoch seconds; field names and limits follow the service model.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.credentials.roles import choose_role
from gateway.credentials.vendor import VendRequest, session_name
from gateway.credentials.web_identity import provider_name, token_audience
from gateway.errors import (
    CognitoError,
    Unavailable,
    invalid_parameter,
    not_authorized,
    not_found,
)
from gateway.identity.ids import Identity, LoginTaken, TooManyLogins
from gateway.identity.pools import roles_as_aws
from gateway.identity.providers import COGNITO_PROVIDER, LoginRejected, VerifiedLogin
from gateway.identity.sigv4 import verify as verify_sigv4
from gateway.settings import IdentityPoolSettings

if TYPE_CHECKING:
    from gateway.services import Services

log = logging.getLogger("cognate.cognito")

TARGET_PREFIX = "AWSCognitoIdentityService."
# What the AWS SDKs send from a browser page, and the answer headers they read.
AWS_REQUEST_HEADERS = (
    "Content-Type, X-Amz-Target, X-Amz-User-Agent, X-Amz-Date, X-Amz-Security-Token, "
    "X-Amz-Content-Sha256, Authorization, Amz-Sdk-Invocation-Id, Amz-Sdk-Request, Cache-Control"
)
AWS_EXPOSED_HEADERS = "x-amzn-RequestId, x-amzn-ErrorType, x-amzn-ErrorMessage, Date"
CONTENT_TYPE = "application/x-amz-json-1.1"
_ID = re.compile(r"^[\w-]+:[0-9a-f-]+$")
Body = dict[str, Any]
Operation = Callable[[Body], Awaitable[Body]]


# AWS accepts 10 logins of up to 50,000 characters each (two SAML responses are easily
# 64 KB), plus names and fields: 1 MiB holds that even with every "/" JSON-escaped. Larger is
# refused with 413 in AWS JSON; the route's own Starlette limit (twice this) is only a backstop.
MAX_BODY = 1024 * 1024


async def read_body(request: Request) -> bytes:
    """The request body, refused as AWS JSON when larger than MAX_BODY (by its Content-Length
    before reading, or while reading a chunked one)."""
    too_large = CognitoError(
        "InvalidParameterException",
        f"The request body is larger than the {MAX_BODY} bytes this API accepts.",
        413,
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise too_large
    return bytes(body)


def error_response(exc: CognitoError, request_id: str) -> Response:
    headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": f"{exc.type_name}:"}
    if exc.retry_after:
        headers["Retry-After"] = str(exc.retry_after)
    body = json.dumps({"__type": exc.type_name, "message": exc.message})
    return Response(body, status_code=exc.status_code, media_type=CONTENT_TYPE, headers=headers)


def _identity_id(body: Body, field: str = "IdentityId") -> str:
    value = body.get(field)
    if not isinstance(value, str) or not 1 <= len(value) <= 55 or not _ID.match(value):
        raise invalid_parameter(
            f"1 validation error detected: Value at '{field[0].lower()}"
            f"{field[1:]}' failed to satisfy constraint: Member must satisfy "
            "regular expression pattern: [\\w-]+:[0-9a-f-]+"
        )
    return value


def _logins(body: Body, field: str = "Logins") -> dict[str, str]:
    logins = body.get(field) or {}
    if (
        not isinstance(logins, dict)
        or len(logins) > 10
        or not all(
            isinstance(k, str)
            and isinstance(v, str)
            and 1 <= len(k) <= 128
            and 1 <= len(v) <= 50000
            for k, v in logins.items()
        )
    ):
        raise invalid_parameter(f"{field} must map up to 10 provider names to tokens.")
    return logins


@dataclass(frozen=True)
class Authenticated:
    """The outcome of checking an identity's logins."""

    identity_id: str
    pool: IdentityPoolSettings
    logins: list[VerifiedLogin]


class CognitoApi:
    """The operations; each takes and returns an AWS JSON body."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self._pool_origins = frozenset(
            origin for pool in services.settings.identity_pools for origin in pool.cors_origins
        )
        self.public: dict[str, Operation] = {
            "GetId": self.get_id,
            "GetOpenIdToken": self.get_open_id_token,
            "GetCredentialsForIdentity": self.get_credentials_for_identity,
            "UnlinkIdentity": self.unlink_identity,
        }
        from gateway.identity.cognito_admin import admin_operations

        self.admin: dict[str, Operation] = admin_operations(self)

    # -- transport ---------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """One API call; whatever goes wrong, the answer is AWS JSON with `__type`."""
        request_id = str(uuid.uuid4())
        try:
            response = await self._handle(request, request_id)
        except Exception:  # never Starlette's HTML 500 page to an SDK
            log.exception("Cognito API call failed", extra={"request_id": request_id})
            error = CognitoError("InternalErrorException", "An internal error occurred.", 500)
            response = error_response(error, request_id)
        origin = request.headers.get("origin")
        if origin and self._origin_allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = AWS_EXPOSED_HEADERS
        response.headers.add_vary_header("Origin")
        return response

    async def preflight(self, request: Request) -> Response:
        """CORS preflight for a browser app's SDK (`@aws-sdk/client-cognito-identity`,
        Amplify): the answer names the origin only when it is allowed, never `*`."""
        response = Response(status_code=204)
        origin = request.headers.get("origin", "")
        asked = request.headers.get("access-control-request-method", "").upper()
        if origin and asked == "POST" and self._origin_allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = "POST"
            response.headers["Access-Control-Allow-Headers"] = AWS_REQUEST_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        response.headers.add_vary_header("Origin")
        return response

    def _origin_allowed(self, origin: str) -> bool:
        """A page of a registered client (its allowed origins) or one an identity pool lists
        (`identity_pools[].cors_origins`) may call the API from the browser."""
        return self.s.clients.origin_allowed(origin, None) or origin in self._pool_origins

    async def _handle(self, request: Request, request_id: str) -> Response:
        target = request.headers.get("x-amz-target", "")
        operation = target.removeprefix(TARGET_PREFIX)
        try:
            handler = self.public.get(operation) or self.admin.get(operation)
            if not target.startswith(TARGET_PREFIX) or handler is None:
                raise CognitoError("UnknownOperationException", f"Unknown operation {target!r}.")
            raw = await read_body(request)
            if operation in self.admin:
                verify_sigv4(
                    request.method,
                    request.url.path,
                    request.url.query,
                    request.headers,
                    raw,
                    {k.access_key_id: k.secret_access_key for k in self.s.settings.admin_keys},
                    self.s.settings.region,
                )
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise CognitoError("SerializationException", "The body is not JSON.") from None
            if not isinstance(body, dict):
                raise CognitoError("SerializationException", "The body must be a JSON object.")
            result = await handler(body)
        except CognitoError as exc:  # credential errors (gateway.credentials.errors) too
            return error_response(exc, request_id)
        except Unavailable as exc:  # the store, an overload: fail closed, as AWS says it
            log.warning("failing closed: %s", exc)
            return error_response(
                CognitoError(
                    "InternalErrorException",
                    "The service is temporarily unavailable.",
                    503,
                    retry_after=exc.retry_after,
                ),
                request_id,
            )
        return Response(
            json.dumps(result),
            media_type=CONTENT_TYPE,
            headers={"x-amzn-RequestId": request_id, "Cache-Control": "no-store"},
        )

    # -- shared steps ------------------------------------------------------------------------

    async def verify_logins(
        self, pool: IdentityPoolSettings, logins: dict[str, str]
    ) -> list[VerifiedLogin]:
        verified = []
        for name, token in logins.items():
            try:
                verified.append(await self.s.verifier.verify(pool, name, token))
            except LoginRejected as exc:
                raise not_authorized(str(exc)) from None
        return verified

    async def identity_for(
        self, pool: IdentityPoolSettings, verified: list[VerifiedLogin], start: str | None = None
    ) -> str:
        """The identity these logins belong to (creating or linking as needed)."""
        ids = self.s.identities
        owners: set[str] = {start} if start else set()
        for login in verified:
            if login.identity_id:
                owners.add(login.identity_id)
            elif await ids.find(login.provider, login.subject):
                # resolve, not just find: a concurrent first login may have claimed the link
                # but not yet written the record, and resolve completes it.
                owners.add(await ids.resolve(login.provider, login.subject, pool.id))
        if start and len(owners) > 1:
            guest = await ids.get(start)
            if guest is not None and not guest.authenticated:
                owners.discard(start)  # a guest signing in joins the identity it already has
        if len(owners) > 1:
            raise CognitoError(
                "ResourceConflictException", "The logins belong to different identities."
            )
        try:
            if owners:
                identity_id = owners.pop()
                if await ids.get(identity_id) is None:
                    raise not_authorized("Invalid login token. The identity no longer exists.")
            else:
                first = verified[0]
                identity_id = await ids.resolve(first.provider, first.subject, pool.id)
            for login in verified:
                if login.identity_id is None and not await ids.find(login.provider, login.subject):
                    await ids.link(identity_id, login.provider, login.subject)
                    await self.s.audit.record(
                        "identity.linked",
                        identity_id=identity_id,
                        provider=login.provider,
                        pool=pool.id,
                    )
            identity = await ids.add_pool(identity_id, pool.id)
        except LoginTaken:
            raise CognitoError(
                "ResourceConflictException", "A login is already linked to another identity."
            ) from None
        except TooManyLogins:
            raise CognitoError(
                "LimitExceededException", "An identity can have at most 20 logins."
            ) from None
        if identity.disabled:
            raise not_authorized(f"Access to Identity '{identity_id}' is forbidden.")
        return identity_id

    async def pool_for(self, identity: Identity, names: list[str]) -> IdentityPoolSettings:
        """The pool an identity is used in (the one whose providers cover these logins)."""
        candidates = [p for p in identity.pools if self.s.pools.known(p)]
        for pool_id in candidates:
            pool = await self.s.pools.get(pool_id)
            accepted = set(self.s.verifier.providers(pool)) | {COGNITO_PROVIDER}
            if set(names) <= accepted:
                return pool
        if not candidates:
            raise not_found(f"Identity '{identity.identity_id}' not found.")
        raise not_authorized(
            "Invalid login token. Provider is not configured for the "
            "identity pool of this identity."
        )

    async def authenticate(self, body: Body) -> Authenticated:
        """Check IdentityId + Logins: the logins must prove this identity (or a guest's)."""
        identity_id = _identity_id(body)
        logins = _logins(body)
        identity = await self.s.identities.get(identity_id)
        if identity is None:
            raise not_found(f"Identity '{identity_id}' not found.")
        pool = await self.pool_for(identity, list(logins))
        if identity.disabled:
            raise not_authorized(f"Access to Identity '{identity_id}' is forbidden.")
        if not logins:
            if identity.authenticated:
                raise not_authorized(
                    "Logins don't match. Please include at least one valid "
                    "login for this identity or identity pool."
                )
            if not pool.allow_unauthenticated:
                raise not_authorized(
                    "Unauthenticated access is not supported for this identity pool."
                )
            return Authenticated(identity_id, pool, [])
        verified = await self.verify_logins(pool, logins)
        if identity.authenticated:
            proven = {
                v.identity_id or await self.s.identities.find(v.provider, v.subject)
                for v in verified
            }
            if identity_id not in proven:
                raise not_authorized(
                    "Logins don't match. Please include at least one valid "
                    "login for this identity or identity pool."
                )
            complete = pool.id in identity.pools and all(
                v.identity_id == identity_id or identity.has(v.provider, v.subject)
                for v in verified
            )
            if complete:  # the hot path: nothing to link or record
                return Authenticated(identity_id, pool, verified)
        return Authenticated(
            await self.identity_for(pool, verified, start=identity_id), pool, verified
        )

    def login_name(self, identity: Identity, provider: str) -> str:
        """The `Logins` key an SDK uses for one of the identity's stored logins. A sign-in at
        this gateway's own pages is stored under its connector (`local`, `corp`…), but a pool
        knows it only through the gateway's ID tokens: by the `cognate` provider's name (the
        issuer host, as in the Logins map). Every other login keeps its provider name."""
        if provider not in self.s.connectors:
            return provider
        for pool in self.s.settings.identity_pools:
            if pool.id in identity.pools:
                for name, config in self.s.verifier.providers(pool).items():
                    if config.type == "cognate":
                        return name
        return provider_name(self.s.settings.issuer)

    def amr(self, auth: Authenticated) -> list[str]:
        if not auth.logins:
            return ["unauthenticated"]
        return ["authenticated", *dict.fromkeys(v.provider for v in auth.logins)]

    def principal_tags(self, pool: IdentityPoolSettings, auth: Authenticated) -> dict[str, str]:
        tags: dict[str, str] = {}
        for login in auth.logins:
            for tag, claim in pool.principal_tags.get(login.provider, {}).items():
                value = login.claims.get(claim)
                if isinstance(value, str | int | bool) and str(value):
                    tags[tag[:128]] = str(value)[:256]
        return tags

    # -- unsigned operations -----------------------------------------------------------------

    async def get_id(self, body: Body) -> Body:
        pool_id = _identity_id(body, "IdentityPoolId")
        pool = await self.s.pools.get(pool_id)
        logins = _logins(body)
        if not logins:
            if not pool.allow_unauthenticated:
                raise not_authorized(
                    "Unauthenticated access is not supported for this identity pool."
                )
            return {"IdentityId": (await self.s.identities.create_guest(pool.id)).identity_id}
        verified = await self.verify_logins(pool, logins)
        return {"IdentityId": await self.identity_for(pool, verified)}

    async def get_open_id_token(self, body: Body) -> Body:
        auth = await self.authenticate(body)
        token = self.s.tokens.web_identity_token(
            identity_id=auth.identity_id,
            audience=token_audience(
                auth.pool.id, bool(auth.logins), for_sts=auth.pool.allow_classic_flow
            ),
            amr=self.amr(auth),
            ttl=auth.pool.token_ttl,
            tags=self.principal_tags(auth.pool, auth),
        )
        return {"IdentityId": auth.identity_id, "Token": token}

    async def get_credentials_for_identity(self, body: Body) -> Body:
        custom = body.get("CustomRoleArn")
        if custom is not None and (not isinstance(custom, str) or not 20 <= len(custom) <= 2048):
            raise invalid_parameter("CustomRoleArn is not a valid ARN.")
        auth = await self.authenticate(body)
        pool = auth.pool
        first = auth.logins[0] if auth.logins else None
        role = choose_role(
            pool, first.provider if first else None, first.claims if first else {}, custom
        )
        preferred = None
        if first is not None:
            preferred = next(
                (
                    str(first.claims[c])
                    for c in ("email", "preferred_username", "cognito:username")
                    if first.claims.get(c)
                ),
                None,
            )
        await self.s.audit.record(
            "credentials.requested",
            identity_id=auth.identity_id,
            pool=pool.id,
            role=role,
            providers=[v.provider for v in auth.logins],
        )
        creds = await self.s.vendor.credentials(
            VendRequest(
                pool=pool,
                identity_id=auth.identity_id,
                role_arn=role,
                amr=self.amr(auth),
                tags=self.principal_tags(pool, auth),
                session_name=session_name(preferred, auth.identity_id),
            )
        )
        return {
            "IdentityId": auth.identity_id,
            "Credentials": {
                "AccessKeyId": creds.access_key_id,
                "SecretKey": creds.secret_access_key,
                "SessionToken": creds.session_token,
                "Expiration": creds.expiration,
            },
        }

    async def unlink_identity(self, body: Body) -> Body:
        remove = body.get("LoginsToRemove")
        if not isinstance(remove, list) or not all(isinstance(p, str) for p in remove):
            raise invalid_parameter("LoginsToRemove must be a list of provider names.")
        if "Logins" not in body:
            raise invalid_parameter("Logins is required.")
        auth = await self.authenticate(body)
        identity = await self.s.identities.get(auth.identity_id)
        if identity is None:
            raise not_found(f"Identity '{auth.identity_id}' not found.")
        # By the names DescribeIdentity shows: the issuer host unlinks the sign-ins made at
        # this gateway's pages (the next one there gets an identity of its own; ID tokens
        # already issued name this identity until they expire).
        for login in identity.logins:
            if self.login_name(identity, login.provider) in remove:
                await self.s.identities.unlink(auth.identity_id, login.provider, login.subject)
                await self.s.audit.record(
                    "identity.unlinked", identity_id=auth.identity_id, provider=login.provider
                )
        return {}

    async def roles_of(self, body: Body) -> Body:
        pool = await self.s.pools.get(_identity_id(body, "IdentityPoolId"))
        return roles_as_aws(pool)


def routes(services: Services) -> list[BaseRoute]:
    """The API at `/` and `/cognito-identity` (POST, and OPTIONS for CORS; GET / stays the
    home page)."""
    api = CognitoApi(services)
    return [
        Route("/", api.handle, methods=["POST"], max_body_size=2 * MAX_BODY),
        Route("/cognito-identity", api.handle, methods=["POST"], max_body_size=2 * MAX_BODY),
        Route("/", api.preflight, methods=["OPTIONS"]),
        Route("/cognito-identity", api.preflight, methods=["OPTIONS"]),
    ]
