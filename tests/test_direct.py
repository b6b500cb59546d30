"""The OAuth endpoints dispatched by exact path (`gateway.direct`): the same route objects and
answers as through Starlette's router, which they no longer walk."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.app import create_app
from gateway.direct import DirectRoutes, direct_routes
from gateway.op.common import OAuthEndpoint
from gateway.services import build_services
from tests.helpers import free_port, make_settings


async def answer(request: Request) -> Response:
    return JSONResponse({"route": request.scope["route"].path, "root": request.scope["root_path"]})


def endpoint() -> OAuthEndpoint:
    """An ASGI endpoint that checks its own methods, as every OAuth endpoint does."""
    return OAuthEndpoint(answer, ["POST"])


def app_with(routes: list[Route], direct: list[Route]) -> tuple[Starlette, list[str]]:
    walked: list[str] = []
    app = Starlette(routes=routes, middleware=[Middleware(DirectRoutes, routes=direct)])
    router_app = app.router.middleware_stack

    async def counting(scope: Scope, receive: Receive, send: Send) -> None:
        walked.append(scope["path"])
        await router_app(scope, receive, send)

    app.router.middleware_stack = counting
    return app, walked


async def test_direct_routes_skip_the_router_and_keep_the_route_in_scope() -> None:
    token, other = Route("/token", endpoint()), Route("/other", answer)
    app, walked = app_with([other, token], [token])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        direct = await c.post("/token")
        routed = await c.get("/other")
        refused = await c.get("/token")  # the endpoint's own method check answers
    assert direct.json() == {"route": "/token", "root": ""}
    assert routed.json()["route"] == "/other"
    assert refused.status_code == 405 and refused.json()["error"] == "invalid_request"
    assert walked == ["/other"]  # the router saw only the request that was not direct


async def test_direct_routes_honour_a_root_path() -> None:
    token = Route("/token", endpoint())
    app, walked = app_with([token], [token])
    transport = httpx.ASGITransport(app, root_path="/auth")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        got = await c.post("/auth/token")
    assert got.json() == {"route": "/token", "root": "/auth"}
    assert walked == []


async def test_a_route_with_methods_is_direct_for_those_only() -> None:
    """POST / is the Cognito APIs' (direct); GET / is the home page (through the router)."""
    post = Route("/", endpoint(), methods=["POST"])
    app, walked = app_with([post, Route("/", answer)], [post])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        assert (await c.post("/")).json()["route"] == "/"
        assert (await c.get("/")).status_code == 200
    assert walked == ["/"]  # only the GET


def test_only_exact_paths_whose_endpoints_render_their_errors_are_dispatched_directly() -> None:
    with pytest.raises(ValueError, match="exact paths"):
        DirectRoutes(Starlette(), [Route("/clients/{id}", endpoint())])
    with pytest.raises(ValueError, match="render its own errors"):  # a function endpoint
        DirectRoutes(Starlette(), [Route("/token", answer, methods=["POST"])])


def test_the_gateway_dispatches_its_oauth_and_cognito_endpoints_directly() -> None:
    """The OAuth endpoints and the Cognito APIs' POST /, and nothing else (a page renders its
    errors as a page through the exception middleware, which direct dispatch skips); each is
    what the router would have found first for its methods."""
    app = create_app(build_services(make_settings(free_port(), "memory://")))
    direct = direct_routes(app.routes)
    paths = {r.path for r in direct}
    assert {"/oauth2/token", "/oauth2/revoke", "/oauth2/introspect", "/oauth2/userinfo"} <= paths
    assert "/" in paths  # POST: the Cognito front door
    assert "/login" not in paths and "/oauth2/authorize" not in paths
    for route in direct:
        for method in route.methods or {"GET", "POST"}:
            first = next(
                r
                for r in app.routes
                if getattr(r, "path", None) == route.path
                and (getattr(r, "methods", None) is None or method in r.methods)  # type: ignore[attr-defined]
            )
            assert first is route, (route.path, method)
