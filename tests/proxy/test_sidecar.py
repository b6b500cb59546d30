"""Sidecar mode (`cognate proxy --upstream`): the gateway in front of a real app over HTTP —
sign-in, identity headers, spoofed headers dropped, health paths by exact match, streaming
bodies both ways, and WebSockets."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from tests.helpers import (
    AppServer,
    Browser,
    GatewayServer,
    RedisServer,
    form_fields,
    free_port,
    make_settings,
)

CHUNK = 64 * 1024


def pattern(size: int) -> Iterator[bytes]:
    sent = 0
    while sent < size:
        piece = bytes((sent // CHUNK + i) % 251 for i in range(min(CHUNK, size - sent)))
        sent += len(piece)
        yield piece


async def echo(request: Request) -> Response:
    return JSONResponse(
        {"path": request.url.path, "query": request.url.query, "headers": dict(request.headers)}
    )


async def set_cookie(request: Request) -> Response:
    response = PlainTextResponse("set")
    response.set_cookie("appsession", request.query_params["v"])
    return response


async def upload(request: Request) -> Response:
    digest, size = hashlib.sha256(), 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return JSONResponse({"size": size, "sha256": digest.hexdigest()})


async def download(request: Request) -> Response:
    size = int(request.query_params["size"])

    async def body() -> AsyncIterator[bytes]:
        for piece in pattern(size):
            yield piece

    return StreamingResponse(body(), media_type="application/octet-stream")


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.headers.get("x-auth-request-email", "nobody"))
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text("echo:" + message["text"])
        else:
            await websocket.send_bytes(b"echo:" + message["bytes"])


@pytest.fixture(scope="module")
def sidecar(redis_server: RedisServer) -> Iterator[tuple[GatewayServer, AppServer]]:
    app = AppServer(
        Starlette(
            routes=[
                Route("/", lambda r: PlainTextResponse("app home")),
                Route("/healthz", lambda r: PlainTextResponse("the app is alive")),
                Route("/healthz-app", lambda r: PlainTextResponse("healthy")),
                Route("/healthz-echo", echo),
                Route("/set-cookie", set_cookie),
                Route("/upload", upload, methods=["POST"]),
                Route("/download", download),
                WebSocketRoute("/ws", ws_echo),
                Route("/{path:path}", echo, methods=["GET", "POST", "PUT", "DELETE"]),
            ]
        )
    ).start()
    gateway = GatewayServer(
        make_settings(
            free_port(),
            redis_server.url,
            sidecar={
                "upstream": app.url,
                "health_paths": ["/healthz", "/healthz-app", "/healthz-echo"],
            },
        )
    ).start()
    yield gateway, app
    gateway.stop()
    app.stop()


async def signed_in(gateway: GatewayServer) -> Browser:
    email = f"side-{secrets.token_hex(3)}@example.com"
    await gateway.add_user(email, email_verified=True)
    browser = Browser(gateway.url)
    first = await browser.http.get("/reports?q=1", headers={"Accept": "text/html"})
    assert first.status_code == 302
    assert first.headers["location"].startswith(f"{gateway.url}/oauth2/start?rd=")
    start = await browser.http.get(first.headers["location"])
    done = await browser.sign_in(start, email)
    assert done.status_code == 303 and done.headers["location"] == f"{gateway.url}/reports?q=1"
    browser.email = email  # type: ignore[attr-defined]
    return browser


async def test_sign_in_then_the_app_sees_who_is_calling(
    sidecar: tuple[GatewayServer, AppServer],
) -> None:
    gateway, _ = sidecar
    anonymous = httpx.AsyncClient(base_url=gateway.url)
    try:
        api = await anonymous.get("/reports", headers={"Accept": "application/json"})
        assert api.status_code == 401
        assert (await anonymous.get("/")).status_code == 302  # the app's home is the app's
        assert (await anonymous.get("/healthz-app")).text == "healthy"
        for near_miss in ("/healthz-app/", "/healthz-appx", "/healthz-app/../reports"):
            answer = await anonymous.get(near_miss, headers={"Accept": "application/json"})
            assert answer.status_code == 401, near_miss
    finally:
        await anonymous.aclose()
    browser = await signed_in(gateway)
    try:
        browser.http.cookies.set("app_pref", "dark")
        page = await browser.http.get(
            "/reports?q=1",
            headers={"X-Auth-Request-Email": "admin@evil.example", "X-Cognate-Assertion": "x"},
        )
        assert page.status_code == 200
        seen = page.json()
        assert seen["path"] == "/reports" and seen["query"] == "q=1"
        headers = seen["headers"]
        assert headers["x-auth-request-email"] == browser.email  # type: ignore[attr-defined]
        assert headers["x-cognate-assertion"].count(".") == 2
        assert "cognate_session" not in headers.get("cookie", "")  # our cookies stay ours
        assert "app_pref=dark" in headers["cookie"]
        assert (await browser.http.get("/")).text == "app home"
        # The gateway keeps its own paths.
        assert (await browser.http.get("/.well-known/openid-configuration")).status_code == 200
    finally:
        await browser.aclose()


async def test_the_apps_health_path_reaches_the_app(
    sidecar: tuple[GatewayServer, AppServer],
) -> None:
    # `--health-path /healthz` used to be dead config: the gateway answered /healthz itself, so
    # the kubelet probed the gateway and never the app. In sidecar mode the gateway's own probes
    # live under /_cognate/ and /healthz and /readyz belong to the app.
    gateway, _ = sidecar
    async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
        app_health = await anonymous.get("/healthz")
        assert (app_health.status_code, app_health.text) == (200, "the app is alive")
        # /readyz is not a health path here: the app's, behind sign-in like any other path.
        app_ready = await anonymous.get("/readyz", headers={"Accept": "application/json"})
        assert app_ready.status_code == 401
        own = await anonymous.get("/_cognate/healthz")
        assert (own.status_code, own.text) == (200, "ok")
        ready = await anonymous.get("/_cognate/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_bodies_stream_both_ways(sidecar: tuple[GatewayServer, AppServer]) -> None:
    gateway, _ = sidecar
    browser = await signed_in(gateway)
    size = 24 * 1024 * 1024 + 17  # well past the gateway's own 64 KiB request limit
    expected = hashlib.sha256(b"".join(pattern(size))).hexdigest()

    async def body() -> AsyncIterator[bytes]:
        for piece in pattern(size):
            yield piece

    try:
        sent = await browser.http.post("/upload", content=body(), timeout=120)
        assert sent.status_code == 200, sent.text[:200]
        assert sent.json() == {"size": size, "sha256": expected}
        digest, received = hashlib.sha256(), 0
        async with browser.http.stream("GET", f"/download?size={size}", timeout=120) as answer:
            assert answer.status_code == 200
            async for chunk in answer.aiter_bytes():
                digest.update(chunk)
                received += len(chunk)
        assert (received, digest.hexdigest()) == (size, expected)
    finally:
        await browser.aclose()


async def test_websockets_after_sign_in_only(sidecar: tuple[GatewayServer, AppServer]) -> None:
    gateway, _ = sidecar
    ws_url = "ws" + gateway.url.removeprefix("http") + "/ws"
    with pytest.raises(InvalidStatus):  # no session: the handshake is refused
        async with ws_connect(ws_url):
            pass
    browser = await signed_in(gateway)
    cookie = browser.http.cookies["cognate_session"]
    try:
        async with ws_connect(
            ws_url, additional_headers={"Cookie": f"cognate_session={cookie}"}
        ) as ws:
            assert await ws.recv() == browser.email  # type: ignore[attr-defined]
            await ws.send("hello")
            assert await ws.recv() == "echo:hello"
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"echo:\x00\x01"
    finally:
        await browser.aclose()


async def test_app_down_is_a_502(redis_server: RedisServer) -> None:
    gateway = GatewayServer(
        make_settings(
            free_port(),
            redis_server.url,
            sidecar={"upstream": f"http://127.0.0.1:{free_port()}", "health_paths": ["/up"]},
        )
    ).start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            down = await client.get("/up")
        assert down.status_code == 502
        assert json.loads(down.text)["error"] == "upstream unavailable"
        # The image's HEALTHCHECK (`cognate healthcheck`) asks the gateway, not the app: the
        # gateway is alive although its app is down (/healthz would be the app's, a 502 here).
        assert cognate_healthcheck(gateway.url).returncode == 0
    finally:
        gateway.stop()
    gone = cognate_healthcheck(gateway.url)
    assert gone.returncode == 1 and "Connection refused" in gone.stderr


def test_the_healthcheck_of_a_gateway_that_is_not_a_sidecar(redis_server: RedisServer) -> None:
    gateway = GatewayServer(make_settings(free_port(), redis_server.url)).start()
    try:
        # Its own probe is at /_cognate/healthz in every mode: one request, no 404 logged.
        assert cognate_healthcheck(gateway.url + "/").returncode == 0
        # A URL that would put the probe in a query or a fragment (and fetch the home page).
        for odd in (f"{gateway.url}/?x=1", f"{gateway.url}/#x", "file:///tmp"):
            refused = cognate_healthcheck(odd)
            assert refused.returncode == 1 and "give http(s)://host" in refused.stderr, odd
    finally:
        gateway.stop()


def test_the_healthcheck_follows_no_redirect_and_survives_garbage() -> None:
    async def elsewhere(request: Request) -> Response:
        return Response(status_code=302, headers={"Location": "http://127.0.0.1:1/healthz"})

    redirecting = AppServer(Starlette(routes=[Route("/_cognate/healthz", elsewhere)])).start()
    try:
        moved = cognate_healthcheck(redirecting.url)
        assert moved.returncode == 1 and "answered 302" in moved.stderr
    finally:
        redirecting.stop()
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def garbage() -> None:
        connection, _ = listener.accept()
        connection.recv(4096)
        connection.sendall(b"garbage\r\n\r\n")
        connection.close()

    threading.Thread(target=garbage, daemon=True).start()
    try:
        broken = cognate_healthcheck(f"http://127.0.0.1:{port}")
        assert broken.returncode == 1 and "Traceback" not in broken.stderr
        assert broken.stderr.startswith("unhealthy: "), broken.stderr
    finally:
        listener.close()


def cognate_healthcheck(url: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway", "healthcheck", "--url", url]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)  # noqa: S603


def test_the_reserved_paths_are_all_the_gateway_keeps(
    sidecar: tuple[GatewayServer, AppServer],
) -> None:
    # The module docstring (and README) promise the app every path but these: check the app.
    from starlette.routing import Mount

    from gateway.proxy.sidecar import RESERVED

    gateway, _ = sidecar
    kept = [r.path for r in gateway.app.routes if not (isinstance(r, Mount) and r.path == "")]
    assert "/" not in kept  # the app's home page is the app's
    for path in kept:
        assert any(path == p.rstrip("/") or path.startswith(p) for p in RESERVED), path


async def test_one_users_app_cookies_never_reach_another(
    sidecar: tuple[GatewayServer, AppServer],
) -> None:
    # The proxy's HTTP client must keep no cookie jar: an app's Set-Cookie for one browser goes
    # to that browser only, never onto the next request of somebody else.
    gateway, _ = sidecar
    alice = await signed_in(gateway)
    bob = await signed_in(gateway)
    try:
        answer = await alice.http.get("/set-cookie?v=alice-secret")
        assert "appsession=alice-secret" in answer.headers["set-cookie"]  # alice's browser
        async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
            seen = (await anonymous.get("/healthz-echo")).json()["headers"]
        assert "alice-secret" not in seen.get("cookie", "")
        seen = (await bob.http.get("/whoami")).json()["headers"]
        assert "alice-secret" not in seen.get("cookie", "")
    finally:
        await alice.aclose()
        await bob.aclose()


async def test_the_device_page_is_the_gateways_and_the_rest_the_apps(
    sidecar: tuple[GatewayServer, AppServer], redis_server: RedisServer
) -> None:
    # verification_uri names /device: a user typing their code there must reach the gateway
    # (GET and POST), never the app, which keeps every other path, /devices and /device/1 too.
    from tests.op.test_device import DEVICE, device_settings

    _, app = sidecar
    gateway = GatewayServer(
        device_settings(free_port(), redis_server.url, sidecar={"upstream": app.url})
    ).start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
            meta = (await http.get("/.well-known/openid-configuration")).json()
            assert (
                meta["device_authorization_endpoint"]
                == f"{gateway.url}/oauth2/device_authorization"
            )
            start = await http.post("/oauth2/device_authorization", data={"client_id": "cli"})
            assert start.status_code == 200, start.text
            code = start.json()["user_code"]
            page = await http.get("/device", params={"user_code": code})
            assert page.status_code == 200 and "<title>Connect a device" in page.text
            assert code in page.text
            denied = await http.post("/device", data={**form_fields(page.text), "decision": "deny"})
            assert denied.status_code == 303, denied.text
            assert denied.headers["location"].startswith("/device?result=denied&proof=")
            poll = await http.post(
                "/oauth2/token",
                data={
                    "grant_type": DEVICE,
                    "device_code": start.json()["device_code"],
                    "client_id": "cli",
                },
            )
            assert poll.json()["error"] == "access_denied"
        browser = await signed_in(gateway)
        try:
            for path in ("/devices", "/device/1"):
                answer = await browser.http.get(path)
                assert answer.status_code == 200 and answer.json()["path"] == path, path
        finally:
            await browser.aclose()
    finally:
        gateway.stop()
