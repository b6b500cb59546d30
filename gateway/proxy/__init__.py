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

The endpoints themselves are in `gateway.proxy.endpoints`; this module decides.
"""

from __future__ import annotations

import ipaddress
import logging
import posixpath
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from gateway.errors import StoreUnavailable
from gateway.proxy.cookies import without_cookies
from gateway.sessions import Session, passed_second_factor
from gateway.settings import RoutePolicySettings, Settings

if TYPE_CHECKING:
    from gateway.services import Services

log = logging.getLogger("cognate.proxy")

FORWARD_AUTH_CLIENT = "cognate:forward-auth"  # the flow's "client" for proxy sign-ins
# RFC 8176 authentication method references that mean a second factor was used.


@dataclass(frozen=True)
class Original:
    """The request the proxy is asking about (only as far as trusted headers say)."""

    method: str
    url: str | None


class TrustedProxies:
    """Which client addresses are configured proxies (`forward_auth.trusted_proxies`). Every
    forward-auth request asks this about the same few addresses: each is parsed once."""

    def __init__(self, networks: list[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self._known: dict[str, bool] = {}

    def trusts(self, host: str) -> bool:
        known = self._known.get(host)
        if known is None:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                known = False
            else:
                known = any(address in network for network in self.networks)
            if len(self._known) >= 4096:
                self._known.clear()
            self._known[host] = known
        return known

    def request(self, request: Request) -> bool:
        """Did this request come from a configured proxy?"""
        return self.trusts(request.client.host if request.client else "")


def original_request(h: Mapping[str, str], is_trusted: bool, mode: str) -> Original:
    """What the proxy forwarded (`h`: the request's headers, lower-case names), from a trusted
    proxy only, and only the header family of `mode` (see the module docstring): a client's
    X-Original-URL passed along by Caddy or Traefik must never replace the X-Forwarded-* they
    set themselves."""
    if not is_trusted:
        return Original("GET", None)
    if mode == "original":
        return Original(h.get("x-original-method", "GET").upper(), h.get("x-original-url"))
    method = h.get("x-forwarded-method", "GET").upper()
    host = h.get("x-forwarded-host")
    if not host:
        return Original(method, None)
    proto = "https" if h.get("x-forwarded-proto", "https") == "https" else "http"
    uri = h.get("x-forwarded-uri", "/")
    return Original(method, f"{proto}://{host}{uri if uri.startswith('/') else '/' + uri}")


def trusted_proxies(settings: Settings) -> TrustedProxies:
    """The deployment's `forward_auth.trusted_proxies`, parsed once for every user of it."""
    return _trusted(tuple(settings.forward_auth.trusted_proxies))


@cache
def _trusted(networks: tuple[str, ...]) -> TrustedProxies:
    return TrustedProxies(list(networks))


def request_origin(settings: Settings, request: Request) -> str:
    """scheme://host[:port] the request came through: the original URL's, as a trusted proxy
    names it in the headers of `forward_auth.mode`; else the issuer's (a request straight to
    the gateway, or from anyone else)."""
    config = settings.forward_auth
    trusted = trusted_proxies(settings).request(request)
    url = original_request(request.headers, trusted, config.mode).url
    try:
        parts = urlsplit(url or settings.issuer)
        if parts.hostname:
            return f"{parts.scheme}://{parts.netloc}"
    except ValueError:
        pass
    return settings.issuer.rstrip("/")


def client_address(settings: Settings, request: Request) -> str:
    """The client's IP address, for per-IP limits and the audit trail: the peer, or, when the
    peer is a trusted proxy, the nearest address in X-Forwarded-For that is not one (read
    from the right: the entries to the left of a proxy's own are the client's to invent)."""
    peer = request.client.host if request.client else "unknown"
    proxies = trusted_proxies(settings)
    if not proxies.trusts(peer):
        return peer
    chain = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",")]
    for address in reversed([a for a in chain if a][-16:]):
        if not proxies.trusts(address):
            try:
                return str(ipaddress.ip_address(address))
            except ValueError:
                return peer  # junk where an address should be: count it against the proxy
    return peer


def app_host(settings: Settings, request: Request) -> str | None:
    """The app host a request came through, for `SessionManager.load(host=…)`: None when it
    is the gateway's own."""
    host = url_host(request_origin(settings, request))
    return None if host == url_host(settings.issuer) else host


