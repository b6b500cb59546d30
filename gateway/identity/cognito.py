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
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.credentials.roles import choose_role
from gateway.credentials.vendor import VendRequest, session_name
from gateway.credentials.web_identity import token_audience
from gateway.errors import (
    CognitoError,
    Overloaded,
    Unavailable,
    invalid_parameter,
    not_authorized,
    not_found,
)
from gateway.identity.cognito_admin import CognitoAdminApi
from gateway.identity.cognito_steps import (
    Body,
    IdentitySteps,
    Operation,
    identity_id_in,
    logins_in,
)
from gateway.identity.ids import Identity
from gateway.identity.providers import COGNITO_PROVIDER, VerifiedLogin
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


# AWS accepts 10 logins of up to 50,000 characters each (two SAML responses are easily
# 64 KB), plus names and fields: 1 MiB holds that even with every "/" JSON-escaped. Larger is
# refused with 413 in AWS JSON by `read_body`, which never reads past it.
MAX_BODY = 1024 * 1024
# The routes' Starlette limit. Starlette swaps any answer to a request whose Content-Length
# exceeds it for its own text/plain 413, so it sits far above what `read_body` refuses (by
# that header, before reading a byte): every oversized body gets the AWS JSON answer.
ROUTE_BODY_LIMIT = 1 << 40


