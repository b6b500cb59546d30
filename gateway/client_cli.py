"""Client-side commands: a terminal signs in to *any* Cognate and turns that into AWS
credentials. They talk to the gateway over HTTP only (no settings, no store).

    cognate login --issuer URL --client-id ID [--scope S]
    cognate aws-credentials --pool ID [--role ARN]

`login` runs the device grant (RFC 8628): it prints where to approve and the code, polls as
the RFC asks (`interval`, +5 s on slow_down), and keeps the refresh token in the user's cache
directory (`$XDG_CACHE_HOME/cognate/login.json`, else `~/.cache/cognate/`), readable by the
user alone (0600 in a 0700 directory).

`aws-credentials` is an AWS `credential_process`: it refreshes (the rotated refresh token is
written back before anything else), asks the issuer's Cognito Identity API for the identity and
its credentials (GetId, GetCredentialsForIdentity with the fresh ID token as the login) and
prints `{"Version": 1, ...}`. Credentials are cached with the login until five minutes before
they expire, and a lock file serialises concurrent runs: two refreshes of one rotated token at
once would look like replay to the gateway, which then revokes the whole family.

    [profile cognate]
    credential_process = cognate aws-credentials --pool us-east-1:0f6e1a2b-…
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

COMMANDS = ("login", "aws-credentials")
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
EARLY = 300  # refresh cached AWS credentials this long before they expire
TIMEOUT = 30.0


class ClientError(Exception):
    """A failure to report on stderr (exit 1)."""


def add_commands(sub: Any) -> None:
    """Register `login` and `aws-credentials` on the `cognate` parser's subcommands."""
    login = sub.add_parser(
        "login",
        help="sign this terminal in (device flow) and keep the refresh token",
        description="Sign in through the issuer's /device page on any browser; the refresh "
        "token is cached (0600) in your cache directory for aws-credentials.",
    )
    login.add_argument("--issuer", required=True, help="the Cognate issuer URL")
    login.add_argument("--client-id", required=True, help="a client with the device grant")
    login.add_argument("--scope", default="openid email offline_access", help="scopes to ask")
    creds = sub.add_parser(
        "aws-credentials",
        help="print AWS credential_process JSON for the signed-in user",
        description="Use as credential_process in ~/.aws/config after `cognate login`.",
    )
    creds.add_argument("--pool", required=True, help="identity pool id (<region>:<uuid>)")
    creds.add_argument("--role", help="a role ARN the pool allows (CustomRoleArn)")


def run(args: argparse.Namespace) -> int:
    """Run one client command; errors are one line on stderr and exit status 1."""
    try:
        if args.command == "login":
            return login(args.issuer.rstrip("/"), args.client_id, args.scope)
        return aws_credentials(args.pool, args.role)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        where = exc.request.url if isinstance(exc, httpx.RequestError) else ""
        print(f"error: {where}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1


def _json(answer: httpx.Response) -> Any:
    """The answer's JSON body, or a ClientError naming the URL that answered something else
    (an HTML page, a redirect: not a Cognate endpoint)."""
    try:
        return answer.json()
    except ValueError:
        raise ClientError(
            f"{answer.request.url} answered {answer.status_code} "
            f"{answer.headers.get('content-type', 'without a type')}, not JSON: is it "
            "Cognate's address (the issuer)?"
        ) from None


# -- the cache ---------------------------------------------------------------------------


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cognate"


def _read_cache() -> dict[str, Any]:
    path = cache_dir() / "login.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClientError(
            "not signed in: run `cognate login --issuer URL --client-id ID`"
        ) from None
    return data


