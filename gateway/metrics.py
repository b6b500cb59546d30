"""Prometheus metrics: one registry per `Services` (so tests and embedders can run several
gateways in one process), exposed at `/metrics`.

What is counted, by area: HTTP requests and latency per route template (never per raw path, so
cardinality stays bounded), sign-ins by connector and result, tokens issued by grant, STS calls
and credential-cache hits, store operations' latency and errors, audit entries held or lost in a
store outage. Labels never carry user data.

`cognate serve --workers N` runs N processes behind one port, and a scrape reaches any one of
them: each worker's numbers alone would jump back and forth between scrapes. So the workers use
prometheus_client's multiprocess mode: each writes its numbers to files in one directory
(`PROMETHEUS_MULTIPROC_DIR`, a fresh one per `serve`, emptied at start, see
`shared_metrics_dir`), and every scrape, whichever worker answers it, adds up all of them.
Counters of a worker that exited keep counting in the sum (totals never go back); its live
gauges are removed (`mark_process_dead`).

Where: `metrics.listen` serves /metrics on its own address instead of the public port (from the
supervising process with several workers; a thread of the one process otherwise), and
`metrics.allow` limits it to the scrapers' networks (see `gateway.settings_metrics`).
"""

from __future__ import annotations

import contextlib
import glob
import ipaddress
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST, ThreadingWSGIServer
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import ConfigError
from gateway.settings_metrics import MetricsSettings