async def read_body(request: Request) -> bytes:
    """The request body, refused as AWS JSON when larger than MAX_BODY (by its Content-Length
    before reading, or while reading a chunked one)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise _too_large()
    body = b""
    while True:  # the ASGI messages themselves: Request.stream's generator showed in profiles
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        body += chunk
        if len(body) > MAX_BODY:
            raise _too_large()
        if not message.get("more_body", False):
            return body


def _too_large() -> CognitoError:
    return CognitoError(
        "InvalidParameterException",
        f"The request body is larger than the {MAX_BODY} bytes this API accepts.",
        413,
    )


def new_request_id() -> str:
    """An `x-amzn-RequestId`: a random (version 4) UUID, as AWS's are — formatted here, at a
    quarter of `str(uuid.uuid4())`'s cost, which showed in every call's profile."""
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def json_object(raw: bytes) -> Body:
    """An AWS JSON 1.1 request body: a JSON object, or SerializationException."""
    try:
        body = orjson.loads(raw or b"{}")  # strict: UTF-8, no NaN, no lone surrogates
    except orjson.JSONDecodeError:  # a ValueError; nesting past 1024 levels too
        raise CognitoError("SerializationException", "The body is not JSON.") from None
    if not isinstance(body, dict):
        raise CognitoError("SerializationException", "The body must be a JSON object.")
    return body


def unavailable_response(exc: Unavailable, request_id: str) -> Response:
    """The store or an overload: fail closed, as AWS words it, with Retry-After. Too much
    work waiting is throttling (TooManyRequestsException, 429: the SDKs back off and retry
    it); a store that does not answer is InternalErrorException (503)."""
    log.warning("failing closed: %s", exc)
    error = (
        CognitoError(
            "TooManyRequestsException", "Too many requests.", 429, retry_after=exc.retry_after
        )
        if isinstance(exc, Overloaded)
        else CognitoError(
            "InternalErrorException",
            "The service is temporarily unavailable.",
            503,
            retry_after=exc.retry_after,
        )
    )
    return error_response(error, request_id)


class AwsJsonAnswer(Response):
    """A call's AWS JSON 1.1 answer (200), its headers built as they go on the wire: this is
    every successful call of both Cognito APIs, and Starlette's header handling was a tenth of
    a GetUser's CPU."""

    media_type = CONTENT_TYPE

    def __init__(
        self, result: Body, request_id: str, cors: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.status_code = 200
        self.background = None
        try:
            self.body = orjson.dumps(result)
        except TypeError:  # a value orjson refuses (an int past 64 bits): json writes anything
            self.body = json.dumps(result).encode()
        self.raw_headers = [
            (b"content-length", str(len(self.body)).encode()),
            (b"content-type", _CONTENT_TYPE),
            (b"x-amzn-requestid", request_id.encode()),
            (b"cache-control", b"no-store"),
            *(cors or ()),
        ]


_CONTENT_TYPE = CONTENT_TYPE.encode()
_VARY = (b"vary", b"Origin")


def cors_headers(origin: str | None, allowed: Callable[[str], bool]) -> list[tuple[bytes, bytes]]:
    """An answer's CORS headers: the page's origin, named only when `allowed(origin)`, and
    `Vary: Origin` always (the answer depends on it)."""
    if origin and allowed(origin):
        return [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-expose-headers", _EXPOSED),
            _VARY,
        ]
    return [_VARY]


_EXPOSED = AWS_EXPOSED_HEADERS.encode()


def error_response(exc: CognitoError, request_id: str) -> Response:
    headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": f"{exc.type_name}:"}
    if exc.retry_after:
        headers["Retry-After"] = str(exc.retry_after)
    body = json.dumps({"__type": exc.type_name, "message": exc.message})
    return Response(body, status_code=exc.status_code, media_type=CONTENT_TYPE, headers=headers)


@dataclass(frozen=True)
class Authenticated:
    """The outcome of checking an identity's logins."""

    identity_id: str
    pool: IdentityPoolSettings
    logins: list[VerifiedLogin]


class CognitoApi:
    """The transport and the unsigned operations; each operation takes and returns an AWS JSON
    body. The signed ones are `CognitoAdminApi`'s, the steps both take `IdentitySteps`'."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self.steps = IdentitySteps(services)
        self._pool_origins = frozenset(
            origin for pool in services.settings.identity_pools for origin in pool.cors_origins
        )
        self.public: dict[str, Operation] = {
            "GetId": self.get_id,
            "GetOpenIdToken": self.get_open_id_token,
            "GetCredentialsForIdentity": self.get_credentials_for_identity,
            "UnlinkIdentity": self.unlink_identity,
        }
        self.admin: dict[str, Operation] = CognitoAdminApi(services, self.steps).operations

    # -- transport ---------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """One API call; whatever goes wrong, the answer is AWS JSON with `__type`."""
        request_id = new_request_id()
        try:
            response = await self._handle(request, request_id)
        except Exception:  # never Starlette's HTML 500 page to an SDK
            log.exception("Cognito API call failed", extra={"request_id": request_id})
            error = CognitoError("InternalErrorException", "An internal error occurred.", 500)
            response = error_response(error, request_id)
        origin = request.headers.get("origin")
        response.raw_headers += cors_headers(origin, self._origin_allowed)
        return response

    async def preflight(self, request: Request) -> Response:
        """CORS preflight for a browser app's SDK (`@aws-sdk/client-cognito-identity`,
        Amplify): the answer names the origin only when it is allowed, never `*`."""
        response = Response(status_code=204, headers={"x-amzn-RequestId": new_request_id()})
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
            result = await handler(json_object(raw))
        except CognitoError as exc:  # credential errors (gateway.credentials.errors) too
            return error_response(exc, request_id)
        except Unavailable as exc:  # the store, an overload: fail closed, as AWS says it
            return unavailable_response(exc, request_id)
        return AwsJsonAnswer(result, request_id)

    # -- steps of the unsigned operations ----------------------------------------------------

    async def pools_for(self, identity: Identity, names: list[str]) -> list[IdentityPoolSettings]:
        """The pools an identity is used in whose providers cover these logins, in the order
        it was first used in them (at least one, or the error AWS gives)."""
        candidates = [p for p in identity.pools if self.s.pools.known(p)]
        if not candidates:
            raise not_found(f"Identity '{identity.identity_id}' not found.")
        covering = []
        for pool_id in candidates:
            pool = await self.s.pools.get(pool_id)
            accepted = set(self.s.verifier.providers(pool)) | {COGNITO_PROVIDER}
            if set(names) <= accepted:
                covering.append(pool)
        if not covering:
            raise not_authorized(
                "Invalid login token. Provider is not configured for the "
                "identity pool of this identity."
            )
        return covering

    async def _verified_in(
        self, pools: list[IdentityPoolSettings], logins: dict[str, str]
    ) -> tuple[IdentityPoolSettings, list[VerifiedLogin]]:
        """The first of `pools` whose providers accept these login tokens, and the logins as
        it verified them. A Cognate login's identity ID is its `sub` in every pool, and
        GetCredentialsForIdentity names no pool: a pool whose `cognate` provider takes only
        other clients' tokens is passed over for the next, instead of refusing the call."""
        refused: CognitoError | None = None
        for pool in pools:
            try:
                return pool, await self.steps.verify_logins(pool, logins)
            except CognitoError as exc:  # refused by this pool (not an outage: Unavailable)
                refused = refused or exc
        assert refused is not None  # noqa: S101 - pools is never empty
        raise refused

    async def authenticate(self, body: Body) -> Authenticated:
        """Check IdentityId + Logins: the logins must prove this identity (or a guest's)."""
        identity_id = identity_id_in(body)
        logins = logins_in(body)
        identity = await self.s.identities.get(identity_id)
        if identity is None:
            raise not_found(f"Identity '{identity_id}' not found.")
        pools = await self.pools_for(identity, list(logins))
        pool = pools[0]
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
        pool, verified = await self._verified_in(pools, logins)
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
            await self.steps.identity_for(pool, verified, start=identity_id), pool, verified
        )

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
        pool_id = identity_id_in(body, "IdentityPoolId")
        pool = await self.s.pools.get(pool_id)
        logins = logins_in(body)
        if not logins:
            if not pool.allow_unauthenticated:
                raise not_authorized(
                    "Unauthenticated access is not supported for this identity pool."
                )
            return {"IdentityId": (await self.s.identities.create_guest(pool.id)).identity_id}
        verified = await self.steps.verify_logins(pool, logins)
        return {"IdentityId": await self.steps.identity_for(pool, verified)}

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
            if self.steps.login_name(identity, login.provider) in remove:
                await self.s.identities.unlink(auth.identity_id, login.provider, login.subject)
                await self.s.audit.record(
                    "identity.unlinked", identity_id=auth.identity_id, provider=login.provider
                )
        return {}


def routes(api: CognitoApi) -> list[BaseRoute]:
    """The API at `/cognito-identity` (POST, and OPTIONS for CORS), and the preflight at `/`:
    `POST /` is shared with the user-pool API, which hands this API's calls to `api`
    (`gateway.cognito.api.routes`); GET / stays the home page."""
    return [
        Route("/cognito-identity", api.handle, methods=["POST"], max_body_size=ROUTE_BODY_LIMIT),
        Route("/", api.preflight, methods=["OPTIONS"]),
        Route("/cognito-identity", api.preflight, methods=["OPTIONS"]),
    ]
