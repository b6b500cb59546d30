"""The examples `cognate COMMAND --help` ends with, for every command and subcommand.

Kept apart from `gateway.cli` (which builds the parser) so the parser stays readable; the test
suite checks that every subcommand the parser has gets examples here.
"""

from __future__ import annotations

import argparse

# `cognate COMMAND --help` ends with these (every command and subcommand has some).
COMMAND_EXAMPLES: dict[str, list[str]] = {
    "serve": [
        "cognate serve                                  demo: memory store, demo user and client",
        "cognate serve -c /etc/cognate/gateway.yaml --host 0.0.0.0 --port 8000 --workers 4",
    ],
    "proxy": [
        "cognate proxy --upstream http://127.0.0.1:8080 -c gateway.yaml",
        "cognate proxy --upstream http://127.0.0.1:8080 --health-path /healthz --port 4180",
    ],
    "check-config": [
        "cognate check-config gateway.yaml            exit 0 if usable, 1 with every problem",
    ],
    "healthcheck": [
        "cognate healthcheck                            the gateway on 127.0.0.1:8000",
        "cognate healthcheck --url http://127.0.0.1:4180   `cognate proxy`'s default port",
    ],
    "users": ["cognate users list -c gateway.yaml", "cognate users show ada@example.com"],
    "users create": [
        "echo 'a long passphrase' | cognate users create ada@example.com --password-stdin",
        "cognate users create ada@example.com --name 'Ada L' --username ada --verified",
    ],
    "users list": ["cognate users list", "cognate users list --json | jq -r .email"],
    "users show": ["cognate users show ada@example.com      profile, status, groups, MFA"],
    "users enable": ["cognate users enable ada@example.com"],
    "users disable": ["cognate users disable ada@example.com   also ends their sessions"],
    "users delete": ["cognate users delete 0f6e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"],
    "users confirm": ["cognate users confirm ada@example.com   e-mail verified by hand"],
    "users reset-mfa": ["cognate users reset-mfa ada@example.com   lost phone"],
    "users set-password": [
        "echo 'a new passphrase' | cognate users set-password ada@example.com --password-stdin",
    ],
    "users set-attribute": [
        "cognate users set-attribute ada@example.com name 'Ada Lovelace'",
        "cognate users set-attribute ada@example.com custom:team billing",
        "cognate users set-attribute ada@example.com custom:team ''   removes it",
    ],
    "users groups": [
        "cognate users groups ada@example.com",
        "cognate users groups ada@example.com --add admins --remove staff",
    ],
    "users import": ["cognate users import legacy-users.jsonl"],
    "users export": ["cognate users export -o users.jsonl"],
    "identities": ["cognate identities list --pool us-east-1:0f6e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"],
    "identities list": [
        "cognate identities list",
        "cognate identities list --pool us-east-1:0f6e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b --json",
    ],
    "identities show": ["cognate identities show us-east-1:0f6e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"],
    "identities delete": [
        "cognate identities delete us-east-1:0f6e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
    ],
    "identities unlink": [
        "cognate identities unlink us-east-1:0f6e1a2b-… accounts.google.com 1098765432",
    ],
    "pools": ["cognate pools check"],
    "pools check": [
        "cognate pools check                            every pool",
        "cognate pools check us-east-1:0f6e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
    ],
    "sessions": ["cognate sessions revoke --user ada@example.com"],
    "sessions revoke": [
        "cognate sessions revoke --user ada@example.com",
        "cognate sessions revoke --user us-east-1:0f6e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
    ],
    "export": ["cognate export -o backup.jsonl"],
    "import": ["cognate import backup.jsonl", "cognate import backup.jsonl --skip 50000"],
    "audit": ["cognate audit tail -n 50"],
    "audit tail": ["cognate audit tail -n 50", "cognate audit tail --follow --json"],
    "keys": ["cognate keys list"],
    "keys list": ["cognate keys list"],
    "keys rotate": ["cognate keys rotate                next key becomes current"],
    "login": [
        "cognate login --issuer https://auth.example.com --client-id cli",
        "cognate login --issuer https://auth.example.com --client-id cli --no-browser"
        "   # over SSH, in a container",
        "cognate login --issuer https://auth.example.com --client-id cli --browser"
        "      # never the device flow",
    ],
    "aws-credentials": [
        "cognate aws-credentials --pool us-east-1:0f6e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
        "# ~/.aws/config:  credential_process = cognate aws-credentials --pool us-east-1:…",
        "# in a pod, with no login: exchange its projected service-account token",
        "cognate aws-credentials --pool us-east-1:… --issuer https://auth.example.com"
        " --client-id ci-deployer --subject-token-file /var/run/cognate/token",
    ],
}


def add_examples(parser: argparse.ArgumentParser, path: str = "") -> None:
    """Give `parser` and every subcommand below it its examples (COMMAND_EXAMPLES)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                if child.description is None and helps.get(name):
                    text = str(helps[name])
                    child.description = text[:1].upper() + text[1:] + "."
                command = f"{path} {name}".strip()
                lines = COMMAND_EXAMPLES.get(command, [])
                child.formatter_class = argparse.RawDescriptionHelpFormatter
                child.epilog = "examples:\n" + "\n".join(f"  {line}" for line in lines)
                # login and aws-credentials run on a user's machine and read no settings.
                if command not in (
                    "serve",
                    "proxy",
                    "check-config",
                    "healthcheck",
                    "login",
                    "aws-credentials",
                ):
                    child.epilog += "\n\nsettings: --config FILE, or $COGNATE_CONFIG"
                add_examples(child, command)
