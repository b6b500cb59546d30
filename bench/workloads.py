"""Terminals and workloads (issue 20's targets), each against its reference in the same run:

- device-flow polling: `POST /oauth2/token` with `grant_type=…:device_code` for codes the user
  has not approved yet — the `authorization_pending` answer every waiting terminal gets every
  `interval` — against client_credentials (an ES256 JWT per request). Target: ≥ 0.5×.
  One pre-minted device code per request (a second poll within the interval would be
  `slow_down`, a different answer), so each poll does what a real one does: load the record,
  swap its `last_poll`, answer.
- token exchange → AWS credentials: what a CI job does, as pairs — RFC 8693 exchange of a
  GitHub-Actions-shaped token (RS256, one jti each, replay forbidden) for an ID token, then
  GetCredentialsForIdentity with that ID token (the credentials cached by the gateway) —
  against cached GetCredentialsForIdentity alone with one ID token. Target: pairs/s ≥ 0.5×.
  The exchange alone is reported too.

Same harness as the other groups (private redis-server, the gateway with one worker, moto_server
as STS, wrk on the other core); the workload issuer is `tests.workload_issuer` on loopback.

    python bench/workloads.py [--duration 5] [--connections 8]
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.harness import ROUNDS, Environment, median_round, need_wrk, report, wrk  # noqa: E402
from gateway.services import build_services  # noqa: E402
from gateway.settings_loader import load_settings  # noqa: E402
from tests.workload_issuer import WorkloadIssuer  # noqa: E402

POOL = "us-east-1:11111111-2222-4333-8444-555555555555"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
SERVICE_AUTH = "Basic " + base64.b64encode(b"service:service-secret-0123456789").decode()
TARGET = "X-Amz-Target: AWSCognitoIdentityService.GetCredentialsForIdentity"
JSON = "Content-Type: application/x-amz-json-1.1"

CC = "client_credentials (ES256 JWT)"
POLL = "device poll (authorization_pending)"
CREDS = "GetCredentialsForIdentity (cached)"
PAIR = "token exchange -> credentials (cached), pairs"
EXCHANGE_ONLY = "token exchange (RS256 subject, ID token)"
TARGETS = {POLL: CC, PAIR: CREDS}  # each ≥ 0.5× its reference
COMPARED = {**TARGETS, EXCHANGE_ONLY: CREDS}  # run in alternating rounds with the reference


def settings_for(workload: WorkloadIssuer, id_token_alg: str) -> Any:
    def text(port: int, redis_url: str, sts_url: str) -> str:
        return f"""
issuer: http://127.0.0.1:{port}
secret_key: bench-secret-key-{"x" * 32}
store: {{url: "{redis_url}", prefix: bench-wl}}
log_level: warning
clients:
  - client_id: service
    client_secret: service-secret-0123456789
    grant_types: [client_credentials]
    scope: reports.read
  - client_id: cognate-cli
    token_endpoint_auth_method: none
    grant_types: ["{DEVICE}", refresh_token]
    scope: openid email offline_access
  - client_id: ci
    token_endpoint_auth_method: none
    grant_types: ["{EXCHANGE}"]
    id_token_signed_response_alg: {id_token_alg}
token_exchange:
  trust:
    - name: github-deploy
      issuer: {workload.issuer}
      jwks_uri: {workload.jwks_uri}
      audience: http://127.0.0.1:{port}
      claims: {{repository: "org/*", ref: refs/heads/main}}
      scope: openid
identity_pools:
  - id: {POOL}
    name: bench
    providers: [{{type: cognate, client_ids: [ci]}}]
    roles: {{authenticated: "arn:aws:iam::123456789012:role/bench"}}
    sts: {{endpoint: "{sts_url}"}}
