"""Hot routes dispatched by exact path, before Starlette's exception layer and router.

Starlette finds a route by trying each in order (a regular expression per route) inside its
exception middleware, which wraps every request in its own handler layer. For the token
endpoint — every client_credentials token, every refresh, every code, every device poll and
token exchange — that walk is a measurable part of the answer. This layer hands those requests
to the very route object the router would have chosen (`route.handle`, so the same endpoint
and body limit), having set what the router sets in the scope (`route`,
`endpoint`, `path_params`), so metrics, access logs and answers stay the same.

Only routes whose endpoints render every error themselves belong here (`gateway.op.common`'s
OAuth endpoints: OAuthError and Unavailable become OAuth JSON; anything unexpected still
reaches the server-error handler, which is outside this layer).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send


class DirectRoutes:
    def __init__(self, app: ASGIApp, routes: Iterable[Route]) -> None:
        self.app = app
        self._routes: dict[str, Route] = {}
        for route in routes:
            if route.param_convertors:
                raise ValueError(f"{route.path}: only exact paths are dispatched directly")
            if route.methods:
                # Route.handle answers a wrong method by raising HTTPException, which only the
                # exception layer renders: the endpoint must check methods itself.
                raise ValueError(f"{route.path}: a directly dispatched endpoint checks methods")
            self._routes[route.path] = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, root = scope["path"], scope.get("root_path")
        if root and path.startswith(root):  # as the router reads it (behind a path prefix)
            path = path[len(root) :]
        route = self._routes.get(path)
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        await route.handle(scope, receive, send)
