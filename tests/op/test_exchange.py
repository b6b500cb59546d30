"""Token exchange (RFC 8693) against real issuers on loopback: GitHub-Actions-shaped and
Kubernetes-shaped tokens accepted and refused by trust rules (exact and glob claims, nested
claims), and every unacceptable subject token refused with the RFC's error: untrusted issuer,
wrong audience, expired, `alg: none`, a key nobody published, a replayed `jti`; an audience we
do not serve is `invalid_target`. Refusals name the rule, in the answer and the audit stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.helpers import GatewayServer, RedisServer, free_port, make_settings
from tests.workload_issuer import WorkloadIssuer

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
AUD = "https://cognate.example.test"
K8S_CLIENT = ("k8s-app", "k8s-app-secret-0123456789")
DOWN = f"http://127.0.0.1:{free_port()}"  # a trusted issuer nobody answers for


@pytest.fixture(scope="module")
def github() -> Iterator[WorkloadIssuer]:
    issuer = WorkloadIssuer().start()
    yield issuer
    issuer.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[WorkloadIssuer]:
    issuer = WorkloadIssuer().start()
    yield issuer
    issuer.stop()


def exchange_settings(
    port: int, redis_url: str, github: WorkloadIssuer, cluster: WorkloadIssuer, **more: Any
) -> Any:
    base = make_settings(port, redis_url)
    clients = [
        *[c.model_dump(exclude_none=True) for c in base.clients],
        {"client_id": "ci", "token_endpoint_auth_method": "none", "grant_types": [EXCHANGE]},
        {
            "client_id": K8S_CLIENT[0],
            "client_secret": K8S_CLIENT[1],
            "grant_types": [EXCHANGE],
            "scope": "openid",
        },
    ]
    trust = [
        {
            "name": "github-main",
            "issuer": github.issuer,  # keys through its discovery document
            "audience": AUD,
            "claims": {"repository": "org/*", "ref": "refs/heads/main"},
            "scope": "deploy read",
            "client_ids": ["ci"],
        },
        {
            # Deploys from tags, only in the production environment (GitHub puts it in sub).
            "name": "github-release",
            "issuer": github.issuer,
            "audience": AUD,
            "claims": {"sub": "repo:org/*:environment:production", "ref": "refs/tags/v*"},
            "scope": "deploy",
            "client_ids": ["ci"],
        },
        {
            "name": "k8s-prod",
            "issuer": cluster.issuer,
            "jwks_uri": cluster.jwks_uri,
            "audience": [AUD, "sts.amazonaws.com"],
            "claims": {"kubernetes.io/namespace": "prod"},
            "scope": "reports.read",
        },
        {
            "name": "k8s-batch",
            "issuer": cluster.issuer,
            "jwks_uri": cluster.jwks_uri,
            "audience": AUD,
            "claims": {"kubernetes.io/serviceaccount/namespace": "batch"},  # legacy flat claim
            "allow_replay": True,
        },
        {"name": "down", "issuer": DOWN, "audience": AUD},
    ]
    return make_settings(port, redis_url, clients=clients, token_exchange={"trust": trust}, **more)


@pytest.fixture(scope="module")
def gw(
    redis_server: RedisServer, github: WorkloadIssuer, cluster: WorkloadIssuer
) -> Iterator[GatewayServer]:
    server = GatewayServer(
        exchange_settings(free_port(), redis_server.url, github, cluster)
    ).start()
    yield server
    server.stop()


@pytest.fixture
async def http(gw: GatewayServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        yield client


async def exchange(
    http: httpx.AsyncClient,
    token: str,
    client_id: str | None = "ci",
    auth: tuple[str, str] | None = None,
    **form: str,
) -> httpx.Response:
    data = {"grant_type": EXCHANGE, "subject_token": token, "subject_token_type": JWT, **form}
    if client_id and auth is None:
        data["client_id"] = client_id
    return await http.post("/oauth2/token", data=data, auth=auth)


async def claims_of(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set((await http.get("/.well-known/jwks.json")).json())
    return dict(jwt.decode(token, keys).claims)


def refused(answer: httpx.Response, error: str, says: str) -> None:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == error, body
    assert says in body.get("error_description", ""), body
    assert answer.headers["cache-control"] == "no-store"


async def test_a_github_actions_token_becomes_a_workload_identity(
    gw: GatewayServer, http: httpx.AsyncClient, github: WorkloadIssuer
) -> None:
    answer = await exchange(http, github.github(AUD))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["issued_token_type"] == ACCESS and body["token_type"] == "Bearer"
    assert "refresh_token" not in body and body["scope"] == "deploy read"
    claims = await claims_of(http, body["access_token"])
    assert claims["client_id"] == "ci" and claims["scope"] == "deploy read"
    assert claims["sub"].startswith("us-east-1:")
    # A later run of the same workflow (a fresh token, same sub) is the same identity.
    again = (await exchange(http, github.github(AUD, sha="0ther"))).json()
    assert (await claims_of(http, again["access_token"]))["sub"] == claims["sub"]
    # Another repository of the org is another identity.
    other = (await exchange(http, github.github(AUD, repository="org/other"))).json()
    assert (await claims_of(http, other["access_token"]))["sub"] != claims["sub"]
    # A narrower scope may be asked for, a wider one not.
    narrow = await exchange(http, github.github(AUD), scope="read")
    assert narrow.json()["scope"] == "read"
    wide = await exchange(http, github.github(AUD), scope="deploy admin")
    assert wide.json()["error"] == "invalid_scope"


async def test_rules_refuse_other_repositories_and_branches_and_say_which(
    gw: GatewayServer, http: httpx.AsyncClient, github: WorkloadIssuer
) -> None:
    refused(
        await exchange(http, github.github(AUD, repository="evil/app")),
        "invalid_request",
        "rule github-main: claim repository does not match",
    )
    refused(
        await exchange(http, github.github(AUD, ref="refs/heads/feature")),
        "invalid_request",
        "rule github-main: claim ref does not match",
    )
    refused(
        await exchange(http, github.github(AUD), client_id=None, auth=K8S_CLIENT),
        "invalid_request",
        "rule github-main: client k8s-app may not use it",
    )
    entries = [f for _, f in await gw.call(lambda s: s.audit.read("0", 10_000))]
    reasons = [e.get("reason", "") for e in entries if e["event"] == "token_exchange.refused"]
    assert any("rule github-main: claim ref does not match" in r for r in reasons)
    # The refusal never tells the caller what the rule wants.
    body = (await exchange(http, github.github(AUD, ref="refs/heads/x"))).json()
    assert "refs/heads/main" not in body["error_description"]


async def test_rules_read_githubs_subject_forms(
    http: httpx.AsyncClient, github: WorkloadIssuer
) -> None:
    """GitHub's `sub` names the environment of a job that has one, else the pull request or
    the ref: a rule on `sub` tells a release job in `production` from the same tag's job
    outside it, from another environment, and from a pull request's job."""
    release = await exchange(
        http, github.github(AUD, ref="refs/tags/v1.2", environment="production")
    )
    assert release.status_code == 200, release.text
    assert release.json()["scope"] == "deploy"  # github-release's, not github-main's
    body = release.json()
    sub = (await claims_of(http, body["access_token"]))["sub"]
    elsewhere = [
        github.github(AUD, ref="refs/tags/v1.2"),  # the tag, no environment
        github.github(AUD, ref="refs/tags/v1.2", environment="staging"),
        github.github(AUD, ref="refs/tags/v1.2", event="pull_request"),
    ]
    for token in elsewhere:
        refused(
            await exchange(http, token),
            "invalid_request",
            "rule github-main: claim ref does not match; "
            "rule github-release: claim sub does not match",
        )
    # On main, in production: github-main's rule (it comes first), and the same workload
    # identity as the release job's: its `sub` names the environment, not the ref.
    main = await exchange(http, github.github(AUD, environment="production"))
    assert main.status_code == 200, main.text
    assert main.json()["scope"] == "deploy read"
    assert (await claims_of(http, main.json()["access_token"]))["sub"] == sub
    # Outside any environment, the ref's identity: another one.
    push = (await exchange(http, github.github(AUD))).json()
    assert (await claims_of(http, push["access_token"]))["sub"] != sub


