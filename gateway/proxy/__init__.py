"""Reverse-proxy authentication, compatible with oauth2-proxy's forward-auth contract, so an
existing nginx `auth_request`, Traefik ForwardAuth or Caddy `forward_auth` setup only changes
the upstream host:

- `GET /oauth2/auth` → 202 + `X-Auth-Request-*` headers (signed in and allowed), 401 (not signed
  in), 403 (a route policy says no). With `?redirect=1` (Traefik, Caddy): browser navigations get
  a 302 to sign-in instead of 401, other methods a 303, API calls (XHR/JSON) still a 401.
- `GET /oauth2/start?rd=…` → sign in (unless already), then back to `rd` (or, without `rd`, to
  the `X-Original-URL` a trusted proxy sends).
- `GET /oauth2/sign_in` → the same; `GET|POST /oauth2/sign_out?rd=…` → end the session.
- `GET /oauth2/userinfo` with the session cookie (no bearer token) → who is signed in.

With the identity headers comes `X-Cognate-Assertion`: a one-minute JWT (signed with the key
set in `/.well-known/jwks.json`, `aud` = the app's origin, `sub` = the identity ID, `email`,
`groups` cut to the route policy's), so an app can check who is calling without trusting the
network between itself and the proxy.

Which headers name the original request is set by `forward_auth.mode`, never by which header
happens to be present: `forwarded` (X-Forwarded-Method/Proto/Host/Uri: Traefik, Caddy, the
shipped nginx config) or `original` (X-Original-URL/Method: oauth2-proxy's nginx examples). They
are read only from `forward_auth.trusted_proxies`. With route policies configured and no trusted
original URL, the answer is 403: a policy is never skipped because the URL is unknown.

A 202 also carries `Cookie`: the client's cookies without Cognate's own, which the shipped
proxy configs copy onto the request to the app (the app never sees the session cookie). Header
values are stripped of CR/LF; `rd` goes through `redirects.safe_redirect`.

The endpoints themselves are in `gateway.proxy.endpoints`; this module decides. Which
original request a trusted proxy names is read by `gateway.forwarded`, and the route policies
are matched and applied by `gateway.policy` (applications' `access` rules use it too).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from gateway.cookies import without_cookies
from gateway.errors import StoreUnavailable
from gateway.forwarded import url_host
from gateway.policy import policy_for, refusal
from gateway.sessions import Session
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.services import Services

log = logging.getLogger("cognate.proxy")

FORWARD_AUTH_CLIENT = "cognate:forward-auth"  # the flow's "client" for proxy sign-ins
# RFC 8176 authentication method references that mean a second factor was used.


def cookie_reaches(settings: Settings, host: str | None) -> bool:
    """Does the gateway's session cookie reach `host` (the gateway's own, or a host under
    `sessions.cookie_domain`)? Elsewhere an app host needs a session of its own."""
    if host is not None and host == url_host(settings.issuer):
        return True
    domain = settings.sessions.cookie_domain
    return bool(domain and host and (host == domain or host.endswith("." + domain)))


def signed_in_return(settings: Settings, destination: str, binding: str | None = None) -> str:
    """Where a signed-in browser goes for `destination`: there, when the gateway's cookie
    reaches its host; else through the gateway's /oauth2/start, which hands it a ticket for
    that host's /oauth2/session (`gateway.proxy.tickets`), bound to `binding` (the app host's
    binding cookie's hash, from that host's /oauth2/start)."""
    if cookie_reaches(settings, url_host(destination)):
        return destination
    query = {"rd": destination, **({"bind": binding} if binding else {})}
    return f"{settings.issuer}/oauth2/start?" + urlencode(query)


def setup_warnings(settings: Settings) -> list[str]:
    """What `check-config` warns about the forward-auth setup (valid, but likely wrong)."""
    config = settings.forward_auth
    loopback = all(
        ipaddress.ip_network(n, strict=False).is_loopback for n in config.trusted_proxies
    )
    if config.policies and loopback:
        return [
            "forward_auth.policies are set but forward_auth.trusted_proxies is loopback only: "
            "a proxy on another host gets 403 for every request (no trusted original URL); "
            "add its address, e.g. trusted_proxies: [10.0.0.5/32]"
        ]
    return []


UNKNOWN_URL = (
    "route policies are configured, but this request names no original URL that a trusted "
    "proxy set (is the proxy's address in forward_auth.trusted_proxies, and does it send "
    "the headers of forward_auth.mode?)"
)


def clean(value: Any, limit: int = 1024) -> str:
    """A header value without CR/LF or other controls (no header injection), cut to `limit`."""
    text = str(value)
    if text.isprintable():  # the common case, checked in C
        return text[:limit]
    return "".join(c for c in text if c.isprintable())[:limit]


def is_api(request: Request) -> bool:
    """An XHR or JSON client (gets 401, never a redirect to a sign-in page)."""
    headers = request.headers
    return headers.get(
        "x-requested-with", ""
    ).lower() == "xmlhttprequest" or "application/json" in headers.get("accept", "")


async def decide(
    services: Services,
    cookie: str | None,
    url: str | None,
    method: str,
    *,
    redirect: bool,
    api: bool,
    cookies: str | None = None,
) -> Response:
    """The forward-auth answer for a request to `url`: 202 with the identity headers, 401 (or,
    with `redirect`, 302/303 to sign-in for a browser), or 403 naming the refusing rule.
    `cookies`: the request's Cookie header, passed on to the app without Cognate's cookies.
    Shared by `/oauth2/auth` and the sidecar proxy."""
    issuer = services.settings.issuer
    headers = {"Cache-Control": "no-store"}
    if url is None and services.settings.forward_auth.policies:
        return PlainTextResponse(f"Forbidden: {UNKNOWN_URL}.", status_code=403, headers=headers)
    try:
        session = await services.sessions.load(cookie, cached=True, host=url_host(url))
    except StoreUnavailable as exc:
        # Fail closed the way proxies understand: not signed in (SECURITY-TESTS G48). No
        # redirect either: a sign-in cannot work while the store is away.
        log.warning("forward-auth failing closed: %s", exc)
        return PlainTextResponse("Unauthorized", status_code=401, headers=headers)
    if session is None:
        if redirect and url and not api:
            # Through the app host's own /oauth2/start when the gateway's cookie does not
            # reach it: that binds this browser there before the sign-in (see tickets).
            parts = urlsplit(url)
            reached = cookie_reaches(services.settings, url_host(url))
            base = issuer if reached else f"{parts.scheme}://{parts.netloc}"
            start = f"{base}/oauth2/start?" + urlencode({"rd": url})
            status = 302 if method in ("GET", "HEAD") else 303
            return RedirectResponse(start, status_code=status, headers=headers)
        return PlainTextResponse("Unauthorized", status_code=401, headers=headers)
    granted = grant(services, session, url, cookies)
    if isinstance(granted, str):
        return PlainTextResponse(f"Forbidden: {granted}.", status_code=403, headers=headers)
    return Response(status_code=202, headers={**headers, **granted})


def grant(
    services: Services, session: Session, url: str | None, cookies: str | None = None
) -> dict[str, str] | str:
    """The identity headers for a signed-in session's request to `url`, or the reason the
    route's policy refuses it. `cookies` (the request's Cookie header) comes back as the
    `Cookie` the app gets: without Cognate's cookies, empty when nothing else is left."""
    policies = services.settings.forward_auth.policies
    if url is None and policies:
        return UNKNOWN_URL  # fail closed: never skip a policy because the URL is unknown
    policy = policy_for(policies, url)
    reason = refusal(policy, session) if policy else None
    if reason:
        return reason
    profile = session.profile
    groups = [str(g) for g in profile.get("groups") or []]
    if policy and policy.groups:
        groups = [g for g in groups if g in policy.groups]  # keep headers small
    groups = whole_groups(groups, GROUPS_BUDGET)
    email = profile.get("email") or ""
    user = profile.get("preferred_username") or email or session.identity_id
    issuer = services.settings.issuer
    try:
        parts = urlsplit(url or issuer)
    except ValueError:
        parts = urlsplit(issuer)
    headers = {
        "X-Cognate-Assertion": services.tokens.identity_assertion(
            audience=f"{parts.scheme}://{parts.netloc}",
            sub=session.identity_id,
            email=str(email) or None,
            groups=groups,
        ),
        "X-Auth-Request-User": clean(user),
        "X-Auth-Request-Email": clean(email),
        "X-Auth-Request-Preferred-Username": clean(profile.get("preferred_username") or user),
        "X-Auth-Request-Groups": clean(",".join(groups)),
        "X-Auth-Request-Identity-Id": clean(session.identity_id),
    }
    upstream_token = (session.upstream or {}).get("access_token")
    if services.settings.forward_auth.pass_access_token and upstream_token:
        headers["X-Auth-Request-Access-Token"] = clean(upstream_token)
    if cookies is not None:
        # Never cut: a truncated Cookie header would hand the app a different cookie.
        headers["Cookie"] = clean(
            without_cookies(cookies, services.pages.own_cookie_names()), limit=len(cookies)
        )
    return headers


GROUPS_BUDGET = 2048  # bytes of group names per request (proxies cap headers at 4-8 KiB)


def whole_groups(groups: list[str], budget: int) -> list[str]:
    """As many whole group names as fit in `budget` bytes, comma-joined. Never a cut name: a
    truncated "admins-readonly" must not become "admins". Names with commas or controls are
    dropped (they would split or break the header)."""
    kept: list[str] = []
    used = 0
    for group in groups:
        if "," in group or not group.isprintable():
            continue
        size = len(group.encode()) + (1 if kept else 0)
        if used + size > budget:
            break
        kept.append(group)
        used += size
    return kept


IDENTITY_HEADERS = (
    "x-cognate-assertion",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-preferred-username",
    "x-auth-request-groups",
    "x-auth-request-identity-id",
    "x-auth-request-access-token",
)
