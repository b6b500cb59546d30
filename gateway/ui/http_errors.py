"""Starlette's own errors — unknown path (404), wrong method (405) — in the wire format of
the area the request was meant for, instead of a bare "Not Found":

- the Cognito Identity API (`/cognito-identity`, or any request naming an `X-Amz-Target`):
  AWS JSON with `__type`, which every AWS SDK parses;
- the other machine endpoints (`/oauth2/…`, `/.well-known/…`, `/credentials`, `/_cognate/…`,
  health and metrics): OAuth-style JSON `{"error", "error_description"}`;
- everything else, a person's browser: the hosted error page, in the pages' style and language.

Also the favicon, so a browser's automatic `/favicon.ico` does not end in a 404 of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import CognitoError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.services import Services

    ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]

API_PREFIXES = ("/oauth2/", "/.well-known/", "/credentials", "/_cognate/")
API_PATHS = ("/healthz", "/readyz", "/metrics")
FAVICON = (Path(__file__).parent / "static" / "favicon.svg").read_bytes()

PAGES = {
    404: ("Page not found", "There is nothing at this address. Check the link, or start again."),
    405: ("Not allowed", "This page cannot be used that way."),
}


def is_cognito(request: Request) -> bool:
    """A request for the Cognito Identity API (its path, or an AWS SDK's target header)."""
    return request.url.path == "/cognito-identity" or "x-amz-target" in request.headers


def http_error(services: Services) -> ErrorHandler:
    """The handler for Starlette's HTTPException (404, 405, and any other it raises)."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
        status = exc.status_code
        headers = dict(exc.headers or {})
        path = request.url.path
        if is_cognito(request):
            from gateway.identity.cognito import error_response

            kind = "UnknownOperationException" if status == 405 else "ResourceNotFoundException"
            response = error_response(CognitoError(kind, _aws_message(status), status), "-")
            response.headers.update(headers)
            return response
        if path.startswith(API_PREFIXES) or path in API_PATHS:
            error = "invalid_request" if status == 405 else "not_found"
            return JSONResponse(
                {"error": error, "error_description": str(exc.detail)},
                status_code=status,
                headers={**headers, "Cache-Control": "no-store"},
            )
        title, message = PAGES.get(status, ("Something went wrong", str(exc.detail)))
        response = services.pages.error(request, title, message, status)
        response.headers.update(headers)
        return response

    return handle


def _aws_message(status: int) -> str:
    if status == 405:
        return "The Cognito Identity API takes POST requests (AWS JSON 1.1)."
    return "There is no such resource."


async def favicon(request: Request) -> Response:
    """The icon a browser asks for by itself (an SVG, which every current browser shows)."""
    return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})