async def test_an_accepted_exchange_reaches_the_audit_stream(
    gw: GatewayServer, http: httpx.AsyncClient, github: WorkloadIssuer
) -> None:
    # Written just after the answer (Audit.defer): read the stream, blocking, until it is there.
    stored = await gw.call(lambda s: s.audit.read("0", 100_000))
    last = stored[-1][0] if stored else "0"
    answer = await exchange(http, github.github(AUD, repository="org/audited"))
    assert answer.status_code == 200, answer.text
    sub = (await claims_of(http, answer.json()["access_token"]))["sub"]
    found: list[dict[str, str]] = []
    while not found:
        batch = await gw.call(lambda s, after=last: s.audit.read(after, 100, block=10))
        assert batch, "no audit entry within 10 s of the answer"
        last = batch[-1][0]
        found = [
            f
            for _, f in batch
            if f["event"] == "token_exchange.accepted" and f.get("identity_id") == sub
        ]
    assert found[0]["rule"] == "github-main" and found[0]["client_id"] == "ci"
    assert found[0]["subject"] == "repo:org/audited:ref:refs/heads/main"


async def test_kubernetes_service_account_tokens(
    http: httpx.AsyncClient, cluster: WorkloadIssuer
) -> None:
    accepted = await exchange(http, cluster.kubernetes(AUD), client_id=None, auth=K8S_CLIENT)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["scope"] == "reports.read"
    # Any of the rule's audiences will do.
    sts_aud = await exchange(
        http, cluster.kubernetes("sts.amazonaws.com"), client_id=None, auth=K8S_CLIENT
    )
    assert sts_aud.status_code == 200
    refused(
        await exchange(
            http, cluster.kubernetes(AUD, namespace="dev"), client_id=None, auth=K8S_CLIENT
        ),
        "invalid_request",
        "rule k8s-prod: claim kubernetes.io/namespace does not match",
    )


