"""Sidecar mode: the gateway in front of one app in the same pod (`cognate proxy --upstream`).

Every request that is not for the gateway itself (its reserved paths: `/oauth2/*`, `/login*`,
`/signup*`, `/forgot*`, `/logout`, `/account/*`, `/saml/*`, `/static/*`, `/theme.css`,
`/.well-known/*`, `/cognito-identity`, `/credentials`, `/metrics`, `/_cognate/*`) goes to the
upstream app — after the same decision as forward-auth
(`proxy.decide`): signed in and allowed by the route policies, or a redirect to sign-in
(browser), a 401 (API) or a 403.

- The app receives the identity headers (`X-Auth-Request-*`, `X-Cognate-Assertion`); the same
  headers sent by the client are dropped first, and so are Cognate's own cookies.
- Request and response bodies stream both ways (no buffering; `sidecar.max_body_size` bounds an
  upload); WebSockets are proxied frame by frame after the same check.
- `sidecar.health_paths` reach the app without sign-in, by exact path match only (so
  `/healthz/../admin` or `/healthzX` are not health paths). The gateway's own liveness and
  readiness move to `/_cognate/healthz` and `/_cognate/readyz` (`SIDECAR_HEALTH`): `/healthz`
  and `/readyz` are the app's, since an app's health path is usually one of those two.
- With `sidecar.credentials`, `GET /_cognate/aws/credentials` serves the app role-scoped AWS
  credentials in the format of the AWS SDKs' container provider: set
  `AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:<port>/_cognate/aws/credentials` and
  `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=<sidecar.credentials.token_path>` in the app's
  container. The workload is a developer identity of an identity pool (`developer_provider`,
  `workload`), so the role, the session tags and the scope-down policy come from that pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from gateway.cookies import without_cookies
from gateway.errors import CognitoError
from gateway.outbound import http_client
from gateway.proxy import IDENTITY_HEADERS, decide, is_api

if TYPE_CHECKING:
    from gateway.services import Services
    from gateway.settings import SidecarSettings

CREDENTIALS_PATH = "/_cognate/aws/credentials"
RESERVED = (
    "/oauth2/",
    "/login",
    "/signup",
    "/forgot",
    "/logout",
    "/account/",
    "/saml/",
    "/static/",
    "/theme.css",
    "/.well-known/",
    "/cognito-identity",
    "/cognito-idp",  # the user-pool API's own path (gateway.cognito)
    "/credentials",
    "/metrics",
    "/_cognate/",
)
# The gateway's own probes in sidecar mode (the app keeps /healthz and /readyz): what the Helm
# chart's probes ask for.
SIDECAR_HEALTH = {"/healthz": "/_cognate/healthz", "/readyz": "/_cognate/readyz"}
# RFC 9110 §7.6.1 hop-by-hop headers, and what the proxy sets itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
    }
)


class SidecarProxy:
    """The ASGI app behind the catch-all route: auth, then the upstream app."""

    def __init__(self, services: Services, config: SidecarSettings) -> None:
        self.services = services
        self.config = config
        self.upstream = str(config.upstream).rstrip("/")
        self.health = frozenset(config.health_paths)
        self._http = http_client(
            httpx.Timeout(connect=5.0, read=None, write=None, pool=5.0), base_url=self.upstream
        )
        self._own_cookies = {
            services.pages.cookie_name(services.settings.sessions.cookie_name),
            services.pages.cookie_name("cognate_csrf"),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(WebSocket(scope, receive, send))
            return
        request = Request(scope, receive)
        response = await self._http_exchange(request)
        await response(scope, receive, send)

    async def _check(self, request: Request | WebSocket, method: str) -> Response:
        """The forward-auth decision for this request (202 = go ahead)."""
        if request.url.path in self.health:
            return Response(status_code=202)
        cookie = request.cookies.get(
            self.services.pages.cookie_name(self.services.settings.sessions.cookie_name)
        )
        return await decide(
            self.services,
            cookie,
            str(request.url),
            method,
            redirect=True,
            api=isinstance(request, Request) and is_api(request),
        )

    def _headers(self, request: Request | WebSocket, decision: Response) -> dict[str, str]:
        """The client's headers minus hop-by-hop, identity headers and our cookies, plus the
        identity headers of this decision and the X-Forwarded-* the app may want."""
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            if name in HOP_BY_HOP or name in IDENTITY_HEADERS or name.startswith("sec-websocket"):
                continue
            if name == "cookie":
                value = without_cookies(value, self._own_cookies)
                if not value:
                    continue
            headers[name] = value
        for name in IDENTITY_HEADERS:
            if name in decision.headers:
                headers[name] = decision.headers[name]
        url = request.url
        headers["x-forwarded-proto"] = url.scheme.replace("ws", "http")
        headers["x-forwarded-host"] = url.netloc
        if request.client:
            headers["x-forwarded-for"] = request.client.host
        return headers

    async def _http_exchange(self, request: Request) -> Response:
        decision = await self._check(request, request.method)
        if decision.status_code != 202:
            return decision
        upstream_request = self._http.build_request(
            request.method,
            request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            headers=self._headers(request, decision),
            content=request.stream(),
        )
        try:
            answer = await self._http.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            return JSONResponse(
                {"error": "upstream unavailable", "detail": type(exc).__name__},
                status_code=502,
                headers={"Cache-Control": "no-store"},
            )
        headers = [
            (k, v)
            for k, v in answer.headers.multi_items()
            if k.lower() not in HOP_BY_HOP or k.lower() == "content-length"
        ]
        response = StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            background=BackgroundTask(answer.aclose),
        )
        response.raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers
        ]
        return response

    async def _websocket(self, client: WebSocket) -> None:
        decision = await self._check(client, "GET")
        if decision.status_code != 202:
            # Browsers cannot follow a redirect here: refuse the handshake (403 to the client).
            await client.close(code=1008)
            return
        target = "ws" + self.upstream.removeprefix("http") + client.url.path
        if client.url.query:
            target += f"?{client.url.query}"
        protocols = [p.strip() for p in client.headers.get("sec-websocket-protocol", "").split(",")]
        try:
            upstream = await ws_connect(
                target,
                additional_headers=self._headers(client, decision),
                subprotocols=[p for p in protocols if p] or None,  # type: ignore[misc]
                open_timeout=10,
                max_size=self.config.max_message_size,
            )
        except (TimeoutError, OSError, InvalidHandshake, InvalidURI):
            await client.close(code=1011)
            return
        await client.accept(subprotocol=upstream.subprotocol)
        async with upstream:
            await _pump_both(client, upstream)

    async def close(self) -> None:
        await self._http.aclose()


async def _pump_both(client: WebSocket, upstream: Any) -> None:
    """Frames both ways until either side closes; then the other is closed too."""

    async def client_to_upstream() -> None:
        with contextlib.suppress(WebSocketDisconnect, ConnectionClosed):
            while True:
                message = await client.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    await upstream.send(message["bytes"])
                elif message.get("text") is not None:
                    await upstream.send(message["text"])

    async def upstream_to_client() -> None:
        with contextlib.suppress(ConnectionClosed, WebSocketDisconnect, RuntimeError):
            async for frame in upstream:
                if isinstance(frame, bytes):
                    await client.send_bytes(frame)
                else:
                    await client.send_text(frame)

    tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
    _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    with contextlib.suppress(Exception):
        await client.close()


def container_credentials(services: Services, config: SidecarSettings) -> Route:
    """`GET /_cognate/aws/credentials`: the AWS SDKs' container credentials provider."""
    from gateway.credentials.roles import choose_role
    from gateway.credentials.vendor import VendRequest, session_name

    creds_config = config.credentials
    assert creds_config is not None  # noqa: S101 - only mounted when configured
    token = write_token_file(Path(creds_config.token_path))

    async def endpoint(request: Request) -> Response:
        presented = request.headers.get("authorization", "")
        if not secrets.compare_digest(presented.encode(), token.encode()):
            return JSONResponse({"message": "invalid authorization token"}, status_code=401)
        try:
            pool = await services.pools.get(creds_config.identity_pool)
            provider = creds_config.developer_provider
            identity_id = await services.identities.resolve(
                provider, creds_config.workload, pool.id
            )
            role = choose_role(pool, provider, {"sub": creds_config.workload})
            creds = await services.vendor.credentials(
                VendRequest(
                    pool=pool,
                    identity_id=identity_id,
                    role_arn=role,
                    amr=["authenticated", provider],
                    tags={},
                    session_name=session_name(creds_config.workload, identity_id),
                )
            )
        except CognitoError as exc:
            return JSONResponse(
                {"code": exc.type_name, "message": exc.message},
                status_code=503 if exc.status_code >= 500 else 403,
            )
        return JSONResponse(
            {
                "AccessKeyId": creds.access_key_id,
                "SecretAccessKey": creds.secret_access_key,
                "Token": creds.session_token,
                "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(creds.expiration)),
            },
            headers={"Cache-Control": "no-store"},
        )

    return Route(CREDENTIALS_PATH, endpoint, methods=["GET"])


def write_token_file(path: Path) -> str:
    """The shared secret the app's SDK sends: created once, readable by the pod's containers
    (a shared emptyDir), never logged. An existing token is kept across restarts."""
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    path.write_text(token)
    path.chmod(0o640)
    return token


def routes(services: Services, config: SidecarSettings) -> tuple[list[BaseRoute], SidecarProxy]:
    """The sidecar's own routes and the catch-all proxy (mounted last, so gateway paths win)."""
    proxy = SidecarProxy(services, config)
    found: list[BaseRoute] = []
    if config.credentials is not None:
        found.append(container_credentials(services, config))
    found.append(Mount("", app=proxy, max_body_size=config.max_body_size))
    return found, proxy
