"""A GitHub Enterprise Server stand-in on loopback: OAuth endpoints (with PKCE checked) and the
few REST calls the github preset makes."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.helpers import AppServer

CLIENT_ID, CLIENT_SECRET = "gh-client", "gh-secret-0123456789"


@dataclass
class Account:
    id: Any = 4242
    login: str = "octocat"
    emails: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"email": "old@example.com", "primary": False, "verified": True},
            {"email": "octo@example.com", "primary": True, "verified": True},
        ]
    )
    orgs: list[str] = field(default_factory=lambda: ["acme"])
    teams: list[tuple[str, str]] = field(default_factory=lambda: [("acme", "admins")])


class FakeGitHub:
    def __init__(self) -> None:
        self.server = AppServer(
            Starlette(
                routes=[
                    Route("/login/oauth/authorize", self.authorize),
                    Route("/login/oauth/access_token", self.token, methods=["POST"]),
                    Route("/api/v3/user", self.user),
                    Route("/api/v3/user/emails", self.emails),
                    Route("/api/v3/user/orgs", self.orgs),
                    Route("/api/v3/user/teams", self.teams),
                ]
            )
        )
        self.account = Account()
        self.codes: dict[str, str] = {}
        self.tokens: set[str] = set()

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        code = secrets.token_urlsafe(12)
        self.codes[code] = str(q.get("code_challenge"))
        return RedirectResponse(
            f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", status_code=302
        )

    async def token(self, request: Request) -> Response:
        form = await request.form()
        challenge = self.codes.pop(str(form.get("code")), None)
        verifier = str(form.get("code_verifier", "")).encode()
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        if (
            challenge is None
            or computed.decode() != challenge
            or form.get("client_id") != CLIENT_ID
            or form.get("client_secret") != CLIENT_SECRET
        ):
            return JSONResponse({"error": "bad_verification_code"})  # GitHub answers 200
        token = secrets.token_urlsafe(20)
        self.tokens.add(token)
        return JSONResponse({"access_token": token, "token_type": "bearer", "scope": "read:user"})

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization", "").removeprefix("Bearer ") in self.tokens

    async def user(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        a = self.account
        return JSONResponse(
            {
                "id": a.id,
                "login": a.login,
                "name": "Octo Cat",
                "avatar_url": "https://example.com/octo.png",
            }
        )

    async def emails(self, request: Request) -> Response:
        return JSONResponse(self.account.emails if self.authorized(request) else [], 200)

    async def orgs(self, request: Request) -> Response:
        return JSONResponse([{"login": o} for o in self.account.orgs])

    async def teams(self, request: Request) -> Response:
        return JSONResponse(
            [{"slug": t, "organization": {"login": o}} for o, t in self.account.teams]
        )