async def test_unacceptable_subject_tokens(http: httpx.AsyncClient, github: WorkloadIssuer) -> None:
    stranger = WorkloadIssuer().start()
    try:
        now = int(time.time())
        good = {"sub": "repo:org/app:ref:refs/heads/main", "aud": AUD, "repository": "org/app"}
        good |= {"ref": "refs/heads/main", "jti": "j-1", "iat": now, "exp": now + 300}
        refused(
            await exchange(http, stranger.mint(good)), "invalid_request", "issuer is not trusted"
        )
        refused(
            await exchange(http, github.github("https://someone-else.example")),
            "invalid_request",
            "rule github-main: the token's audience (aud) does not match",
        )
        refused(
            await exchange(http, github.github(AUD, iat=now - 900, nbf=now - 900, exp=now - 600)),
            "invalid_request",
            "expired",
        )
        refused(
            await exchange(http, github.github(AUD, iat=now + 600, nbf=now + 600)),
            "invalid_request",
            "not valid yet",
        )
        # An exp centuries away was a 503 (the jti's TTL overflowed Redis); no exp at all
        # was "expired".
        refused(
            await exchange(http, github.github(AUD, exp=10**30)),
            "invalid_request",
            "lives longer than a day",
        )
        refused(
            await exchange(http, github.mint({**good, "jti": "j-no-exp", "exp": "soon"})),
            "invalid_request",
            "no numeric exp",
        )
        refused(
            await exchange(http, github.unsigned({**good, "jti": "j-2"})),
            "invalid_request",
            "Unsupported signing algorithm",
        )
        refused(
            await exchange(http, github.mint({**good, "jti": "j-3"}, foreign=True)),
            "invalid_request",
            "Signature verification failed",
        )
        for junk in ("not.a.jwt", "garbage", "null", "a.bnVsbA.c"):  # bnVsbA: "null"
            refused(await exchange(http, junk), "invalid_request", "is not valid: Not a JWT")
        # A JWT without an issuer of ours is told that, not that it is no JWT.
        no_issuer = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"  # {"alg":"RS256"}.{"sub":"x"}
        refused(await exchange(http, no_issuer), "invalid_request", "issuer is not trusted")
        refused(
            await exchange(http, github.mint({k: v for k, v in good.items() if k != "jti"})),
            "invalid_request",
            "no jti",
        )
        wrong_type = await exchange(
            http, github.github(AUD), subject_token_type="urn:ietf:params:oauth:token-type:saml2"
        )
        refused(wrong_type, "invalid_request", "subject_token_type")
        refused(
            await exchange(http, github.github(AUD), audience="https://elsewhere.example"),
            "invalid_target",
            "https://elsewhere.example",
        )
        not_allowed = await http.post(
            "/oauth2/token",
            data={
                "grant_type": EXCHANGE,
                "client_id": "spa",
                "subject_token": github.github(AUD),
                "subject_token_type": JWT,
            },
        )
        refused(not_allowed, "unauthorized_client", "token-exchange")
    finally:
        stranger.stop()


async def test_an_unreachable_issuer_is_a_503_not_a_refusal(
    http: httpx.AsyncClient, github: WorkloadIssuer
) -> None:
    answer = await exchange(http, github.github(AUD, iss=DOWN))
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "temporarily_unavailable"
    assert answer.headers["retry-after"]


async def test_a_token_is_exchanged_once_unless_its_rule_allows_replay(
    http: httpx.AsyncClient, github: WorkloadIssuer, cluster: WorkloadIssuer
) -> None:
    token = github.github(AUD)
    assert (await exchange(http, token)).status_code == 200
    refused(await exchange(http, token), "invalid_request", "already exchanged (jti replay)")
    batch = cluster.kubernetes(
        AUD, namespace="batch", **{"kubernetes.io/serviceaccount/namespace": "batch"}
    )
    for _ in range(2):
        answer = await exchange(http, batch, client_id=None, auth=K8S_CLIENT)
        assert answer.status_code == 200, answer.text


