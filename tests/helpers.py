"""Shared test machinery: real servers on loopback, and a small browser-like client.

- `RedisServer`: a private `redis-server` on a free port (the suite never touches a Redis it did
  not start), which tests may stop and restart to simulate outages.
- `GatewayServer`: the real app under uvicorn on a free port, in a thread with its own event loop.
  `await gw.call(fn)` runs `fn(services)` on the server's loop (its Redis connections live there).
- `Browser`: httpx with a cookie jar that signs in through the hosted page like a person would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import uvicorn

from gateway.app import create_app
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.settings_loader import settings_from_dict
from gateway.users.passwords import PasswordHasher

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    import random

    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


class RedisServer:
    """A redis-server process of our own."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="cognate-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra: list[str] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/test.sh installs it)")
        self.proc = subprocess.Popen(  # noqa: S603
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--maxmemory-policy",
                "noeviction",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def freeze(server: RedisServer) -> None:
    """Stop the server with SIGSTOP: connections stay open, nothing is answered (a frozen
    network or a stalled host gives no error either) until `thaw`."""
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)


def thaw(server: RedisServer) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGCONT)


def make_settings(port: int, redis_url: str, **overrides: Any) -> Settings:
    """Test settings: a confidential client, a public client, a service client."""
    issuer = f"http://127.0.0.1:{port}"
    data: dict[str, Any] = {
        "issuer": issuer,
        "secret_key": "test-secret-key-" + "x" * 32,
        "store": {"url": redis_url, "prefix": f"t{secrets.token_hex(4)}"},
        "tokens": {"leeway": 5},
        "clients": [
            {
                "client_id": "web",
                "client_secret": "web-secret-0123456789",
                "redirect_uris": ["https://app.example.com/cb", "https://app.example.com/cb2"],
                "post_logout_redirect_uris": ["https://app.example.com/bye"],
            },
            {
                "client_id": "spa",
                "token_endpoint_auth_method": "none",
                "redirect_uris": ["https://spa.example.com/cb"],
            },
            {
                "client_id": "native",
                "token_endpoint_auth_method": "none",
                "redirect_uris": ["http://127.0.0.1/callback"],
            },
            {
                "client_id": "service",
                "client_secret": "service-secret-0123456789",
                "grant_types": ["client_credentials"],
                "scope": "reports.read reports.write",
            },
        ],
    }
    data.update(overrides)
    return settings_from_dict(data)


class AppServer:
    """Any ASGI app under uvicorn on 127.0.0.1:<port>, in a thread with its own event loop."""

    def __init__(
        self, app: Any, port: int | None = None, tls: tuple[str, str] | None = None
    ) -> None:
        """`tls`: (certificate chain file, key file) to serve https."""
        self.port = port or free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.app = app
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            loop="asyncio",
            lifespan="on",
            # As `cognate serve` runs it: the gateway decides itself which proxy headers to
            # believe (forward_auth.trusted_proxies), uvicorn does not rewrite the client.
            proxy_headers=False,
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve())
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def start(self) -> Any:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


class GatewayServer(AppServer):
    """The gateway on its issuer's port (or on `port`: another replica of the same issuer)."""

    def __init__(
        self,
        settings: Settings,
        hasher: PasswordHasher | None = None,
        port: int | None = None,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.services: Services = build_services(settings, hasher=hasher or fast_hasher())
        super().__init__(
            create_app(self.services), port or int(urlsplit(settings.issuer).port or 80), tls
        )
        if port is None:
            self.url = settings.issuer  # may say localhost rather than 127.0.0.1

    def start(self) -> GatewayServer:
        super().start()
        return self

    async def call(self, fn: Callable[[Services], Awaitable[Any]]) -> Any:
        """Run `fn(services)` on the server's event loop and return its result."""
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(fn(self.services), self.loop)
        return await asyncio.wrap_future(future)

    async def add_user(self, email: str, password: str = PASSWORD, **kw: Any) -> Any:
        return await self.call(lambda s: s.users.create(email, password, **kw))


def fast_hasher() -> PasswordHasher:
    """Real argon2id at the OWASP parameters (tests must exercise the real thing)."""
    return PasswordHasher()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def form_fields(html: str) -> dict[str, str]:
    """Hidden and prefilled inputs of a page's form."""
    return {
        m.group(1): unescape(m.group(2))
        for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)
    }


