"""The forward-auth endpoints (oauth2-proxy's paths), on the gateway's host and on every app host
whose proxy routes `/oauth2/` to the gateway:

- `GET /oauth2/auth` → the decision (`gateway.proxy.decide`).
- `GET /oauth2/start?rd=…` → sign in (unless already), then back to `rd` (or, without `rd`, to
  the original URL a trusted proxy forwarded: nginx's `@sign_in`). A sign-in always happens on
  the gateway's host, where its cookie lives; an app on a host that cookie does not reach gets
  its own session through `GET /oauth2/session?ticket=…` on that host (`gateway.proxy.tickets`).
- `GET /oauth2/sign_in` → the same; `GET|POST /oauth2/sign_out?rd=…` → end the session on every
  host (a cross-site GET first asks, so a link on another site cannot sign anyone out).

Which host a request came through is the trusted proxy's `X-Forwarded-Host` (or the origin of
`X-Original-URL`, by `forward_auth.mode`); from anyone else it is the gateway's own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.crypto import random_token
from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.forwarded import (
    Original,
    app_host,
    original_request,
    request_origin,
    trusted_proxies,
    url_host,
)
from gateway.proxy import FORWARD_AUTH_CLIENT, UNKNOWN_URL, cookie_reaches, decide, is_api
from gateway.proxy.redirects import safe_redirect
from gateway.proxy.tickets import BINDING_COOKIE, BINDING_TTL, Tickets

if TYPE_CHECKING:
    from gateway.services import Services

log = logging.getLogger("cognate.proxy")

# Sec-Fetch-Site of a GET that must ask before signing out. A request without it is not a
# browser tricked by another site (Fetch Metadata resource isolation): curl, scripts.
CROSS_SITE = "cross-site"
WARNED_PEERS = 1024  # peers warned about (once each) before the set starts again


def _origin(url: str) -> str:
    """scheme://host:port of a URL, lower case, default ports spelled out (for comparing);
    "" for one that cannot be parsed (it then matches nothing)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return ""
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def routes(services: Services) -> list[BaseRoute]:
    config = services.settings.forward_auth
    issuer = services.settings.issuer
    issuer_host = url_host(issuer)
    shared_domain = services.settings.sessions.cookie_domain
    proxies = trusted_proxies(services.settings)
    name = services.settings.sessions.cookie_name
    pages = services.pages
    tickets = Tickets(services.store, services.sealer)
    warned: set[str] = set()

    def original(request: Request) -> Original:
        return original_request(request.headers, proxies.request(request), config.mode)

    def origin_of(request: Request) -> str:
        return request_origin(services.settings, request)

    def target(origin: str, rd: str | None) -> str:
        """Where to go after signing in: a safe `rd`, else the site's front page. Never back
        into /oauth2/ itself (a start without `rd` would start again)."""
        safe = safe_redirect(rd, origin, config.allowed_hosts, issuer)
        if safe is None or urlsplit(safe).path.startswith("/oauth2/"):
            return f"{origin}/" if safe is not None else f"{issuer}/"
        return safe

    def session_cookie(request: Request) -> str | None:
        """The app host's own session cookie, else the shared (or gateway) one."""
        return pages.cookie(request, name, host_only=True) or pages.cookie(request, name)

    async def auth(request: Request) -> Response:
        found = original(request)
        if found.url is None and config.policies:
            peer = request.client.host if request.client else "?"
            services.metrics.forward_auth_unknown_url.inc()
            if peer not in warned:
                if len(warned) >= WARNED_PEERS:
                    warned.clear()
                warned.add(peer)
                log.warning("forward-auth refused requests from %s: %s", peer, UNKNOWN_URL)
        return await decide(
            services,
            session_cookie(request),
            found.url,
            found.method,
            redirect=bool(request.query_params.get("redirect")),
            api=is_api(request),
            cookies=request.headers.get("cookie"),
        )

    async def start(request: Request) -> Response:
        if is_api(request):  # nginx's @sign_in for an XHR/JSON call: 401, never a page
            return PlainTextResponse("Unauthorized", status_code=401)
        origin = origin_of(request)
        destination = target(origin, request.query_params.get("rd") or original(request).url)
        here = url_host(origin)
        if here != issuer_host:
            return await start_on_app_host(request, here, destination)
        cookie = pages.cookie(request, name)
        session = await services.sessions.load(cookie)
        crossing = not cookie_reaches(services.settings, url_host(destination))
        binding = request.query_params.get("bind") if crossing else None
        bound = await tickets.bound_origin(binding) if binding else None
        if crossing and bound is None:
            # Not through the app host's /oauth2/start (a link to the gateway's, or a binding
            # it never registered): go there first, so that the browser is bound on that host
            # before any ticket exists. A `bind` is never taken from a link.
            parts = urlsplit(destination)
            if looped := await looping(request, (parts.hostname or "").lower()):
                return looped
            there = f"{parts.scheme}://{parts.netloc}/oauth2/start?"
            return RedirectResponse(there + urlencode({"rd": destination}), status_code=303)
        if bound is not None and (
            _origin(destination) != _origin(bound)
            or (services.settings.secure_cookies and not bound.startswith("https://"))
        ):
            # The page to return to is not on the origin the binding was made on (another
            # port of the same host, plain http): no ticket leaves for it.
            return pages.error(
                request,
                "This sign-in link is not for this site",
                "It asks to sign in to a page other than the one the sign-in started from. "
                "Go back to the application and open it again.",
            )
        if session is not None and cookie:
            if binding:
                return await hand_over(request, cookie, destination, binding)
            return RedirectResponse(destination, status_code=303)
        return await sign_in_to(services, request, destination, f"{issuer}/login", binding)

    async def start_on_app_host(request: Request, here: str | None, destination: str) -> Response:
        """/oauth2/start through an app host's proxy. Signed in there already: go back.
        Otherwise sign in on the gateway's host, where the flow and the gateway's cookie live;
        for a host the gateway's cookie does not reach, first bind this browser here (a
        random host-only cookie; only its keyed hash travels), so the ticket that brings the
        sign-in back works for this browser alone."""
        if await services.sessions.load(session_cookie(request), host=here) is not None:
            return RedirectResponse(destination, status_code=303)
        query = {"rd": destination}
        browser = None
        if not cookie_reaches(services.settings, here):
            browser = pages.cookie(request, BINDING_COOKIE, host_only=True) or random_token(24)
            query["bind"] = await tickets.bind(browser, origin_of(request))
        response = RedirectResponse(f"{issuer}/oauth2/start?" + urlencode(query), status_code=303)
        if browser is not None:
            pages.set_cookie(response, BINDING_COOKIE, browser, BINDING_TTL, host_only=True)
        return response

    async def looping(request: Request, host: str) -> Response | None:
        """The page that ends a redirect loop between the gateway and `host`, or None."""
        browser, new_cookie = services.csrf.browser_secret(request)
        if not await tickets.looping(browser, host):
            return None
        page = pages.error(
            request,
            "Sign-in keeps coming back",
            f"{host} did not keep the sign-in. Its proxy must pass /oauth2/ to the gateway "
            "and its answers (Set-Cookie) back to the browser.",
            status_code=508,
        )
        if new_cookie:
            pages.set_cookie(page, CSRF_COOKIE, browser)
        return page

    async def hand_over(request: Request, cookie: str, destination: str, binding: str) -> Response:
        """Send the signed-in browser to the app host's /oauth2/session with a ticket."""
        parts = urlsplit(destination)
        host = (parts.hostname or "").lower()
        if looped := await looping(request, host):
            return looped
        ticket = await tickets.issue(cookie, host, destination, binding)
        landing = f"{parts.scheme}://{parts.netloc}/oauth2/session?" + urlencode({"ticket": ticket})
        return RedirectResponse(landing, status_code=303)

    async def land(request: Request) -> Response:
        """GET /oauth2/session?ticket=… on an app host: its own session, then the page."""
        host = url_host(origin_of(request))
        browser = pages.cookie(request, BINDING_COOKIE, host_only=True)
        found = await tickets.redeem(request.query_params.get("ticket", ""), host or "", browser)
        parent = await services.sessions.load(found.cookie) if found else None
        made = await services.sessions.create_for_host(parent, host or "") if parent else None
        if found is None or made is None:
            return pages.error(
                request,
                "This sign-in link has expired",
                "Sign-in links work once, for a minute, in the browser and on the site they "
                "were made for. Go back to the application and open it again.",
            )
        response = RedirectResponse(found.target, status_code=303)
        pages.set_cookie(response, name, made[1], host_only=True)
        return response

    async def sign_in(request: Request) -> Response:
        query = urlencode({"rd": request.query_params.get("rd", "/")})
        return RedirectResponse(f"{issuer}/oauth2/start?{query}", status_code=303)

    async def sign_out(request: Request) -> Response:
        cookie = session_cookie(request)
        session = await services.sessions.load(cookie, host=app_host(services.settings, request))
        if (
            request.method == "GET"
            and session is not None
            and request.headers.get("sec-fetch-site") == CROSS_SITE
        ):
            # A GET from another site's link or image must not end a session: ask first. The
            # confirmation POSTs from here (SameSite=Lax cookies go only with same-site POSTs).
            return pages.render(
                request,
                "logout_confirm.html",
                {
                    "action": "/oauth2/sign_out",
                    "fields": {"rd": request.query_params["rd"]}
                    if "rd" in request.query_params
                    else {},
                    "email": session.profile.get("email", ""),
                },
            )
        rd = request.query_params.get("rd")
        if request.method == "POST" and not rd:
            rd = str((await request.form()).get("rd") or "") or None
        await services.sessions.end(cookie)  # the whole family: every host is signed out
        if session is not None:
            await services.logout.session_ended(session.parent or session.sid, session.identity_id)
            await services.audit.record("sign_out", identity_id=session.identity_id)
        response: Response
        if rd:
            response = RedirectResponse(target(origin_of(request), rd), status_code=303)
        else:
            response = pages.render(request, "logged_out.html")
        pages.clear_cookie(response, name, host_only=True)
        if shared_domain:
            pages.clear_cookie(response, name)
        return response

    return [
        Route("/oauth2/auth", auth, methods=["GET", "HEAD"]),
        Route("/oauth2/start", start, methods=["GET"]),
        Route("/oauth2/session", land, methods=["GET"]),
        Route("/oauth2/sign_in", sign_in, methods=["GET"]),
        Route("/oauth2/sign_out", sign_out, methods=["GET", "POST"]),
    ]


async def sign_in_to(
    services: Services,
    request: Request,
    destination: str,
    page: str,
    binding: str | None = None,
) -> Response:
    """A sign-in bound to this browser that ends at `destination` (checked by the caller: it
    is followed as it is), starting at `page` (/login, /forgot, /signup, or the issuer's
    /login from another host). Forward-auth's pseudo-client: finishing it is a redirect.
    `binding`: an app host's browser binding, kept as the flow's state for its ticket."""
    browser, new_cookie = services.csrf.browser_secret(request)
    flow = await services.flows.create(
        client_id=FORWARD_AUTH_CLIENT,
        redirect_uri=destination,  # its resume goes by gateway.proxy.signed_in_return
        scope=["openid"],
        state=binding,
        browser=services.flows.browser_binding(browser),
    )
    response = RedirectResponse(f"{page}?flow={flow.flow_id}", status_code=303)
    if new_cookie:
        services.pages.set_cookie(response, CSRF_COOKIE, browser)
    return response