async def test_an_id_token_for_identity_pools(
    http: httpx.AsyncClient, github: WorkloadIssuer
) -> None:
    answer = await exchange(http, github.github(AUD), requested_token_type=ID_TOKEN)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["issued_token_type"] == ID_TOKEN and body["token_type"] == "N_A"
    claims = await claims_of(http, body["access_token"])
    assert claims["aud"] == "ci" and claims["azp"] == "ci"
    assert claims["preferred_username"] == "repo:org/app:ref:refs/heads/main"
    assert "refresh_token" not in body


async def test_redis_down_means_no_exchange(
    github: WorkloadIssuer, cluster: WorkloadIssuer
) -> None:
    # SECURITY-TESTS G48: a jti that cannot be recorded as spent is not exchanged.
    redis = RedisServer()
    redis.start()
    store = {"url": redis.url, "prefix": "ex-faults", "socket_timeout": 0.5}
    settings = exchange_settings(free_port(), redis.url, github, cluster, store=store)
    server = GatewayServer(settings).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await exchange(http, github.github(AUD))).status_code == 200
            redis.stop()
            answer = await exchange(http, github.github(AUD))
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "temporarily_unavailable"
            assert "access_token" not in answer.json()
    finally:
        server.stop()
        redis.stop()


async def test_a_replica_forgets_a_workload_identity_deleted_on_another(
    redis_server: RedisServer, github: WorkloadIssuer, cluster: WorkloadIssuer
) -> None:
    # Each replica keeps a workload's link in memory (cache_ttl, here longer than the test):
    # an identity deleted anywhere must not go on being handed out by the others.
    settings = exchange_settings(
        free_port(), redis_server.url, github, cluster, sessions={"cache_ttl": 60}
    )
    one = GatewayServer(settings).start()
    two = GatewayServer(settings, port=free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=two.url, timeout=30) as http:

            async def identity() -> str:
                answer = await exchange(http, github.github(AUD, repository="org/fleet"))
                assert answer.status_code == 200, answer.text
                return str((await claims_of(http, answer.json()["access_token"]))["sub"])

            first = await identity()
            assert await identity() == first
            assert await one.call(lambda s: s.identities.delete(first))
            deadline = time.monotonic() + 5
            while (now := await identity()) == first and time.monotonic() < deadline:
                pass
            assert now != first
            assert await two.call(lambda s: s.identities.get(now)) is not None
    finally:
        one.stop()
        two.stop()


async def test_a_key_it_cannot_fetch_while_the_issuer_is_down_is_a_503(
    redis_server: RedisServer, cluster: WorkloadIssuer
) -> None:
    # The issuer rotated its key (a token with a key we have not seen) while it cannot be
    # reached: the token could not be checked, which is ours to retry, not the workload's
    # fault. Once the issuer answers again, a key it does not publish is refused.
    own = WorkloadIssuer().start()
    settings = exchange_settings(free_port(), redis_server.url, own, cluster)
    server = GatewayServer(settings).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await exchange(http, own.github(AUD))).status_code == 200  # keys cached

            def no_cooldown(services: Any) -> Any:
                services.verifier.REFETCH_COOLDOWN = 0.0  # the 30 s have passed
                return asyncio.sleep(0)

            await server.call(no_cooldown)
            own.down = True
            now = int(time.time())
            claims = {
                "sub": "repo:org/app:ref:refs/heads/main",
                "aud": AUD,
                "jti": "rotated-1",
                "repository": "org/app",
                "ref": "refs/heads/main",
                "iat": now,
                "exp": now + 300,
            }
            rotated = own.mint(claims, foreign=True)
            answer = await exchange(http, rotated)
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "temporarily_unavailable"
            own.down = False
            refused(await exchange(http, rotated), "invalid_request", "verification failed")
    finally:
        server.stop()
        own.stop()


def test_claim_globs_match_as_iam_string_like_does() -> None:
    """The README's promise: `*` crosses `/` and `:` (IAM's StringLike does too), globs
    need one of `*?[`, and only string claims match."""
    from gateway.op.exchange import claim_matches

    assert claim_matches("refs/heads/release-1/hotfix", "refs/heads/release-*")
    assert claim_matches("repo:my-org/app:environment:prod", "repo:my-org/*")
    assert not claim_matches("repo:other/app:ref:refs/heads/main", "repo:my-org/*")
    assert not claim_matches("refs/heads/main2", "refs/heads/main")  # no glob: exact
    assert not claim_matches(["refs/heads/main"], "refs/heads/*")  # a list never matches
    assert claim_matches("Org/App", "org/*") is False  # case matters, as in the claim
