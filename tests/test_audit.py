"""The audit trail: events from sign-in, tokens and admin commands, read back with the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import PASSWORD, Browser, GatewayServer, RedisServer, code_flow_params, redeem

ROOT = Path(__file__).parent.parent


async def test_sign_in_and_tokens_are_audited(gateway: GatewayServer, user: str) -> None:
    browser = Browser(gateway.url)
    try:
        first = await browser.authorize(**code_flow_params())
        assert (await browser.sign_in(first, user, "not the password")).status_code == 401
        code, verifier, _ = await browser.login_for_code(user)
        await redeem(browser.http, code, verifier)
    finally:
        await browser.aclose()
    entries = [fields for _, fields in await gateway.call(lambda s: s.audit.read("0", 10_000))]
    mine = [e for e in entries if e.get("account") == user or e.get("event") == "token.issued"]
    events = [e["event"] for e in mine]
    assert "sign_in.failure" in events and "token.issued" in events
    success = [e for e in entries if e["event"] == "sign_in.success" and e.get("client_id")]
    assert success and success[-1]["connector"] == "local"
    assert success[-1]["identity_id"].startswith("us-east-1:") and success[-1]["ip"]
    text = json.dumps(entries)
    assert PASSWORD not in text and "not the password" not in text and code not in text


def test_admin_commands_are_audited_and_tail_shows_them(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"issuer: https://auth.example.com\nsecret_key: {'k' * 40}\n"
        f"store: {{url: '{redis_server.url}', prefix: audit-cli}}\n"
    )

    def cognate(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", *args, "-c", str(config)],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )

    assert (
        cognate(
            "users",
            "create",
            "audited@example.com",
            "--password-stdin",
            stdin="a long enough password\n",
        ).returncode
        == 0
    )
    assert cognate("users", "disable", "audited@example.com").returncode == 0
    tail = cognate("audit", "tail", "-n", "5", "--json")
    assert tail.returncode == 0, tail.stderr
    events = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [e["event"] for e in events][-2:] == ["user.created", "user.disabled"]
    assert all(e["actor"] == "cli" for e in events[-2:])
    assert "a long enough password" not in tail.stdout
    human = cognate("audit", "tail", "-n", "1")
    assert "user.disabled" in human.stdout and "actor=cli" in human.stdout
