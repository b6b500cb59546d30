"""The gateway's outbound HTTP clients (IdPs, STS, hooks, SMS, back-channel logout, the
sidecar's app): httpx, never following redirects, and keeping no cookies.

httpx clients keep a cookie jar by default and add its cookies to later requests that carry
none of their own. A client shared by every user must not: one user's Set-Cookie from an
upstream would ride along on somebody else's request.

`IdpClient` is the exception: the IdP requests of every federated sign-in, on aiohttp (see its
docstring for why).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit

import aiohttp
import httpx

from gateway import __version__
from gateway.errors import GatewayError


def no_cookies() -> CookieJar:
    """A jar that refuses every cookie."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def http_client(timeout: float | httpx.Timeout, **options: Any) -> httpx.AsyncClient:
    """An outbound client with `timeout`, no redirects followed and no cookie jar."""
    return httpx.AsyncClient(
        timeout=timeout, follow_redirects=False, cookies=no_cookies(), **options
    )


class Answer(NamedTuple):
    """An upstream's answer: its status and at most `IdpClient.max_body` + 1 bytes of body."""

    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class OutboundError(GatewayError):
    """The upstream could not be asked: the message says why (no URL, no secret)."""


class IdpClient:
    """Requests to identity providers: aiohttp's client, no redirects followed, no cookies
    kept, a total timeout, bodies read up to a bound, and the environment's proxies
    (HTTP(S)_PROXY, read once; NO_PROXY exempts hosts).

    Every federated sign-in makes two requests to its IdP (code redemption, userinfo), so this
    is the federation hot path: httpx's request and response models and its cookie-jar
    compatibility layer cost ~180 µs of CPU per request on top of aiohttp's ~80 µs, and
    aiohttp's own `trust_env` re-reads ~/.netrc in a worker thread on every request (another
    ~200 µs); hence aiohttp directly, with the proxy looked up here.
    """

    def __init__(self, timeout: float, max_body: int) -> None:
        self.timeout = timeout
        self.max_body = max_body
        self._session: aiohttp.ClientSession | None = None
        self._proxies = urllib.request.getproxies_environment()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on first use, inside the running loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100, ssl=httpx.create_ssl_context()),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": f"Cognate/{__version__}"},
            )
        return self._session

    def proxy_for(self, url: str) -> str | None:
        """The proxy the environment names for `url`, unless NO_PROXY exempts its host."""
        parts = urlsplit(url)
        proxy = self._proxies.get(parts.scheme)
        if proxy is None or urllib.request.proxy_bypass(parts.hostname or ""):
            return None
        return proxy

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request; OutboundError when the upstream is unreachable or too slow."""
        body = None
        if form is not None:  # encoded here: aiohttp would build a multipart writer first
            body = urlencode(form).encode()
            headers = {**(headers or {}), "Content-Type": "application/x-www-form-urlencoded"}
        try:
            async with self._client().request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                proxy=self.proxy_for(url),
            ) as response:
                body = b""
                while len(body) <= self.max_body:  # one byte over says "too big"
                    chunk = await response.content.read(self.max_body + 1 - len(body))
                    if not chunk:
                        break
                    body += chunk
                return Answer(response.status, body)
        except TimeoutError:
            raise OutboundError("timed out") from None
        except aiohttp.ClientConnectionError:
            raise OutboundError("connection failed") from None
        except aiohttp.ClientError as exc:
            raise OutboundError(type(exc).__name__) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
