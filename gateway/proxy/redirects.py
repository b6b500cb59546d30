"""Where a browser may be sent after signing in or out: no open redirects.

A target is accepted only if, after parsing it the way browsers do, it is an http(s) URL on the
issuer's host or on a host the settings allow (`forward_auth.allowed_hosts`; a leading dot allows
subdomains), or a plain path on the host the request came through. Everything browsers treat as
another host is refused: `//evil`, `/\\evil`, tabs or newlines that browsers strip (`/%09/evil`),
user-info (`https://good@evil`), `javascript:` and other schemes, and backslashes anywhere.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit


def host_allowed(host: str, allowed: list[str], issuer_host: str) -> bool:
    """Is `host` (lowercase, no port) the issuer's or one the settings allow?"""
    if host == issuer_host:
        return True
    for entry in allowed:
        entry = entry.lower()
        if entry.startswith(".") and (host.endswith(entry) or host == entry[1:]):
            return True
        if host == entry:
            return True
    return False


def safe_redirect(target: str | None, origin: str, allowed: list[str], issuer: str) -> str | None:
    """The absolute URL to send the browser to, or None when `target` is not safe.

    `origin` is the scheme://host[:port] the request came through (from trusted proxy headers or
    the issuer), against which a plain path is resolved."""
    if not target or len(target) > 2048:
        return None
    decoded = unquote(target)
    # Browsers drop tabs and newlines and treat "\\" like "/": refuse rather than guess.
    if any(c in decoded for c in "\t\r\n\\") or any(ord(c) < 0x20 for c in decoded):
        return None
    if target.startswith("/"):
        if target.startswith("//") or decoded.startswith("//"):
            return None
        target = origin.rstrip("/") + target
    try:
        parts = urlsplit(target)
        origin_host = (urlsplit(origin).hostname or "").lower()
        hostname = parts.hostname
        port = parts.port  # raises for a port that is not one (":99999", ":1.evil.example")
    except ValueError:  # e.g. an IDNA-invalid host (U+FF0F): what cannot be parsed is refused
        return None
    if port == 0 or (port is None and parts.netloc.rstrip("/").endswith(":")):
        return None
    if parts.scheme not in ("http", "https") or not hostname or "@" in parts.netloc:
        return None
    issuer_host = (urlsplit(issuer).hostname or "").lower()
    if not host_allowed(hostname.lower(), allowed, issuer_host) and (
        hostname.lower() != origin_host
    ):
        return None
    return target
