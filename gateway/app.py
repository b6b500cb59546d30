"""`create_app(services)`: the one place that knows every area and mounts its routes.

Also here: the last line of defence for errors. A `PageError` becomes the friendly page, a store
outage or hashing overload a 503 page (fail closed), and anything unexpected a plain 500 page
that shows no traceback (the traceback goes to the log with the request id).
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import credentials, op, ui
from gateway.cognito import api as user_pools
from gateway.direct import DirectRoutes, direct_routes
from gateway.errors import PageError, StoreUnavailable, Unavailable
from gateway.identity import cognito
from gateway.metrics import MetricsMiddleware
from gateway.observability import RequestContext
from gateway.op.discovery import Documents, StaticDocuments
from gateway.proxy import endpoints as forward_auth
from gateway.proxy.fast import ForwardAuthFastPath
from gateway.proxy.sidecar import SIDECAR_HEALTH, SidecarProxy
from gateway.proxy.sidecar import routes as sidecar_routes
from gateway.services import Services
from gateway.ui.http_errors import http_error

log = logging.getLogger("cognate")

MAX_BODY = 64 * 1024  # no OAuth or form request is near this; larger → 413 before parsing


def create_app(
    services: Services, on_start: Sequence[Callable[[], Awaitable[None]]] = ()
) -> Starlette:
    """The ASGI app for `services`; `services.start()` and then `on_start` run in its lifespan."""
    documents = Documents(services)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.start()
        for hook in on_start:
            await hook()
        # Everything alive now (modules, settings, templates, keys) lives as long as the
        # process: out of the collector's sight, a full collection stays short, which keeps
        # it off the latency of requests that allocate much (a ListUsers page of 60 users).
        gc.freeze()
        try:
            yield
        finally:
            if sidecar is not None:
                await sidecar.close()
            await services.stop()

    pages = services.pages

    async def page_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, PageError):  # pragma: no cover - registered for PageError only
            return await server_error(request, exc)
        return pages.error(request, exc.title, exc.message, exc.status_code)

    async def unavailable(request: Request, exc: Exception) -> Response:
        """Every `Unavailable` as HTML: the one place that renders that family as a page."""
        log.warning("failing closed: %s", exc)
        response = pages.error(
            request,
            "Temporarily unavailable",
            "This service cannot complete your request right now. Please try again shortly.",
            503,
        )
        retry_after = exc.retry_after if isinstance(exc, Unavailable) else 5
        response.headers["Retry-After"] = str(retry_after)
        return response

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return pages.error(
            request,
            "Something went wrong",
            "The request could not be completed. It has been logged; please try again.",
            500,
        )

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        """Ready to serve: the store answers, keys are loaded, durable data is safe there."""
        checks: dict[str, str] = {}
        try:
            await services.store.ping()
            checks["store"] = "ok"
            problem = await services.store.durability_problem()
            checks["durability"] = problem if problem and not services.settings.demo else "ok"
        except StoreUnavailable as exc:
            checks["store"] = str(exc)[:200]
        checks["keys"] = "ok" if services.keys.entries else "not loaded"
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
            headers={"Cache-Control": "no-store"},
        )

    identity_api = cognito.CognitoApi(services)
    routes: list[BaseRoute] = [
        # Starlette tries routes in order: the forward-auth hot path goes first.
        *forward_auth.routes(services),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", services.metrics.endpoint),
        *op.routes(services, documents),
        *user_pools.routes(services, identity_api),  # POST / for both, by X-Amz-Target
        *cognito.routes(identity_api),
        *credentials.routes(services),
        *ui.routes(services),
    ]
    sidecar: SidecarProxy | None = None
    if services.settings.sidecar is not None:
        # The app owns `/` (its home page, and POSTs to it): the gateway keeps its other paths
        # (see gateway.proxy.sidecar.RESERVED) and everything else goes to the app.
        # Its health paths are the app's too: the gateway's own probes move under /_cognate/.
        probes = {"/healthz": healthz, "/readyz": readyz}
        routes = [r for r in routes if getattr(r, "path", None) not in ("/", *probes)]
        routes += [Route(SIDECAR_HEALTH[path], probe) for path, probe in probes.items()]
        extra, sidecar = sidecar_routes(services, services.settings.sidecar)
        routes += extra
    else:
        # The same probes under /_cognate/ in every mode, so one health check
        # (`cognate healthcheck`) asks the gateway itself whichever way it runs.
        routes += [Route(SIDECAR_HEALTH["/healthz"], healthz)]
        routes += [Route(SIDECAR_HEALTH["/readyz"], readyz)]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestContext),
            Middleware(MetricsMiddleware, metrics=services.metrics),
            Middleware(ForwardAuthFastPath, services=services),
            Middleware(StaticDocuments, documents=documents),
            # The OAuth endpoints (token above all) and the Cognito APIs' POST / by exact
            # path, past the router's walk.
            Middleware(DirectRoutes, routes=direct_routes(routes)),
        ],
        exception_handlers={
            # 404/405 in the wire format of the area asked for (gateway.ui.http_errors).
            HTTPException: http_error(services),
            PageError: page_error,
            Unavailable: unavailable,  # the store, an overload (gateway.errors)
            Exception: server_error,
        },
        lifespan=lifespan,
        max_body_size=MAX_BODY,
    )
    # No "add a trailing slash" redirects: behind a TLS proxy Starlette would build them from
    # the plain-http request it sees (https://app/oauth2/start/ -> http://app/oauth2/start).
    app.router.redirect_slashes = False
    return app
