"""What every OAuth endpoint shares: reading forms strictly, answering in RFC 6749 JSON, and
failing closed when the store or the hashing pool cannot answer."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import (
    InvalidRequest,
    InvalidToken,
    OAuthError,
    StoreUnavailable,
    TemporarilyUnavailable,
)
from gateway.pool import Overloaded

log = logging.getLogger("cognate.op")

Handler = Callable[[Request], Awaitable[Response]]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_json(handler: Handler) -> Handler:
    """Render OAuthError as JSON; a store outage or overload as 503 temporarily_unavailable."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except OAuthError as exc:
            return error_response(exc)
        except (StoreUnavailable, Overloaded) as exc:
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
    (RFC 6749 §3.2: parameters MUST NOT be repeated)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")
    form = await request.form(max_files=0, max_fields=64, max_part_size=16 * 1024)
    reject_repeats(list(form.keys()))
    return form


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
