"""A workload's exchanged token at the identity pool: a GitHub-Actions-shaped token becomes a
Cognate ID token (RFC 8693, `requested_token_type` id_token), which boto3's cognito-identity
client takes to GetId and GetCredentialsForIdentity; moto's STS (the only stand-in: AWS
itself) receives a RoleSessionName naming the workload. The README's GitHub Actions step runs
as written (bash, curl, jq and the real AWS CLI), with its role mapping; a pod's AWS CLI gets
credentials through `cognate aws-credentials --subject-token-file` (its projected token)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from botocore.exceptions import ClientError
from joserfc import jws

from tests.helpers import GatewayServer, RedisServer, free_port, make_settings
from tests.identity.conftest import AUTH_ROLE, POOL, StsFront, client
from tests.workload_issuer import WorkloadIssuer

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AUD = "https://cognate.example.test"
DEPLOYER_ROLE = "arn:aws:iam::123456789012:role/app-deployer"
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


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


@pytest.fixture(scope="module")
def workloads(
    redis_server: RedisServer, github: WorkloadIssuer, cluster: WorkloadIssuer, sts: StsFront
) -> Iterator[GatewayServer]:
    port = free_port()
    own = f"127.0.0.1:{port}"  # the cognate provider's login name
    base = make_settings(port, redis_server.url)
    settings = make_settings(
        port,
        redis_server.url,
        clients=[
            *[c.model_dump(exclude_none=True) for c in base.clients],
            {
                "client_id": "ci-deployer",
                "token_endpoint_auth_method": "none",
                "grant_types": [EXCHANGE],
                # As the README's workload example: only the identity pool reads these.
                "id_token_signed_response_alg": "ES256",
            },
        ],
        token_exchange={
            "trust": [
                {
                    "name": "github-main",
                    "issuer": github.issuer,
                    # The README's job asks for a token for the gateway's own address.
                    "audience": [AUD, f"http://{own}"],
                    "claims": {"repository": "org/*", "ref": "refs/heads/main"},
                },
                {  # as the README's pod: the kubelet's token, read again until it rotates
                    "name": "k8s-prod",
                    "issuer": cluster.issuer,
                    "jwks_uri": cluster.jwks_uri,
                    "audience": AUD,
                    "claims": {"kubernetes.io/namespace": "prod"},
                    "allow_replay": True,
                },
                {
                    "name": "k8s-jobs",
                    "issuer": cluster.issuer,
                    "jwks_uri": cluster.jwks_uri,
                    "audience": AUD,
                    "claims": {"kubernetes.io/namespace": "jobs"},
                },
            ]
        },
        identity_pools=[
            {
                "id": POOL,
                "name": "Workloads",
                "providers": [{"type": "cognate", "client_ids": ["ci-deployer"]}],
                "roles": {"authenticated": AUTH_ROLE},
                # As the README's: the workload's name picks its role.
                "role_mappings": {
                    own: {
                        "type": "Rules",
                        "rules": [
                            {
                                "claim": "preferred_username",
                                "match_type": "StartsWith",
                                "value": "repo:org/app:",
                                "role_arn": DEPLOYER_ROLE,
                            }
                        ],
                    }
                },
                "sts": {"endpoint": sts.server.url},
            }
        ],
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


async def test_exchanged_token_gets_aws_credentials_named_after_the_workload(
    workloads: GatewayServer, github: WorkloadIssuer, sts: StsFront
) -> None:
    async with httpx.AsyncClient(base_url=workloads.url) as http:
        answer = await http.post(
            "/oauth2/token",
            data={
                "grant_type": EXCHANGE,
                "client_id": "ci-deployer",
                "subject_token": github.github(AUD, repository="org/deployer"),
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "requested_token_type": "urn:ietf:params:oauth:token-type:id_token",
            },
        )
    assert answer.status_code == 200, answer.text
    id_token = answer.json()["access_token"]
    assert jws.extract_compact(id_token.encode()).headers()["alg"] == "ES256"
    sts.reset()
    api = client(workloads)
    logins = {workloads.url.removeprefix("http://"): id_token}
    identity = api.get_id(IdentityPoolId=POOL, Logins=logins)["IdentityId"]
    creds = api.get_credentials_for_identity(IdentityId=identity, Logins=logins)
    assert creds["IdentityId"] == identity
    assert creds["Credentials"]["AccessKeyId"] and creds["Credentials"]["SessionToken"]
    sent = sts.requests[-1]
    assert sent["Action"] == "AssumeRoleWithWebIdentity" and sent["RoleArn"] == AUTH_ROLE
    assert sent["RoleSessionName"] == "repo-org-deployer-ref-refs-heads-main"
    # An access token from the same exchange is not an ID token: no login, no STS call.
    async with httpx.AsyncClient(base_url=workloads.url) as http:
        access = await http.post(
            "/oauth2/token",
            data={
                "grant_type": EXCHANGE,
                "client_id": "ci-deployer",
                "subject_token": github.github(AUD, repository="org/deployer"),
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            },
        )
    sts.reset()
    with pytest.raises(ClientError) as caught:
        api.get_credentials_for_identity(
            IdentityId=identity,
            Logins={workloads.url.removeprefix("http://"): access.json()["access_token"]},
        )
    assert caught.value.response["Error"]["Code"] == "NotAuthorizedException"
    assert sts.requests == []


def readme_workflow() -> tuple[dict[str, str], dict[str, Any], str]:
    """The README's GitHub Actions workflow: its `env`, its credentials step, and the command
    of the step after it."""
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    workflow = next(yaml.safe_load(b) for b in blocks if "ACTIONS_ID_TOKEN_REQUEST_URL" in b)
    steps = workflow["jobs"]["deploy"]["steps"]
    return workflow["env"], steps[0], steps[1]["run"]


async def run_step(
    script: str, env: dict[str, str], tmp_path: Path, shell: str = "bash"
) -> tuple[int, str, str]:
    """A `run:` step as a Linux runner runs it: for `shell: bash`, `bash --noprofile --norc
    -eo pipefail <file>`; plain `bash -e <file>` otherwise."""
    path = tmp_path / "step.sh"
    path.write_text(script)
    flags = ["--noprofile", "--norc", "-eo", "pipefail"] if shell == "bash" else ["-e"]
    return await run_command(["bash", *flags, str(path)], env)


async def run_command(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of one program."""
    run = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(run.communicate(), 120)
    assert run.returncode is not None
    return run.returncode, out.decode(), err.decode()


