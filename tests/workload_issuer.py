"""A workload token issuer for the token-exchange tests: a real HTTP server on loopback that
publishes a discovery document and a JWKS (as GitHub Actions' and a Kubernetes API server's
OIDC endpoints do) and mints tokens shaped like theirs, or broken in chosen ways. It also
answers as a GitHub Actions runner's ID-token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`), so a
workflow step's own script can run against it."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.helpers import AppServer

ACTIONS_PATH = "/_apis/distributedtask/hubs/Actions/plans/1/jobs/1/idtoken"


class WorkloadIssuer:
    """`/.well-known/openid-configuration` and `/keys`; `mint()` signs with the published key,
    `mint(foreign=True)` with a key nobody published, `unsigned()` makes an `alg: none` token."""

    def __init__(self) -> None:
        self.server = AppServer(
            Starlette(
                routes=[
                    Route("/.well-known/openid-configuration", self.discovery),
                    Route("/openid/v1/jwks", self.jwks),
                    Route(ACTIONS_PATH, self.actions_id_token),
                ]
            )
        )
        self.issuer = self.server.url
        self.jwks_uri = f"{self.issuer}/openid/v1/jwks"
        self.key = RSAKey.generate_key(2048, {"kid": "wl-1", "alg": "RS256"}, private=True)
        self.foreign = RSAKey.generate_key(2048, {"kid": "wl-1", "alg": "RS256"}, private=True)
        self.jwks_requests = 0
        self.down = False  # an outage: its documents answer 503
        # What a job's environment holds: the URL (with its query already begun, as GitHub's
        # is) and the bearer token it asks with; `actions_claims` shapes the tokens it gets.
        self.actions_url = f"{self.issuer}{ACTIONS_PATH}?api-version=2.0"
        self.request_token = secrets.token_urlsafe(24)
        self.actions_claims: dict[str, Any] = {}

    def start(self) -> WorkloadIssuer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    async def discovery(self, request: Request) -> Response:
        if self.down:
            return Response("unavailable", status_code=503)
        return JSONResponse(
            {
                "issuer": self.issuer,
                "jwks_uri": self.jwks_uri,
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        self.jwks_requests += 1
        if self.down:
            return Response("unavailable", status_code=503)
        public = self.key.as_dict(private=False)
        return JSONResponse({"keys": [{**public, "use": "sig", "alg": "RS256"}]})

    async def actions_id_token(self, request: Request) -> Response:
        """GitHub Actions' ID-token request: `Authorization: bearer <request token>` and
        `audience` in, `{"count": 1, "value": <the job's OIDC token>}` out."""
        if request.headers.get("authorization") != f"bearer {self.request_token}":
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        audience = request.query_params.get("audience", self.issuer)
        return JSONResponse({"count": 1, "value": self.github(audience, **self.actions_claims)})

    def mint(self, claims: dict[str, Any], foreign: bool = False) -> str:
        key = self.foreign if foreign else self.key
        header = {"alg": "RS256", "kid": "wl-1", "typ": "JWT"}
        return jwt.encode(header, {"iss": self.issuer, **claims}, key)

    def unsigned(self, claims: dict[str, Any]) -> str:
        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

        return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'iss': self.issuer, **claims})}."

    def github(
        self,
        aud: str,
        repository: str = "org/app",
        ref: str = "refs/heads/main",
        environment: str | None = None,
        event: str = "push",
        **more: Any,
    ) -> str:
        """A GitHub Actions OIDC token's claims (as `ACTIONS_ID_TOKEN_REQUEST_URL` returns),
        `sub` as GitHub makes it: `repo:…:environment:NAME` for a job in an environment, else
        `repo:…:pull_request` for a pull request's job, else `repo:…:ref:REF`. Only a job in
        an environment has the `environment` claim."""
        now = int(time.time())
        owner = repository.split("/")[0]
        if environment is not None:
            sub = f"repo:{repository}:environment:{environment}"
        elif event == "pull_request":
            sub = f"repo:{repository}:pull_request"
        else:
            sub = f"repo:{repository}:ref:{ref}"
        claims = {
            "jti": secrets.token_hex(16),
            "sub": sub,
            "aud": aud,
            "ref": ref,
            "sha": "d6e2a5c0ffee",
            "repository": repository,
            "repository_owner": owner,
            "run_id": "1234567890",
            "workflow": "deploy",
            "event_name": event,
            "ref_type": "tag" if ref.startswith("refs/tags/") else "branch",
            **({"environment": environment} if environment is not None else {}),
            "job_workflow_ref": f"{repository}/.github/workflows/deploy.yml@{ref}",
            "runner_environment": "github-hosted",
            "nbf": now - 5,
            "iat": now,
            "exp": now + 300,
            **more,
        }
        return self.mint(claims)

    def kubernetes(
        self, aud: str, namespace: str = "prod", account: str = "deployer", **more: Any
    ) -> str:
        """A projected service-account token's claims (Kubernetes 1.29+)."""
        now = int(time.time())
        claims = {
            "aud": [aud],
            "exp": now + 3600,
            "iat": now,
            "nbf": now,
            "jti": secrets.token_hex(16),
            "sub": f"system:serviceaccount:{namespace}:{account}",
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": account, "uid": "6f3c0e8e-0000-4000-8000-000000000001"},
                "pod": {"name": "deployer-7d9f", "uid": "6f3c0e8e-0000-4000-8000-000000000002"},
            },
            **more,
        }
        return self.mint(claims)
