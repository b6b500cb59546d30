"""The gateway's outbound HTTP clients (IdPs, STS, hooks, SMS, back-channel logout, the
sidecar's app): httpx, never following redirects, and keeping no cookies.

httpx clients keep a cookie jar by default and add its cookies to later requests that carry
none of their own. A client shared by every user must not: one user's Set-Cookie from an
upstream would ride along on somebody else's request.
"""

from __future__ import annotations

from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx


def no_cookies() -> CookieJar:
    """A jar that refuses every cookie."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def http_client(timeout: float | httpx.Timeout, **options: Any) -> httpx.AsyncClient:
    """An outbound client with `timeout`, no redirects followed and no cookie jar."""
    return httpx.AsyncClient(
        timeout=timeout, follow_redirects=False, cookies=no_cookies(), **options
    )
