"""A scriptable upstream OpenID Provider for the federation tests: a real HTTP server whose
answers can be made wrong in every way SECURITY-TESTS section B lists.

It approves every authorization request at once (no UI), checks the connector's PKCE at the
token endpoint, and counts token requests (to prove a bad response stops before the code is
spent). Set `behaviour` fields before a sign-in; `reset()` restores good manners.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.helpers import AppServer


@dataclass
class Behaviour:
    """How the next sign-in goes wrong (defaults: it does not)."""

    claims: dict[str, Any] = field(default_factory=dict)  # override / add ID token claims
    drop: tuple[str, ...] = ()  # remove ID token claims
    signing: str = "good"  # good | none | hs256-public | foreign-key | embedded-jwk | bad-sig
    response_iss: str = "good"  # good | other | missing
    userinfo_sub: str | None = None  # a different sub from userinfo
    token_answer: str = "good"  # good | slow | 500 | html | huge
    jwks_answer: str = "good"  # good | 500 | garbage
    tenant: str | None = None  # Entra-style: iss = <issuer>/<tenant>/v2.0 and a tid claim
    subject: str = "fake-user-1"
    email: str = "fed@example.com"
    email_verified: Any = True
    apple_user: str | None = None  # Sign in with Apple's one-time `user` JSON (form_post)
    # The upstream refresh: good | invalid_grant | 500, or id-token (a good answer with a new
    # ID token, OIDC Core §12.2: the current claims, no nonce).
    refresh_answer: str = "good"


class FakeOP:
    def __init__(self) -> None:
        self.server = AppServer(
            Starlette(
                routes=[
                    Route("/.well-known/openid-configuration", self.discovery),
                    Route(
                        "/common/v2.0/.well-known/openid-configuration", self.multi_tenant_discovery
                    ),
                    Route("/jwks", self.jwks),
                    Route("/authorize", self.authorize),
                    Route("/token", self.token, methods=["POST"]),
                    Route("/userinfo", self.userinfo),
                ]
            )
        )
        self.issuer = self.server.url
        self.key = RSAKey.generate_key(
            2048, {"kid": "fake-1", "alg": "RS256", "use": "sig"}, private=True
        )
        self.behaviour = Behaviour()
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_requests = 0
        self.jwks_requests = 0
        self.refresh_requests = 0
        self.issued_access_tokens: list[str] = []
        self.refresh_tokens: set[str] = set()
        self.refresh_clients: dict[str, str] = {}  # refresh token → the client it was issued to
        # Sign in with Apple: the client secret must be a JWT signed by this key.
        self.apple_key = ECKey.generate_key("P-256", private=True)
        self.apple_client_id = "com.example.apple-client"
        self.apple_team = "TEAM123456"

    def reset(self) -> None:
        self.behaviour = Behaviour()
        self.token_requests = 0
        self.jwks_requests = 0

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "authorization_response_iss_parameter_supported": True,
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def multi_tenant_discovery(self, request: Request) -> Response:
        """Like Entra ID's /common/v2.0: the issuer is a template."""
        document = json.loads((await self.discovery(request)).body)
        document["issuer"] = self.issuer + "/{tenantid}/v2.0"
        document.pop("authorization_response_iss_parameter_supported")
        return JSONResponse(document)

    async def jwks(self, request: Request) -> Response:
        self.jwks_requests += 1
        if self.behaviour.jwks_answer == "500":
            return Response("oops", status_code=500)
        if self.behaviour.jwks_answer == "garbage":
            return Response("<html>not keys</html>", media_type="text/html")
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "nonce": q.get("nonce"),
            "challenge": q.get("code_challenge"),
            "client_id": q.get("client_id"),
            "redirect_uri": q.get("redirect_uri"),
        }
        answer = {"code": code, "state": q.get("state", "")}
        if self.behaviour.response_iss == "good":
            answer["iss"] = self.issuer
        elif self.behaviour.response_iss == "other":
            answer["iss"] = "https://attacker.example"
        if q.get("response_mode") == "form_post":
            if self.behaviour.apple_user:
                answer["user"] = self.behaviour.apple_user
            inputs = "".join(
                f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
                for k, v in answer.items()
            )
            return HTMLResponse(
                f'<form method="post" action="{html.escape(q["redirect_uri"])}">{inputs}</form>'
            )
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode(answer)}", status_code=302)

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        answer = self.behaviour.token_answer
        if answer == "slow":
            import asyncio

            await asyncio.sleep(3)  # longer than the connector's timeout in the tests
        elif answer == "500":
            return Response("internal error", status_code=500)
        elif answer == "html":
            return Response("<html><body>Sign in to continue</body></html>", media_type="text/html")
        elif answer == "huge":
            return Response(b"{" + b" " * (2 * 1024 * 1024) + b"}", media_type="application/json")
        form = await request.form()
        if form.get("client_id") == self.apple_client_id and not self._apple_secret_ok(
            str(form.get("client_secret", ""))
        ):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") == "refresh_token":
            return self._refresh(str(form.get("refresh_token", "")))
        grant = self.codes.pop(str(form.get("code")), None)
        verifier = str(form.get("code_verifier", ""))
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
        if (
            grant is None
            or digest.decode() != grant["challenge"]
            or (form.get("redirect_uri") != grant["redirect_uri"])
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        access = secrets.token_urlsafe(24)
        refresh = secrets.token_urlsafe(24)
        self.issued_access_tokens.append(access)
        self.refresh_tokens.add(refresh)
        self.refresh_clients[refresh] = grant["client_id"]
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 3600,
                "refresh_token": refresh,
                "id_token": self.id_token(grant, access),
            }
        )

    def _refresh(self, refresh: str) -> Response:
        self.refresh_requests += 1
        if self.behaviour.refresh_answer == "500":
            return Response("internal error", status_code=500)
        if self.behaviour.refresh_answer == "invalid_grant" or refresh not in self.refresh_tokens:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        self.refresh_tokens.discard(refresh)
        fresh = secrets.token_urlsafe(24)
        self.refresh_tokens.add(fresh)
        client_id = self.refresh_clients.pop(refresh, "")
        self.refresh_clients[fresh] = client_id
        access = secrets.token_urlsafe(24)
        self.issued_access_tokens.append(access)
        answer = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": fresh,
        }
        if self.behaviour.refresh_answer == "id-token":
            answer["id_token"] = self.id_token({"client_id": client_id, "nonce": None}, access)
        return JSONResponse(answer)

    def _apple_secret_ok(self, secret: str) -> bool:
        """Apple's check of the client secret JWT: ES256 by the registered key, right claims."""
        try:
            token = jwt.decode(secret, self.apple_key, algorithms=["ES256"])
        except Exception:
            return False
        claims = token.claims
        return (
            claims.get("iss") == self.apple_team
            and claims.get("sub") == self.apple_client_id
            and claims.get("aud") == self.issuer
            and int(claims.get("exp", 0)) > time.time()
        )

    async def userinfo(self, request: Request) -> Response:
        b = self.behaviour
        return JSONResponse(
            {
                "sub": b.userinfo_sub or b.subject,
                "email": b.email,
                "name": "Fed User",
                "picture": "https://example.com/p.png",
            }
        )

    def id_token(self, grant: dict[str, Any], access_token: str) -> str:
        b = self.behaviour
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": b.subject,
            "aud": grant["client_id"],
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            "email": b.email,
            "email_verified": b.email_verified,
        }
        if grant["nonce"] is None:  # an ID token from a refresh has none to match
            del claims["nonce"]
        if b.tenant:
            claims |= {"iss": f"{self.issuer}/{b.tenant}/v2.0", "tid": b.tenant}
        claims.update(b.claims)
        for name in b.drop:
            claims.pop(name, None)
        return self.sign(claims)

    def sign(self, claims: dict[str, Any]) -> str:
        b = self.behaviour
        if b.signing == "none":
            header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
            return f"{header}.{_b64(json.dumps(claims).encode())}."
        if b.signing == "hs256-public":
            # The classic confusion: HMAC keyed with the IdP's *public* key, forged by hand
            # (libraries rightly refuse to build it).
            import hmac

            head = _b64(json.dumps({"alg": "HS256", "kid": "fake-1", "typ": "JWT"}).encode())
            body = _b64(json.dumps(claims).encode())
            mac = hmac.new(
                self.key.as_pem(private=False), f"{head}.{body}".encode(), hashlib.sha256
            ).digest()
            return f"{head}.{body}.{_b64(mac)}"
        if b.signing in ("foreign-key", "embedded-jwk"):
            attacker = ECKey.generate_key("P-256", {"kid": "fake-1"}, private=True)
            header: dict[str, Any] = {"alg": "ES256", "kid": "fake-1"}
            if b.signing == "embedded-jwk":
                header |= {
                    "jwk": attacker.as_dict(private=False),
                    "jku": "https://attacker.example/jwks",
                    "x5u": "https://attacker.example/cert",
                }
            return jwt.encode(header, claims, attacker)
        token = jwt.encode({"alg": "RS256", "kid": "fake-1"}, claims, self.key)
        if b.signing == "bad-sig":
            head, body, sig = token.split(".")
            return f"{head}.{body}.{sig[:-6]}AAAAAA"
        return token


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
