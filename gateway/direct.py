"""Hot routes dispatched by exact path and method, before Starlette's exception layer and router.

Starlette finds a route by trying each in order (a regular expression per route) inside its
exception middleware, which wraps every request in its own handler layer. For the token
endpoint — every client_credentials token, every refresh, every code, every device poll and
token exchange — that walk is a measurable part of the answer. This layer hands those requests
to the very route object the router would have chosen (its app: the same endpoint and body
limit), having set what the router sets in the scope (`route`, `endpoint`, `path_params`), so
metrics, access logs and answers stay the same.

Only ASGI endpoints that render every error themselves belong here, and say so with
`renders_own_errors = True` (`gateway.op.common.OAuthEndpoint`: OAuthError and Unavailable become
OAuth JSON; `gateway.cognito.api.FrontDoor`: every error becomes AWS JSON); anything unexpected
still reaches the server-error handler, which is outside this layer. A route with methods is
dispatched directly for those methods only: the others (the home page's GET /) go on to the
router.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send


def direct_routes(routes: Iterable[BaseRoute]) -> list[Route]:
    """The routes whose endpoints render their own errors (`renders_own_errors`), in order
    (`DirectRoutes` keeps the first of each path)."""
    found: list[Route] = []
    for route in routes:
        if isinstance(route, Route) and getattr(route.endpoint, "renders_own_errors", False):
            found.append(route)
    return found


class DirectRoutes:
    def __init__(self, app: ASGIApp, routes: Iterable[Route]) -> None:
        self.app = app
        self._routes: dict[str, Route] = {}
        for route in routes:
            if route.param_convertors:
                raise ValueError(f"{route.path}: only exact paths are dispatched directly")
            if not getattr(route.endpoint, "renders_own_errors", False):
                # A function endpoint's wrapper needs the exception layer this one skips.
                raise ValueError(f"{route.path}: its endpoint does not render its own errors")
            self._routes.setdefault(route.path, route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, root = scope["path"], scope.get("root_path")
        if root and path.startswith(root):  # as the router reads it (behind a path prefix)
            path = path[len(root) :]
        route = self._routes.get(path)
        if route is None or (route.methods is not None and scope["method"] not in route.methods):
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        await route.app(scope, receive, send)  # the method matches: what Route.handle does
