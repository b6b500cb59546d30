"""What every OAuth endpoint shares: reading forms strictly, answering in RFC 6749 JSON, and
failing closed when the store or the hashing pool cannot answer.

`oauth_route` mounts a back-channel endpoint (token, userinfo, revocation, introspection) so
that *every* answer is OAuth JSON: a wrong method is a JSON 405 and a body over `MAX_BODY` a
JSON 413 (Starlette's own answers to both are plain text, which clients cannot parse). For that
the endpoint enforces the body limit itself: Starlette's limiter would replace any answer to an
over-long `Content-Length` with its plain-text one, so the route lifts it (`max_body_size`
on a route overrides the application's).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Awaitable, Callable, Collection
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import FormData, UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.clients import ClientRegistry
from gateway.errors import (
    InvalidRequest,
    InvalidToken,
    OAuthError,
    TemporarilyUnavailable,
    Unavailable,
)
from gateway.op import cors

log = logging.getLogger("cognate.op")

Handler = Callable[[Request], Awaitable[Response]]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_BODY = 64 * 1024  # as gateway.app.MAX_BODY: no OAuth request is near this
MAX_FIELDS = 64


class MethodNotAllowed(OAuthError):
    status_code = 405


class BodyTooLarge(OAuthError):
    status_code = 413


class OAuthEndpoint:
    """An ASGI endpoint (so Starlette's router lets every method through to it) that answers
    a method it does not serve with a JSON 405 and an `Allow` header; with `cors`, it answers
    preflights and adds CORS headers for browser apps (`gateway.op.cors`)."""

    renders_own_errors = True  # so `gateway.direct` dispatches it before the router

    def __init__(
        self, handler: Handler, methods: Collection[str], cors: ClientRegistry | None = None
    ) -> None:
        self.handler = handler
        self.methods = frozenset(methods) | ({"HEAD"} if "GET" in methods else frozenset())
        self.cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        if self.cors is not None and cors.is_preflight(request):
            response = cors.preflight(request, self.cors, self.methods)
        elif request.method in self.methods:
            response = await self.handler(request)
        else:
            response = error_response(MethodNotAllowed(f"{request.method} is not allowed here"))
            response.headers["Allow"] = ", ".join(sorted(self.methods))
        if self.cors is not None and not cors.is_preflight(request):
            cors.add_headers(request, response, self.cors)
        await response(scope, receive, send)


def oauth_route(
    path: str, handler: Handler, methods: Collection[str], cors: ClientRegistry | None = None
) -> Route:
    """A route whose every answer, errors included, is OAuth JSON (see the module docstring);
    `cors`: the client registry that says which browser origins may read the answers."""
    return Route(path, OAuthEndpoint(handler, methods, cors), max_body_size=sys.maxsize)


def oauth_json(handler: Handler) -> Handler:
    """Render OAuthError as JSON, and `Unavailable` (a store outage, an overload) as 503
    temporarily_unavailable: the one place that renders that family as OAuth JSON."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except OAuthError as exc:
            return error_response(exc)
        except Unavailable as exc:
            log.warning("failing closed: %s", exc)
            return error_response(TemporarilyUnavailable("try again shortly"))

    return wrapped


def error_response(exc: OAuthError) -> JSONResponse:
    return JSONResponse(exc.as_dict(), status_code=exc.status_code, headers=exc.headers())


def json_no_store(body: dict[str, Any]) -> JSONResponse:
    """A JSON body that no cache may keep (token responses, userinfo, introspection)."""
    return JSONResponse(body, headers=NO_STORE)


async def read_form(request: Request) -> FormData:
    """An `application/x-www-form-urlencoded` body with every parameter at most once
    (RFC 6749 §3.2: parameters MUST NOT be repeated), at most `MAX_BODY` bytes."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")
    body = await _body(request)
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FIELDS,
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the body is not a valid form (UTF-8, at most 64 fields)") from None
    reject_repeats([key for key, _ in pairs])
    fields: list[tuple[str, str | UploadFile]] = list(pairs)
    return FormData(fields)


async def _body(request: Request) -> bytes:
    """The body, refused (413) from its `Content-Length` before reading, or once the bytes
    streamed so far pass the limit (a chunked body has no length)."""
    try:
        declared = int(request.headers.get("content-length", "0"))
    except ValueError:
        raise InvalidRequest("Content-Length is not a number") from None
    if declared > MAX_BODY:
        raise BodyTooLarge(f"the request body is larger than {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise BodyTooLarge(f"the request body is larger than {MAX_BODY} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise InvalidRequest("the client went away") from None
    return b"".join(chunks)


def reject_repeats(keys: list[str]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise InvalidRequest(f"parameter {key} is repeated")
        seen.add(key)


def bearer_token(request: Request, form: FormData | None = None) -> str:
    """The access token from `Authorization: Bearer` (or an RFC 6750 §2.2 form field)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    from_form = form.get("access_token") if form is not None else None
    if header and from_form:
        raise InvalidRequest("send the token once")
    if header:
        if scheme.lower() != "bearer" or not value.strip():
            raise InvalidToken("expected a Bearer token")
        return value.strip()
    if isinstance(from_form, str) and from_form:
        return from_form
    raise InvalidToken("no access token")