def _write_cache(data: dict[str, Any]) -> None:
    """Write atomically (a crash leaves the old file or the new one, never half of one),
    created 0600 so the refresh token is never readable by others, not even briefly."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    temporary = directory / f".login.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    os.replace(temporary, directory / "login.json")


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(directory / "lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- login -------------------------------------------------------------------------------


def _metadata(http: httpx.Client, issuer: str) -> dict[str, Any]:
    meta: dict[str, Any] = _json(http.get(f"{issuer}/.well-known/openid-configuration"))
    if meta.get("issuer") != issuer:
        raise ClientError(f"{issuer} is not an issuer (its discovery names another)")
    if "device_authorization_endpoint" not in meta:
        raise ClientError(f"{issuer} offers no device authorization")
    return meta


def login(issuer: str, client_id: str, scope: str) -> int:
    """The device grant, then the refresh token into the cache."""
    with httpx.Client(timeout=TIMEOUT) as http:
        meta = _metadata(http, issuer)
        start = http.post(
            meta["device_authorization_endpoint"], data={"client_id": client_id, "scope": scope}
        )
        body = _json(start)
        if start.status_code != 200:
            raise ClientError(f"{body.get('error')}: {body.get('error_description', '')}")
        print(
            f"To sign in, open {body['verification_uri']} and enter the code {body['user_code']}\n"
            f"  (or open {body.get('verification_uri_complete', body['verification_uri'])})",
            file=sys.stderr,
            flush=True,
        )
        tokens = _poll(http, meta["token_endpoint"], client_id, body)
    if "refresh_token" not in tokens:
        raise ClientError("no refresh token: the client needs the refresh_token grant")
    with _locked():
        _write_cache(
            {
                "issuer": issuer,
                "client_id": client_id,
                "token_endpoint": meta["token_endpoint"],
                "refresh_token": tokens["refresh_token"],
                "credentials": {},
            }
        )
    print(f"Signed in to {issuer}.", file=sys.stderr)
    return 0


def _poll(
    http: httpx.Client, token_endpoint: str, client_id: str, start: dict[str, Any]
) -> dict[str, Any]:
    interval = int(start.get("interval", 5))
    deadline = time.monotonic() + int(start.get("expires_in", 600))
    while time.monotonic() < deadline:
        time.sleep(interval)
        answer = http.post(
            token_endpoint,
            data={
                "grant_type": DEVICE_GRANT,
                "device_code": start["device_code"],
                "client_id": client_id,
            },
        )
        body: dict[str, Any] = _json(answer)
        if answer.status_code == 200:
            return body
        error = body.get("error")
        if error == "slow_down":
            interval += 5  # RFC 8628 §3.5
        elif error != "authorization_pending":
            raise ClientError(f"sign-in failed: {error}: {body.get('error_description', '')}")
    raise ClientError("sign-in failed: the code expired")


# -- aws-credentials ---------------------------------------------------------------------


def aws_credentials(pool: str, role: str | None) -> int:
    """Print credential_process JSON, from the cache while it is fresh."""
    with _locked():
        cache = _read_cache()
        key = f"{pool} {role or ''}"
        cached = cache.get("credentials", {}).get(key)
        if cached is None or _expires(cached) - time.time() < EARLY:
            id_token = _refresh(cache)  # writes the rotated refresh token back first
            cached = _vend(cache["issuer"], pool, role, id_token)
            cache.setdefault("credentials", {})[key] = cached
            _write_cache(cache)
    print(json.dumps(cached))
    return 0


def _expires(credentials: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(credentials["Expiration"])).timestamp()


def _refresh(cache: dict[str, Any]) -> str:
    with httpx.Client(timeout=TIMEOUT) as http:
        answer = http.post(
            cache["token_endpoint"],
            data={
                "grant_type": "refresh_token",
                "refresh_token": cache["refresh_token"],
                "client_id": cache["client_id"],
            },
        )
    body: dict[str, Any] = _json(answer)
    if answer.status_code != 200:
        raise ClientError(f"the sign-in has ended ({body.get('error')}): run `cognate login` again")
    cache["refresh_token"] = body["refresh_token"]
    _write_cache(cache)  # the old token is spent: never lose the new one
    if "id_token" not in body:
        raise ClientError("no ID token: log in with the openid scope")
    return str(body["id_token"])


def _vend(issuer: str, pool: str, role: str | None, id_token: str) -> dict[str, Any]:
    parts = urlsplit(issuer)
    logins = {parts.netloc + parts.path.rstrip("/"): id_token}  # AWS's name for the provider
    identity = _cognito(issuer, "GetId", {"IdentityPoolId": pool, "Logins": logins})
    request: dict[str, Any] = {"IdentityId": identity["IdentityId"], "Logins": logins}
    if role:
        request["CustomRoleArn"] = role
    answer = _cognito(issuer, "GetCredentialsForIdentity", request)
    creds = answer["Credentials"]
    expiration = datetime.fromtimestamp(float(creds["Expiration"]), UTC)
    return {
        "Version": 1,
        "AccessKeyId": creds["AccessKeyId"],
        "SecretAccessKey": creds["SecretKey"],
        "SessionToken": creds["SessionToken"],
        "Expiration": expiration.isoformat().replace("+00:00", "Z"),
    }


def _cognito(issuer: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(timeout=TIMEOUT) as http:
        answer = http.post(
            f"{issuer}/",
            content=json.dumps(body),
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": f"AWSCognitoIdentityService.{operation}",
            },
        )
    data: dict[str, Any] = _json(answer)
    if answer.status_code != 200:
        raise ClientError(f"{operation}: {data.get('__type')}: {data.get('message', '')}")
    return data