def url_host(url: str | None) -> str | None:
    """The lower-case host of a URL (no port), or None when there is none or it cannot be
    parsed (an IDNA-invalid host makes `urlsplit` raise)."""
    if not url:
        return None
    try:
        return (urlsplit(url).hostname or "").lower() or None
    except ValueError:
        return None


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


# Whitespace (any Unicode kind) and control characters at either end of a path segment.
_EDGES = re.compile(r"^[\s\x00-\x1f\x7f-\x9f]+|[\s\x00-\x1f\x7f-\x9f]+$")


def normalize_path(raw: str) -> str:
    """The path as an application may serve it, folded so that every spelling common back
    ends treat as the same path meets the rule for it: percent-decoded (repeatedly), NFKC
    (a fullwidth slash is a slash), undecodable bytes as slashes (`%c0%af`), backslashes as
    slashes, each segment cut at `;` (Tomcat and Spring drop path parameters: `/admin;x`)
    and at NUL, whitespace and control characters at either end of a segment dropped
    (`/admin.`, `/admin%20`, `/admin%09`, `/%e3%80%80admin`: `trim()`/`strip()` back ends),
    trailing dots too, dot segments resolved, slashes collapsed, lower case (Express and IIS
    route case-insensitively). A rule may so cover more spellings than the app serves,
    never fewer: matching the raw path let `/%61dmin`, `//admin` or `/Admin` slip past."""
    path = raw or "/"
    for _ in range(3):  # %2561 → %61 → a
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    path = unicodedata.normalize("NFKC", path).replace("\ufffd", "/").replace("\\", "/")
    segments = []
    for segment in path.split("/"):
        segment = _EDGES.sub("", segment.split(";", 1)[0].split("\x00", 1)[0])
        segments.append(segment if segment in (".", "..") else segment.rstrip(". "))
    folded = "/".join(segments)
    normalized = re.sub("/+", "/", posixpath.normpath("/" + folded))
    trailing = folded.endswith("/") and normalized != "/"
    return (normalized + ("/" if trailing else "")).lower()


def policy_for(policies: list[RoutePolicySettings], url: str | None) -> RoutePolicySettings | None:
    """The most specific policy (longest path prefix, exact host before `*`) for a URL."""
    if not policies:
        return None
    try:
        parts = urlsplit(url or "/")
        host, path = (parts.hostname or "").lower(), normalize_path(parts.path)
    except ValueError:  # an unparseable URL: only the catch-all rules can apply
        host, path = "", "/"
    matches = [
        p
        for p in policies
        if (p.host == "*" or p.host.lower() == host)
        and (
            p.path == "/"
            or path == (rule := p.path.lower().rstrip("/") or "/")
            or path.startswith(rule + "/")
        )
    ]
    if not matches:
        return None
    return max(matches, key=lambda p: (len(p.path), p.host != "*"))


def refusal(policy: RoutePolicySettings, session: Session, where: str | None = None) -> str | None:
    """Why the policy refuses this session, or None when it allows it. `where` names the rule
    in the message (default: its host and path)."""
    profile = session.profile
    email = str(profile.get("email") or "").lower()
    groups = {str(g) for g in profile.get("groups") or []}
    where = where or f"{policy.host}{policy.path}"
    if policy.deny:
        return f"the rule for {where} denies everyone"
    if policy.connectors and session.connector_id not in policy.connectors:
        return f"the rule for {where} requires signing in with {', '.join(policy.connectors)}"
    verified = profile.get("email_verified") is True
    if policy.emails and not (verified and email in [e.lower() for e in policy.emails]):
        return f"the rule for {where} allows only listed e-mail addresses"
    if policy.email_domains and not (
        verified and any(email.endswith("@" + d.lower()) for d in policy.email_domains)
    ):
        return f"the rule for {where} allows only e-mail domains {', '.join(policy.email_domains)}"
    if policy.groups and not groups & set(policy.groups):
        return f"the rule for {where} requires membership of {', '.join(policy.groups)}"
    if policy.mfa and not passed_second_factor(session.amr):
        return f"the rule for {where} requires a sign-in with a second factor"
    return None


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
