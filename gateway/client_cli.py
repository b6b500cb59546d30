"""Client-side commands: a terminal signs in to *any* Cognate and turns that into AWS
credentials. They talk to the gateway over HTTP only (no settings, no store).

    cognate login --issuer URL --client-id ID [--scope S] [--browser | --no-browser]
    cognate aws-credentials --pool ID [--role ARN]
    cognate aws-credentials --pool ID --subject-token-file PATH --issuer URL --client-id ID

`login` signs in one of two ways, and keeps the refresh token in the user's cache directory
(`$XDG_CACHE_HOME/cognate/login.json`, else `~/.cache/cognate/`), readable by the user alone
(0600 in a 0700 directory):

- in this machine's browser (RFC 8252, native apps): it listens on 127.0.0.1 on a port the OS
  picks, opens the authorization URL (code flow, PKCE S256, a fresh `state`, redirect
  `http://127.0.0.1:<port>/callback`: the gateway ignores the port of a native client's
  loopback redirect), and at the callback checks `state` and `iss` (RFC 9207) before it
  redeems the code. The default when a browser can open here (`$BROWSER`, a desktop session,
  macOS, Windows), else
- the device grant (RFC 8628): it prints where to approve and the code, and polls as the RFC
  asks (`interval`, +5 s on slow_down). The way for SSH sessions and containers.

`aws-credentials` is an AWS `credential_process`: it refreshes (the rotated refresh token is
written back before anything else), asks the issuer's Cognito Identity API for the identity and
its credentials (GetId, GetCredentialsForIdentity with the fresh ID token as the login) and
prints `{"Version": 1, ...}`. Credentials are cached with the login until 15 minutes before
they expire (when SDKs start asking again; half-way through what they had for short-lived
ones), and a lock file serialises concurrent runs: two
refreshes of one rotated token at once would look like replay to the gateway, which then
revokes the whole family.

    [profile cognate]
    credential_process = cognate aws-credentials --pool us-east-1:0f6e1a2b-…

With `--subject-token-file` it is a workload's `credential_process` (a pod, a CI job), with no
login: it exchanges the token in that file — a projected service-account token, which the
kubelet rotates — for an ID token (RFC 8693 token exchange, `requested_token_type` id_token)
and asks the identity pool as above. Those credentials are cached the same way (in
`workloads.json` beside `login.json`, keyed by issuer, client, file, the token's digest and
pool): a trust rule that forbids replay takes each token once, and every `aws` command runs
the process. Its role is the pool's role mappings' choice (no `--role`: a CustomRoleArn must
be in the token's `cognito:roles`, which only user-pool groups give).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import hmac
import html
import json
import os
import secrets
import sys
import time
import webbrowser
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

COMMANDS = ("login", "aws-credentials")
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
LOGIN_CACHE = "login.json"
WORKLOAD_CACHE = "workloads.json"
# Cached AWS credentials are renewed this long before they expire: botocore asks a
# credential_process again from 15 minutes before (and must from 10), so any later and every
# AWS call of a long-running SDK client would run this command again.
EARLY = 900
TIMEOUT = 30.0
BROWSER_WAIT = 300.0  # seconds a browser sign-in may take by default
MAX_WAIT = 86_400.0  # and at most (a day)
CALLBACK = "/callback"  # the loopback redirect's path: register http://127.0.0.1/callback

LOGIN_HOW = """\
Sign in this terminal and cache the refresh token (0600, in your cache directory) for
aws-credentials.

