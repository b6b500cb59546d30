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

`X-Forwarded-*` and `X-Original-URL` are read only from `forward_auth.trusted_proxies`; header
values are stripped of CR/LF; `rd` goes through `redirects.safe_redirect`.
"""

from __future__ import annotations

import ipaddress
import logging
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.errors import StoreUnavailable
from gateway.proxy.redirects import safe_redirect
from gateway.sessions import Session, passed_second_factor
from gateway.settings import RoutePolicySettings
from gateway.ui.csrf import COOKIE as CSRF_COOKIE

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


def original_request(h: Mapping[str, str], is_trusted: bool) -> Original:
    """What the proxy forwarded (`h`: the request's headers, lower-case names): X-Original-URL
    (nginx) or X-Forwarded-Proto/Host/Uri/Method (Traefik, Caddy) — from a trusted proxy only."""
    if not is_trusted:
        return Original("GET", None)
    method = h.get("x-forwarded-method", h.get("x-original-method", "GET")).upper()
    if h.get("x-original-url"):
        return Original(method, h["x-original-url"])
    if h.get("x-forwarded-host"):
        proto = h.get("x-forwarded-proto", "https")
        return Original(method, f"{proto}://{h['x-forwarded-host']}{h.get('x-forwarded-uri', '/')}")
    return Original(method, None)


def clean(value: Any) -> str:
    """A header value without CR/LF or other controls (no header injection)."""
    text = str(value)
    if text.isprintable():  # the common case, checked in C
        return text[:1024]
    return "".join(c for c in text if c.isprintable())[:1024]


def normalize_path(raw: str) -> str:
    """The path an application will most likely serve: percent-decoded (repeatedly), slashes
    collapsed, dot segments resolved. Matching the raw path would let `/%61dmin`, `//admin` or
    `/x/../admin` slip past a rule for `/admin`."""
    path = raw or "/"
    for _ in range(3):  # %2561 → %61 → a
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    normalized = posixpath.normpath("/" + path.replace("\\", "/"))
    normalized = re.sub("/+", "/", normalized)
    return normalized + ("/" if path.endswith("/") and normalized != "/" else "")


def policy_for(policies: list[RoutePolicySettings], url: str | None) -> RoutePolicySettings | None:
    """The most specific policy (longest path prefix, exact host before `*`) for a URL."""
    if not policies:
        return None
    parts = urlsplit(url or "/")
    host, path = (parts.hostname or "").lower(), normalize_path(parts.path)
    matches = [
        p
        for p in policies
        if (p.host == "*" or p.host.lower() == host)
        and (path == p.path or path.startswith(p.path.rstrip("/") + "/") or p.path == "/")
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
) -> Response:
    """The forward-auth answer for a request to `url`: 202 with the identity headers, 401 (or,
    with `redirect`, 302/303 to sign-in for a browser), or 403 naming the refusing rule.
    Shared by `/oauth2/auth` and the sidecar proxy."""
    issuer = services.settings.issuer
    headers = {"Cache-Control": "no-store"}
    try:
        session = await services.sessions.load(cookie, cached=True)
    except StoreUnavailable as exc:
        # Fail closed the way proxies understand: not signed in (SECURITY-TESTS G48). No
        # redirect either: a sign-in cannot work while the store is away.
        log.warning("forward-auth failing closed: %s", exc)
        return PlainTextResponse("Unauthorized", status_code=401, headers=headers)
    if session is None:
        if redirect and url and not api:
            start = f"{issuer}/oauth2/start?" + urlencode({"rd": url})
            status = 302 if method in ("GET", "HEAD") else 303
            return RedirectResponse(start, status_code=status, headers=headers)
        return PlainTextResponse("Unauthorized", status_code=401, headers=headers)
    granted = grant(services, session, url)
    if isinstance(granted, str):
        return PlainTextResponse(f"Forbidden: {granted}.", status_code=403, headers=headers)
    return Response(status_code=202, headers={**headers, **granted})


def grant(services: Services, session: Session, url: str | None) -> dict[str, str] | str:
    """The identity headers for a signed-in session's request to `url`, or the reason the
    route's policy refuses it."""
    policy = policy_for(services.settings.forward_auth.policies, url)
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
    parts = urlsplit(url or issuer)
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


def routes(services: Services) -> list[BaseRoute]:
    config = services.settings.forward_auth
    issuer = services.settings.issuer
    proxies = TrustedProxies(config.trusted_proxies)
    cookie_name = services.settings.sessions.cookie_name
    pages = services.pages

    def origin_of(request: Request) -> str:
        url = original_request(request.headers, proxies.request(request)).url
        parts = urlsplit(url or issuer)
        return f"{parts.scheme}://{parts.netloc}"

    def target(request: Request, rd: str | None) -> str:
        safe = safe_redirect(rd, origin_of(request), config.allowed_hosts, issuer)
        return safe or f"{issuer}/"

    async def auth(request: Request) -> Response:
        original = original_request(request.headers, proxies.request(request))
        return await decide(
            services,
            pages.cookie(request, cookie_name),
            original.url,
            original.method,
            redirect=bool(request.query_params.get("redirect")),
            api=is_api(request),
        )

    async def start(request: Request) -> Response:
        # rd, or else the original URL a trusted proxy forwarded (nginx's @sign_in location).
        rd = (
            request.query_params.get("rd")
            or original_request(request.headers, proxies.request(request)).url
        )
        destination = target(request, rd)
        session = await services.sessions.load(pages.cookie(request, cookie_name))
        if session is not None:
            return RedirectResponse(destination, status_code=303)
        browser, new_cookie = services.csrf.browser_secret(request)
        flow = await services.flows.create(
            client_id=FORWARD_AUTH_CLIENT,
            redirect_uri=destination,
            scope=["openid"],
            state=None,
            nonce=None,
            code_challenge=None,
            prompt=[],
            max_age=None,
            login_hint=None,
            browser=services.flows.browser_binding(browser),
        )
        response = RedirectResponse(f"{issuer}/login?flow={flow.flow_id}", status_code=303)
        if new_cookie:
            pages.set_cookie(response, CSRF_COOKIE, browser)
        return response

    async def sign_in(request: Request) -> Response:
        query = urlencode({"rd": request.query_params.get("rd", "/")})
        return RedirectResponse(f"{issuer}/oauth2/start?{query}", status_code=303)

    async def sign_out(request: Request) -> Response:
        cookie = pages.cookie(request, cookie_name)
        session = await services.sessions.load(cookie)
        await services.sessions.end(cookie)
        if session is not None:
            await services.logout.session_ended(session.sid, session.identity_id)
            await services.audit.record("sign_out", identity_id=session.identity_id)
        rd = request.query_params.get("rd")
        response: Response
        if rd:
            response = RedirectResponse(target(request, rd), status_code=303)
        else:
            response = pages.render(request, "logged_out.html")
        pages.clear_cookie(response, cookie_name)
        return response

    return [
        Route("/oauth2/auth", auth, methods=["GET", "HEAD"]),
        Route("/oauth2/start", start, methods=["GET"]),
        Route("/oauth2/sign_in", sign_in, methods=["GET"]),
        Route("/oauth2/sign_out", sign_out, methods=["GET", "POST"]),
    ]
