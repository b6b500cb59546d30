"""The `cognate` command line.

    cognate serve [--config FILE] [--host H] [--port P] [--workers N]
    cognate check-config FILE
    cognate users create|list|show|enable|disable|delete ... [--config FILE]
    cognate keys list|rotate [--config FILE]

Every command that needs settings takes `--config FILE` (default: $COGNATE_CONFIG). Without any,
`serve` starts the embedded demo: memory store, a demo client, a demo user, printed URLs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from gateway.errors import ConfigError, GatewayError, StoreUnavailable
from gateway.settings import Settings, demo_settings, load_settings

EXAMPLES = """\
examples:
  cognate serve                                  demo mode: memory store, demo user and client
  cognate serve --config /etc/cognate/gateway.yaml --port 8000 --workers 4
  cognate check-config config/gateway.example.yaml
  echo 'a-long-passphrase' | cognate users create ada@example.com --password-stdin -c gateway.yaml
  cognate users list -c gateway.yaml
  cognate keys rotate -c gateway.yaml            publish-before-use: next key becomes current

settings: one YAML file, from --config FILE or $COGNATE_CONFIG; config/gateway.example.yaml
documents every key. Strings may use ${VAR} and ${VAR:-default}; any key may be given as
<key>_file to read a secret from a file. `cognate COMMAND --help` says more about each command.
"""


def _config_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=os.environ.get("COGNATE_CONFIG"),
        required=required and not os.environ.get("COGNATE_CONFIG"),
        help="settings file (default: $COGNATE_CONFIG)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cognate",
        description="Cognate: OpenID Provider, user pools and identity pools on Redis.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway (demo mode without a config)")
    _config_arg(serve, required=False)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (needs a Redis store; default 1)"
    )

    check = sub.add_parser("check-config", help="validate a settings file; exit 0 if usable")
    check.add_argument("file", metavar="FILE")

    users = sub.add_parser("users", help="manage local users (the `local` connector)")
    users_sub = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = users_sub.add_parser("create", help="create a user")
    create.add_argument("email")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else you are prompted)",
    )
    create.add_argument("--name", help="display name")
    create.add_argument("--verified", action="store_true", help="mark the e-mail as verified")
    _config_arg(create)
    for action, text in (
        ("show", "show one user"),
        ("enable", "enable a user"),
        ("disable", "disable a user (sign-in refused)"),
        ("delete", "delete a user"),
    ):
        one = users_sub.add_parser(action, help=text)
        one.add_argument("user", metavar="USER", help="user id or e-mail")
        _config_arg(one)
    listing = users_sub.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true", help="JSON Lines output")
    _config_arg(listing)

    identities = sub.add_parser("identities", help="identity IDs and their linked logins")
    id_sub = identities.add_subparsers(dest="action", required=True, metavar="ACTION")
    id_list = id_sub.add_parser("list", help="list identities (of one pool with --pool)")
    id_list.add_argument("--pool", help="identity pool id")
    id_list.add_argument("--json", action="store_true", help="JSON Lines output")
    _config_arg(id_list)
    for action, text in (
        ("show", "show one identity"),
        ("delete", "delete an identity and its links"),
    ):
        one = id_sub.add_parser(action, help=text)
        one.add_argument("identity_id", metavar="IDENTITY_ID")
        _config_arg(one)
    unlink = id_sub.add_parser("unlink", help="remove one login from an identity")
    unlink.add_argument("identity_id", metavar="IDENTITY_ID")
    unlink.add_argument("provider", metavar="PROVIDER", help="provider or connector name")
    unlink.add_argument("subject", metavar="SUBJECT", help="the user's id at that provider")
    _config_arg(unlink)

    pools = sub.add_parser("pools", help="identity pools")
    pools_sub = pools.add_subparsers(dest="action", required=True, metavar="ACTION")
    check_pools = pools_sub.add_parser(
        "check", help="print the IAM OIDC provider and trust policies each pool needs in AWS"
    )
    check_pools.add_argument("pool", nargs="?", help="one pool id (default: all)")
    _config_arg(check_pools)

    sessions = sub.add_parser("sessions", help="browser sessions and token families")
    sessions_sub = sessions.add_subparsers(dest="action", required=True, metavar="ACTION")
    revoke = sessions_sub.add_parser(
        "revoke", help="end every session and refresh token of a user, on every replica"
    )
    revoke.add_argument(
        "--user", required=True, metavar="USER", help="e-mail of a local user, or an identity ID"
    )
    _config_arg(revoke)

    export = sub.add_parser("export", help="back up users and identities (JSON Lines)")
    export.add_argument("-o", "--output", metavar="FILE", help="file to write (default: stdout)")
    _config_arg(export)
    restore = sub.add_parser("import", help="restore a backup (idempotent; rerun to resume)")
    restore.add_argument("file", metavar="FILE", help="a file written by `cognate export`")
    restore.add_argument(
        "--skip",
        type=int,
        default=0,
        metavar="N",
        help="skip the first N lines (resume a long import)",
    )
    _config_arg(restore)

    audit = sub.add_parser("audit", help="the audit trail")
    audit_sub = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = audit_sub.add_parser("tail", help="show the latest audit events")
    tail.add_argument("-n", "--lines", type=int, default=20, help="how many (default 20)")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    tail.add_argument("--json", action="store_true", help="JSON Lines output")
    _config_arg(tail)

    keys = sub.add_parser("keys", help="signing keys")
    keys_sub = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (
        ("list", "show the key set and each key's state"),
        ("rotate", "rotate now: next → current → previous, new next"),
    ):
        _config_arg(keys_sub.add_parser(action, help=text))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cognate` and `python -m gateway`."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "check-config":
            return _check_config(args.file)
        settings = load_settings(args.config)
        commands: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]] = {
            "users": _users,
            "keys": _keys,
            "identities": _identities,
            "pools": _pools,
            "audit": _audit,
            "sessions": _sessions,
            "export": _export,
            "import": _import,
        }
        return asyncio.run(commands[args.command](settings, args))
    except ConfigError as exc:
        print(f"error: invalid settings in {exc.source}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    except StoreUnavailable as exc:
        print(f"error: the store is unavailable: {exc}", file=sys.stderr)
        return 3
    except GatewayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _check_config(path: str) -> int:
    settings = load_settings(path)
    print(f"ok: {path}")
    print(f"  issuer:     {settings.issuer}")
    print(f"  store:      {settings.store.url} (prefix {settings.store.prefix})")
    print(f"  discovery:  {settings.issuer}/.well-known/openid-configuration")
    for client in settings.clients:
        print(
            f"  client:     {client.client_id} ({client.token_endpoint_auth_method}; "
            f"{', '.join(client.grant_types)})"
        )
    for connector in settings.connectors:
        print(f"  connector:  {connector.id} ({connector.type})")
        if connector.type in ("oidc", "oauth2"):
            # What the IdP's administrator registers as the redirect (callback) URI.
            print(f"              redirect URI: {settings.issuer}/login/{connector.id}/callback")
    if settings.store.url.startswith("memory:"):
        print("  warning: memory store: single process only, forgets everything on restart")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.observability import configure_logging
    from gateway.services import build_services

    if args.config:
        settings = load_settings(args.config)
    else:
        settings = demo_settings(args.host if args.host != "0.0.0.0" else "127.0.0.1", args.port)  # noqa: S104
    memory = settings.store.url.startswith("memory:")
    if memory and args.workers > 1:
        raise ConfigError(
            ["store: the memory store cannot be shared by several workers; use redis://"],
            args.config or "demo settings",
        )
    configure_logging(settings.log_level)
    on_start: list[Callable[[], Awaitable[None]]] = []
    banner = [
        "",
        f"Cognate is running at {settings.issuer}",
        f"  discovery: {settings.issuer}/.well-known/openid-configuration",
    ]
    if memory:
        banner.append(
            "  WARNING: memory store — single process only; everything is forgotten on "
            "restart. Use store: redis://… in production."
        )
    if settings.demo:
        email, password = "demo@example.com", secrets.token_urlsafe(9)
        services_holder: dict[str, Any] = {}

        async def seed_demo_user() -> None:
            await services_holder["services"].users.create(
                email, password, name="Demo User", email_verified=True
            )

        on_start.append(seed_demo_user)
        banner += [
            f"  demo app:  {settings.issuer}/demo/   (client_id: demo, public, PKCE)",
            f"  sign in:   {email} / {password}",
        ]

    # uvloop + httptools; our own JSON access log (no query strings) instead of uvicorn's;
    # X-Forwarded-* are not trusted by default (a proxy setting will say which proxies are).
    server_options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
    }
    if args.workers > 1:
        os.environ["COGNATE_CONFIG"] = os.path.abspath(args.config)
        print("\n".join(banner), file=sys.stderr, flush=True)
        uvicorn.run(
            "gateway.cli:app_from_env", factory=True, workers=args.workers, **server_options
        )
        return 0
    services = build_services(settings)
    if settings.demo:
        services_holder["services"] = services

    async def announce() -> None:
        print("\n".join(banner) + "\n", file=sys.stderr, flush=True)

    on_start.append(announce)
    uvicorn.run(create_app(services, on_start=on_start), **server_options)
    return 0


def app_from_env() -> Any:
    """uvicorn factory for multi-worker mode: settings from $COGNATE_CONFIG."""
    from gateway.app import create_app
    from gateway.observability import configure_logging
    from gateway.services import build_services

    settings = load_settings(os.environ["COGNATE_CONFIG"])
    configure_logging(settings.log_level)
    return create_app(build_services(settings))


async def _with_services(settings: Settings, work: Callable[[Any], Awaitable[int]]) -> int:
    from gateway.services import build_services

    services = build_services(settings)
    try:
        if settings.store.url.startswith("memory:"):
            print("warning: memory store: changes vanish when this command exits", file=sys.stderr)
        await services.keys.load()  # some commands sign (back-channel logout tokens)
        return await work(services)
    finally:
        services.users.hasher.close()
        await services.logout.close()
        await services.store.close()


async def _users(settings: Settings, args: argparse.Namespace) -> int:
    async def work(services: Any) -> int:
        users = services.users
        if args.action == "create":
            password = _read_password(args.password_stdin)
            user = await users.create(
                args.email, password, name=args.name, email_verified=args.verified
            )
            await services.audit.record("user.created", user_id=user.user_id, actor="cli")
            print(f"created {user.email} (user id {user.user_id})")
        elif args.action == "list":
            count = 0
            async for user in users.all():
                count += 1
                if args.json:
                    print(json.dumps(_public(user)))
                else:
                    print(f"{user.user_id}  {user.status:8}  {user.email}")
            if not args.json:
                print(f"{count} user(s)", file=sys.stderr)
        elif args.action == "show":
            print(json.dumps(_public(await users.resolve(args.user)), indent=2))
        elif args.action in ("enable", "disable"):
            user = await users.resolve(args.user)
            await users.set_status(
                user.user_id, "enabled" if args.action == "enable" else "disabled"
            )
            await services.audit.record(f"user.{args.action}d", user_id=user.user_id, actor="cli")
            if args.action == "disable":
                await _end_sessions_of_user(services, user.user_id)
            print(f"{args.action}d {user.email}")
        elif args.action == "delete":
            user = await users.resolve(args.user)
            await users.delete(user.user_id)
            await services.audit.record("user.deleted", user_id=user.user_id, actor="cli")
            await _end_sessions_of_user(services, user.user_id)
            print(f"deleted {user.email}")
        return 0

    return await _with_services(settings, work)


def _public(user: Any) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "email": user.email,
        "email_verified": user.email_verified,
        "status": user.status,
        "name": user.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(user.created)),
    }


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat:   ") != first:
        raise GatewayError("the passwords do not match")
    return first


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    async def work(services: Any) -> int:
        keys = services.keys
        if args.action == "rotate":
            if not await keys.rotate():
                raise GatewayError(
                    "another process changed the key set at the same moment; run the command again"
                )
            await services.audit.record("keys.rotated", actor="cli")
            print("rotated; replicas pick up the new key set within a minute")
        for entry in keys.entries:
            when = entry.activated or entry.created
            stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(when))
            print(f"{entry.kid}  {entry.alg}  {entry.state:8}  since {stamp}")
        return 0

    return await _with_services(settings, work)


async def _identities(settings: Settings, args: argparse.Namespace) -> int:
    async def work(services: Any) -> int:
        store = services.identities
        if args.action == "list":
            cursor, count = None, 0
            while True:
                page, cursor = await store.page(args.pool, cursor, 100)
                for identity in page:
                    count += 1
                    if args.json:
                        print(json.dumps(_identity_json(identity)))
                    else:
                        logins = ", ".join(f"{x.provider}:{x.subject}" for x in identity.logins)
                        state = (
                            "disabled"
                            if identity.disabled
                            else ("authenticated" if identity.authenticated else "guest")
                        )
                        print(f"{identity.identity_id}  {state:13}  {logins or '-'}")
                if cursor is None:
                    break
            if not args.json:
                print(f"{count} identit{'y' if count == 1 else 'ies'}", file=sys.stderr)
            return 0
        identity = await store.get(args.identity_id)
        if identity is None:
            raise GatewayError(f"no identity {args.identity_id}")
        if args.action == "show":
            print(json.dumps(_identity_json(identity), indent=2))
        elif args.action == "delete":
            await store.delete(args.identity_id)
            await services.audit.record(
                "identity.deleted", identity_id=args.identity_id, actor="cli"
            )
            print(f"deleted {args.identity_id}")
        elif args.action == "unlink":
            if not identity.has(args.provider, args.subject):
                raise GatewayError(
                    f"{args.identity_id} has no login {args.provider}:{args.subject}"
                )
            await store.unlink(args.identity_id, args.provider, args.subject)
            await services.audit.record(
                "identity.unlinked",
                identity_id=args.identity_id,
                provider=args.provider,
                actor="cli",
            )
            print(f"unlinked {args.provider}:{args.subject} from {args.identity_id}")
        return 0

    return await _with_services(settings, work)


def _identity_json(identity: Any) -> dict[str, Any]:
    def stamp(t: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    return {
        "identity_id": identity.identity_id,
        "logins": [{"provider": x.provider, "subject": x.subject} for x in identity.logins],
        "pools": identity.pools,
        "disabled": identity.disabled,
        "created": stamp(identity.created),
        "last_modified": stamp(identity.last_modified),
    }


async def _pools(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.identity.iam import pool_report

    pools = [p for p in settings.identity_pools if args.pool in (None, p.id)]
    if not pools:
        raise GatewayError(
            f"no identity pool {args.pool}" if args.pool else "no identity_pools in the settings"
        )
    problems = 0
    for pool in pools:
        report = pool_report(settings.issuer, pool)
        print(f"# {pool.id} ({pool.name})")
        print("# 1. The IAM OIDC identity provider (aws iam create-open-id-connect-provider):")
        print(json.dumps(report["oidc_provider"], indent=2))
        for role, policy in report["trust_policies"].items():
            print(f"# 2. Trust policy of {role}:")
            print(json.dumps(policy, indent=2))
        for problem in report["problems"]:
            problems += 1
            print(f"warning: {problem}", file=sys.stderr)
    return 1 if problems else 0


async def _audit(settings: Settings, args: argparse.Namespace) -> int:
    async def work(services: Any) -> int:
        audit = services.audit
        entries: list[tuple[str, dict[str, str]]] = []
        after = "0"
        while True:  # the last N: read forward and keep a window (streams are trimmed by age)
            batch = await audit.read(after, 500)
            if not batch:
                break
            entries = (entries + batch)[-args.lines :] if args.lines > 0 else []
            after = batch[-1][0]
        for entry in entries:
            _print_audit(entry, args.json)
        while args.follow:
            for entry in await audit.read(after, 100, block=1.0):
                _print_audit(entry, args.json)
                after = entry[0]
        return 0

    return await _with_services(settings, work)


def _print_audit(entry: tuple[str, dict[str, str]], as_json: bool) -> None:
    entry_id, fields = entry
    if as_json:
        print(json.dumps({"id": entry_id, **fields}), flush=True)
        return
    rest = " ".join(f"{k}={v}" for k, v in fields.items() if k not in ("ts", "event"))
    print(f"{fields.get('ts', '?')}  {fields.get('event', '?'):22} {rest}", flush=True)


async def _end_sessions_of_user(services: Any, user_id: str) -> None:
    """A disabled or deleted local user loses every session and refresh token at once."""
    for connector_id, connector in services.connectors.items():
        if connector.type != "local":
            continue
        identity_id = await services.identities.find(connector_id, user_id)
        if identity_id:
            ended, revoked = await services.logout.end_identity(identity_id)
            await services.logout.drain()
            print(
                f"ended {ended} session(s) and {revoked} token famil"
                f"{'y' if revoked == 1 else 'ies'}"
            )


async def _sessions(settings: Settings, args: argparse.Namespace) -> int:
    async def work(services: Any) -> int:
        if ":" in args.user and "@" not in args.user:
            identity_ids = [args.user]
        else:
            user = await services.users.resolve(args.user)
            identity_ids = [
                i
                for c in services.connectors.values()
                if c.type == "local"
                if (i := await services.identities.find(c.id, user.user_id))
            ]
        if not identity_ids:
            raise GatewayError(f"{args.user} has never signed in: nothing to revoke")
        for identity_id in identity_ids:
            ended, revoked = await services.logout.end_identity(identity_id)
            await services.audit.record(
                "sessions.revoked",
                identity_id=identity_id,
                sessions=str(ended),
                grants=str(revoked),
                actor="cli",
            )
            print(
                f"{identity_id}: ended {ended} session(s), revoked {revoked} token "
                f"famil{'y' if revoked == 1 else 'ies'}"
            )
        await services.logout.drain()
        return 0

    return await _with_services(settings, work)


class _Progress:
    """A one-line progress report on stderr, refreshed at most ten times a second."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.last = 0.0

    def __call__(self, counts: Any, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < 0.1:
            return
        self.last = now
        summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if k != "lines")
        print(f"\r{self.verb}: {summary}", end="\n" if final else "", file=sys.stderr, flush=True)


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    from collections import Counter

    from gateway.backup import export_records

    async def work(services: Any) -> int:
        out = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
        counts: Counter[str] = Counter()
        show = _Progress("exported")
        try:
            async for record in export_records(services):
                out.write(json.dumps(record) + "\n")
                counts[record["type"]] += 1
                show(counts)
        finally:
            if out is not sys.stdout:
                out.close()
        show(counts, final=True)
        await services.audit.record(
            "backup.exported",
            actor="cli",
            users=str(counts["user"]),
            identities=str(counts["identity"]),
        )
        return 0

    return await _with_services(settings, work)


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.backup import import_records

    async def work(services: Any) -> int:
        show = _Progress("imported")
        with open(args.file) as lines:
            counts = await import_records(services, lines, args.skip, show)
        show(counts, final=True)
        await services.audit.record("backup.imported", actor="cli", lines=str(counts["lines"]))
        conflicts = sum(v for k, v in counts.items() if k.endswith(":conflict"))
        if conflicts or counts["invalid"]:
            print(
                f"warning: {conflicts} conflict(s), {counts['invalid']} invalid line(s)",
                file=sys.stderr,
            )
            return 1
        return 0

    return await _with_services(settings, work)
