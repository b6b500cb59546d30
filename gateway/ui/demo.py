"""A tiny relying party for `cognate serve` without a config: click, sign in, see the tokens.

It is an ordinary public client (`demo`) doing the code flow with PKCE against this very
gateway over HTTP, so the demo exercises exactly what a real app would. Mounted only in demo mode.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import httpx
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.crypto import b64url_decode, constant_time_equals, random_token, s256_challenge
from gateway.errors import PageError

if TYPE_CHECKING:
    from gateway.services import Services

_COOKIE = "cognate_demo"


def routes(services: Services) -> list[BaseRoute]:
    issuer = services.settings.issuer
    pages = services.pages
    redirect_uri = f"{issuer}/demo/callback"

    async def index(request: Request) -> Response:
        return pages.render(request, "demo.html", {"result": None})

    async def start(request: Request) -> Response:
        verifier, state, nonce = random_token(), random_token(16), random_token(16)
        query = urlencode(
            {
                "client_id": "demo",
                "response_type": "code",
                "redirect_uri": redirect_uri,
                "scope": "openid email profile offline_access",
                "state": state,
                "nonce": nonce,
                "code_challenge": s256_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        response = RedirectResponse(f"/oauth2/authorize?{query}", status_code=303)
        pages.set_cookie(response, _COOKIE, f"{verifier}.{state}.{nonce}", max_age=900)
        return response

    async def callback(request: Request) -> Response:
        saved = (pages.cookie(request, _COOKIE) or "..").split(".")
        if len(saved) != 3 or not constant_time_equals(
            saved[1], request.query_params.get("state", "")
        ):
            raise PageError("Demo: state mismatch", "Start again from the demo page.")
        if "error" in request.query_params:
            raise PageError("Demo: sign-in failed", request.query_params["error"])
        async with httpx.AsyncClient(timeout=10) as http:
            tokens = (
                await http.post(
                    f"{issuer}/oauth2/token",
                    data={
                        "grant_type": "authorization_code",
                        "code": request.query_params.get("code", ""),
                        "redirect_uri": redirect_uri,
                        "client_id": "demo",
                        "code_verifier": saved[0],
                    },
                )
            ).json()
            if "access_token" not in tokens:
                raise PageError("Demo: token exchange failed", json.dumps(tokens))
            userinfo = (
                await http.get(
                    f"{issuer}/oauth2/userinfo",
                    headers={"Authorization": f"Bearer {tokens['access_token']}"},
                )
            ).json()
        claims = json.loads(b64url_decode(tokens["id_token"].split(".")[1]))
        # ensure_ascii=False: names and the ellipsis below show as text, not as \u escapes.
        result = {
            "id_token_claims": json.dumps(claims, indent=2, ensure_ascii=False),
            "userinfo": json.dumps(userinfo, indent=2, ensure_ascii=False),
            "token_response": json.dumps(
                {
                    k: (v[:24] + "…" if isinstance(v, str) and len(v) > 40 else v)
                    for k, v in tokens.items()
                },
                indent=2,
                ensure_ascii=False,
            ),
            "logout": "/oauth2/logout?"
            + urlencode(
                {
                    "id_token_hint": tokens["id_token"],
                    "post_logout_redirect_uri": f"{issuer}/demo/",
                }
            ),
        }
        response = pages.render(request, "demo.html", {"result": result})
        pages.clear_cookie(response, _COOKIE)
        return response

    return [
        Route("/demo/", index),
        Route("/demo/start", start),
        Route("/demo/callback", callback),
    ]
