"""What a request says about where it came from, believing only the configured proxies.

A request reaches the gateway straight from a browser, or through a reverse proxy named in
`forward_auth.trusted_proxies`. Only such a proxy may name the original request (the headers of
`forward_auth.mode`) or the client's address (X-Forwarded-For): a header anyone else sends is
the sender's to invent. Per-IP limits, the audit trail, forward-auth's route policies and the
host a session is bound to all read these functions, and nothing else reads those headers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

from starlette.requests import Request

from gateway.settings import Settings


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
