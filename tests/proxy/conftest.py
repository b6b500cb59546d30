"""nginx (Debian's package) started by the tests with deploy/nginx/cognate.conf (over TLS from
the test CA), in front of a sample app, with two gateway replicas sharing one Redis behind it."""

from __future__ import annotations

import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.helpers import AppServer, GatewayServer, RedisServer, free_port, make_settings
from tests.proxy.field import NAMES, nginx_binary, nginx_config
from tests.tls import make_pki


async def echo(request: Request) -> JSONResponse:
    """The sample app: shows the identity headers it received."""
    return JSONResponse(
        {k: v for k, v in request.headers.items() if k.startswith(("x-auth", "x-cognate"))}
        | {"path": request.url.path}
    )


@dataclass
class Stack:
    url: str
    replicas: list[GatewayServer]
    app: AppServer
    tls: ssl.SSLContext  # trusts the test CA that signed nginx's certificate


@pytest.fixture(scope="session")
def stack(redis_server: RedisServer) -> Iterator[Stack]:
    app = AppServer(Starlette(routes=[Route("/{path:path}", echo)]))
    app.start()
    port = free_port()
    settings = make_settings(
        port,
        redis_server.url,
        forward_auth={"policies": [{"path": "/admin", "groups": ["admins"]}]},
        # Long enough that only the cross-replica eviction (pub/sub) can explain a logout
        # taking effect during a test.
        sessions={"cache_ttl": 60},
    )
    replicas = [GatewayServer(settings), GatewayServer(settings, port=free_port())]
    for replica in replicas:
        replica.start()
    listen = free_port()
    pki = make_pki(NAMES)
    prefix = Path(tempfile.mkdtemp(prefix="cognate-nginx-"))
    config = nginx_config("127.0.0.1", listen, [r.port for r in replicas], app.port, pki, prefix)
    proc = subprocess.Popen(
        [nginx_binary(), "-p", str(prefix), "-c", str(config), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"https://127.0.0.1:{listen}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/oauth2/sign_in", timeout=1, verify=pki.context())
            break
        except httpx.HTTPError:
            if proc.poll() is not None:
                error = proc.stderr.read().decode() if proc.stderr else "nginx died"
                raise RuntimeError(error) from None
            time.sleep(0.05)
    yield Stack(url, replicas, app, pki.context())
    proc.terminate()
    proc.wait(timeout=10)
    if proc.stderr:
        proc.stderr.close()
    for replica in replicas:
        replica.stop()
    app.stop()
