"""The forward-auth hot path as plain ASGI.

A reverse proxy asks `/oauth2/auth` before every request it forwards, so that one answer is
most of the gateway's traffic. When the session is in the in-process cache (see
`gateway.sessions.SessionCache`) and the route's policy lets it through, this layer answers
the 202 itself — the same headers `gateway.proxy.decide` gives, from the same `grant` — without
building Starlette's request, routing and response objects. Everything else (no cookie, a cache
miss, a refusal, a redirect for a browser) goes on to the full application, which answers the
slow way; so this layer can only ever make an answer faster, never different.

It sits inside the request-id and metrics middleware, so request ids, access logs and request
counts stay the same for every answer.

The encoded answer is kept for a second per Cookie header and URL (the answer carries the app's
Cookie header, the client's cookies without Cognate's), tied to the very cached session
object it was made for: a session that leaves the cache (sign-out on any replica, expiry) takes
its answers with it, and the signed assertion in a kept answer has at least 29 of its 60
seconds left.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.forwarded import original_request, trusted_proxies, url_host
from gateway.proxy import grant

if TYPE_CHECKING:
    from gateway.services import Services
    from gateway.sessions import Session

PATH = "/oauth2/auth"
KEEP = 1.0  # seconds an encoded answer is reused
ANSWERS = 10_000  # answers kept (least recently used out)
Headers = list[tuple[bytes, bytes]]


class _Route:
    """What the metrics middleware reads from `scope["route"]`."""

    path = PATH


class ForwardAuthFastPath:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        self.proxies = trusted_proxies(services.settings)
        self.mode = services.settings.forward_auth.mode
        name = services.settings.sessions.cookie_name
        # An app host's own cookie first, then the shared one (the same name without a domain).
        self.cookies = tuple(
            dict.fromkeys(
                (
                    services.pages.cookie_name(name, host_only=True),
                    services.pages.cookie_name(name),
                )
            )
        )
        self.route = _Route()
        self._answers: OrderedDict[tuple[str, str | None], tuple[Session, float, Headers]] = (
            OrderedDict()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] not in ("GET", "HEAD")
        ):
            await self.app(scope, receive, send)
            return
        # The first of repeated headers counts, as in Starlette's request.headers.get().
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"])}
        cookies = headers.get("cookie")
        cookie = self._cookie(cookies)
        client = scope.get("client")
        trusted = self.proxies.trusts(client[0] if client else "")
        url = original_request(headers, trusted, self.mode).url
        session = self.services.sessions.cached(cookie, url_host(url))
        if session is None or cookie is None or cookies is None:
            await self.app(scope, receive, send)
            return
        answer = self._answer(session, cookies, url)
        if answer is None:  # refused: the full app explains which rule, as a page
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": answer,
            }
        )
        await send({"type": "http.response.body", "body": b""})

    def _answer(self, session: Session, cookies: str, url: str | None) -> Headers | None:
        """The 202's headers for this session, Cookie header and URL (kept a second), or None
        if refused."""
        key = (cookies, url)
        now = time.monotonic()
        kept = self._answers.get(key)
        if kept is not None and kept[0] is session and now < kept[1]:
            return kept[2]
        granted = grant(self.services, session, url, cookies)
        if isinstance(granted, str):
            return None
        answer = [
            (b"cache-control", b"no-store"),
            (b"content-length", b"0"),
            *((k.lower().encode(), v.encode("latin-1")) for k, v in granted.items()),
        ]
        self._answers[key] = (session, now + KEEP, answer)
        self._answers.move_to_end(key)
        if len(self._answers) > ANSWERS:
            self._answers.popitem(last=False)
        return answer

    def _cookie(self, header: str | None) -> str | None:
        """The session cookie's value (the first, unquoted as sent; a quoted value misses the
        cache and gets the full app's parsing), in the order of `self.cookies`."""
        if not header:
            return None
        for wanted in self.cookies:
            if wanted not in header:
                continue
            for part in header.split(";"):
                name, _, value = part.partition("=")
                if name.strip() == wanted:
                    return value.strip()
        return None
