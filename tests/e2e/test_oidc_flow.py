"""End to end over real HTTP: an independent OIDC client (authlib) signs a local user in through
the hosted page, exchanges the code with PKCE, validates the ID token against the JWKS, calls
userinfo, refreshes and revokes."""

from __future__ import annotations

import secrets
import time

from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.helpers import PASSWORD, Browser, GatewayServer, form_fields


async def test_authlib_client_full_lifecycle(gateway: GatewayServer, user: str) -> None:
    person = Browser(gateway.url)
    discovery = (await person.http.get("/.well-known/openid-configuration")).json()
    assert discovery["issuer"] == gateway.url
    client = AsyncOAuth2Client(
        client_id="web",
        client_secret="web-secret-0123456789",
        redirect_uri="https://app.example.com/cb",
        scope="openid email profile offline_access",
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(12)
    url, state = client.create_authorization_url(
        discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )

    # The "person": follow the authorize redirect, fill in the hosted form.
    first = await person.http.get(url)
    assert first.status_code == 303
    page = await person.http.get(first.headers["location"])
    assert "Sign in" in page.text
    done = await person.http.post(
        "/login", data={**form_fields(page.text), "email": user, "password": PASSWORD}
    )
    assert done.status_code == 303
    callback = done.headers["location"]
    assert callback.startswith("https://app.example.com/cb?")
    await person.aclose()

    token = await client.fetch_token(
        discovery["token_endpoint"],
        authorization_response=callback,
        code_verifier=verifier,
        state=state,
    )
    assert {"access_token", "id_token", "refresh_token"} <= set(token)

    # Validate the ID token as a relying party would.
    jwks = KeySet.import_key_set((await client.get(discovery["jwks_uri"])).json())
    decoded = jwt.decode(token["id_token"], jwks, algorithms=["RS256"])
    claims = decoded.claims
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": gateway.url},
        aud={"essential": True, "value": "web"},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    registry.validate(claims)
    assert claims["email"] == user and claims["email_verified"] is True
    assert claims["sub"].startswith("us-east-1:")
    assert abs(claims["auth_time"] - time.time()) < 60
    assert claims["amr"] == ["pwd"]
    # Cognito's token_use, on hosted-page tokens too (aws-jwt-verify's Cognito checks read it).
    assert claims["token_use"] == "id"
    access_claims = jwt.decode(token["access_token"], jwks, algorithms=["ES256"]).claims
    assert access_claims["token_use"] == "access"
    assert decoded.header["kid"] in {k["kid"] for k in jwks.as_dict()["keys"]}

    # userinfo with the access token; same subject as the ID token
    info = (await client.get(discovery["userinfo_endpoint"])).json()
    assert info["sub"] == claims["sub"] and info["email"] == user

    # refresh rotates and keeps the subject
    refreshed = await client.refresh_token(
        discovery["token_endpoint"], refresh_token=token["refresh_token"]
    )
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert jwt.decode(refreshed["id_token"], jwks).claims["sub"] == claims["sub"]

    # revoke: the refresh token and the access tokens of its grant stop working
    revoked = await client.revoke_token(
        discovery["revocation_endpoint"],
        token=refreshed["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert revoked.status_code == 200
    assert client.token["access_token"] == refreshed["access_token"]
    after = await client.get(discovery["userinfo_endpoint"])
    assert after.status_code == 401
    await client.aclose()