"""

    return text


async def mint_device_codes(settings_path: Path, count: int, path: Path) -> None:
    """Pending device codes, straight into the store with the gateway's own code (the
    endpoint would rate-limit a bench, as it should), as poll bodies."""
    services = build_services(load_settings(settings_path))
    sem = asyncio.Semaphore(64)

    async def one() -> str:
        async with sem:
            code, _ = await services.device.start("cognate-cli", ["openid"])
            return code

    codes = await asyncio.gather(*(one() for _ in range(count)))
    path.write_text(
        "\n".join(
            urlencode({"grant_type": DEVICE, "device_code": c, "client_id": "cognate-cli"})
            for c in codes
        )
        + "\n"
    )
    services.users.hasher.close()
    await services.store.close()


def exchange_body(subject_token: str) -> str:
    return urlencode(
        {
            "grant_type": EXCHANGE,
            "client_id": "ci",
            "subject_token": subject_token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "requested_token_type": "urn:ietf:params:oauth:token-type:id_token",
        }
    )


def pairs_per_second(result: dict[str, Any]) -> float:
    """Completed exchange+credentials pairs per second of the run."""
    seconds = result["requests"] / result["rps"]
    return float(result["counts"].get("vended", 0)) / seconds


def run(
    duration: int,
    connections: int,
    baseline: bool = True,
    id_token_alg: str = "ES256",
    exchange_only: bool = False,
) -> dict[str, dict[str, Any]]:
    """The scenarios (and the baseline unless `baseline` is False); prints the ratios.
    On a shared machine the rate drifts between scenarios, so each target and its reference
    run alternately ROUNDS times and the table keeps the round with the median ratio.
    `exchange_only`: the pairs and the exchange alone, no device polls (bench/exchange_floor.py)."""
    from bench.harness import BASELINE

    compared = {k: v for k, v in COMPARED.items() if k != POLL} if exchange_only else COMPARED

    workload = WorkloadIssuer().start()
    try:
        with Environment(settings_for(workload, id_token_alg), sts=True) as env:
            gw, folder = env.gateway, env.folder
            aud = gw
            # Single-use inputs, a file per wrk run (each run starts at its file's first
            # line): more than one run can consume even on an idle machine.
            # An exchange alone runs at up to ~3,000/s (bench/exchange_floor.py's leanest), a
            # pair's at half that: a replayed subject token would be refused.
            polls, pair_tokens, alone_tokens = duration * 6000, duration * 3000, duration * 4500
            if POLL in compared:
                print(f"minting {ROUNDS} x {polls} device codes…", file=sys.stderr)
            for i in range(ROUNDS if POLL in compared else 0):
                asyncio.run(mint_device_codes(env.settings_path, polls, folder / f"polls{i}.txt"))
            print(f"minting {2 * ROUNDS} files of subject tokens…", file=sys.stderr)
            for i in range(2 * ROUNDS):
                count = pair_tokens if i < ROUNDS else alone_tokens
                subjects = (exchange_body(workload.github(aud)) for _ in range(count))
                (folder / f"exchanges{i}.txt").write_text("\n".join(subjects) + "\n")
            (folder / "cc.txt").write_text("grant_type=client_credentials\n")
            identity, provider = prepare_credentials(gw, aud, workload, folder)
            lua = {n: str(ROOT / "bench" / n) for n in ("bodies.lua", "counted.lua", "post.lua")}

            def script(name: str, i: int) -> list[str]:
                """The wrk script and arguments of scenario `name` in round `i`."""
                if name == CC:
                    return [lua["bodies.lua"], str(folder / "cc.txt"), SERVICE_AUTH]
                if name == POLL:
                    return [lua["counted.lua"], str(folder / f"polls{i}.txt")]
                if name == CREDS:
                    return [lua["post.lua"], "/", str(folder / "creds.json"), TARGET, JSON]
                if name == PAIR:
                    pair_lua = str(ROOT / "bench" / "exchange_pair.lua")
                    return [pair_lua, str(folder / f"exchanges{i}.txt"), identity, provider]
                # EXCHANGE_ONLY: the other subject tokens (the pairs spent theirs)
                return [lua["counted.lua"], str(folder / f"exchanges{ROUNDS + i}.txt")]

            results: dict[str, dict[str, Any]] = {}
            if baseline:
                print(f"running: {BASELINE}", file=sys.stderr)
                results[BASELINE] = wrk(env.baseline, duration, connections)
            rounds: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
            for target, reference in compared.items():
                for i in range(ROUNDS):
                    print(f"running: {reference} / {target} (round {i + 1})", file=sys.stderr)
                    pid = env.gateway_pid
                    pair = (
                        wrk(gw, duration, connections, script(reference, i), pid=pid),
                        wrk(gw, duration, connections, script(target, i), pid=pid),
                    )
                    rounds.setdefault(target, []).append(pair)
    finally:
        workload.stop()
    for target, reference in compared.items():
        for _, got in rounds[target]:
            valid(target, got)
            if target == PAIR:
                got["rps"] = pairs_per_second(got)  # the table's rate is the pairs'
        # The same comparison in the gateway's CPU time (/proc): the rate ratio the two would
        # have if each kept the worker's core equally busy (how busy it is drifts; so does
        # this machine's speed, which moves both).
        cpu = sorted(cpu_per_unit(ref) / cpu_per_unit(got, target) for ref, got in rounds[target])
        ref, got = median_round(rounds[target])
        got["cpu_ratios"] = [
            round(cpu_per_unit(r) / cpu_per_unit(g, target), 3) for r, g in rounds[target]
        ]
        got["cpu_ratio"] = cpu[len(cpu) // 2]
        results[target] = got
        results.setdefault(reference, ref)  # one row per reference: its first target's
    report_targets(results, compared)
    order = [BASELINE, CC, POLL, CREDS, PAIR, EXCHANGE_ONLY]
    return {name: results[name] for name in order if name in results}


def prepare_credentials(
    gw: str, aud: str, workload: WorkloadIssuer, folder: Path
) -> tuple[str, str]:
    """One job by hand: exchange, GetId (the workload's identity ID, stable: a job can keep
    it), GetCredentialsForIdentity (fills the credential cache). Its ID token is the login of
    the reference scenario (creds.json). Returns the identity ID and the login's name."""
    first = httpx.post(
        f"{gw}/oauth2/token",
        content=exchange_body(workload.github(aud)),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert first.status_code == 200, first.text
    id_token = first.json()["access_token"]
    provider = gw.removeprefix("http://")
    amz = {"Content-Type": JSON.split(": ")[1]}
    get_id = httpx.post(
        gw,
        json={"IdentityPoolId": POOL, "Logins": {provider: id_token}},
        headers={**amz, "X-Amz-Target": "AWSCognitoIdentityService.GetId"},
    )
    assert get_id.status_code == 200, get_id.text
    identity = str(get_id.json()["IdentityId"])
    creds = {"IdentityId": identity, "Logins": {provider: id_token}}
    warm = httpx.post(gw, json=creds, headers={**amz, "X-Amz-Target": TARGET.split(": ")[1]})
    assert warm.status_code == 200, warm.text
    (folder / "creds.json").write_text(json.dumps(creds))
    return identity, provider


def cpu_per_unit(result: dict[str, Any], name: str = "") -> float:
    """The gateway's CPU seconds per request of a run, or per pair for the pairs."""
    units = result["counts"].get("vended", 0) if name == PAIR else result["requests"]
    return float(result["cpu_s"]) / max(1, units)


def valid(name: str, result: dict[str, Any]) -> None:
    """Every answer is what the scenario measures, or the run does not count (wrk calls the
    expected 400 authorization_pending a non-2xx: it is cleared once checked)."""
    counts = result.get("counts", {})
    if name == POLL:
        if set(counts) != {"authorization_pending"}:
            raise SystemExit(f"device polls answered other than authorization_pending: {counts}")
        result["errors"] = 0
    elif name == PAIR:
        if counts.get("refused") or result["errors"]:
            raise SystemExit(f"refused exchanges or credentials: {counts}")
    elif name == EXCHANGE_ONLY and set(counts) != {"tokens"}:
        raise SystemExit(f"exchanges refused: {counts}")
    if result["errors"]:
        raise SystemExit(f"{name}: non-2xx answers, the run does not count")


def report_targets(results: dict[str, dict[str, Any]], compared: dict[str, str]) -> None:
    for name, reference in compared.items():
        got = results[name]
        ratio = got["rps"] / got["reference_rps"]
        verdict = ("met" if ratio >= 0.5 else "MISSED") if name in TARGETS else "no target"
        rounds = ", ".join(f"{r:.2f}" for r in got["ratios"])
        cpu = ", ".join(f"{r:.2f}" for r in got["cpu_ratios"])
        print(
            f"{name}: {ratio:.2f}x {reference} (median of rounds {rounds}; target 0.5x: {verdict})"
            f"; in CPU per request {got['cpu_ratio']:.2f}x (rounds {cpu})",
            file=sys.stderr,
        )


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--id-token-alg",
        choices=["RS256", "ES256"],
        default="ES256",
        help="the workload client's ID token algorithm (id_token_signed_response_alg, as the "
        "README's workload example; RS256, the OIDC default, signs ~10x slower)",
    )
    parser.add_argument(
        "--exchange-only",
        action="store_true",
        help="only the pairs and the exchange alone, without the baseline and device polls",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "workloads.json")
    args = parser.parse_args()
    need_wrk()
    results = run(
        args.duration,
        args.connections,
        baseline=not args.exchange_only,
        id_token_alg=args.id_token_alg,
        exchange_only=args.exchange_only,
    )
    meta = {"connections": args.connections, "duration_s": args.duration}
    report(results, args.json, {**meta, "id_token_alg": args.id_token_alg})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
