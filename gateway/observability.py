"""Structured logs and request ids. Metrics and the audit trail arrive with the operations work.

Logs are one JSON object per line on stderr. Nothing that could be a secret is logged by this
module: no query strings (codes, tokens), no headers, no bodies.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
traceparent: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "traceparent", default=None
)
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the request id and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id.get(),
        }
        trace = traceparent.get()
        if trace:
            entry["traceparent"] = trace
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


# HTTP client libraries log full URLs at INFO (codes and tokens ride in query strings) and
# headers at DEBUG (cookies, Authorization). They stay at WARNING whatever log_level says.
CHATTY_LIBRARIES = ("httpx", "httpcore", "hpack", "urllib3", "botocore")


def quiet_libraries() -> None:
    """Keep libraries that would log secrets at WARNING."""
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_logging(level: str = "info") -> None:
    """JSON logs on stderr for the gateway and uvicorn."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet_libraries()
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our access log has no query strings


class RequestContext:
    """ASGI middleware: a request id (kept from `X-Request-Id` if sane), an access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = logging.getLogger("cognate.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = incoming_trace = ""
        for name, value in scope["headers"]:  # one pass; most requests carry neither header
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"traceparent":
                incoming_trace = value.decode("latin-1")
        valid = 0 < len(incoming) <= 64 and incoming.isprintable()
        rid = incoming if valid else os.urandom(16).hex()
        token = request_id.set(rid)
        # W3C Trace Context: keep the caller's trace id in our log lines (well-formed only).
        trace_token = traceparent.set(
            incoming_trace if incoming_trace and _TRACEPARENT.match(incoming_trace) else None
        )
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.log.isEnabledFor(logging.INFO):
                self.log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "ms": round((time.perf_counter() - start) * 1000, 2),
                    },
                )
            request_id.reset(token)
            traceparent.reset(trace_token)
