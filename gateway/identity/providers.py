"""Verifying the tokens in an identity pool's `Logins` map.

A login is `provider name → token`. Which providers a pool accepts, and how each is checked:

- `cognate` (named after our issuer without `https://`): an ID token this gateway issued.
  Its `sub` already *is* an identity ID, so the login proves that identity directly.
- `cognito-identity.amazonaws.com`: a web-identity token from GetOpenIdToken(ForDeveloperIdentity)
  with `aud` = this pool (the "enhanced flow" of developer-authenticated identities).
- `saml`: a base64 SAMLResponse from one of our SAML connectors' IdPs (as AWS takes them under
  the SAML provider's ARN), checked like at the ACS, unsolicited.
- `oidc`: an ID token from another OpenID Provider, checked against that provider's JWKS only
  (fetched via its discovery document, cached, refetched at most once per cooldown for an unknown
  `kid`), with exact `iss`, an accepted `aud`, lifetime, and RS256/ES256 only — never `none`, never
  HMAC, and never a key carried in the token's own header.

Developer providers are not accepted here: they are only usable through the SigV4-signed
GetOpenIdTokenForDeveloperIdentity.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.connectors import Connector, ConnectorError
from gateway.connectors.saml import SamlConnector
from gateway.credentials.web_identity import CLIENT_AUDIENCE_SUFFIX, provider_name
from gateway.errors import GatewayError
from gateway.outbound import http_client
from gateway.settings import IdentityPoolSettings, LoginProviderSettings
from gateway.tokens import TokenService

log = logging.getLogger("cognate.identity")

COGNITO_PROVIDER = "cognito-identity.amazonaws.com"
SAML_PROVIDER_ARN = "arn:aws:iam::000000000000:saml-provider/"  # + connector id: default name
ALLOWED_ALGORITHMS = ["RS256", "ES256"]


class LoginRejected(GatewayError):
    """A token that does not prove its login; the message is safe to show the caller."""


@dataclass(frozen=True)
class VerifiedLogin:
    """A login whose token checked out."""

    provider: str
    subject: str
    claims: dict[str, Any]
    identity_id: str | None = None  # set when the token itself names the identity


@dataclass
class _Jwks:
    keys: KeySet | None = None
    fetched: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ProviderVerifier:
    """Checks login tokens for every pool; one JWKS cache per external issuer."""

    REFETCH_COOLDOWN = 30.0
    CACHE_SIZE = 10_000

    def __init__(
        self,
        tokens: TokenService,
        issuer: str,
        leeway: int,
        connectors: Mapping[str, Connector] | None = None,
    ) -> None:
        self._tokens = tokens
        self._connectors = connectors or {}
        self._own_name = provider_name(issuer)
        self._leeway = leeway
        self._jwks: dict[str, _Jwks] = {}
        # Verify once, then remember until the token expires (bounded, least recently used out).
        self._verified: OrderedDict[tuple[str, str, str], VerifiedLogin] = OrderedDict()
        self._http = http_client(5.0)

    def providers(self, pool: IdentityPoolSettings) -> dict[str, LoginProviderSettings]:
        """The pool's accepted providers by login name."""
        named: dict[str, LoginProviderSettings] = {}
        for p in pool.providers:
            if p.type == "cognate":
                named[p.name or self._own_name] = p
            elif p.type == "oidc":
                named[p.name or provider_name(p.issuer or "")] = p
            elif p.type == "saml":
                named[p.name or f"{SAML_PROVIDER_ARN}{p.connector}"] = p
            else:
                named[p.name or ""] = p
        return named

    async def verify(self, pool: IdentityPoolSettings, name: str, token: str) -> VerifiedLogin:
        """Check one `Logins` entry; LoginRejected with a safe message otherwise."""
        key = (pool.id, name, token)
        hit = self._verified.get(key)
        if hit is not None:
            if int(hit.claims.get("exp", 0)) + self._leeway >= time.time():
                self._verified.move_to_end(key)
                return hit
            del self._verified[key]
        login = await self._verify(pool, name, token)
        self._verified[key] = login
        if len(self._verified) > self.CACHE_SIZE:
            self._verified.popitem(last=False)
        return login

    async def _verify(self, pool: IdentityPoolSettings, name: str, token: str) -> VerifiedLogin:
        if name == COGNITO_PROVIDER:
            return await self._verify_web_identity(pool, token)
        provider = self.providers(pool).get(name)
        if provider is None:
            raise LoginRejected(
                f"Invalid login token. Provider {name} is not configured for this identity pool."
            )
        if provider.type == "cognate":
            return await self._verify_own(provider, name, token)
        if provider.type == "oidc":
            return await self._verify_oidc(provider, name, token)
        if provider.type == "saml":
            return await self._verify_saml(provider, name, token)
        raise LoginRejected(
            "Developer provider logins are only accepted through "
            "GetOpenIdTokenForDeveloperIdentity."
        )

    async def _verify_own(
        self, provider: LoginProviderSettings, name: str, token: str
    ) -> VerifiedLogin:
        try:
            claims = await self._tokens.verify_own_jwt(token)
        except ValueError as exc:
            raise LoginRejected(f"Invalid login token. {exc}.") from None
        audiences = _audiences(claims)
        if provider.client_ids and not audiences & set(provider.client_ids):
            raise LoginRejected("Invalid login token. Incorrect token audience.")
        if not isinstance(claims.get("azp"), str) or claims["azp"] not in audiences:
            # Our ID tokens always name their client in azp; web-identity tokens never do.
            raise LoginRejected("Invalid login token. Not an ID token.")
        sub = str(claims["sub"])
        return VerifiedLogin(name, sub, claims, identity_id=sub)

    async def _verify_saml(
        self, provider: LoginProviderSettings, name: str, token: str
    ) -> VerifiedLogin:
        """A base64 SAMLResponse, checked by its connector exactly as at the ACS (signature with
        the IdP's pinned certificate, audience, recipient, time…) but unsolicited, and usable
        until NotOnOrAfter. The login's subject is the connector's subject (the NameID)."""
        connector = self._connectors.get(provider.connector or "")
        if not isinstance(connector, SamlConnector):
            raise LoginRejected("Invalid login token. The SAML provider is not configured.")
        try:
            upstream = await connector.validate(token, None, identity_pool=True)
        except ConnectorError as exc:
            raise LoginRejected(f"Invalid login token. {exc}") from None
        claims = {**upstream.claims, "sub": upstream.subject, "exp": int(upstream.expires_at or 0)}
        return VerifiedLogin(name, upstream.subject, claims)

    async def _verify_web_identity(self, pool: IdentityPoolSettings, token: str) -> VerifiedLogin:
        try:
            claims = await self._tokens.verify_own_jwt(token)
        except ValueError as exc:
            raise LoginRejected(f"Invalid login token. {exc}.") from None
        if not _audiences(claims) & {pool.id, pool.id + CLIENT_AUDIENCE_SUFFIX}:
            raise LoginRejected("Invalid login token. Incorrect token audience.")
        amr = claims.get("amr")
        if not isinstance(amr, list) or "authenticated" not in amr:
            raise LoginRejected("Invalid login token. Not an authenticated identity's token.")
        sub = str(claims["sub"])
        return VerifiedLogin(COGNITO_PROVIDER, sub, claims, identity_id=sub)

    async def _verify_oidc(
        self, provider: LoginProviderSettings, name: str, token: str
    ) -> VerifiedLogin:
        issuer = provider.issuer or ""
        claims = await self.signed_claims(issuer, token)
        now = int(time.time())
        try:
            if claims.get("iss") != issuer:
                raise LoginRejected("Invalid login token. Issuer mismatch.")
            if not _audiences(claims) & set(provider.client_ids):
                raise LoginRejected("Invalid login token. Incorrect token audience.")
            if int(claims["exp"]) + self._leeway < now:
                raise LoginRejected("Invalid login token. Token expired.")
            if int(claims["iat"]) - self._leeway > now:
                raise LoginRejected("Invalid login token. Token used before issued.")
            if not claims.get("sub"):
                raise LoginRejected("Invalid login token. Missing sub.")
        except (KeyError, TypeError, ValueError):
            raise LoginRejected("Invalid login token. Missing required claims.") from None
        return VerifiedLogin(name, str(claims["sub"]), dict(claims))

    async def signed_claims(
        self, issuer: str, token: str, jwks_uri: str | None = None
    ) -> dict[str, Any]:
        """The claims of a JWT whose signature checks out with a key of `issuer`'s JWKS (from
        `jwks_uri`, else its discovery document): RS256/ES256 only — never `none`, never
        HMAC, never a key from the token's own header. Nothing else is checked here."""
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError):
            raise LoginRejected("Invalid login token. Not a JWT.") from None
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise LoginRejected("Invalid login token. Unsupported signing algorithm.")
        keys = await self._keys(issuer, jwks_uri=jwks_uri)
        try:
            return dict(jwt.decode(token, keys, algorithms=ALLOWED_ALGORITHMS).claims)
        except JoseError:
            # Maybe the IdP rotated: refetch once (rate-limited), then give up.
            keys = await self._keys(issuer, refresh=True, jwks_uri=jwks_uri)
            try:
                return dict(jwt.decode(token, keys, algorithms=ALLOWED_ALGORITHMS).claims)
            except JoseError:
                raise LoginRejected("Invalid login token. Signature verification failed.") from None

    async def _keys(
        self, issuer: str, refresh: bool = False, jwks_uri: str | None = None
    ) -> KeySet:
        cache = self._jwks.setdefault(f"{issuer} {jwks_uri or ''}", _Jwks())
        async with cache.lock:
            stale = cache.keys is None or (
                refresh and time.monotonic() - cache.fetched >= self.REFETCH_COOLDOWN
            )
            if stale:
                try:
                    cache.keys = await self._fetch_jwks(issuer, jwks_uri)
                    cache.fetched = time.monotonic()
                except (httpx.HTTPError, ValueError, KeyError, JoseError) as exc:
                    # Keep the keys we had: a bad answer must not erase good keys. But a token
                    # they do not verify, asked for again (`refresh`), may be signed with a key
                    # the IdP rotated in: unchecked, not refused — the caller's to retry.
                    log.warning("JWKS fetch failed", extra={"issuer": issuer, "error": str(exc)})
                    if cache.keys is None or refresh:
                        raise LoginRejected(
                            "Invalid login token. The identity provider's keys are unavailable."
                        ) from None
            assert cache.keys is not None  # noqa: S101 - set above or raised
            return cache.keys

    async def _fetch_jwks(self, issuer: str, jwks_uri: str | None = None) -> KeySet:
        if jwks_uri is None:
            discovery = await self._http.get(
                f"{issuer.rstrip('/')}/.well-known/openid-configuration"
            )
            discovery.raise_for_status()
            meta = discovery.json()
            if meta.get("issuer") != issuer:
                raise ValueError("the discovery document names another issuer")
            jwks_uri = meta["jwks_uri"]
        response = await self._http.get(str(jwks_uri))
        response.raise_for_status()
        keys = [k for k in response.json()["keys"] if k.get("kty") in ("RSA", "EC")]
        return KeySet.import_key_set({"keys": keys})

    async def close(self) -> None:
        await self._http.aclose()


def _audiences(claims: dict[str, Any]) -> set[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return {aud}
    return {str(a) for a in aud} if isinstance(aud, list) else set()