def job_env(
    workloads: GatewayServer, github: WorkloadIssuer, tmp_path: Path, workflow_env: dict[str, str]
) -> dict[str, str]:
    """A runner's environment for the README's job, pointed at the test servers: no AWS
    credentials or config of any kind, the tools on PATH, GITHUB_ENV a fresh file."""
    (tmp_path / "github_env").write_text("")
    assert {"COGNATE", "POOL", "AWS_DEFAULT_REGION"} <= set(workflow_env)
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        **workflow_env,
        "COGNATE": workloads.url,
        "POOL": POOL,
        "ACTIONS_ID_TOKEN_REQUEST_URL": github.actions_url,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": github.request_token,
        "GITHUB_ENV": str(tmp_path / "github_env"),
    }


async def test_the_readmes_github_actions_job_gets_its_roles_credentials(
    workloads: GatewayServer, github: WorkloadIssuer, sts: StsFront, moto_sts: str, tmp_path: Path
) -> None:
    workflow_env, step, next_step = readme_workflow()
    env = job_env(workloads, github, tmp_path, workflow_env)
    # A job in the `production` environment: GitHub names the environment in `sub`.
    github.actions_claims = {"repository": "org/app", "environment": "production"}
    sts.reset()
    code, out, err = await run_step(step["run"], env, tmp_path, step.get("shell", ""))
    assert code == 0, err
    exported = dict(
        line.split("=", 1) for line in (tmp_path / "github_env").read_text().splitlines()
    )
    assert set(exported) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    masked = re.findall(r"^::add-mask::(.+)$", out, re.MULTILINE)
    assert {exported[name] for name in exported} <= set(masked)
    assert len(masked) == 4  # and the ID token
    assumed = [r for r in sts.requests if r.get("Action") == "AssumeRoleWithWebIdentity"]
    assert len(assumed) == 1 and assumed[0]["RoleArn"] == DEPLOYER_ROLE  # the mapping's role
    # The next step, with what the runner puts in its environment; its STS is moto's.
    code, out, err = await run_step(
        next_step.split("#")[0], {**env, **exported, "AWS_ENDPOINT_URL_STS": moto_sts}, tmp_path
    )
    assert code == 0, err
    arn = json.loads(out)["Arn"]
    assert arn.endswith(":assumed-role/app-deployer/repo-org-app-environment-production"), arn


async def test_the_readmes_github_actions_job_says_why_it_was_refused(
    workloads: GatewayServer, github: WorkloadIssuer, sts: StsFront, tmp_path: Path
) -> None:
    workflow_env, step, _ = readme_workflow()
    env = job_env(workloads, github, tmp_path, workflow_env)
    github.actions_claims = {"repository": "someone-else/app"}
    sts.reset()
    code, _, err = await run_step(step["run"], env, tmp_path, step.get("shell", ""))
    assert code != 0
    assert "rule github-main: claim repository does not match" in err, err
    assert (tmp_path / "github_env").read_text() == ""
    assert sts.requests == []


