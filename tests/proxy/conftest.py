"""nginx (Debian's package) started by the tests with deploy/nginx/cognate.conf, in front of
a sample app, with two gateway replicas sharing one Redis behind it."""

from __future__ import annotations

import shutil
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

ROOT = Path(__file__).parent.parent.parent


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


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    assert found, "nginx is installed by scripts/test.sh"
    return found


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
    conf = (ROOT / "deploy" / "nginx" / "cognate.conf").read_text()
    conf = conf.replace(
        "    server 127.0.0.1:8000;", "".join(f"    server 127.0.0.1:{r.port};\n" for r in replicas)
    )
    conf = conf.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{app.port};")
    conf = conf.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    prefix = Path(tempfile.mkdtemp(prefix="cognate-nginx-"))
    (prefix / "cognate.conf").write_text(conf)
    (prefix / "nginx.conf").write_text(
        f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {prefix}/body;\n"
        f"  proxy_temp_path {prefix}/proxy;\n  include {prefix}/cognate.conf;\n}}\n"
    )
    proc = subprocess.Popen(
        [
            nginx_binary(),
            "-p",
            str(prefix),
            "-c",
            str(prefix / "nginx.conf"),  # noqa: S603
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{listen}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/oauth2/sign_in", timeout=1)
            break
        except httpx.HTTPError:
            if proc.poll() is not None:
                error = proc.stderr.read().decode() if proc.stderr else "nginx died"
                raise RuntimeError(error) from None
            time.sleep(0.05)
    yield Stack(url, replicas, app)
    proc.terminate()
    proc.wait(timeout=10)
    if proc.stderr:
        proc.stderr.close()
    for replica in replicas:
        replica.stop()
    app.stop()