By default in this machine's browser when one can open here ($BROWSER is set, a desktop
session on Linux, or macOS/Windows outside SSH): cognate listens on 127.0.0.1 on a free port
and opens the sign-in page, which hands its answer back to that port. Otherwise, or with
--no-browser, the device flow: open the printed address on any device (a phone, a laptop)
and enter the code shown. The browser sign-in needs the client registered with
    token_endpoint_auth_method: none
    grant_types: [authorization_code, refresh_token, urn:ietf:params:oauth:grant-type:device_code]
    redirect_uris: [http://127.0.0.1/callback]     # any port is accepted (RFC 8252)
and falls back to the device flow (unless --browser) when the issuer refuses it."""


class ClientError(Exception):
    """A failure to report on stderr (exit 1)."""


def add_commands(sub: Any) -> None:
    """Register `login` and `aws-credentials` on the `cognate` parser's subcommands."""
    login = sub.add_parser(
        "login",
        help="sign this terminal in (browser or device flow) and keep the refresh token",
        description=LOGIN_HOW,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # examples: gateway.cli_examples
    )
    login.add_argument("--issuer", required=True, help="the Cognate issuer URL")
    login.add_argument("--client-id", required=True, help="a public client of the issuer")
    login.add_argument(
        "--scope",
        default="openid email offline_access",
        help="scopes to ask (default: %(default)s)",
    )
    how = login.add_mutually_exclusive_group()
    how.add_argument(
        "--browser",
        dest="browser",
        action="store_const",
        const=True,
        default=None,
        help="sign in in this machine's browser (loopback redirect), never the device flow",
    )
    how.add_argument(
        "--no-browser",
        dest="browser",
        action="store_const",
        const=False,
        help="use the device flow: approve on any device at the printed address",
    )
    login.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=BROWSER_WAIT,
        metavar="SECONDS",
        help=f"how long to wait for the browser sign-in (default {BROWSER_WAIT:g})",
    )
    creds = sub.add_parser(
        "aws-credentials",
        help="print AWS credential_process JSON for the signed-in user or a workload",
        description="Use as credential_process in ~/.aws/config after `cognate login`, or in "
        "a pod or CI job with --subject-token-file (no login).",
    )
    creds.add_argument("--pool", required=True, help="identity pool id (<region>:<uuid>)")
    creds.add_argument(
        "--role",
        help="one of the roles your user-pool groups give (cognito:roles), as CustomRoleArn",
    )
    workload = creds.add_argument_group(
        "workloads", "exchange the platform's token (RFC 8693) instead of a `cognate login`"
    )
    workload.add_argument(
        "--subject-token-file",
        metavar="PATH",
        help="the platform's token, e.g. a projected service-account token (read at each "
        "exchange: the platform rotates it)",
    )
    workload.add_argument("--issuer", help="the Cognate issuer URL")
    workload.add_argument("--client-id", help="a client allowed the token-exchange grant")


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= MAX_WAIT:
        raise argparse.ArgumentTypeError(
            f"not a number of seconds above 0 and at most {MAX_WAIT:g}: {value!r}"
        )
    return seconds


def run(args: argparse.Namespace) -> int:
    """Run one client command; errors are one line on stderr and exit status 1."""
    try:
        if args.command == "login":
            issuer = _issuer_url(args.issuer)
            return login(issuer, args.client_id, args.scope, args.browser, args.timeout)
        if args.subject_token_file is not None:
            if not (args.issuer and args.client_id):
                raise ClientError(
                    "--subject-token-file needs --issuer and --client-id (a client allowed "
                    "the token-exchange grant)"
                )
            if not args.subject_token_file:
                raise ClientError("--subject-token-file needs a path")
            if args.role:
                raise ClientError(
                    "--role does not go with --subject-token-file: a workload's role comes "
                    "from the pool's role_mappings (a CustomRoleArn must be in the token's "
                    "cognito:roles, which only user-pool groups give)"
                )
            token_file = Path(args.subject_token_file)
            issuer = _issuer_url(args.issuer)
            return workload_credentials(issuer, args.client_id, token_file, args.pool)
        if args.issuer or args.client_id:
            raise ClientError(
                "--issuer and --client-id go with --subject-token-file (a workload); "
                "after `cognate login` the login names both"
            )
        return aws_credentials(args.pool, args.role)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        where = exc.request.url if isinstance(exc, httpx.RequestError) else ""
        print(f"error: {where}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1


def _issuer_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ClientError(f"--issuer must be the issuer's URL, https://…: not {value!r}")
    return value.rstrip("/")


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
    path = cache_dir() / LOGIN_CACHE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClientError(
            "not signed in: run `cognate login --issuer URL --client-id ID`"
        ) from None
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str)
        for k in ("issuer", "client_id", "token_endpoint", "refresh_token")
    ):
        raise ClientError(f"the login in {path} is damaged: run `cognate login` again")
    return data


