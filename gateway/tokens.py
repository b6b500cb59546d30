"""Minting and verifying the JWTs Cognate issues: access tokens (RFC 9068 profile, `typ`
`at+jwt`, ES256 by default) and ID tokens (OIDC Core, RS256 by default: `keys.id_token_alg`, or
a client's `id_token_signed_response_alg`).

Refresh tokens and codes are opaque and live in `gateway.grants`. Keys come from
`gateway.keys.KeyRing`; this module only decides what goes into a token and what a valid one is.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from gateway.crypto import b64url
from gateway.errors import InvalidToken
from gateway.keys import KeyRing
from gateway.settings import Settings

ASSERTION_CACHE_SIZE = 10_000
CHECKED_CACHE_SIZE = 4_096  # tokens whose signature is known good (see TokenService._checked)
ACCESS_TOKEN_TYPE = "at+jwt"  # RFC 9068 §2.1: keeps ID tokens from passing as access tokens
ID_TOKEN_TYPE = "JWT"  # ID tokens and web-identity tokens; logout tokens have their own


@dataclass(slots=True)
class _Checked:
    """A token whose signature holds: what its header and payload say (and, once read as an
    access token, that reading: its claims never change)."""

    kid: str
    alg: str
    typ: str | None
    claims: dict[str, Any]
    access: AccessToken | None = None


@dataclass(frozen=True)
class AccessToken:
    """The verified content of an access token."""

    sub: str
    client_id: str
    scope: frozenset[str]
    jti: str
    iat: int
    exp: int
    gid: str | None  # grant (token family) id; None for client_credentials tokens
    sid: str | None
    username: str | None = None  # the local account, in the user-pool API's tokens (Cognito's)


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: left half of the SHA-256 of the access token (RS256/ES256)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2])


class TokenService:
    """Signs tokens with the key ring's current keys and verifies the ones we issued."""

    def __init__(self, settings: Settings, keys: KeyRing) -> None:
        self._settings = settings
        self._keys = keys
        self.issuer = settings.issuer
        self._assertions: OrderedDict[tuple[Any, ...], tuple[str, int]] = OrderedDict()
        # Each token's signature is checked once per process. ID tokens this process signed,
        # and tokens it verified before, are remembered by their exact text with their
        # header and claims (bounded, least recently used out): an app calling GetUser or
        # userinfo with the same access token, or a CI job presenting the ID token it was just
        # given, costs no second signature check. Every claim check (type, issuer, lifetime,
        # audience) still runs on every use, and a key that leaves the ring takes its tokens
        # with it (`KeyRing.has`).
        self._checked: OrderedDict[str, _Checked] = OrderedDict()
        # ID tokens: keys.id_token_alg, or the client's id_token_signed_response_alg. Our own
        # ID tokens verify with any of them (`typ` tells them from our other ES256 tokens).
        self._id_token_algs = settings.id_token_algs
        self._client_id_alg = {
            c.client_id: c.id_token_signed_response_alg
            for c in settings.clients
            if c.id_token_signed_response_alg
        }

    def _sign(self, alg: str, claims: dict[str, Any], typ: str) -> str:
        key = self._keys.current(alg)
        header = {"alg": alg, "kid": key.kid, "typ": typ}
        token = jwt.encode(header, claims, key)
        if typ == ID_TOKEN_TYPE:
            # An ID token usually comes straight back (a workload's exchange, then its
            # GetCredentialsForIdentity): remembered now. Access tokens are remembered when
            # first verified, so the tokens no one shows us (client_credentials ones, mostly,
            # checked by resource servers) cost nothing here.
            # The claims as a verifier reads them back (JSON: a tuple comes back a list).
            payload = token.split(".")[1]
            read = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            self._remember(token, _Checked(str(key.kid), alg, typ, read))
        return token

    def _remember(self, token: str, checked: _Checked) -> None:
        self._checked[token] = checked
        if len(self._checked) > CHECKED_CACHE_SIZE:
            self._checked.popitem(last=False)

    async def _verified(
        self, token: str, algorithms: list[str]
    ) -> tuple[str | None, dict[str, Any]]:
        """The `typ` and a copy of the claims of a JWT signed with one of our keys in one of
        `algorithms`; JoseError or ValueError if its signature does not hold."""
        hit = self._checked.get(token)
        if hit is not None and hit.alg in algorithms and self._keys.has(hit.kid):
            self._checked.move_to_end(token)
            return hit.typ, dict(hit.claims)
        decoded = await self._keys.decode(token, algorithms)
        typ = decoded.header.get("typ")
        claims = dict(decoded.claims)
        self._remember(
            token, _Checked(str(decoded.header.get("kid")), decoded.header["alg"], typ, claims)
        )
        return typ, dict(claims)

    def access_token(
        self,
        *,
        sub: str,
        client_id: str,
        scope: frozenset[str],
        gid: str | None,
        sid: str | None = None,
        auth_time: int | None = None,
        now: int | None = None,
        extra: dict[str, Any] | None = None,
        audience: bool = True,
    ) -> tuple[str, AccessToken]:
        """A signed access token and its parsed form. `extra`: claims a front end adds (the
        Cognito user-pool API's `token_use`, `username`...), never over the standard ones.
        `audience` False: no `aud` (Cognito's access tokens name their client in `client_id`
        only, and verifiers written for them refuse an unexpected `aud`)."""
        now = int(time.time()) if now is None else now
        ttl = self._settings.tokens.access_token_ttl
        parsed = AccessToken(
            sub=sub,
            client_id=client_id,
            scope=scope,
            jti=uuid.uuid4().hex,
            iat=now,
            exp=now + ttl,
            gid=gid,
            sid=sid,
        )
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            **({"aud": client_id} if audience else {}),
            "client_id": client_id,
            "token_use": "access",  # as Cognito's: verifiers such as aws-jwt-verify check it
            "scope": " ".join(sorted(scope)),
            "jti": parsed.jti,
            "iat": now,
            "exp": parsed.exp,
        }
        if gid:
            claims["gid"] = gid
        if sid:
            claims["sid"] = sid
        if auth_time is not None:
            claims["auth_time"] = auth_time
        if extra:
            claims = {**extra, **claims}
        return self._sign(self._settings.keys.access_token_alg, claims, ACCESS_TOKEN_TYPE), parsed

    def id_token(
        self,
        *,
        sub: str,
        client_id: str,
        auth_time: int,
        nonce: str | None,
        sid: str | None,
        access_token: str | None,
        amr: list[str],
        profile: dict[str, Any],
        now: int | None = None,
    ) -> str:
        """An OIDC ID token for `client_id` with the profile claims its scopes allow."""
        now = int(time.time()) if now is None else now
        claims: dict[str, Any] = {
            **profile,
            "iss": self.issuer,
            "sub": sub,
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + self._settings.tokens.id_token_ttl,
            "auth_time": auth_time,
            "token_use": "id",
        }
        if nonce:
            claims["nonce"] = nonce
        if sid:
            claims["sid"] = sid
        if amr:
            claims["amr"] = amr
        if access_token:
            claims["at_hash"] = at_hash(access_token)
        alg = self._client_id_alg.get(client_id, self._settings.keys.id_token_alg)
        return self._sign(alg, claims, ID_TOKEN_TYPE)

    def identity_assertion(
        self,
        *,
        audience: str,
        sub: str,
        email: str | None,
        groups: list[str],
        ttl: int = 60,
        now: int | None = None,
    ) -> str:
        """A short JWT for forward-auth (`X-Cognate-Assertion`): apps verify it against the
        JWKS instead of trusting the network. ES256 by default, `aud` = the app's origin.

        Signing is most of forward-auth's CPU, so the same assertion is handed out again while
        at least half its lifetime is left (bounded LRU, per user, origin and claims)."""
        now = int(time.time()) if now is None else now
        # The signing key's kid is part of the key: a rotation starts fresh assertions.
        kid = self._keys.current(self._settings.keys.access_token_alg).kid
        key = (audience, sub, email, tuple(groups), ttl, kid)
        cached = self._assertions.get(key)
        if cached is not None and now - cached[1] < ttl // 2:
            self._assertions.move_to_end(key)
            return cached[0]
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "sub": sub,
            "iat": now,
            "exp": now + ttl,
        }
        if email:
            claims["email"] = email
        if groups:
            claims["groups"] = groups
        token = self._sign(self._settings.keys.access_token_alg, claims, "cognate-assertion+jwt")
        self._assertions[key] = (token, now)
        self._assertions.move_to_end(key)
        if len(self._assertions) > ASSERTION_CACHE_SIZE:
            self._assertions.popitem(last=False)
        return token

    def logout_token(self, *, client_id: str, sub: str, sid: str | None) -> str:
        """An OIDC Back-Channel Logout 1.0 logout token (typ logout+jwt, never a nonce)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": client_id,
            "sub": sub,
            "iat": now,
            "exp": now + 120,
            "jti": uuid.uuid4().hex,
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        }
        if sid:
            claims["sid"] = sid
        return self._sign(self._settings.keys.id_token_alg, claims, "logout+jwt")

    def web_identity_token(
        self,
        *,
        identity_id: str,
        audience: str,
        amr: list[str],
        ttl: int,
        tags: dict[str, str] | None = None,
        source_identity: str | None = None,
        now: int | None = None,
    ) -> str:
        """The token an identity pool hands to STS AssumeRoleWithWebIdentity (and returns from
        GetOpenIdToken): aud = the pool (see `token_audience`), sub = the identity, amr says
        how it authenticated.
        Session tags and the source identity use the claim names AWS STS reads."""
        now = int(time.time()) if now is None else now
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": identity_id,
            "aud": audience,
            "amr": amr,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        if tags:
            claims["https://aws.amazon.com/tags"] = {
                "principal_tags": {k: [v] for k, v in tags.items()},
                "transitive_tag_keys": sorted(tags),
            }
        if source_identity:
            claims["https://aws.amazon.com/source_identity"] = source_identity
        return self._sign(self._settings.keys.id_token_alg, claims, ID_TOKEN_TYPE)

    async def verify_own_jwt(self, token: str, now: int | None = None) -> dict[str, Any]:
        """Claims of an ID or web-identity token we issued: signature, issuer, lifetime.
        The caller checks the audience. Raises ValueError otherwise."""
        try:
            typ, claims = await self._verified(token, self._id_token_algs)
        except (JoseError, ValueError) as exc:
            raise ValueError("the token is malformed or badly signed") from exc
        if typ != ID_TOKEN_TYPE:
            # An access token, a back-channel logout token, a forward-auth assertion: signed
            # by us, but none of them says that someone signed in.
            raise ValueError("only an ID or web-identity token is a login token")
        now = int(time.time()) if now is None else now
        leeway = self._settings.tokens.leeway
        try:
            if claims.get("iss") != self.issuer or not claims.get("sub"):
                raise ValueError("the token was not issued by this gateway")
            if int(claims["exp"]) + leeway < now:
                raise ValueError("the token has expired")
        except (KeyError, TypeError) as exc:
            raise ValueError("the token lacks required claims") from exc
        return claims

    async def verify_access_token(self, token: str, now: int | None = None) -> AccessToken:
        """Signature, type, issuer and lifetime of one of our access tokens; InvalidToken if not.
        Revocation (is the grant still alive?) is the caller's check against the store."""
        alg = self._settings.keys.access_token_alg
        hit = self._checked.get(token)
        if (
            hit is not None
            and hit.access is not None
            and hit.alg == alg
            and self._keys.has(hit.kid)
        ):
            self._checked.move_to_end(token)  # read before: only its lifetime to check again
            access = hit.access
        else:
            access = await self._read_access_token(token, alg)
        now = int(time.time()) if now is None else now
        leeway = self._settings.tokens.leeway
        if access.exp + leeway < now:
            raise InvalidToken("the access token has expired")
        if access.iat - leeway > now:
            raise InvalidToken("the access token is not valid yet")
        return access

    async def _read_access_token(self, token: str, alg: str) -> AccessToken:
        """Signature, type, issuer and claims of an access token (remembered with its
        signature check: `_checked`)."""
        try:
            typ, claims = await self._verified(token, [alg])
        except (JoseError, ValueError):
            raise InvalidToken("the access token is malformed or badly signed") from None
        if typ != ACCESS_TOKEN_TYPE:
            raise InvalidToken("not an access token")
        if claims.get("iss") != self.issuer:
            raise InvalidToken("the access token was issued by someone else")
        try:
            access = AccessToken(
                sub=str(claims["sub"]),
                client_id=str(claims["client_id"]),
                scope=frozenset(str(claims.get("scope", "")).split()),
                jti=str(claims["jti"]),
                iat=int(claims["iat"]),
                exp=int(claims["exp"]),
                gid=claims.get("gid"),
                sid=claims.get("sid"),
                username=claims["username"] if isinstance(claims.get("username"), str) else None,
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidToken("the access token lacks required claims") from None
        checked = self._checked.get(token)
        if checked is not None:
            checked.access = access
        return access

    async def verify_id_token_hint(self, token: str) -> dict[str, Any]:
        """An ID token we issued, as `id_token_hint` (at authorize and at logout): signature
        and issuer must hold; expiry is ignored (OIDC Core §3.1.2.1, RP-Initiated Logout §2).
        Only an ID token will do: our other JWTs are signed with the same key (a back-channel
        logout token, a web-identity token for STS), so the header's `typ` must be the ID
        token's and `azp` (which only ID tokens carry) must name one of its audiences.
        Raises ValueError otherwise."""
        invalid = "id_token_hint is not a valid ID token from this issuer"
        try:
            typ, claims = await self._verified(token, self._id_token_algs)
        except (JoseError, ValueError) as exc:
            raise ValueError(invalid) from exc
        if typ != ID_TOKEN_TYPE:
            raise ValueError("id_token_hint is not an ID token")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if claims.get("iss") != self.issuer or not claims.get("sub") or not audience:
            raise ValueError(invalid)
        if "events" in claims or not claims.get("azp") or claims["azp"] not in audiences:
            raise ValueError("id_token_hint is not an ID token")
        return claims
