"""`cognate login` and `cognate aws-credentials` as a user runs them (subprocesses of the
installed `cognate`), with the stock AWS CLI as the peer: login runs the device flow while the
user approves at /device, or the browser sign-in (RFC 8252 loopback redirect) — both driven in
real Chromium; the AWS CLI's `credential_process` then gets credentials from the identity pool
(moto's STS behind it) and `aws sts get-caller-identity` names the user's role session. Lives
with the identity-pool tests for their STS fixtures.

For the browser sign-in the CLI "opens" the authorization URL through `$BROWSER`, as it would
open Firefox: the command given there hands the URL to the test, which loads it in Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.async_api import Browser as Chromium
from playwright.async_api import Page

from tests.e2e.test_browser import chromium  # noqa: F401 (the fixture)
from tests.helpers import (
    PASSWORD,
    Browser,
    GatewayServer,
    RedisServer,
    form_fields,
    free_port,
    make_settings,
)
from tests.identity.conftest import AUTH_ROLE, POOL, StsFront

BIN = Path(sys.executable).parent
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def gw(redis_server: RedisServer, sts: StsFront) -> Iterator[GatewayServer]:
    port = free_port()
    base = make_settings(port, redis_server.url)
    settings = make_settings(
        port,
        redis_server.url,
        clients=[
            *[c.model_dump(exclude_none=True) for c in base.clients],
            {
                "client_id": "cognate-cli",
                "client_name": "Cognate CLI",
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", DEVICE, "refresh_token"],
                "redirect_uris": ["http://127.0.0.1/callback"],
                "scope": "openid email offline_access",
            },
            {  # the same CLI for a team the test users are not in
                "client_id": "ops-cli",
                "client_name": "Ops CLI",
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", DEVICE, "refresh_token"],
                "redirect_uris": ["http://127.0.0.1/callback"],
                "scope": "openid email offline_access",
                "access": {"email_domains": ["ops.example"]},
            },
            {  # device flow only: no redirect URI
                "client_id": "tv-cli",
                "token_endpoint_auth_method": "none",
                "grant_types": [DEVICE, "refresh_token"],
                "scope": "openid email offline_access",
            },
        ],
        device={"interval": 1},
        identity_pools=[
            {
                "id": POOL,
                "name": "Terminals",
                "providers": [{"type": "cognate", "client_ids": ["cognate-cli"]}],
                "roles": {"authenticated": AUTH_ROLE},
                "sts": {"endpoint": sts.server.url},
            }
        ],
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


def user_env(home: Path) -> dict[str, str]:
    """A clean user environment: its own HOME and cache, no AWS keys of ours, and no browser
    (no desktop session, no $BROWSER) unless a test gives it one."""
    desktop = ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER", "SSH_CONNECTION")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in desktop}
    return {**env, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}


async def approve(gw: GatewayServer, email: str, user_code: str) -> None:
    """The user, in a browser that is signed in, approves the code at /device."""
    browser = Browser(gw.url)
    try:
        await browser.login_for_code(email)
        page = await browser.http.get("/device", params={"user_code": user_code})
        assert page.status_code == 200, page.text
        done = await browser.http.post(
            "/device", data={**form_fields(page.text), "decision": "approve"}
        )
        assert done.headers["location"].startswith("/device?result=approved&proof=")
    finally:
        await browser.aclose()


async def test_login_then_the_aws_cli_uses_credential_process(
    gw: GatewayServer, sts: StsFront, moto_sts: str, tmp_path: Path
) -> None:
    email = "terminal-user@example.com"
    await gw.add_user(email, email_verified=True)
    env = user_env(tmp_path)
    login = await asyncio.create_subprocess_exec(
        str(BIN / "cognate"),
        "login",
        "--issuer",
        gw.url,
        "--client-id",
        "cognate-cli",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert login.stderr is not None
    first = (await asyncio.wait_for(login.stderr.readline(), 30)).decode()
    found = re.search(r"open (\S+) and enter the code ([A-Z]{4}-[A-Z]{4})", first)
    assert found and found.group(1) == f"{gw.url}/device", first
    await approve(gw, email, found.group(2))
    assert await asyncio.wait_for(login.wait(), 60) == 0
    cache = tmp_path / ".cache" / "cognate"
    saved = cache / "login.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert json.loads(saved.read_text())["refresh_token"]

    config = tmp_path / "aws-config"
    config.write_text(
        "[default]\nregion = us-east-1\n"
        f"credential_process = {BIN / 'cognate'} aws-credentials --pool {POOL}\n"
    )
    env |= {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no")}
    sts.reset()
    refresh_tokens = [json.loads(saved.read_text())["refresh_token"]]
    for _ in range(2):
        aws = await asyncio.create_subprocess_exec(
            str(BIN / "aws"),
            "sts",
            "get-caller-identity",
            "--endpoint-url",
            moto_sts,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(aws.communicate(), 60)
        assert aws.returncode == 0, err.decode()
        caller = json.loads(out)
        assert caller["Arn"].endswith(f":assumed-role/cognate-authenticated/{email}"), caller
        refresh_tokens.append(json.loads(saved.read_text())["refresh_token"])
    # The first run refreshed (and kept the rotated token); the second used cached credentials.
    assert refresh_tokens[1] != refresh_tokens[0] and refresh_tokens[2] == refresh_tokens[1]
    assumed = [r for r in sts.requests if r.get("Action") == "AssumeRoleWithWebIdentity"]
    assert len(assumed) == 1 and assumed[0]["RoleArn"] == AUTH_ROLE
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600  # still, after the rewrite


async def aws_credentials(home: Path) -> tuple[int, str, str]:
    run = await asyncio.create_subprocess_exec(
        str(BIN / "cognate"),
        "aws-credentials",
        "--pool",
        POOL,
        env=user_env(home),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(run.communicate(), 60)
    assert run.returncode is not None
    return run.returncode, out.decode(), err.decode()


def write_login(home: Path, issuer: str, token_endpoint: str, refresh_token: str) -> None:
    """A login cache as `cognate login` leaves it."""
    folder = home / ".cache" / "cognate"
    folder.mkdir(parents=True, mode=0o700, exist_ok=True)
    login = {"issuer": issuer, "client_id": "cognate-cli", "token_endpoint": token_endpoint}
    (folder / "login.json").write_text(json.dumps({**login, "refresh_token": refresh_token}))


def one_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


async def test_aws_credentials_without_login_says_so(tmp_path: Path) -> None:
    code, out, err = await aws_credentials(tmp_path)
    assert code == 1 and out == ""
    assert "not signed in" in one_line(err)


async def test_an_ended_sign_in_says_to_log_in_again(gw: GatewayServer, tmp_path: Path) -> None:
    # A refresh token the gateway no longer honours (revoked, expired, or never one of its).
    write_login(tmp_path, gw.url, f"{gw.url}/oauth2/token", "a-refresh-token-long-gone")
    code, out, err = await aws_credentials(tmp_path)
    assert code == 1 and out == ""
    assert "the sign-in has ended (invalid_grant): run `cognate login` again" in one_line(err)
    # Cached credentials of a shape it does not know are no credentials, not a crash.
    saved = tmp_path / ".cache" / "cognate" / "login.json"
    for junk in ([], None, {"us-east-1:x ": "not credentials"}):
        saved.write_text(json.dumps({**json.loads(saved.read_text()), "credentials": junk}))
        code, out, err = await aws_credentials(tmp_path)
        assert "the sign-in has ended (invalid_grant)" in one_line(err)


async def test_a_cache_it_cannot_write_spends_no_refresh_token(
    gw: GatewayServer, tmp_path: Path
) -> None:
    """The refresh token rotates: if the new one could not be kept, the sign-in would end.
    A full disk is found out before it is spent."""
    email = "full-disk@example.com"
    await gw.add_user(email, email_verified=True)
    env = user_env(tmp_path)
    login = await cognate_login(env, "--issuer", gw.url, "--client-id", "cognate-cli")
    await approve(gw, email, (await line_matching(login, r"code ([A-Z]{4}-[A-Z]{4})")).group(1))
    status, err = await finished(login)
    assert status == 0, err
    before = saved_login(tmp_path)["refresh_token"]

    def full_disk() -> None:  # no file may grow past 100 bytes (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))

    run = await asyncio.create_subprocess_exec(
        str(BIN / "cognate"),
        "aws-credentials",
        "--pool",
        POOL,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=full_disk,
    )
    out, raw = await asyncio.wait_for(run.communicate(), 60)
    assert run.returncode == 1 and out == b""
    assert "cannot write the cache" in one_line(raw.decode()) and "File too large" in raw.decode()
    assert saved_login(tmp_path)["refresh_token"] == before
    code, printed, err = await aws_credentials(tmp_path)  # room again: the sign-in lives on
    assert code == 0, err
    assert json.loads(printed)["Version"] == 1


@pytest.mark.parametrize("damaged", ["not json", "[]", "null", "{}", '{"issuer": 1}'])
async def test_a_damaged_login_says_to_log_in_again(tmp_path: Path, damaged: str) -> None:
    folder = tmp_path / ".cache" / "cognate"
    folder.mkdir(parents=True)
    (folder / "login.json").write_text(damaged)
    code, out, err = await aws_credentials(tmp_path)
    assert code == 1 and out == ""
    assert "is damaged: run `cognate login` again" in one_line(err)


async def test_an_issuer_that_cannot_answer_now_says_to_try_again(tmp_path: Path) -> None:
    """A 503 (the gateway's store is down) has not ended the sign-in: logging in again would
    not help, trying again will."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from tests.helpers import AppServer

    async def down(request: object) -> JSONResponse:
        return JSONResponse({"error": "temporarily_unavailable"}, status_code=503)

    site = AppServer(Starlette(routes=[Route("/oauth2/token", down, methods=["POST"])])).start()
    try:
        write_login(tmp_path, site.url, f"{site.url}/oauth2/token", "a-refresh-token")
        code, out, err = await aws_credentials(tmp_path)
    finally:
        site.stop()
    assert code == 1 and out == ""
    assert "is temporarily unavailable (temporarily_unavailable): try again" in one_line(err)
    assert "login" not in err
    # and the refresh token is still there, for that next try
    saved = json.loads((tmp_path / ".cache" / "cognate" / "login.json").read_text())
    assert saved["refresh_token"] == "a-refresh-token"


def test_bad_arguments_are_one_line_each() -> None:
    from tests.test_cli import cognate

    cases = [
        (("login", "--issuer", "auth.example.com", "--client-id", "c"), "must be the issuer's URL"),
        (("login", "--issuer", "https://a.example", "--client-id", "c", "--timeout", "-5"),
         "not a number of seconds above 0 and at most 86400: '-5'"),
        (("login", "--issuer", "https://a.example", "--client-id", "c", "--timeout", "1e9"),
         "at most 86400"),
        (("aws-credentials", "--pool", POOL, "--issuer", "https://a.example"),
         "--issuer and --client-id go with --subject-token-file"),
        *[
            (("login", "--issuer", bad, "--client-id", "c"), "must be the issuer's URL")
            for bad in ("http://[::1", "http://127.0.0.1:abc", "http://user@", "ftp://a.example")
        ],
    ]  # fmt: skip
    for args, says in cases:
        result = cognate(*args)
        assert result.returncode in (1, 2) and result.stdout == "", result
        assert says in one_line(result.stderr.splitlines()[-1]), result.stderr


def test_login_at_an_address_that_is_not_an_issuer_says_so_in_one_line() -> None:
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    from tests.helpers import AppServer
    from tests.test_cli import cognate

    async def page(request: object) -> HTMLResponse:
        return HTMLResponse("<p>an app behind forward-auth</p>")

    site = AppServer(Starlette(routes=[Route("/{path:path}", page)])).start()
    try:
        result = cognate("login", "--issuer", site.url, "--client-id", "cli")
    finally:
        site.stop()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "not JSON" in result.stderr and "/.well-known/openid-configuration" in result.stderr


# -- in real Chromium ----------------------------------------------------------------------


class BrowserCommand:
    """A `$BROWSER` for the CLI: the command it runs hands the URL over a socket to the test,
    which opens it in Chromium (`opened()`)."""

    def __init__(self, folder: Path) -> None:
        self.script = folder / "browser.py"
        self.script.write_text(
            "import socket, sys\n"
            "with socket.create_connection(('127.0.0.1', int(sys.argv[1]))) as s:\n"
            "    s.sendall(sys.argv[2].encode())\n"
        )
        self.urls: asyncio.Queue[str] = asyncio.Queue()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen; returns the `$BROWSER` value."""

        async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self.urls.put((await reader.read()).decode())
            writer.close()

        self.server = await asyncio.start_server(take, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"{sys.executable} {self.script} {port} %s"

    async def opened(self) -> str:
        return await asyncio.wait_for(self.urls.get(), 30)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def browser_command(tmp_path: Path) -> AsyncIterator[BrowserCommand]:
    command = BrowserCommand(tmp_path)
    yield command
    await command.close()


async def cognate_login(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(BIN / "cognate"),
        "login",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finished(login: asyncio.subprocess.Process) -> tuple[int, str]:
    """The CLI's exit status and everything it printed on stderr."""
    _, err = await asyncio.wait_for(login.communicate(), 60)
    assert login.returncode is not None
    return login.returncode, err.decode()


async def line_matching(login: asyncio.subprocess.Process, pattern: str) -> re.Match[str]:
    """Read the CLI's stderr up to a line matching `pattern`."""
    assert login.stderr is not None
    seen = []
    while True:
        line = (await asyncio.wait_for(login.stderr.readline(), 30)).decode()
        assert line, f"the CLI ended without printing {pattern!r}: {seen}"
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found


async def sign_in(chromium: Chromium, url: str, email: str) -> Page:  # noqa: F811
    """Chromium loads `url` (an authorization or /device address that leads to sign-in) and
    the user signs in with the password."""
    page = await chromium.new_page()
    await page.goto(url)
    await page.wait_for_url("**/login?flow=**")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    return page


async def aws_caller(env: dict[str, str], home: Path, moto_sts: str) -> dict[str, str]:
    """`aws sts get-caller-identity` with `cognate aws-credentials` as credential_process."""
    config = home / "aws-config"
    config.write_text(
        "[default]\nregion = us-east-1\n"
        f"credential_process = {BIN / 'cognate'} aws-credentials --pool {POOL}\n"
    )
    aws = await asyncio.create_subprocess_exec(
        str(BIN / "aws"),
        "sts",
        "get-caller-identity",
        "--endpoint-url",
        moto_sts,
        env={
            **env,
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no"),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(aws.communicate(), 60)
    assert aws.returncode == 0, err.decode()
    caller: dict[str, str] = json.loads(out)
    return caller


def saved_login(home: Path) -> dict[str, str]:
    saved = home / ".cache" / "cognate" / "login.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(saved.parent.stat().st_mode) == 0o700
    data: dict[str, str] = json.loads(saved.read_text())
    return data


async def test_device_flow_approved_in_chromium_then_the_aws_cli(
    chromium: Chromium,  # noqa: F811
    gw: GatewayServer,
    moto_sts: str,
    tmp_path: Path,
) -> None:
    email = "device-chromium@example.com"
    await gw.add_user(email, email_verified=True)
    env = user_env(tmp_path)
    login = await cognate_login(env, "--issuer", gw.url, "--client-id", "cognate-cli")
    # No browser here (no desktop, no $BROWSER): the default is the device flow.
    code = (await line_matching(login, r"enter the code ([A-Z]{4}-[A-Z]{4})")).group(1)
    complete = (await line_matching(login, r"\(or open (\S+)\)")).group(1)
    assert complete == f"{gw.url}/device?user_code={code}"
    page = await chromium.new_page()
    await page.goto(complete)
    assert (await page.inner_text("#user-code")).strip() == code
    assert "Cognate CLI" in await page.inner_text("main")
    await page.click("#approve")
    await page.wait_for_url("**/login?flow=**")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{gw.url}/device?result=approved&proof=*")
    status, err = await finished(login)
    assert status == 0, err
    assert f"Signed in to {gw.url}." in err
    assert saved_login(tmp_path)["refresh_token"]
    caller = await aws_caller(env, tmp_path, moto_sts)
    assert caller["Arn"].endswith(f":assumed-role/cognate-authenticated/{email}"), caller


async def test_device_flow_denied_in_chromium_says_so(
    chromium: Chromium,  # noqa: F811
    gw: GatewayServer,
    tmp_path: Path,
) -> None:
    login = await cognate_login(
        user_env(tmp_path), "--issuer", gw.url, "--client-id", "cognate-cli", "--no-browser"
    )
    complete = (await line_matching(login, r"\(or open (\S+)\)")).group(1)
    page = await chromium.new_page()
    await page.goto(complete)
    await page.click("#deny")
    await page.wait_for_url(f"{gw.url}/device?result=denied&proof=*")
    status, err = await finished(login)
    assert status == 1
    assert "sign-in failed: access_denied: the user denied the request" in err
    assert "Traceback" not in err
    assert not (tmp_path / ".cache" / "cognate" / "login.json").exists()


async def test_browser_sign_in_by_loopback_redirect_then_the_aws_cli(
    chromium: Chromium,  # noqa: F811
    gw: GatewayServer,
    moto_sts: str,
    tmp_path: Path,
    browser_command: BrowserCommand,
) -> None:
    email = "loopback-user@example.com"
    await gw.add_user(email, email_verified=True)
    env = user_env(tmp_path) | {"BROWSER": await browser_command.start()}
    # $BROWSER set: the default is the browser sign-in.
    login = await cognate_login(env, "--issuer", gw.url, "--client-id", "cognate-cli")
    url = await browser_command.opened()
    asked = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(f"{gw.url}/oauth2/authorize?")
    assert asked["response_type"] == "code" and asked["code_challenge_method"] == "S256"
    assert len(asked["state"]) >= 32 and len(asked["code_challenge"]) == 43
    callback = urlsplit(asked["redirect_uri"])
    assert (callback.scheme, callback.hostname, callback.path) == ("http", "127.0.0.1", "/callback")
    assert callback.port and callback.port != 80  # an ephemeral port, not the registered URI
    page = await sign_in(chromium, url, email)
    await page.wait_for_url(f"{asked['redirect_uri']}?**")
    assert await page.inner_text("h1") == "Signed in"
    status, err = await finished(login)
    assert status == 0, err
    assert f"Signed in to {gw.url}." in err and "device" not in err
    assert saved_login(tmp_path)["client_id"] == "cognate-cli"
    caller = await aws_caller(env, tmp_path, moto_sts)
    assert caller["Arn"].endswith(f":assumed-role/cognate-authenticated/{email}"), caller


async def test_an_answer_with_another_state_is_never_redeemed(
    chromium: Chromium,  # noqa: F811
    gw: GatewayServer,
    tmp_path: Path,
    browser_command: BrowserCommand,
) -> None:
    # Another authorization request (its own state) whose answer reaches the CLI's port: a
    # stale tab, or a program planting its own sign-in (login CSRF).
    email = "wrong-state@example.com"
    await gw.add_user(email, email_verified=True)
    env = user_env(tmp_path) | {"BROWSER": await browser_command.start()}
    login = await cognate_login(env, "--issuer", gw.url, "--client-id", "cognate-cli")
    url = await browser_command.opened()
    parts = urlsplit(url)
    other = {k: v[0] for k, v in parse_qs(parts.query).items()} | {"state": "another-state"}
    page = await sign_in(chromium, parts._replace(query=urlencode(other)).geturl(), email)
    await page.wait_for_url("http://127.0.0.1:*/callback?**state=another-state**")
    assert await page.inner_text("h1") == "Sign-in not completed"
    status, err = await finished(login)
    assert status == 1
    assert "does not carry this login's state" in err and "nothing was redeemed" in err
    assert not (tmp_path / ".cache" / "cognate" / "login.json").exists()


async def test_a_refused_browser_sign_in_says_so(
    chromium: Chromium,  # noqa: F811
    gw: GatewayServer,
    tmp_path: Path,
    browser_command: BrowserCommand,
) -> None:
    # The client's access policy refuses this user: access_denied comes back to the callback.
    email = "not-ops@example.com"
    await gw.add_user(email, email_verified=True)
    env = user_env(tmp_path) | {"BROWSER": await browser_command.start()}
    login = await cognate_login(env, "--issuer", gw.url, "--client-id", "ops-cli", "--browser")
    page = await sign_in(chromium, await browser_command.opened(), email)
    await page.wait_for_url("http://127.0.0.1:*/callback?**error=access_denied**")
    assert await page.inner_text("h1") == "Sign-in refused"
    status, err = await finished(login)
    assert status == 1
    assert "sign-in refused: access_denied" in err and "Traceback" not in err
    assert not (tmp_path / ".cache" / "cognate" / "login.json").exists()


async def test_no_browser_sign_in_for_a_device_only_client_falls_back(
    gw: GatewayServer, tmp_path: Path, browser_command: BrowserCommand
) -> None:
    env = user_env(tmp_path) | {"BROWSER": await browser_command.start()}
    login = await cognate_login(env, "--issuer", gw.url, "--client-id", "tv-cli")
    found = await line_matching(login, r"No browser sign-in \((.*)\); using the device flow")
    assert "http://127.0.0.1/callback" in found.group(1)  # what the client would need
    await line_matching(login, r"enter the code [A-Z]{4}-[A-Z]{4}")
    assert browser_command.urls.empty()  # no browser tab on an error page
    login.kill()
    await login.wait()
    # Asked for the browser explicitly: the same refusal ends the command.
    strict = await cognate_login(env, "--issuer", gw.url, "--client-id", "tv-cli", "--browser")
    status, err = await finished(strict)
    assert status == 1 and "refused the sign-in page" in err and "enter the code" not in err


async def test_a_browser_that_never_comes_back_times_out(gw: GatewayServer, tmp_path: Path) -> None:
    env = user_env(tmp_path) | {"BROWSER": "true"}  # "opens" nothing
    login = await cognate_login(
        env, "--issuer", gw.url, "--client-id", "cognate-cli", "--timeout", "1"
    )
    status, err = await finished(login)
    assert status == 1
    assert "sign-in timed out: the browser did not come back within 1 s" in err


def test_login_help_names_both_ways_with_examples() -> None:
    from tests.test_cli import cognate

    result = cognate("login", "--help")
    assert result.returncode == 0
    assert "--no-browser" in result.stdout and "--browser" in result.stdout
    assert "examples:" in result.stdout and "http://127.0.0.1/callback" in result.stdout
