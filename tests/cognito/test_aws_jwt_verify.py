"""npm `aws-jwt-verify` (pinned) under Node 20 verifies the ID and access tokens of a user-pool
sign-in, over TLS as deployed (its JWKS fetch speaks https only; Node trusts the test CA
through NODE_EXTRA_CA_CERTS).

What the library allows, read from its source: `CognitoJwtVerifier` derives the issuer and
the JWKS URI from the user pool id (`https://cognito-idp.<region>.amazonaws.com/<pool id>` and
`issuer-cognito-idp.…`) and spreads them over whatever the caller passes, so it cannot be
pointed at another issuer — a Cognate token is refused as "issuer not configured". What
works without patching it: the generic `JwtVerifier` with Cognate's issuer, its JWKS (at
`<issuer>/<pool id>/.well-known/jwks.json` or `<issuer>/.well-known/jwks.json`),
`audience: null`, and the library's own Cognito claim checks (`validateCognitoJwtFields`, for
`tokenUse` and `clientId`) as its `customJwtCheck`.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.cognito.test_user_pool_api import FLOWS, PASSWORD
from tests.helpers import GatewayServer, RedisServer, free_port, make_settings
from tests.npm import node_modules, run_node
from tests.tls import Pki, make_pki

POOL_ID = "eu-west-1_JwtVerif1"
CLIENT = "verified-app"

SCRIPT = """
const { CognitoJwtVerifier, JwtVerifier } = require("aws-jwt-verify");
const { validateCognitoJwtFields } = require("aws-jwt-verify/cognito-verifier");
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const outcome = (promise) => promise.then(
  (payload) => ({ ok: true, token_use: payload.token_use, sub: payload.sub }),
  (err) => ({ ok: false, error: err.constructor.name, message: err.message }));
// What a Cognito user writes first: refused, whatever issuer is passed along.
const cognito = (tokenUse) => CognitoJwtVerifier.create({
  userPoolId: input.poolId, tokenUse, clientId: input.clientId,
  issuer: input.issuer, jwksUri: input.jwksUri });
// What works: the generic verifier, with the library's Cognito claim checks.
const generic = (tokenUse, clientId, jwksUri) => JwtVerifier.create({
  issuer: input.issuer, audience: null, jwksUri,
  customJwtCheck: ({ payload }) => validateCognitoJwtFields(payload, { tokenUse, clientId }),
});
const flip = (jwt) => jwt.slice(0, -4) + (jwt.slice(-4) === "AAAA" ? "BBBB" : "AAAA");
(async () => {
  const { id, access } = input.tokens;
  const out = {
    cognitoId: await outcome(cognito("id").verify(id)),
    idAtPool: await outcome(generic("id", input.clientId, input.jwksUri).verify(id)),
    accessAtPool: await outcome(generic("access", input.clientId, input.jwksUri).verify(access)),
    idAtIssuer: await outcome(generic("id", input.clientId, input.rootJwks).verify(id)),
    accessAtIssuer: await outcome(
      generic("access", [input.clientId, "other"], input.rootJwks).verify(access)),
    idAsAccess: await outcome(generic("access", input.clientId, input.jwksUri).verify(id)),
    otherClient: await outcome(generic("id", "other", input.jwksUri).verify(id)),
    tampered: await outcome(generic("id", input.clientId, input.jwksUri).verify(flip(id))),
  };
  process.stdout.write(JSON.stringify(out));
})();
"""


@pytest.fixture(scope="module")
def tls() -> Iterator[Pki]:
    pki = make_pki(["localhost"])  # Node resolves it without any help
    yield pki
    shutil.rmtree(pki.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def pool(redis_server: RedisServer, tls: Pki) -> Iterator[GatewayServer]:
    port = free_port()
    settings = make_settings(
        port,
        redis_server.url,
        issuer=f"https://localhost:{port}",
        clients=[
            {
                "client_id": CLIENT,
                "token_endpoint_auth_method": "none",
                "grant_types": ["refresh_token"],
                "explicit_auth_flows": FLOWS,
            }
        ],
        user_pool={"id": POOL_ID},
    )
    server = GatewayServer(settings)
    server.server.config.ssl_certfile = str(tls.cert)
    server.server.config.ssl_keyfile = str(tls.key)
    server.start()
    yield server
    server.stop()


def idp_over_tls(pool: GatewayServer, tls: Pki) -> Any:
    return boto3.client(
        "cognito-idp",
        endpoint_url=pool.settings.issuer,
        region_name="eu-west-1",
        aws_access_key_id="unused",
        aws_secret_access_key="unused",
        verify=str(tls.ca),
        config=Config(retries={"max_attempts": 1}),
    )


async def test_aws_jwt_verify_accepts_cognates_tokens_with_the_generic_verifier(
    pool: GatewayServer, tls: Pki
) -> None:
    email = f"v{secrets.token_hex(4)}@example.com"
    await pool.add_user(email, PASSWORD, email_verified=True)
    result = idp_over_tls(pool, tls).initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH",
        ClientId=CLIENT,
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    issuer = pool.settings.issuer
    request = {
        "poolId": POOL_ID,
        "clientId": CLIENT,
        "issuer": issuer,
        "jwksUri": f"{issuer}/{POOL_ID}/.well-known/jwks.json",
        "rootJwks": f"{issuer}/.well-known/jwks.json",
        "tokens": {"id": result["IdToken"], "access": result["AccessToken"]},
    }
    modules = node_modules("aws-jwt-verify", "5.2.1")
    out = run_node(modules, SCRIPT, request, env={"NODE_EXTRA_CA_CERTS": str(tls.ca)})
    assert out["cognitoId"]["ok"] is False, out  # the finding: no custom issuer there
    assert out["cognitoId"]["message"].startswith("issuer not configured"), out
    for name, use in [("idAtPool", "id"), ("accessAtPool", "access"), ("idAtIssuer", "id"),
                      ("accessAtIssuer", "access")]:  # fmt: skip
        assert out[name]["ok"] is True and out[name]["token_use"] == use, (name, out[name])
    assert out["idAsAccess"]["error"] == "CognitoJwtInvalidTokenUseError"
    assert out["otherClient"]["error"] == "CognitoJwtInvalidClientIdError"
    assert out["tampered"]["error"] == "JwtInvalidSignatureError"
