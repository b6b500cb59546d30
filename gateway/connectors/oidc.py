"""The `oidc` connector: sign-in through an upstream OpenID Provider (authorization code flow).

Everything the connector needs between the redirect and the callback (state, nonce, PKCE
verifier) is returned by `start()` and stored on the flow; the connector keeps none of it.
`finish()` trusts nothing the browser brings back:

- the authorization response's `iss` must be this IdP's issuer when present, and must be present
  when the IdP says it sends it (RFC 9207: the mix-up defence) — checked before the code is spent;
- the ID token is verified only with keys from the IdP's own JWKS (never a `jwk`, `jku`, `x5u` or
  `x5c` from the token header), only with asymmetric algorithms (never `none`, never HMAC, so a
  public key cannot be used as an HMAC secret), and must carry the right `iss`, `aud`/`azp`,
  `nonce`, `sub`, `iat`, an unexpired `exp`, and a matching `at_hash` when present;
- userinfo answers must be about the same `sub`.

The state parameter itself (and the browser it belongs to) is checked by the callback view
before `finish()` runs. Discovery and JWKS are cached; an unknown `kid` refetches the JWKS at most
once per cooldown, and a failed refetch keeps the keys already known.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from gateway.amr import MFA_METHODS
from gateway.connectors import (
    ConnectorError,
    LoginStart,
    OidcPending,
    UpstreamIdentity,
    UpstreamPending,
    UpstreamRefresh,
    UpstreamRefused,
    UpstreamSignIn,
)
from gateway.connectors.http import HttpConnector, upstream_tokens
from gateway.connectors.mapping import map_attributes
from gateway.crypto import b64url, constant_time_equals, random_token, s256_challenge
from gateway.settings import OidcConnectorSettings

log = logging.getLogger("cognate.connectors.oidc")

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
STANDARD_CLAIMS = (
    "email",
    "email_verified",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "picture",
    "locale",
    "groups",
    "phone_number",
    "phone_number_verified",
)


class OidcConnector(HttpConnector):
    """An upstream OpenID Provider."""

    type = "oidc"
    JWKS_COOLDOWN = 30.0
    METADATA_TTL = 3600.0

    def __init__(self, config: OidcConnectorSettings, leeway: int) -> None:
        super().__init__(config.id, config.name, config.timeout)
        self.config = config
        self.issuer = config.issuer
        self._leeway = leeway
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._lock = asyncio.Lock()

    # -- discovery and keys ------------------------------------------------------------------

    async def metadata(self) -> dict[str, Any]:
        """The IdP's discovery document (cached); ConnectorError when it cannot be had."""
        if self._metadata is not None and time.monotonic() - self._metadata_at < self.METADATA_TTL:
            return self._metadata
        async with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata_at >= self.METADATA_TTL:
                try:
                    meta = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
                    if meta.get("issuer") != self.issuer and not self._tenant_template(meta):
                        raise ConnectorError(f"{self.name}: discovery names another issuer")
                    for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                        if not isinstance(meta.get(field), str):
                            raise ConnectorError(f"{self.name}: discovery lacks {field}")
                    self._metadata, self._metadata_at = meta, time.monotonic()
                except ConnectorError:
                    if self._metadata is None:
                        raise
                    log.warning(
                        "discovery refresh failed; keeping the cached document",
                        extra={"connector": self.id},
                    )
        assert self._metadata is not None  # noqa: S101 - set above or raised
        return self._metadata

    async def keys(self, refresh: bool = False) -> KeySet:
        """The IdP's signing keys; refetched at most once per cooldown, kept on failure."""
        async with self._lock:
            due = self._keys is None or (
                refresh and time.monotonic() - self._keys_at >= self.JWKS_COOLDOWN
            )
            if due:
                self._keys_at = time.monotonic()
                try:
                    meta = self._metadata or {}
                    document = await self._get_json(str(meta.get("jwks_uri")))
                    usable = [
                        k
                        for k in document.get("keys", [])
                        if isinstance(k, dict)
                        and k.get("kty") in ("RSA", "EC")
                        and k.get("use", "sig") == "sig"
                    ]
                    self._keys = KeySet.import_key_set({"keys": usable})
                except (ConnectorError, JoseError, ValueError, TypeError) as exc:
                    log.warning(
                        "JWKS fetch failed", extra={"connector": self.id, "error": str(exc)[:200]}
                    )
            if self._keys is None:
                raise ConnectorError(f"{self.name}: the sign-in keys are unavailable")
            return self._keys

    async def _get_json(self, url: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        data = await self.get_json(url, headers)
        if not isinstance(data, dict):
            raise ConnectorError(f"{self.name} sent an unexpected answer")
        return data

    # -- the flow ----------------------------------------------------------------------------

    async def start(self, callback_url: str, flow_id: str) -> LoginStart:
        """Where to send the browser, and what to remember on the flow."""
        meta = await self.metadata()
        state = f"{flow_id}.{random_token(16)}"
        nonce, verifier = random_token(16), random_token(48)
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": callback_url,
            "scope": " ".join(self.config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": s256_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if self.config.preset == "apple":
            # Apple sends name and e-mail scopes only with form_post: a cross-site POST back.
            params["response_mode"] = "form_post"
        url = self.authorization_url(meta["authorization_endpoint"], params)
        return LoginStart(url, OidcPending(state, nonce, verifier, callback_url))

    async def finish(self, params: Mapping[str, str], pending: UpstreamPending) -> UpstreamIdentity:
        """Validate the authorization response, redeem the code, verify the ID token."""
        if not isinstance(pending, OidcPending):
            raise ConnectorError("The sign-in response does not belong to this sign-in.")
        meta = await self.metadata()
        iss = params.get("iss")
        if iss is not None and iss != self.issuer:
            raise ConnectorError("The sign-in response came from another identity provider.")
        if iss is None and meta.get("authorization_response_iss_parameter_supported") is True:
            raise ConnectorError("The sign-in response did not say which provider sent it.")
        if "error" in params:
            raise ConnectorError(f"{self.name} did not sign you in ({params['error'][:64]}).")
        code = params.get("code")
        if not code:
            raise ConnectorError("The sign-in response had no authorization code.")
        tokens = await self._redeem(meta, code, pending)
        id_token, access_token = tokens.get("id_token"), tokens.get("access_token")
        if not isinstance(id_token, str):
            raise ConnectorError(f"{self.name} returned no ID token.")
        claims = await self.verify_id_token(
            id_token, pending.nonce, access_token if isinstance(access_token, str) else None
        )
        if self.config.userinfo and isinstance(access_token, str) and meta.get("userinfo_endpoint"):
            info = await self._get_json(
                str(meta["userinfo_endpoint"]), headers={"Authorization": f"Bearer {access_token}"}
            )
            if info.get("sub") != claims["sub"]:
                raise ConnectorError(f"{self.name} described another user than it signed in.")
            claims = {**info, **claims}  # the signed ID token wins where both speak
        profile = self.profile(claims)
        if self.config.preset == "apple":
            profile = _apple_first_name(params.get("user"), profile)
        # The IdP's own second factor, as its signed ID token reports it (RFC 8176 `amr`),
        # counts for the pool's federated_mfa rule and clients that demand MFA.
        said = claims.get("amr")
        upstream_amr = [str(a) for a in said] if isinstance(said, list) else []
        amr = ["fed", *sorted(MFA_METHODS.intersection(upstream_amr))]
        return UpstreamIdentity(
            self.id, str(claims["sub"]), profile, amr=amr, tokens=upstream_tokens(tokens)
        )

    async def refresh_upstream(self, signed_in: UpstreamSignIn) -> UpstreamRefresh:
        """New upstream tokens with the IdP's refresh token (RFC 6749 §6); when the IdP sends
        a new ID token too, the fresher profile it vouches for (OIDC Core §12.2: same issuer
        and audience, and the same subject — another one means the IdP no longer vouches for
        this sign-in)."""
        meta = await self.metadata()
        tokens, answer = await self.refresh_grant(
            str(meta["token_endpoint"]),
            signed_in.tokens or {},
            client_id=self.config.client_id,
            client_secret=self._client_secret(),
            method=self.config.token_endpoint_auth_method,
        )
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or signed_in.subject is None:
            return UpstreamRefresh(tokens)  # (None: a grant from before subjects were kept)
        access_token = answer.get("access_token")
        claims = await self.verify_id_token(
            id_token, None, access_token if isinstance(access_token, str) else None
        )
        if claims["sub"] != signed_in.subject:
            raise UpstreamRefused(f"{self.name} refreshed the sign-in of another user")
        return UpstreamRefresh(tokens, self.profile(claims))

    async def _redeem(
        self, meta: dict[str, Any], code: str, pending: OidcPending
    ) -> dict[str, Any]:
        return await self.redeem(
            str(meta["token_endpoint"]),
            code,
            pending.callback,
            pending.verifier,
            client_id=self.config.client_id,
            client_secret=self._client_secret(),
            method=self.config.token_endpoint_auth_method,
        )

    def _client_secret(self) -> str | None:
        return self._apple_secret() if self.config.preset == "apple" else self.config.client_secret

    def _apple_secret(self) -> str:
        """Sign in with Apple's client secret: a short ES256 JWT from the team's key."""
        c = self.config
        now = int(time.time())
        claims = {
            "iss": c.apple_team_id,
            "sub": c.client_id,
            "aud": self.issuer,
            "iat": now,
            "exp": now + 300,
        }
        key = ECKey.import_key(str(c.apple_private_key))
        return jwt.encode({"alg": "ES256", "kid": c.apple_key_id}, claims, key)

    async def verify_id_token(
        self, token: str, nonce: str | None, access_token: str | None
    ) -> dict[str, Any]:
        """The ID token's claims if every OIDC Core §3.1.3.7 check passes (`nonce` None: an ID
        token from a refresh, which carries none to match, §12.2)."""
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError):
            raise ConnectorError("The ID token is malformed.") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise ConnectorError("The ID token uses a signing algorithm we do not accept.")
        # Only our copy of the IdP's JWKS is consulted; header keys (jwk/jku/x5u/x5c) never are.
        try:
            decoded = jwt.decode(token, await self.keys(), algorithms=[alg])
        except JoseError:
            try:
                decoded = jwt.decode(token, await self.keys(refresh=True), algorithms=[alg])
            except JoseError:
                raise ConnectorError("The ID token's signature is not valid.") from None
        claims = dict(decoded.claims)
        now = time.time()
        expected_issuer = self.expected_issuer(claims)
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else audiences
        checks = (
            (claims.get("iss") == expected_issuer, "was issued by someone else"),
            (
                isinstance(audiences, list) and self.config.client_id in audiences,
                "was issued for another application",
            ),
            (
                not isinstance(audiences, list)
                or len(audiences) == 1
                or claims.get("azp") == self.config.client_id,
                "names another authorized party",
            ),
            (isinstance(claims.get("sub"), str) and bool(claims["sub"]), "has no subject"),
            (
                isinstance(claims.get("iat"), int | float) and claims["iat"] <= now + self._leeway,
                "has no valid issue time",
            ),
            (
                isinstance(claims.get("exp"), int | float) and claims["exp"] + self._leeway > now,
                "has expired",
            ),
            (
                nonce is None
                or (
                    isinstance(claims.get("nonce"), str)
                    and constant_time_equals(claims["nonce"], nonce)
                ),
                "does not belong to this sign-in (nonce)",
            ),
        )
        for ok, problem in checks:
            if not ok:
                raise ConnectorError(f"The ID token {problem}.")
        at_hash = claims.get("at_hash")
        if access_token and at_hash is not None and at_hash != _at_hash(access_token, alg):
            raise ConnectorError("The ID token does not match its access token (at_hash).")
        return claims

    def _tenant_template(self, meta: dict[str, Any]) -> str | None:
        """Entra ID's multi-tenant endpoints (common, organizations, consumers) publish an
        issuer template with `{tenantid}`; only the entra preset accepts one."""
        issuer = meta.get("issuer")
        if self.config.preset == "entra" and isinstance(issuer, str) and "{tenantid}" in issuer:
            return issuer
        return None

    def expected_issuer(self, claims: dict[str, Any]) -> str | None:
        """The `iss` this token must carry: our issuer, or for Entra multi-tenant the template
        filled with the token's own `tid` (which must be an allowed tenant, if any are set)."""
        template = self._tenant_template(self._metadata or {})
        if template is None:
            return self.issuer
        tid = claims.get("tid")
        if not isinstance(tid, str) or not re.fullmatch(r"[0-9a-f-]{36}", tid):
            return None
        if self.config.allowed_tenants and tid not in self.config.allowed_tenants:
            return None
        return template.replace("{tenantid}", tid)

    def profile(self, claims: dict[str, Any]) -> dict[str, Any]:
        """Upstream claims → the canonical profile (standard names, plus `claim_mapping`)."""
        profile = {k: claims[k] for k in STANDARD_CLAIMS if k in claims}
        profile |= map_attributes(claims, self.config.claim_mapping)
        # Anything but a literal true is unverified, and unverified e-mails never link anything.
        verified = profile.get("email_verified")
        profile["email_verified"] = verified is True or verified == "true"
        return profile

    def form_origins(self) -> list[str]:
        """Origins the sign-in page's form may lead to (CSP form-action follows redirects)."""
        meta = self._metadata or {}
        return self.origins(self.issuer, str(meta.get("authorization_endpoint", "")))


def _apple_first_name(user: str | None, profile: dict[str, Any]) -> dict[str, Any]:
    """Apple posts the user's name once, at the first sign-in, as unsigned JSON beside the code:
    used only to fill a missing name, never for the e-mail (that comes from the ID token)."""
    import json

    try:
        name = json.loads(user or "{}").get("name") or {}
    except (ValueError, AttributeError):
        return profile
    if not isinstance(name, dict):
        return profile
    given, family = name.get("firstName"), name.get("lastName")
    extra: dict[str, Any] = {}
    if isinstance(given, str) and given and "given_name" not in profile:
        extra["given_name"] = given[:128]
    if isinstance(family, str) and family and "family_name" not in profile:
        extra["family_name"] = family[:128]
    if extra and "name" not in profile:
        extra["name"] = " ".join(
            v for v in (extra.get("given_name"), extra.get("family_name")) if v
        )
    return {**profile, **extra}


def _at_hash(access_token: str, alg: str) -> str:
    digest = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}[alg[-3:]]
    full = digest(access_token.encode("ascii")).digest()
    return b64url(full[: len(full) // 2])