def pod_env(home: Path) -> dict[str, str]:
    """A pod's environment: no AWS keys or settings of ours, its own HOME and cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}


async def cognate_credentials(
    workloads: GatewayServer, token: Path, env: dict[str, str]
) -> tuple[int, str, str]:
    return await run_command(pod_command(workloads, token), env)


def pod_command(workloads: GatewayServer, token: Path) -> list[str]:
    return [
        str(BIN / "cognate"),
        "aws-credentials",
        "--pool",
        POOL,
        "--issuer",
        workloads.url,
        "--client-id",
        "ci-deployer",
        "--subject-token-file",
        str(token),
    ]


async def test_a_pods_aws_cli_gets_credentials_from_its_projected_token(
    workloads: GatewayServer, cluster: WorkloadIssuer, sts: StsFront, moto_sts: str, tmp_path: Path
) -> None:
    token = tmp_path / "token"  # as the kubelet projects it
    token.write_text(cluster.kubernetes(AUD))
    config = tmp_path / "aws-config"
    config.write_text(
        "[default]\nregion = us-east-1\n"
        f"credential_process = {' '.join(pod_command(workloads, token))}\n"
    )
    env = pod_env(tmp_path) | {
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    }
    sts.reset()
    for _ in range(2):  # each `aws` command runs the credential_process
        code, out, err = await run_step(
            f"aws sts get-caller-identity --endpoint-url {moto_sts}", env, tmp_path
        )
        assert code == 0, err
        arn = json.loads(out)["Arn"]
        assert arn.endswith(
            ":assumed-role/cognate-authenticated/system-serviceaccount-prod-deployer"
        )
    assumed = [r for r in sts.requests if r.get("Action") == "AssumeRoleWithWebIdentity"]
    assert len(assumed) == 1 and assumed[0]["RoleArn"] == AUTH_ROLE
    cache = tmp_path / ".cache" / "cognate" / "workloads.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert not (tmp_path / ".cache" / "cognate" / "login.json").exists()  # no login involved
    # The second run was the cache's. Once the credentials are due for renewal, the same
    # token (the kubelet has not rotated it yet) is exchanged again: its rule allows replay.
    make_due(cache)
    code, out, err = await cognate_credentials(workloads, token, pod_env(tmp_path))
    assert code == 0, err
    assert _expires(json.loads(out)) > time.time() + 600


def make_due(cache: Path) -> None:
    """Every cached credential is an hour old and expires in a minute: due for renewal."""
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    entries = json.loads(cache.read_text())
    for entry in entries.values():
        entry["credentials"]["Expiration"] = soon
        entry["received"] = time.time() - 3540
    cache.write_text(json.dumps(entries))


def _expires(printed: dict[str, Any]) -> float:
    assert printed["Version"] == 1 and printed["AccessKeyId"] and printed["SessionToken"]
    return datetime.fromisoformat(printed["Expiration"]).timestamp()


async def test_a_rule_without_replay_takes_each_rotated_token_once(
    workloads: GatewayServer, cluster: WorkloadIssuer, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(cluster.kubernetes(AUD, namespace="jobs"))
    env = pod_env(tmp_path)
    code, out, err = await cognate_credentials(workloads, token, env)
    assert code == 0, err
    make_due(tmp_path / ".cache" / "cognate" / "workloads.json")
    code, out, err = await cognate_credentials(workloads, token, env)
    assert code == 1 and out == ""
    assert "refused (invalid_request)" in err and "already exchanged (jti replay)" in err, err
    assert "allow_replay" in err  # what to do about it
    token.write_text(cluster.kubernetes(AUD, namespace="jobs"))  # rotated: a new jti
    code, out, err = await cognate_credentials(workloads, token, env)
    assert code == 0, err
    assert _expires(json.loads(out)) > time.time() + 600


async def test_a_pods_credential_process_says_why_it_gets_none(
    workloads: GatewayServer, cluster: WorkloadIssuer, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(cluster.kubernetes(AUD, namespace="dev"))
    code, out, err = await cognate_credentials(workloads, token, pod_env(tmp_path))
    assert code == 1 and out == ""
    assert "rule k8s-prod: claim kubernetes.io/namespace does not match" in err, err
    code, out, err = await cognate_credentials(workloads, tmp_path / "absent", pod_env(tmp_path))
    assert code == 1 and out == ""
    assert f"cannot read the subject token: {tmp_path / 'absent'}: No such file" in err, err
    # A cache directory it cannot create (a read-only root, say) is named, with the fix.
    (tmp_path / "read-only").write_text("")
    env = pod_env(tmp_path) | {"XDG_CACHE_HOME": str(tmp_path / "read-only")}
    code, out, err = await cognate_credentials(workloads, token, env)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert f"cannot write the cache {tmp_path / 'read-only' / 'cognate'}" in err, err
    assert "set XDG_CACHE_HOME to a writable directory" in err


async def test_a_damaged_credential_cache_is_only_a_cache(
    workloads: GatewayServer, cluster: WorkloadIssuer, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(cluster.kubernetes(AUD))
    cache = tmp_path / ".cache" / "cognate" / "workloads.json"
    cache.parent.mkdir(parents=True)
    for damaged in ("{not json", "[]", '{"x": {"Expiration": "soon"}}'):
        cache.write_text(damaged)
        code, out, err = await cognate_credentials(workloads, token, pod_env(tmp_path))
        assert code == 0, err
        assert _expires(json.loads(out)) > time.time() + 600


async def test_a_token_swapped_for_another_workloads_gets_that_workloads_credentials(
    workloads: GatewayServer, cluster: WorkloadIssuer, sts: StsFront, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    env = pod_env(tmp_path)
    sts.reset()
    for account in ("deployer", "reporter"):
        token.write_text(cluster.kubernetes(AUD, account=account))
        code, out, err = await cognate_credentials(workloads, token, env)
        assert code == 0, err
    names = [r["RoleSessionName"] for r in sts.requests if "RoleSessionName" in r]
    assert names[-1] == "system-serviceaccount-prod-reporter", names  # not deployer's, cached


async def test_credentials_it_cannot_cache_are_still_printed(
    workloads: GatewayServer, cluster: WorkloadIssuer, tmp_path: Path
) -> None:
    """The exchange may have spent the token (a no-replay rule): its credentials are not
    thrown away because the cache cannot take them."""
    token = tmp_path / "token"
    token.write_text(cluster.kubernetes(AUD, namespace="jobs"))
    folder = tmp_path / ".cache" / "cognate"
    (folder / "workloads.json").mkdir(parents=True)  # not a file: it cannot be replaced
    code, out, err = await cognate_credentials(workloads, token, pod_env(tmp_path))
    assert code == 0, err
    assert _expires(json.loads(out)) > time.time() + 600
    assert f"warning: cannot write the cache {folder / 'workloads.json'}" in err, err
    assert "not cached" in err
    assert sorted(p.name for p in folder.iterdir()) == ["lock", "workloads.json"]  # no temp


async def test_workload_arguments_that_cannot_work_are_refused_in_one_line(
    workloads: GatewayServer, cluster: WorkloadIssuer, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(cluster.kubernetes(AUD))
    base = pod_command(workloads, token)
    cases = [
        ([*base, "--role", DEPLOYER_ROLE], "--role does not go with --subject-token-file"),
        ([*base[:-1], ""], "--subject-token-file needs a path"),
        ([*base[:4], *base[6:]], "needs --issuer and --client-id"),  # no --issuer
        # The cluster's issuer is an OIDC issuer, but no OpenID Provider: no token endpoint.
        (
            [*base[:5], cluster.issuer, *base[6:]],
            f"{cluster.issuer} has no token_endpoint: is it Cognate's address?",
        ),
        (
            [*base[:5], workloads.url.replace("127.0.0.1", "localhost"), *base[6:]],
            f"is not the issuer its discovery names ({workloads.url}): use that as --issuer",
        ),
    ]
    for argv, says in cases:
        code, out, err = await run_command(argv, pod_env(tmp_path))
        assert code == 1 and out == "", (argv, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert says in err, (argv, err)


async def test_the_readmes_github_actions_job_stops_where_github_refused(
    workloads: GatewayServer, github: WorkloadIssuer, sts: StsFront, tmp_path: Path
) -> None:
    """A job without `id-token: write` (its request token is refused) ends on GitHub's 401,
    not on a later refusal of the string "null" as a token."""
    workflow_env, step, _ = readme_workflow()
    env = job_env(workloads, github, tmp_path, workflow_env)
    env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = "not-this-jobs"
    sts.reset()
    code, _, err = await run_step(step["run"], env, tmp_path, step.get("shell", ""))
    assert code != 0
    assert "401" in err and "issuer is not trusted" not in err, err
    assert (tmp_path / "github_env").read_text() == "" and sts.requests == []


def test_credentials_renew_when_sdks_start_asking_or_half_way_through_a_short_life() -> None:
    from gateway.client_cli import _due

    def entry(left: float, had: float | None) -> dict[str, Any]:
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + left))
        made = {"credentials": {"Expiration": expires}}
        return made if had is None else {**made, "received": time.time() - (had - left)}

    # An hour's credentials: kept until 15 minutes are left, when botocore asks again.
    assert not _due(entry(16 * 60, 3600)) and _due(entry(14 * 60, 3600))
    # 15-minute ones (the least STS gives): kept for half of what they came with.
    assert not _due(entry(13 * 60, 15 * 60)) and _due(entry(7 * 60, 15 * 60))
    assert not _due(entry(16 * 60, None)) and _due(entry(14 * 60, None))  # when unknown
    assert _due(None) and _due({"credentials": {}}) and _due(entry(-1, 3600))
