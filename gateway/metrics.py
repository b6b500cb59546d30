"""Prometheus metrics: one registry per `Services` (so tests and embedders can run several
gateways in one process), exposed at `/metrics`.

What is counted, by area: HTTP requests and latency per route template (never per raw path, so
cardinality stays bounded), sign-ins by connector and result, tokens issued by grant, STS calls
and credential-cache hits, store operations' latency and errors. Labels never carry user data.

With `--workers N` each worker keeps its own numbers; run one worker per container and scale
with replicas (the usual Kubernetes shape), so every scrape sees one whole process.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """The gateway's instruments."""

    def __init__(self) -> None:
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
        self.up = Gauge("cognate_up", "1 while this process serves", registry=r)
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

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


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