def _write_cache(data: dict[str, Any], name: str = LOGIN_CACHE) -> None:
    """Write atomically (a crash leaves the old file or the new one, never half of one),
    created 0600 so the refresh token (or credentials) are never readable by others, not
    even briefly."""
    directory = cache_dir()
    temporary = directory / f".{name}.{os.getpid()}.tmp"
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(temporary, directory / name)
    except OSError as exc:
        temporary.unlink(missing_ok=True)  # it may hold a refresh token or credentials
        raise _unwritable(directory / name, exc) from None


def _unwritable(path: Path, exc: OSError) -> ClientError:
    return ClientError(
        f"cannot write the cache {path}: {exc.strerror}; set XDG_CACHE_HOME to a writable directory"
    )


def _keep_credentials(data: dict[str, Any], name: str) -> None:
    """Cache credentials just obtained; if that fails they are still printed (they cost a
    refresh or an exchange, which may have spent a token), with a warning."""
    try:
        _write_cache(data, name)
    except ClientError as exc:
        print(f"warning: {exc}; the credentials are not cached", file=sys.stderr)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(directory / "lock", os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError as exc:
        raise _unwritable(directory, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- login -------------------------------------------------------------------------------


def _metadata(http: httpx.Client, issuer: str) -> dict[str, Any]:
    meta: dict[str, Any] = _json(http.get(f"{issuer}/.well-known/openid-configuration"))
    if meta.get("issuer") != issuer:
        raise ClientError(
            f"{issuer} is not the issuer its discovery names ({meta.get('issuer')}): use that "
            "as --issuer"
        )
    for endpoint in ("token_endpoint", "authorization_endpoint"):
        if not isinstance(meta.get(endpoint), str):
            # An OIDC issuer that is not an OpenID Provider (a Kubernetes cluster's, say).
            raise ClientError(f"{issuer} has no {endpoint}: is it Cognate's address?")
    return meta


def browser_available() -> bool:
    """Can a browser open on this machine, for the user at this terminal? `$BROWSER` says so
    explicitly; on Linux a desktop session does (over plain SSH there is none, and Python's
    fallback would be a text browser taking over the terminal); macOS and Windows have one
    unless we are in an SSH session, where it would open on a screen nobody looks at."""
    if os.environ.get("BROWSER"):
        return True
    if sys.platform in ("darwin", "win32"):
        return not os.environ.get("SSH_CONNECTION")
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def login(
    issuer: str,
    client_id: str,
    scope: str,
    browser: bool | None = None,
    timeout: float = BROWSER_WAIT,
) -> int:
    """Sign in (`browser`: True this machine's browser, False the device flow, None the
    browser when one can open here), then the refresh token into the cache."""
    with httpx.Client(timeout=TIMEOUT) as http:
        meta = _metadata(http, issuer)
        has_device = "device_authorization_endpoint" in meta
        tokens = None
        if browser is True or (browser is None and browser_available()):
            # Without a device endpoint there is nothing to fall back on: the browser it is.
            strict = browser is True or not has_device
            tokens = _loopback_login(http, meta, client_id, scope, timeout, strict)
        if tokens is None:
            if not has_device:
                raise ClientError(f"{issuer} offers no device authorization")
            tokens = _device_login(http, meta, client_id, scope)
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


def _device_login(
    http: httpx.Client, meta: dict[str, Any], client_id: str, scope: str
) -> dict[str, Any]:
    """RFC 8628: show the code and where to enter it, then poll until the user decides."""
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
    return _poll(http, meta["token_endpoint"], client_id, body)


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


# -- the browser sign-in (RFC 8252) ----------------------------------------------------


def _loopback_login(
    http: httpx.Client,
    meta: dict[str, Any],
    client_id: str,
    scope: str,
    timeout: float,
    strict: bool,
) -> dict[str, Any] | None:
    """The code flow through this machine's browser, answered on a loopback port: the tokens,
    or None when (not `strict`) the device flow should take over — the issuer refuses this
    client a browser sign-in, or no browser opened."""
    verifier = secrets.token_urlsafe(48)  # 64 characters (RFC 7636 §4.1: 43-128)
    challenge = _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
    state = secrets.token_urlsafe(24)
    issuer = str(meta["issuer"])

    def redeem(code: str, redirect_uri: str) -> dict[str, Any]:
        answer = http.post(
            meta["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "code_verifier": verifier,
            },
        )
        body: dict[str, Any] = _json(answer)
        if answer.status_code != 200:
            raise ClientError(
                f"sign-in failed: {body.get('error')}: {body.get('error_description', '')}"
            )
        return body

    # Bound to the loopback address only: nothing off this machine can reach the listener.
    with _Listener(
        state, issuer, bool(meta.get("authorization_response_iss_parameter_supported")), redeem
    ) as listener:
        redirect_uri = listener.redirect_uri
        url = (
            str(meta["authorization_endpoint"])
            + "?"
            + urlencode(
                {
                    "response_type": "code",
                    "client_id": client_id,
                    "redirect_uri": redirect_uri,
                    "scope": scope,
                    "state": state,
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                }
            )
        )
        refusal = _refused(http, url, redirect_uri)
        if refusal is not None:
            if strict:
                raise ClientError(refusal)
            print(f"No browser sign-in ({refusal}); using the device flow.", file=sys.stderr)
            return None
        print(
            f"Opening your browser to sign in. If it does not open, visit:\n  {url}",
            file=sys.stderr,
            flush=True,
        )
        if not webbrowser.open(url):
            if not strict:
                print("No browser opened; using the device flow.", file=sys.stderr)
                return None
            print("No browser opened: open the address above yourself.", file=sys.stderr)
        return listener.wait(timeout)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _refused(http: httpx.Client, url: str, redirect_uri: str) -> str | None:
    """Ask the authorization endpoint ourselves first, so a client the issuer will not let
    sign in here ends in a message on this terminal, not an error page in a browser tab while
    we wait. None: it goes on to sign-in."""
    answer = http.get(url, follow_redirects=False)
    location = answer.headers.get("location", "")
    if answer.is_redirect and location.startswith(redirect_uri + "?"):
        # An error sent back to us (RFC 6749 §4.1.2.1): unauthorized_client, invalid_scope…
        error = parse_qs(urlsplit(location).query)
        return (
            f"the issuer refused: {error.get('error', ['?'])[0]}: "
            f"{error.get('error_description', [''])[0]}"
        )
    if answer.is_redirect:
        return None
    return (
        f"the issuer refused the sign-in page ({answer.status_code}): the client needs "
        f"token_endpoint_auth_method none and the redirect URI http://127.0.0.1{CALLBACK}"
    )


Outcome = dict[str, Any] | ClientError


class _Listener(HTTPServer):
    """A one-shot HTTP server on 127.0.0.1:<free port> that takes the sign-in's answer at
    /callback. The first answer at /callback ends the wait, whatever it says: a wrong
    `state` is not retried, since it is either a tab of another sign-in or another program on
    this machine guessing, and neither's code may be redeemed."""

    def __init__(
        self,
        state: str,
        issuer: str,
        iss_required: bool,
        redeem: Callable[[str, str], dict[str, Any]],
    ) -> None:
        super().__init__(("127.0.0.1", 0), _CallbackPage)
        self.state = state
        self.issuer = issuer
        self.iss_required = iss_required
        self.redeem = redeem
        self.outcome: Outcome | None = None

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{CALLBACK}"

    def wait(self, timeout: float) -> dict[str, Any]:
        """Serve requests until the callback came (its tokens) or `timeout` seconds passed."""
        deadline = time.monotonic() + timeout
        while self.outcome is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClientError(
                    f"sign-in timed out: the browser did not come back within {timeout:g} s; "
                    "run cognate login again (or with --no-browser to use the device flow)"
                )
            self.timeout = remaining
            self.handle_request()
        if isinstance(self.outcome, ClientError):
            raise self.outcome
        return self.outcome

    def answer(self, query: dict[str, list[str]]) -> tuple[int, str, str]:
        """Decide on one callback (setting `outcome`): the page's status, title and text."""
        params = {k: v[0] for k, v in query.items() if len(v) == 1}
        # Compared in constant time: the state is the only thing between a local program
        # and our code verifier redeeming its code (login CSRF, RFC 6749 §10.12).
        if not hmac.compare_digest(params.get("state", "").encode(), self.state.encode()):
            self.outcome = ClientError(
                "sign-in failed: the answer at the callback does not carry this login's state "
                "(a tab of another sign-in, or another program): nothing was redeemed; run "
                "cognate login again"
            )
            return (
                400,
                "Sign-in not completed",
                (
                    "This answer does not belong to the sign-in your terminal started. "
                    "Start again from the terminal."
                ),
            )
        iss = params.get("iss")
        if (iss is not None or self.iss_required) and iss != self.issuer:
            # RFC 9207: an answer from another issuer (a mix-up) is never redeemed here.
            self.outcome = ClientError(f"sign-in failed: the answer names issuer {iss!r}")
            return 400, "Sign-in not completed", "The answer came from another issuer."
        if "error" in params:
            error, description = params["error"], params.get("error_description", "")
            self.outcome = ClientError(f"sign-in refused: {error}: {description}")
            return 403, "Sign-in refused", description or error
        if "code" not in params:
            self.outcome = ClientError("sign-in failed: the answer carries no code")
            return 400, "Sign-in not completed", "The answer carries no code."
        try:
            self.outcome = self.redeem(params["code"], self.redirect_uri)
        except ClientError as exc:
            self.outcome = exc
        except httpx.HTTPError as exc:
            self.outcome = ClientError(f"sign-in failed: the token endpoint: {exc}")
        if isinstance(self.outcome, ClientError):
            return 502, "Sign-in failed", str(self.outcome)
        return 200, "Signed in", "You can close this tab and go back to the terminal."


class _CallbackPage(BaseHTTPRequestHandler):
    """The listener's pages: the callback's result, 404 for anything else (a favicon)."""

    server: _Listener

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        parts = urlsplit(self.path)
        if parts.path != CALLBACK:
            self._page(404, "Not found", "Nothing here.")
            return
        self._page(*self.server.answer(parse_qs(parts.query, keep_blank_values=True)))

    def _page(self, status: int, title: str, text: str) -> None:
        body = (
            f'<!doctype html><html lang="en"><meta charset="utf-8"><title>{html.escape(title)}'
            f"</title><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></html>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", "default-src 'none'")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """No access log on the user's terminal (it would print the code)."""


# -- aws-credentials ---------------------------------------------------------------------


def aws_credentials(pool: str, role: str | None) -> int:
    """Print credential_process JSON, from the cache while it is fresh."""
    with _locked():
        cache = _read_cache()
        key = f"{pool} {role or ''}"
        entries = cache.get("credentials")
        if not isinstance(entries, dict):
            entries = cache["credentials"] = {}
        entry = entries.get(key)
        if not isinstance(entry, dict) or _due(entry):
            # Found out before the refresh token is spent: a cache that cannot be written
            # would lose the rotated one, and with it the sign-in.
            _write_cache(cache)
            id_token = _refresh(cache)  # writes the rotated refresh token back first
            entry = entries[key] = _received(_vend(cache["issuer"], pool, role, id_token))
            _keep_credentials(cache, LOGIN_CACHE)
    print(json.dumps(entry["credentials"]))
    return 0


def workload_credentials(issuer: str, client_id: str, token_file: Path, pool: str) -> int:
    """Print credential_process JSON for a workload: the token in `token_file` exchanged for
    an ID token, then the pool's credentials; from the cache while they are fresh."""
    subject_token = _subject_token(token_file)
    # The token's digest too: credentials answer for the token they were exchanged for, and a
    # file holding another workload's token must not be answered with these.
    digest = hashlib.sha256(subject_token.encode()).hexdigest()[:32]
    key = f"{issuer} {client_id} {token_file.absolute()} {digest} {pool}"
    with _locked():
        try:
            cache = json.loads((cache_dir() / WORKLOAD_CACHE).read_text())
        except (OSError, ValueError):  # none yet, or unreadable: it is only a cache
            cache = {}
        if not isinstance(cache, dict):
            cache = {}
        entry = cache.get(key)
        if not isinstance(entry, dict) or _due(entry):
            id_token = _exchange(issuer, client_id, subject_token)
            entry = _received(_vend(issuer, pool, None, id_token))
            cache = {k: v for k, v in cache.items() if not _expired(v)}
            cache[key] = entry
            _keep_credentials(cache, WORKLOAD_CACHE)
    print(json.dumps(entry["credentials"]))
    return 0


def _subject_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise ClientError(f"cannot read the subject token: {path}: {reason}") from None
    if not token:
        raise ClientError(f"the subject token file {path} is empty")
    return token


def _exchange(issuer: str, client_id: str, subject_token: str) -> str:
    """An ID token for the workload (RFC 8693): the identity pool's login."""
    with httpx.Client(timeout=TIMEOUT) as http:
        answer = http.post(
            _metadata(http, issuer)["token_endpoint"],
            data={
                "grant_type": EXCHANGE_GRANT,
                "client_id": client_id,
                "subject_token": subject_token,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "requested_token_type": "urn:ietf:params:oauth:token-type:id_token",
            },
        )
    body: dict[str, Any] = _json(answer)
    if answer.status_code != 200:
        _unavailable(answer, body)
        reason = str(body.get("error_description", ""))
        if "jti replay" in reason:
            reason += (
                "; the platform has not rotated it yet: a token read again by every "
                "credential_process until it rotates wants `allow_replay: true` on its rule"
            )
        raise ClientError(f"the token exchange was refused ({body.get('error')}): {reason}")
    return str(body["access_token"])


def _unavailable(answer: httpx.Response, body: dict[str, Any]) -> None:
    """An issuer that cannot answer now (its store or an upstream is down: 503) has not
    refused anything: say so, and that trying again is the fix."""
    if answer.status_code == 503 or body.get("error") == "temporarily_unavailable":
        raise ClientError(
            f"{answer.request.url.host} is temporarily unavailable "
            f"({body.get('error') or answer.status_code}): try again shortly"
        )


def _received(credentials: dict[str, Any]) -> dict[str, Any]:
    """A cache entry: the credentials as printed, and when they came."""
    return {"credentials": credentials, "received": time.time()}


def _expiry(entry: Any) -> float:
    """When a cache entry's credentials expire; 0 for none, or an entry that is not one."""
    try:
        return datetime.fromisoformat(str(entry["credentials"]["Expiration"])).timestamp()
    except (TypeError, KeyError, ValueError):
        return 0.0


def _expired(entry: Any) -> bool:
    return _expiry(entry) <= time.time()


def _due(entry: Any) -> bool:
    """Renew 15 minutes before expiry (EARLY), when SDKs start asking again; credentials that
    came with less than twice that left (a pool of short-lived ones) half-way through what
    they had instead, as the gateway's cache does, so that they are cached at all."""
    expiry = _expiry(entry)
    received = entry.get("received") if isinstance(entry, dict) else None
    had = expiry - received if isinstance(received, int | float) else 2 * EARLY
    return expiry - time.time() < min(EARLY, had / 2)


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
        _unavailable(answer, body)
        if body.get("error") == "invalid_grant":
            raise ClientError("the sign-in has ended (invalid_grant): run `cognate login` again")
        raise ClientError(
            f"the refresh was refused ({body.get('error')}): {body.get('error_description', '')}"
        )
    cache["refresh_token"] = body["refresh_token"]
    try:
        _write_cache(cache)  # the old token is spent: never lose the new one
    except ClientError as exc:  # written a moment ago: the disk filled up since
        print(
            f"warning: {exc}; the new refresh token is lost: run `cognate login` when these "
            "credentials expire",
            file=sys.stderr,
        )
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