class Browser:
    """A cookie-keeping HTTP client that behaves like a person at the hosted pages."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url, follow_redirects=False, timeout=30)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def authorize(self, **params: str) -> httpx.Response:
        return await self.http.get("/oauth2/authorize?" + urlencode(params))

    async def sign_in(
        self, login_page: httpx.Response, email: str, password: str = PASSWORD
    ) -> httpx.Response:
        """Follow the authorize redirect to the sign-in page and submit the form."""
        assert login_page.status_code == 303, login_page.text
        page = await self.http.get(login_page.headers["location"])
        assert page.status_code == 200, page.text
        fields = form_fields(page.text)
        return await self.http.post("/login", data={**fields, "email": email, "password": password})

    async def login_for_code(
        self,
        email: str,
        client_id: str = "web",
        redirect_uri: str = "https://app.example.com/cb",
        scope: str = "openid email profile",
        password: str = PASSWORD,
        **extra: str,
    ) -> tuple[str, str, httpx.Response]:
        """A full sign-in; returns (code, verifier, final response)."""
        verifier, challenge = pkce_pair()
        params = {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": "st-" + secrets.token_hex(4),
            "nonce": "n-1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        first = await self.authorize(**params)
        done = (
            await self.sign_in(first, email, password)
            if first.status_code == 303 and first.headers["location"].startswith("/login")
            else first
        )
        assert done.status_code == 303, done.text
        query = parse_qs(urlsplit(done.headers["location"]).query)
        assert query["state"] == [params["state"]]
        return query["code"][0], verifier, done


def code_flow_params(**changes: str | None) -> dict[str, str]:
    """A valid authorization request for the `web` client, with `changes` applied
    (None removes a parameter)."""
    _, challenge = pkce_pair()
    base: dict[str, str | None] = {
        "client_id": "web",
        "response_type": "code",
        "redirect_uri": "https://app.example.com/cb",
        "scope": "openid email",
        "state": "s-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


WEB = ("web", "web-secret-0123456789")
CB = "https://app.example.com/cb"


async def redeem(
    http: httpx.AsyncClient,
    code: str,
    verifier: str | None,
    *,
    auth: tuple[str, str] | None = WEB,
    redirect_uri: str = CB,
    **extra: str,
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, **extra}
    if verifier is not None:
        data["code_verifier"] = verifier
    return await http.post("/oauth2/token", data=data, auth=auth)


async def signup_page(browser: Browser) -> httpx.Response:
    """From the client's authorize request to the sign-up page, through the sign-in page's link."""
    first = await browser.authorize(**code_flow_params())
    login = await browser.http.get(first.headers["location"])
    assert "Create an account" in login.text
    page = await browser.http.get(f"/signup?flow={form_fields(login.text)['flow']}")
    assert page.status_code == 200
    return page


def tampered(value: str, last: int = 1) -> str:
    """`value` with its last `last` characters each replaced by a different one (replacing
    them with fixed text leaves the value as it was once in 64**last)."""
    return value[:-last] + "".join("B" if c == "A" else "A" for c in value[-last:])


def location_query(response: httpx.Response) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


@contextlib.contextmanager
def writes_paused(redis_url: str, seconds: float = 3.0) -> Iterator[None]:
    """Redis keeps answering reads but holds every write (CLIENT PAUSE … WRITE): a store that
    fails part-way through a request, at the first write. Unpaused on the way out."""
    import redis as redis_sync

    client = redis_sync.Redis.from_url(redis_url)
    client.client_pause(int(seconds * 1000), all=False)
    try:
        yield
    finally:
        client.client_unpause()
        client.close()


class RedisCluster:
    """A local Redis Cluster of three masters (and, with `replicas`, one replica each), started
    with redis-cli. `failover()` runs a coordinated CLUSTER FAILOVER on one replica."""

    def __init__(self, replicas: bool = False) -> None:
        self.replicas = replicas
        self.nodes = [RedisServer(free_cluster_port()) for _ in range(6 if replicas else 3)]

    def cli(self, port: int, *args: str) -> str:
        return subprocess.run(  # noqa: S603
            [shutil.which("redis-cli") or "redis-cli", "-p", str(port), *args],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout

    def failover(self) -> int:
        """Promote one replica (CLUSTER FAILOVER: it waits until the replica has caught up,
        so nothing acknowledged is lost); returns its port once it is a master."""
        replica = next(
            n.port for n in self.nodes if "role:slave" in self.cli(n.port, "info", "replication")
        )
        assert "OK" in self.cli(replica, "cluster", "failover")
        deadline = time.monotonic() + 30
        while "role:master" not in self.cli(replica, "info", "replication"):
            if time.monotonic() > deadline:
                raise RuntimeError("the fail-over did not happen")
            time.sleep(0.05)
        return replica

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.extra = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"{node.dir}/nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ]
            node.start()
        subprocess.run(  # noqa: S603
            [
                shutil.which("redis-cli") or "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                "1" if self.replicas else "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            info = subprocess.run(  # noqa: S603
                [
                    shutil.which("redis-cli") or "redis-cli",
                    "-p",
                    str(self.nodes[0].port),
                    "cluster",
                    "info",
                ],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout
            if "cluster_state:ok" in info:
                return
            time.sleep(0.05)
        raise RuntimeError("the cluster did not become ready")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class RedisSentinel:
    """A master (optionally with replicas: `replica=True` is one) and one Sentinel watching it
    (quorum 1), as `redis+sentinel://`. `failover()` promotes a replica the way Sentinel does.
    `redis_options` go to every redis-server (e.g. `--repl-diskless-sync-delay 0`)."""

    SERVICE = "cognate"

    def __init__(
        self, replica: bool = False, replicas: int = 0, redis_options: Sequence[str] = ()
    ) -> None:
        self.master = RedisServer()
        self.replicas = [RedisServer() for _ in range(max(replicas, int(replica)))]
        for node in (self.master, *self.replicas):
            node.extra = list(redis_options)
        for node in self.replicas:
            node.extra += ["--replicaof", "127.0.0.1", str(self.master.port)]
        self.replica = self.replicas[0] if self.replicas else None
        self.sentinel_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> str:
        return subprocess.run(  # noqa: S603
            [shutil.which("redis-cli") or "redis-cli", "-p", str(self.sentinel_port), *args],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout

    def master_port(self) -> int:
        return int(self.cli("sentinel", "get-master-addr-by-name", self.SERVICE).split()[1])

    def failover(self) -> None:
        """SENTINEL FAILOVER: the replica becomes the master, the old master its replica."""
        before = self.master_port()
        deadline = time.monotonic() + 30
        # Sentinel refuses (NOGOODSLAVE) until it has heard from a replica itself (its INFO
        # period): a fail-over right after start waits for that.
        while "OK" not in (answer := self.cli("sentinel", "failover", self.SERVICE)):
            if "NOGOODSLAVE" not in answer or time.monotonic() > deadline:
                raise RuntimeError(f"SENTINEL FAILOVER: {answer.strip()}")
            time.sleep(0.1)
        while self.master_port() == before:
            if time.monotonic() > deadline:
                raise RuntimeError("the fail-over did not happen")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{self.SERVICE}/0"

    def start(self) -> None:
        self.master.start()
        for replica in self.replicas:
            replica.start()
        config = f"{self.master.dir}/sentinel.conf"
        with open(config, "w") as handle:
            handle.write(
                f"port {self.sentinel_port}\nbind 127.0.0.1\n"
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master.port} 1\n"
                f"sentinel down-after-milliseconds {self.SERVICE} 2000\n"
            )
        self.proc = subprocess.Popen(  # noqa: S603
            [shutil.which("redis-server") or "redis-server", config, "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            answer = subprocess.run(  # noqa: S603
                [
                    shutil.which("redis-cli") or "redis-cli",
                    "-p",
                    str(self.sentinel_port),
                    "sentinel",
                    "get-master-addr-by-name",
                    self.SERVICE,
                ],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout
            if str(self.master.port) in answer:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("sentinel did not start")
        for replica in self.replicas:
            while (
                "master_link_status:up"
                not in subprocess.run(  # noqa: S603
                    [shutil.which("redis-cli") or "redis-cli", "-p", str(replica.port), "info"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                ).stdout
            ):  # the replica has synced
                if time.monotonic() > deadline:
                    raise RuntimeError("the replica did not sync")
                time.sleep(0.05)
            while str(replica.port) not in self.cli(
                "sentinel", "replicas", self.SERVICE
            ):  # Sentinel learns replicas from the master's INFO
                if time.monotonic() > deadline:
                    raise RuntimeError("sentinel did not see the replica")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.master.stop()
        for replica in self.replicas:
            replica.stop()


async def sign_in_and_race_redeems(
    browser: Browser, email: str, statuses: Counter[int]
) -> tuple[str, list[httpx.Response]]:
    """Authorize, sign in with the password, then redeem the code twice at once (a race no
    store failure may let both win). Every answer's status is counted; returns the code and
    the two token answers ("" and [] when an earlier step did not get through)."""
    verifier, challenge = pkce_pair()
    first = await browser.authorize(**code_flow_params(code_challenge=challenge))
    statuses[first.status_code] += 1
    if first.status_code != 303 or "/login" not in first.headers["location"]:
        return "", []
    page = await browser.http.get(first.headers["location"])
    statuses[page.status_code] += 1
    if page.status_code != 200:
        return "", []
    done = await browser.http.post(
        "/login", data={**form_fields(page.text), "email": email, "password": PASSWORD}
    )
    statuses[done.status_code] += 1
    if done.status_code != 303 or "code=" not in done.headers["location"]:
        return "", []
    code = location_query(done)["code"]
    answers = list(
        await asyncio.gather(
            redeem(browser.http, code, verifier), redeem(browser.http, code, verifier)
        )
    )
    for answer in answers:
        statuses[answer.status_code] += 1
    return code, answers


def forwarded(url: str, method: str = "GET") -> dict[str, str]:
    """The headers a proxy in `forward_auth.mode: forwarded` (Traefik, Caddy, the shipped
    nginx config) sends to /oauth2/auth for a request to `url`."""
    parts = urlsplit(url)
    return {
        "X-Forwarded-Proto": parts.scheme,
        "X-Forwarded-Host": parts.netloc,
        "X-Forwarded-Uri": parts.path + (f"?{parts.query}" if parts.query else ""),
        "X-Forwarded-Method": method,
    }


async def until(check: Callable[[], bool], within: float = 3.0) -> bool:
    """Whether `check()` comes true within `within` seconds (pub/sub delivery is async)."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True
