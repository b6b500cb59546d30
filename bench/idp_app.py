"""A minimal, fast upstream OpenID Provider for bench/federation.py: discovery, JWKS, a token
endpoint and userinfo, with ES256 ID tokens so that the IdP is never the bottleneck.

The "authorization code" the benchmark puts in each callback *is* the flow's nonce, so the token
endpoint can answer any code with a valid ID token for it without keeping state.
"""

from __future__ import annotations

import argparse
import time

import uvicorn
from joserfc import jwt
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

KEY = ECKey.generate_key("P-256", {"kid": "bench", "alg": "ES256", "use": "sig"}, private=True)
ISSUER = ""
CLIENT_ID = "bench-client"
SUBJECT = "bench-user"


async def discovery(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "issuer": ISSUER,
            "authorization_endpoint": f"{ISSUER}/authorize",
            "token_endpoint": f"{ISSUER}/token",
            "jwks_uri": f"{ISSUER}/jwks",
            "userinfo_endpoint": f"{ISSUER}/userinfo",
            "authorization_response_iss_parameter_supported": True,
        }
    )


async def jwks(request: Request) -> JSONResponse:
    return JSONResponse({"keys": [KEY.as_dict(private=False)]})


async def token(request: Request) -> JSONResponse:
    form = await request.form()
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": SUBJECT,
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "nonce": str(form.get("code")),
        "email": "bench-fed@example.com",
        "email_verified": True,
    }
    id_token = jwt.encode({"alg": "ES256", "kid": "bench"}, claims, KEY)
    answer = {"access_token": f"at-{now}", "token_type": "Bearer", "id_token": id_token}
    return JSONResponse(answer)


async def userinfo(request: Request) -> JSONResponse:
    return JSONResponse({"sub": SUBJECT, "name": "Bench User"})


app = Starlette(
    routes=[
        Route("/.well-known/openid-configuration", discovery),
        Route("/jwks", jwks),
        Route("/token", token, methods=["POST"]),
        Route("/userinfo", userinfo),
    ]
)

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    ISSUER = f"http://127.0.0.1:{port}"
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
