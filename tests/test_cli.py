"""The `cognate` command line, run as a user would run it (subprocesses)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import RedisServer, free_port

ROOT = Path(__file__).parent.parent


def cognate(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def test_help_teaches() -> None:
    result = cognate("--help")
    assert result.returncode == 0
    for word in ("serve", "check-config", "users", "keys", "examples:", "$COGNATE_CONFIG"):
        assert word in result.stdout


def test_check_config_prints_connector_callback_urls(tmp_path: Path) -> None:
    from tests.federation.saml_idp import make_key_pair

    key, cert = make_key_pair(tmp_path, "sp")
    metadata = tmp_path / "idp-metadata.xml"
    metadata.write_text("<EntityDescriptor/>")
    path = tmp_path / "idp.yaml"
    path.write_text(
        "issuer: https://auth.example.com\nsecret_key: " + "x" * 32 + "\n"
        "connectors:\n  - {id: local, type: local}\n"
        "  - {id: corp, type: oidc, name: Corp, issuer: https://login.corp.example,"
        " client_id: c, client_secret: s}\n"
        "  - {id: moved, type: oidc, name: Moved, issuer: https://login.moved.example,"
        " client_id: c, client_secret: s, cognito_callback: true}\n"
        f"  - {{id: adfs, type: saml, name: AD FS, idp_metadata: {metadata},"
        f" sp_key_file: {key}, sp_cert_file: {cert}}}\n"
    )
    result = cognate("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert "redirect URI: https://auth.example.com/login/corp/callback" in result.stdout
    assert "redirect URI: https://auth.example.com/oauth2/idpresponse" in result.stdout
    # Without user_pool.id, the pool id the Cognito user-pool API uses (stable: derived).
    assert re.search(r"user pool:  us-east-1_[0-9A-Za-z]{9} \(derived", result.stdout)
    assert "SP metadata:  https://auth.example.com/saml/adfs/metadata" in result.stdout
    assert "ACS:          https://auth.example.com/saml/adfs/acs" in result.stdout


def test_check_config_warns_when_the_pool_id_names_another_region(tmp_path: Path) -> None:
    path = tmp_path / "regions.yaml"
    head = "issuer: https://auth.example.com\nsecret_key: " + "x" * 32 + "\n"
    path.write_text(head + "region: us-east-1\nuser_pool: {id: eu-west-1_Abcdefghi}\n")
    result = cognate("check-config", str(path))
    assert result.returncode == 0, result.stderr  # a warning: the file is valid
    assert "warning: user_pool.id names region eu-west-1 but region is us-east-1" in result.stdout
    path.write_text(head + "region: eu-west-1\nuser_pool: {id: eu-west-1_Abcdefghi}\n")
    assert "names region" not in cognate("check-config", str(path)).stdout


def test_check_config_exit_codes(tmp_path: Path) -> None:
    good = cognate("check-config", "config/gateway.example.yaml")
    assert good.returncode == 0 and "ok:" in good.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "issuer: https://a.example\nsecret_key: " + "x" * 32 + "\nclients:\n"
        "  - client_id: a\n    client_secret: " + "y" * 16 + "\n"
        "    redirect_uris: [https://ok.example/cb, not-a-url]\n"
    )
    result = cognate("check-config", str(bad))
    assert result.returncode == 1
    assert "clients[0].redirect_uris[1] (a): must be an absolute URL" in result.stderr


@pytest.fixture
def config(tmp_path: Path, redis_server: RedisServer) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"issuer: https://auth.example.com\nsecret_key: {'k' * 40}\n"
        f"store: {{url: '{redis_server.url}', prefix: cli{free_port()}}}\n"
        "user_pool: {attributes: [{name: name}, {name: 'custom:team'}]}\n"
    )
    return path


def test_users_lifecycle(config: Path) -> None:
    created = cognate(
        "users",
        "create",
        "Ada@Example.com",
        "--password-stdin",
        "--name",
        "Ada",
        "-c",
        str(config),
        stdin="a long enough password\n",
    )
    assert created.returncode == 0, created.stderr
    user_id = re.search(r"user id ([0-9a-f-]{36})", created.stdout).group(1)  # type: ignore[union-attr]
    duplicate = cognate(
        "users",
        "create",
        "ada@example.com",
        "--password-stdin",
        "-c",
        str(config),
        stdin="another long password\n",
    )
    assert duplicate.returncode == 1
    assert "a user with the e-mail address ada@example.com already exists" in duplicate.stderr
    weak = cognate(
        "users", "create", "bob@example.com", "--password-stdin", "-c", str(config), stdin="short\n"
    )
    assert weak.returncode == 1 and "the password must be at least 8" in weak.stderr
    not_an_address = cognate(
        "users", "create", "nobody", "--password-stdin", "-c", str(config), stdin="long enough!\n"
    )
    assert "'nobody' is not an e-mail address" in not_an_address.stderr
    for action in ("show", "disable", "enable", "delete"):
        unknown = cognate("users", action, "ghost@example.com", "-c", str(config))
        assert unknown.returncode == 1
        assert "no user has the id, e-mail address or username 'ghost@example.com'" in (
            unknown.stderr
        ), action
    listed = cognate("users", "list", "-c", str(config))
    assert f"{user_id}  enabled   ada@example.com" in listed.stdout
    assert cognate("users", "disable", "ada@example.com", "-c", str(config)).returncode == 0
    assert "disabled" in cognate("users", "show", user_id, "-c", str(config)).stdout
    assert cognate("users", "delete", user_id, "-c", str(config)).returncode == 0
    gone = cognate("users", "show", user_id, "-c", str(config))
    assert gone.returncode == 1


def test_keys_rotate_and_list(config: Path) -> None:
    before = cognate("keys", "list", "-c", str(config))
    assert before.returncode == 0 and before.stdout.count("current") == 2
    rotated = cognate("keys", "rotate", "-c", str(config))
    assert rotated.returncode == 0 and rotated.stdout.count("previous") == 2


def test_store_down_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "down.yaml"
    path.write_text(
        f"issuer: https://a.example\nsecret_key: {'k' * 40}\n"
        f"store: {{url: 'redis://127.0.0.1:{free_port()}/0', connect_timeout: 0.3}}\n"
    )
    result = cognate("users", "list", "-c", str(path))
    assert result.returncode == 3 and "store is unavailable" in result.stderr


def test_serve_demo_prints_urls_and_a_working_user(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = ""
        deadline = time.monotonic() + 30
        while "sign in:" not in banner and time.monotonic() < deadline:
            line = proc.stderr.readline()  # type: ignore[union-attr]
            if not line:
                break
            banner += line
        assert f"http://127.0.0.1:{port}/demo/" in banner
        assert "memory store" in banner
        # Keep draining stderr so the server never blocks on a full pipe.
        rest: list[str] = []
        drain = threading.Thread(
            target=lambda: rest.extend(proc.stderr),
            daemon=True,  # type: ignore[arg-type]
        )
        drain.start()
        password = re.search(r"demo@example.com / (\S+)", banner).group(1)  # type: ignore[union-attr]
        discovery = httpx.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration")
        assert discovery.json()["issuer"] == f"http://127.0.0.1:{port}"
        assert len(password) >= 8
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    drain.join(timeout=10)
    proc.stderr.close()  # type: ignore[union-attr]
    # Graceful: the lifespan finished (uvicorn then re-raises SIGTERM, so the code is -15).
    assert any("Application shutdown complete" in line for line in rest)
    assert proc.returncode in (0, -15)


POOL_ID = "us-east-1:11111111-2222-4333-8444-555555555555"


async def test_identities_commands(config: Path, redis_server: RedisServer) -> None:
    from gateway.identity.ids import IdentityStore
    from gateway.settings_loader import load_settings
    from gateway.store import open_store

    settings = load_settings(config)
    store = open_store(redis_server.url, prefix=settings.store.prefix)
    identities = IdentityStore(store, "us-east-1")
    first = await identities.resolve("google", "g-1", POOL_ID)
    await identities.link(first, "github", "gh-1")
    second = await identities.resolve("local", "l-2")
    await store.close()

    listed = cognate("identities", "list", "-c", str(config))
    assert first in listed.stdout and second in listed.stdout
    assert "google:g-1, github:gh-1" in listed.stdout
    in_pool = cognate("identities", "list", "--pool", POOL_ID, "--json", "-c", str(config))
    assert [json.loads(line)["identity_id"] for line in in_pool.stdout.splitlines()] == [first]
    shown = json.loads(cognate("identities", "show", first, "-c", str(config)).stdout)
    assert shown["pools"] == [POOL_ID] and len(shown["logins"]) == 2
    unlinked = cognate("identities", "unlink", first, "github", "gh-1", "-c", str(config))
    assert unlinked.returncode == 0
    assert "github" not in cognate("identities", "show", first, "-c", str(config)).stdout
    missing = cognate("identities", "unlink", first, "github", "gh-1", "-c", str(config))
    assert missing.returncode == 1 and "has no login" in missing.stderr
    assert cognate("identities", "delete", second, "-c", str(config)).returncode == 0
    assert cognate("identities", "show", second, "-c", str(config)).returncode == 1


def test_pools_check_prints_iam_setup(tmp_path: Path) -> None:
    path = tmp_path / "pools.yaml"
    path.write_text(
        f"issuer: https://auth.example.com\nsecret_key: {'k' * 40}\nidentity_pools:\n"
        f"  - id: {POOL_ID}\n    name: Pool\n    allow_unauthenticated: true\n"
        "    roles:\n      authenticated: arn:aws:iam::123456789012:role/users\n"
        "      unauthenticated: arn:aws:iam::123456789012:role/guests\n"
    )
    result = cognate("pools", "check", "-c", str(path))
    assert result.returncode == 0, result.stderr
    blocks = [json.loads(b) for b in re.split(r"^#.*$", result.stdout, flags=re.M) if b.strip()]
    provider, *policies = blocks
    assert provider == {
        "Url": "https://auth.example.com",
        "ClientIDList": [POOL_ID, f"{POOL_ID}/unauthenticated"],
    }
    audiences = sorted(
        p["Statement"][0]["Condition"]["StringEquals"]["auth.example.com:aud"] for p in policies
    )
    assert audiences == [POOL_ID, f"{POOL_ID}/unauthenticated"]
    principal = policies[0]["Statement"][0]["Principal"]["Federated"]
    assert principal == "arn:aws:iam::123456789012:oidc-provider/auth.example.com"
    http_issuer = tmp_path / "local.yaml"
    http_issuer.write_text(
        path.read_text().replace("https://auth.example.com", "http://127.0.0.1:8000")
    )
    warned = cognate("pools", "check", "-c", str(http_issuer))
    assert warned.returncode == 1 and "only https issuers" in warned.stderr


def test_proxy_needs_an_upstream(tmp_path: Path) -> None:
    result = cognate("proxy", "--port", "1")
    assert result.returncode == 1
    assert "sidecar.upstream: give --upstream URL" in result.stderr
    bad = cognate("proxy", "--upstream", "ftp://x", "--port", "1")
    assert bad.returncode == 1 and "must be an absolute URL" in bad.stderr


def test_users_admin_commands(config: Path) -> None:
    email = "grace@example.com"
    created = cognate(
        "users", "create", email, "--password-stdin", "-c", str(config), stdin="first password 1\n"
    )
    assert created.returncode == 0, created.stderr

    def show() -> dict[str, object]:
        shown = cognate("users", "show", email, "-c", str(config))
        assert shown.returncode == 0, shown.stderr
        return dict(json.loads(shown.stdout))

    assert show()["email_verified"] is False
    assert cognate("users", "confirm", email, "-c", str(config)).returncode == 0
    assert show()["email_verified"] is True
    assert (
        cognate(
            "users", "set-attribute", email, "custom:team", "billing", "-c", str(config)
        ).returncode
        == 0
    )
    assert (
        cognate("users", "set-attribute", email, "name", "Grace H", "-c", str(config)).returncode
        == 0
    )
    assert show()["attributes"] == {"team": "billing"} and show()["name"] == "Grace H"
    bad = cognate("users", "set-attribute", email, "custom:no spaces", "x", "-c", str(config))
    assert bad.returncode == 1 and "not an attribute of this user pool" in bad.stderr
    # The rules the API applies: only declared custom attributes, E.164 phone numbers.
    for name, value in (("custom:undeclared", "x"), ("phone_number", "123")):
        refused = cognate("users", "set-attribute", email, name, value, "-c", str(config))
        assert refused.returncode == 1 and name in refused.stderr, refused.stderr
    assert "undeclared" not in json.dumps(show())
    phone = cognate(
        "users", "set-attribute", email, "phone_number", "+15551234567", "-c", str(config)
    )
    assert phone.returncode == 0, phone.stderr
    assert show()["standard"] == {"phone_number": "+15551234567"}  # standard claims are shown
    weak = cognate(
        "users", "set-password", email, "--password-stdin", "-c", str(config), stdin="password1\n"
    )
    assert weak.returncode == 1 and "most common passwords" in weak.stderr
    reset = cognate(
        "users",
        "set-password",
        email,
        "--password-stdin",
        "-c",
        str(config),
        stdin="second password 2\n",
    )
    assert reset.returncode == 0 and "ended 0 session(s)" in reset.stdout
    removed = cognate("users", "reset-mfa", email, "-c", str(config))
    assert removed.returncode == 0 and "removed" in removed.stdout


def test_users_groups_command(tmp_path: Path, redis_server: RedisServer) -> None:
    path = tmp_path / "groups.yaml"
    path.write_text(
        f"issuer: https://auth.example.com\nsecret_key: {'x' * 40}\n"
        f"store: {{url: '{redis_server.url}', prefix: cli-groups}}\n"
        "user_pool:\n  groups:\n    - {name: admins, precedence: 1}\n"
    )
    email = "ops@example.com"
    assert (
        cognate(
            "users",
            "create",
            email,
            "--password-stdin",
            "-c",
            str(path),
            stdin="a long password 9\n",
        ).returncode
        == 0
    )
    added = cognate("users", "groups", email, "--add", "admins", "-c", str(path))
    assert added.returncode == 0 and "ops@example.com: admins" in added.stdout
    unknown = cognate("users", "groups", email, "--add", "root", "-c", str(path))
    assert unknown.returncode == 1 and "no group root" in unknown.stderr
    removed = cognate("users", "groups", email, "--remove", "admins", "-c", str(path))
    assert "(no groups)" in removed.stdout


async def test_users_show_says_whether_mfa_is_on(config: Path) -> None:
    import pyotp

    from gateway.services import build_services
    from gateway.settings_loader import load_settings

    email = "mfa-cli@example.com"
    created = cognate(
        "users", "create", email, "--password-stdin", "-c", str(config), stdin="a long password\n"
    )
    assert created.returncode == 0, created.stderr

    def mfa() -> dict[str, object]:
        shown = cognate("users", "show", email, "-c", str(config))
        assert shown.returncode == 0, shown.stderr
        return dict(json.loads(shown.stdout)["mfa"])

    assert mfa() == {
        "enabled": False,
        "authenticator_app": False,
        "email_codes": False,
        "passkeys": 0,
        "recovery_codes_left": 0,
    }
    services = build_services(load_settings(config))  # the user enrols an authenticator app
    try:
        user = await services.users.by_email(email)
        secret = await services.mfa.begin(user.user_id)
        assert await services.mfa.confirm(user.user_id, pyotp.TOTP(secret).now())
    finally:
        await services.store.close()
    shown = mfa()
    assert shown["enabled"] is True and shown["authenticator_app"] is True
    assert shown["recovery_codes_left"] == 10
    assert cognate("users", "reset-mfa", email, "-c", str(config)).returncode == 0
    assert mfa()["enabled"] is False


def test_every_subcommand_help_has_examples() -> None:
    import argparse

    from gateway.cli import build_parser

    def leaves(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, str]]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    command = f"{path} {name}".strip()
                    found += [(command, child.format_help())] + leaves(child, command)
        return found

    helps = leaves(build_parser(), "")
    assert len(helps) > 30
    for command, text in helps:
        examples = text.partition("examples:\n")[2]
        assert re.search(rf"^  (.*\| )?cognate {command}\b", examples, re.M), command
    # As a user sees it, with the README's promise kept.
    shown = cognate("users", "create", "--help")
    assert shown.returncode == 0 and "examples:" in shown.stdout
    assert "cognate users create ada@example.com --password-stdin" in shown.stdout


def store_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / f"store-{free_port()}.yaml"
    path.write_text(
        f"issuer: http://127.0.0.1:{free_port()}\nsecret_key: {'k' * 40}\n"
        f"store: {{url: '{url}', connect_timeout: 0.5}}\n"
    )
    return path


def test_serve_with_a_store_it_cannot_use_is_one_line(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    down = store_config(tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    result = cognate("serve", "-c", str(down), "--port", str(free_port()))
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: the store is unavailable: redis:")
    missing_db = store_config(tmp_path, f"redis://127.0.0.1:{redis_server.port}/99")
    result = cognate("serve", "-c", str(missing_db), "--port", str(free_port()))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "store.url: the server has no such database" in result.stderr
    checked = cognate("check-config", str(missing_db))
    assert checked.returncode == 1 and "no such database" in checked.stderr
    not_a_number = store_config(tmp_path, f"redis://127.0.0.1:{redis_server.port}/abc")
    for command in (
        ("check-config", str(not_a_number)),
        ("users", "list", "-c", str(not_a_number)),
    ):
        result = cognate(*command)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "store.url: the database must be a number (0, 1, …), not 'abc'" in result.stderr
    # Unreachable from where check-config runs: still a usable file, with a warning.
    offline = cognate("check-config", str(down))
    assert offline.returncode == 0 and "warning: the store cannot be reached" in offline.stdout


def test_check_config_reports_every_problem_at_once_with_spelling_hints(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    secret = "y" * 20
    path.write_text(
        f"issuer: https://a.example\nsecret_key: {'k' * 40}\nisuer: typo\n"
        "store: {url: 'memory://', prefx: p}\nclients:\n"
        f"  - {{client_id: a, client_secret: {secret}, redirect_uris: [https://a.example/cb]}}\n"
        f"  - {{client_id: a, client_secret: {secret}, redirect_uris: [not-a-url]}}\n"
        "connectors:\n  - {id: local, type: local}\n"
        "  - {id: corp, type: oidc, name: C, issuer: https://x, client_id: c, client_secert: s}\n"
    )
    result = cognate("check-config", str(path))
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert "  - isuer: unknown key (did you mean 'issuer'?)" in problems
    assert "  - store.prefx: unknown key (did you mean 'prefix'?)" in problems
    assert (
        "  - connectors[1].client_secert (corp): unknown key (did you mean 'client_secret'?)"
        in (problems)
    )
    assert "  - clients[1].redirect_uris[0] (a): must be an absolute URL" in problems
    # The duplicate id in the same pass as the other problems (it used to wait for them).
    assert "  - clients[1].client_id: duplicate id 'a' (also clients[0])" in problems
    assert len(problems) == len(set(problems)) == 5


async def test_audit_tail_escapes_what_an_attacker_chose(config: Path) -> None:
    from gateway.services import build_services
    from gateway.settings_loader import load_settings

    evil = "\u202emoc.elpmaxe@eve\x1b[2J\r" + "A" * 5000 + "\\u202e"
    services = build_services(load_settings(config))
    try:
        await services.audit.record("sign_in.failure", connector="local", account=evil)
    finally:
        await services.store.close()
    tail = cognate("audit", "tail", "-n", "1", "-c", str(config))
    assert tail.returncode == 0, tail.stderr
    line = tail.stdout.rstrip("\n")
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u202e" not in line
    assert "account=\\u202emoc.elpmaxe@eve\\u001b[2J\\u000d" + "A" * 10 in line
    assert len(line) < 600 and "…[" in line and " more]" in line  # 5 KB, visibly cut
    raw = cognate("audit", "tail", "-n", "1", "--json", "-c", str(config))
    assert json.loads(raw.stdout)["account"] == evil  # the machine format keeps it whole
    assert "\u202e" not in raw.stdout and "\x1b" not in raw.stdout  # (JSON-escaped)


def test_pools_check_covers_roles_reached_through_groups(tmp_path: Path) -> None:
    path = tmp_path / "groups.yaml"
    admins, staff = (f"arn:aws:iam::123456789012:role/{n}" for n in ("admins", "staff"))
    path.write_text(
        f"issuer: https://auth.example.com\nsecret_key: {'k' * 40}\n"
        "user_pool:\n  groups:\n"
        f"    - {{name: admins, precedence: 1, role_arn: '{admins}'}}\n"
        f"    - {{name: staff, precedence: 2, role_arn: '{staff}'}}\n"
        "    - {name: readers, precedence: 3}\n"
        "identity_pools:\n"
        f"  - id: {POOL_ID}\n    name: Pool\n    providers: [{{type: cognate}}]\n"
        "    roles: {authenticated: 'arn:aws:iam::123456789012:role/users'}\n"
        "    role_mappings: {auth.example.com: {type: Token, ambiguous_role_resolution: Deny}}\n"
    )
    result = cognate("pools", "check", "-c", str(path))
    assert result.returncode == 0, result.stderr
    roles = re.findall(r"^# 2\. Trust policy of (\S+):$", result.stdout, flags=re.M)
    assert sorted(roles) == sorted([admins, staff, "arn:aws:iam::123456789012:role/users"])
    blocks = [json.loads(b) for b in re.split(r"^#.*$", result.stdout, flags=re.M) if b.strip()]
    for policy in blocks[1:]:  # group roles are assumed with authenticated tokens only
        assert policy["Statement"][0]["Condition"]["StringEquals"] == {
            "auth.example.com:aud": POOL_ID
        }


async def test_pools_check_covers_roles_of_groups_the_api_made(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """A group created with CreateGroup lives in the store; its role is reached through the
    identity pool's Token mapping as a settings group's is, so it needs a trust policy too."""
    from gateway.store import open_store
    from gateway.users.groups import Groups

    stored = "arn:aws:iam::123456789012:role/from-the-api"
    store = open_store(redis_server.url, prefix="pools-stored")
    await Groups(store).create("writers", precedence=5, role_arn=stored)
    await store.close()
    path = tmp_path / "stored.yaml"
    path.write_text(
        f"issuer: https://auth.example.com\nsecret_key: {'k' * 40}\n"
        f"store: {{url: '{redis_server.url}', prefix: pools-stored}}\n"
        "identity_pools:\n"
        f"  - id: {POOL_ID}\n    name: Pool\n    providers: [{{type: cognate}}]\n"
        "    roles: {authenticated: 'arn:aws:iam::123456789012:role/users'}\n"
        "    role_mappings: {auth.example.com: {type: Token, ambiguous_role_resolution: Deny}}\n"
    )
    result = cognate("pools", "check", "-c", str(path))
    assert result.returncode == 0, result.stderr
    roles = re.findall(r"^# 2\. Trust policy of (\S+):$", result.stdout, flags=re.M)
    assert sorted(roles) == sorted([stored, "arn:aws:iam::123456789012:role/users"])
