"""What redirect connectors share: an HTTP client with a timeout, JSON answers read with a
size bound and clear errors, and redeeming an authorization code with the client's credentials.

Errors are `ConnectorError`s whose messages name the provider and never carry a token, code or
secret; the provider is never followed through redirects.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

from gateway.connectors import (
    ConnectorError,
    UpstreamRefresh,
    UpstreamRefused,
    UpstreamSignIn,
    UpstreamUnavailable,
)
from gateway.outbound import Answer, IdpClient, OutboundError

MAX_BODY = 1024 * 1024  # an IdP answer larger than this is not an IdP answer


class HttpConnector:
    """Base of connectors that talk to an upstream over HTTP."""

    def __init__(self, connector_id: str, name: str, timeout: float) -> None:
        self.id = connector_id
        self.name = name
        self._http = IdpClient(timeout, MAX_BODY)

    async def refresh(self, signed_in: UpstreamSignIn) -> UpstreamRefresh | None:
        """`RefreshingConnector.refresh`: new upstream tokens when the grant keeps a refresh
        token of the IdP's (else nothing to ask)."""
        tokens = signed_in.tokens
        if not tokens or not tokens.get("refresh_token"):
            return None
        return await self.refresh_upstream(signed_in)

    async def refresh_upstream(self, signed_in: UpstreamSignIn) -> UpstreamRefresh:
        """Ask the IdP's token endpoint (each connector knows its own)."""
        raise NotImplementedError

    async def get_json(self, url: str, headers: Mapping[str, str] | None = None) -> Any:
        """GET a JSON document; ConnectorError when unreachable, not 200, huge or not JSON."""
        return self.json_of(await self._ask("GET", url, headers))

    async def _ask(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> Answer:
        try:
            return await self._http.request(method, url, headers, form)
        except OutboundError as exc:
            raise UpstreamUnavailable(f"{self.name} is unreachable ({exc})", 503) from None

    def json_of(self, response: Answer) -> Any:
        if len(response.body) > MAX_BODY:
            raise UpstreamUnavailable(f"{self.name} sent an oversized answer")
        if response.status >= 500:
            raise UpstreamUnavailable(f"{self.name} answered HTTP {response.status}")
        if response.status != 200:
            raise ConnectorError(f"{self.name} answered HTTP {response.status}")
        try:
            return response.json()
        except ValueError:
            raise UpstreamUnavailable(f"{self.name} sent something that is not JSON") from None

    @staticmethod
    def authorization_url(endpoint: str, params: Mapping[str, str]) -> str:
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"

    async def refresh_grant(
        self,
        token_endpoint: str,
        tokens: Mapping[str, Any],
        *,
        client_id: str,
        client_secret: str | None,
        method: str,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """RFC 6749 §6 at the IdP: the upstream tokens to keep (the old refresh token kept
        when the IdP does not rotate it), and its whole answer. UpstreamRefused on
        invalid_grant, ConnectorError otherwise."""
        form = {"grant_type": "refresh_token", "refresh_token": str(tokens["refresh_token"])}
        response = await self._token_request(token_endpoint, form, client_id, client_secret, method)
        if response.status in (400, 401):
            try:
                error = response.json().get("error")
            except (ValueError, AttributeError):
                error = None
            if error in ("invalid_grant", "unauthorized_client", "invalid_client"):
                raise UpstreamRefused(f"{self.name} no longer accepts this sign-in ({error})")
        answer = self.json_of(response)
        if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
            raise ConnectorError(f"{self.name} sent an unexpected answer")
        fresh = upstream_tokens(answer)
        fresh.setdefault("refresh_token", tokens["refresh_token"])
        return fresh, answer

    async def redeem(
        self,
        token_endpoint: str,
        code: str,
        callback: str,
        verifier: str,
        *,
        client_id: str,
        client_secret: str | None,
        method: str,
    ) -> dict[str, Any]:
        """Exchange an authorization code (with the PKCE verifier kept on the flow)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": callback,
            "code_verifier": verifier,
        }
        response = await self._token_request(token_endpoint, form, client_id, client_secret, method)
        answer = self.json_of(response)
        if not isinstance(answer, dict):
            raise ConnectorError(f"{self.name} sent an unexpected answer")
        return answer

    async def _token_request(
        self,
        token_endpoint: str,
        form: dict[str, str],
        client_id: str,
        client_secret: str | None,
        method: str,
    ) -> Answer:
        """POST to the IdP's token endpoint with the client's authentication."""
        headers = {"Accept": "application/json"}
        if method == "client_secret_basic":
            # RFC 6749 §2.3.1: form-encode both parts before base64.
            pair = f"{quote_plus(client_id)}:{quote_plus(client_secret or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = client_id
            if method == "client_secret_post":
                form["client_secret"] = client_secret or ""
        return await self._ask("POST", token_endpoint, headers, form)

    @staticmethod
    def origins(*urls: str) -> list[str]:
        """scheme://host of each URL (for CSP form-action)."""
        return sorted({f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in urls if u})

    async def close(self) -> None:
        await self._http.aclose()


def upstream_tokens(answer: Mapping[str, Any]) -> dict[str, Any]:
    """What Cognate keeps of an IdP's token response: the access and refresh tokens and when
    the access token expires (never the ID token: it is verified once and done)."""
    kept: dict[str, Any] = {"access_token": answer.get("access_token")}
    if isinstance(answer.get("refresh_token"), str):
        kept["refresh_token"] = answer["refresh_token"]
    expires_in = answer.get("expires_in")
    if isinstance(expires_in, int | float) and expires_in > 0:
        kept["expires_at"] = int(time.time() + expires_in)
    return kept