log = logging.getLogger("cognate.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when it is imported

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """The gateway's instruments."""

    def __init__(self, config: MetricsSettings | None = None) -> None:
        self.config = config or MetricsSettings()
        self._allowed = Allowed(self.config.allow)
        # Set by `cognate serve --workers N` before the workers start (and so before they
        # import prometheus_client, which then keeps every value in that directory's files).
        self.shared_dir = os.environ.get(MULTIPROC_ENV) or None
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "cognate_http_requests_total",
            "HTTP requests",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "cognate_http_request_duration_seconds",
            "HTTP latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.sign_ins = Counter(
            "cognate_sign_ins_total", "Sign-in attempts", ["connector", "result"], registry=r
        )
        self.mfa = Counter(
            "cognate_mfa_total", "Second-factor checks", ["method", "result"], registry=r
        )
        self.tokens = Counter(
            "cognate_tokens_issued_total", "Token responses by grant", ["grant_type"], registry=r
        )
        self.sts_calls = Counter(
            "cognate_sts_calls_total", "AssumeRoleWithWebIdentity calls", ["result"], registry=r
        )
        self.credential_cache = Counter(
            "cognate_credential_cache_total",
            "Credential requests by cache outcome",
            ["outcome"],
            registry=r,
        )
        self.forward_auth_unknown_url = Counter(
            "cognate_forward_auth_unknown_url_total",
            "Forward-auth requests refused: route policies set, no trusted original URL",
            registry=r,
        )
        self.store_latency = Histogram(
            "cognate_store_operation_seconds",
            "Store latency",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "cognate_store_errors_total", "Store operations that failed", ["operation"], registry=r
        )
        self.audit_dropped = Counter(
            "cognate_audit_events_dropped_total",
            "Audit events lost: not stored, and no longer held (buffer full, or process stopped)",
            ["event"],
            registry=r,
        )
        self.audit_pending = Gauge(
            "cognate_audit_events_pending",
            "Audit events held in memory until the store answers again",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._store_children: dict[str, Any] = {}  # operation names: a fixed, small set
        self.up = Gauge(
            "cognate_up", "1 while this process serves", registry=r, multiprocess_mode="livemax"
        )
        self.up.set(1)

    def observe_store(self, operation: str, seconds: float, ok: bool) -> None:
        """Called by the store around every operation (a few per request: the labelled
        children are looked up once per operation name, see MetricsMiddleware)."""
        child = self._store_children.get(operation)
        if child is None:
            child = self._store_children[operation] = self.store_latency.labels(operation)
        child.observe(seconds)
        if not ok:
            self.store_errors.labels(operation).inc()

    def exposition(self) -> bytes:
        """What a scrape gets: this process's numbers, or every worker's added up."""
        if self.shared_dir is None:
            return generate_latest(self.registry)
        return shared_exposition(self.shared_dir)

    async def endpoint(self, request: Request) -> Response:
        """`GET /metrics` on the public port (unless `metrics.listen` moved it)."""
        if self.config.listen:
            return PlainTextResponse("Not Found", status_code=404)
        if not self._allowed(request.client.host if request.client else None):
            return PlainTextResponse("Forbidden: not in metrics.allow", status_code=403)
        return Response(self.exposition(), media_type=CONTENT_TYPE_LATEST)


class Allowed:
    """`metrics.allow`: is this connecting address one of the scrapers' networks? (Empty: all.)"""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def __call__(self, host: str | None) -> bool:
        if not self._networks:
            return True
        try:
            address = ipaddress.ip_address(host or "")
        except ValueError:
            return False  # a Unix socket peer, or none: not a listed network
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped  # an IPv4 scraper on a dual-stack socket ([::])
        return any(address in network for network in self._networks)


def shared_exposition(path: str) -> bytes:
    """Every process's numbers in `path`, added up: a registry built per scrape (as
    prometheus_client's multiprocess documentation says), after forgetting the live gauges of
    workers that are gone without saying so (killed: nobody called mark_process_dead)."""
    for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = re.search(r"_(\d+)\.db$", file)
        if match and not _alive(int(match.group(1))):
            mark_process_dead(int(match.group(1)), path)  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


@contextlib.contextmanager
def shared_metrics_dir() -> Iterator[str]:
    """For `cognate serve --workers N`: the directory the workers add their numbers up in, set
    in the environment they inherit. The deployer's PROMETHEUS_MULTIPROC_DIR if given (emptied
    of an earlier run's files, which would otherwise be counted again), else a new temporary
    directory, removed on the way out."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        for stale in glob.glob(os.path.join(given, "*.db")):
            os.remove(stale)
        path = given
    else:
        path = tempfile.mkdtemp(prefix="cognate-metrics-")
        os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        if not given:
            shutil.rmtree(path, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)


def forget_on_exit(path: str | None) -> None:
    """In a worker: drop this process's live gauges from the sum when it exits."""
    if path is not None:
        import atexit

        atexit.register(mark_process_dead, os.getpid(), path)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No per-scrape lines on stderr (the gateway's logs are JSON)."""


@contextlib.contextmanager
def metrics_listener(
    config: MetricsSettings, exposition: Callable[[], bytes]
) -> Iterator[tuple[str, int] | None]:
    """`metrics.listen`: serve GET /metrics on its own address, in a thread, while the block
    runs (nothing when it is not set). A thread, not the event loop: a scrape is answered even
    when the loop is busy, and in the supervising process of `serve --workers N` there is none."""
    address = config.address
    if address is None:
        yield None
        return
    allowed = Allowed(config.allow)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Not Found"]
        if not allowed(environ.get("REMOTE_ADDR")):
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"Forbidden: not in metrics.allow"]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [exposition()]

    host, port = address
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

        class Server(ThreadingWSGIServer):
            address_family = family

        server = make_server(host, port, app, Server, handler_class=_QuietHandler)
    except OSError as exc:  # in use, not an address of this host, unknown name
        raise ConfigError(
            [f"metrics.listen: cannot listen on {config.listen}: {exc.strerror or exc}"]
        ) from None
    thread = threading.Thread(target=server.serve_forever, name="metrics-listener", daemon=True)
    thread.start()
    log.info("metrics on http://%s/metrics", config.listen)
    try:
        yield host, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


class MetricsMiddleware:
    """Counts every HTTP request by the route template that served it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # Labelled children by (route, method, status): prometheus_client's labels() takes a
        # lock and validates on every call, a noticeable share of the forward-auth hot path.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            key = (route, scope["method"], status)
            children = self._children.get(key)
            if children is None:
                children = (
                    self.metrics.requests.labels(route, scope["method"], str(status)),
                    self.metrics.latency.labels(route),
                )
                if len(self._children) < 10_000:  # routes are templates: a bounded set
                    self._children[key] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - start)
