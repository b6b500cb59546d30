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
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from gateway import client_cli
from gateway.cli_examples import add_examples
from gateway.errors import ConfigError, GatewayError, StoreUnavailable
from gateway.settings import Settings, SidecarSettings
from gateway.settings_loader import demo_settings, load_settings
from gateway.store import open_store

# The rest is imported where it is used, for start-up time, not for cycles: `cognate
# aws-credentials` runs at every credential refresh of an AWS SDK, `check-config` on every
# deploy, and neither should load what only the administrative commands (`gateway.admin`, which
# builds the services: the whole gateway) or `serve` (uvicorn, the app) need.

EXAMPLES = """\
examples:
  cognate serve                                  demo mode: memory store, demo user and client
  cognate serve --config /etc/cognate/gateway.yaml --port 8000 --workers 4
  cognate proxy --upstream http://127.0.0.1:8080 -c gateway.yaml   sidecar in front of an app
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


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text}: give seconds above 0 (at most 3600)")
    return value


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

    proxy = sub.add_parser(
        "proxy",
        help="run as a sidecar in front of one app (sign-in, identity headers, WebSockets)",
        description="Serve the gateway and proxy every other path to --upstream, signed-in "
        "users only (health paths excepted). Settings may also give sidecar.upstream.",
    )
    _config_arg(proxy, required=False)
    proxy.add_argument("--upstream", help="the app, e.g. http://127.0.0.1:8080")
    proxy.add_argument(
        "--health-path",
        action="append",
        default=[],
        metavar="PATH",
        help="a path of the app reachable without sign-in (exact match; repeatable)",
    )
    proxy.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    proxy.add_argument("--port", type=int, default=4180, help="port (default 4180)")

    check = sub.add_parser("check-config", help="validate a settings file; exit 0 if usable")
    check.add_argument("file", metavar="FILE")

    health = sub.add_parser(
        "healthcheck",
        help="exit 0 if the gateway at --url is alive (container and systemd health checks)",
        description="Ask a running gateway for its own liveness probe, /_cognate/healthz (the "
        "same path whether it runs as a sidecar, where /healthz is the app's, or not).",
    )
    health.add_argument(
        "--url", default="http://127.0.0.1:8000", help="the gateway (default %(default)s)"
    )
    health.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=2.0,
        help="seconds to wait for the answer (default %(default)s)",
    )

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
    create.add_argument("--username", help="a username to sign in with (user_pool.usernames)")
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
    for action, text in (
        ("confirm", "mark a user's e-mail as verified"),
        ("reset-mfa", "remove a user's second factors and passkeys (lost phone)"),
    ):
        one = users_sub.add_parser(action, help=text)
        one.add_argument("user", metavar="USER", help="user id or e-mail")
        _config_arg(one)
    reset = users_sub.add_parser(
        "set-password", help="set a new password (an administrator's reset; ends their sessions)"
    )
    reset.add_argument("user", metavar="USER", help="user id or e-mail")
    reset.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    reset.add_argument(
        "--temporary",
        action="store_true",
        help="the user must choose a new password at the next sign-in",
    )
    _config_arg(reset)
    attribute = users_sub.add_parser(
        "set-attribute", help="set the name or a custom attribute (empty value removes it)"
    )
    attribute.add_argument("user", metavar="USER", help="user id or e-mail")
    attribute.add_argument("name", help="name, or custom:<attribute>")
    attribute.add_argument("value")
    _config_arg(attribute)
    groups = users_sub.add_parser(
        "groups", help="show or change a user's groups (defined in user_pool.groups)"
    )
    groups.add_argument("user", metavar="USER", help="user id or e-mail")
    groups.add_argument("--add", action="append", default=[], metavar="GROUP")
    groups.add_argument("--remove", action="append", default=[], metavar="GROUP")
    _config_arg(groups)
    importing = users_sub.add_parser(
        "import",
        help="import accounts from another system (JSON Lines; argon2/bcrypt/scrypt/PBKDF2 "
        "hashes, replaced by argon2id at the next sign-in; rerunnable)",
    )
    importing.add_argument("file", metavar="FILE")
    _config_arg(importing)
    exporting = users_sub.add_parser("export", help="write every account as JSON Lines")
    exporting.add_argument("--output", "-o", metavar="FILE", help="default: standard output")
    _config_arg(exporting)
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
    client_cli.add_commands(sub)  # login, aws-credentials: client side, no settings
    add_examples(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cognate` and `python -m gateway`."""
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("serve", "proxy"):
            return _serve(args)
        if args.command == "check-config":
            return _check_config(args.file)
        if args.command == "healthcheck":
            return _healthcheck(args.url, args.timeout)
        if args.command in client_cli.COMMANDS:
            return client_cli.run(args)
        settings = load_settings(args.config)
        from gateway import admin  # the services: see the imports above

        return asyncio.run(admin.COMMANDS[args.command](settings, args))
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


async def probe_store(settings: Settings) -> None:
    """Reach the store once, as the gateway would at start: StoreUnavailable (one line for the
    caller to print) when it cannot, ConfigError when the server has no such database."""
    from redis.exceptions import ResponseError  # redis only for a redis:// store

    if settings.store.url.startswith("memory:"):
        return
    store = open_store(
        settings.store.url,
        prefix=settings.store.prefix,
        socket_timeout=settings.store.socket_timeout,
        connect_timeout=settings.store.connect_timeout,
    )
    try:
        await store.ping()
    except StoreUnavailable as exc:
        cause = exc.__cause__
        if isinstance(cause, ResponseError) and "DB index" in str(cause):
            raise ConfigError(
                [
                    "store.url: the server has no such database (its `databases` setting, "
                    "16 by default, is lower than the number in the URL)"
                ],
                "store",
            ) from None
        raise
    finally:
        await store.close()


def _healthcheck(url: str, timeout: float) -> int:
    """0 when the gateway at `url` answers its own liveness probe, `/_cognate/healthz` (the
    same in every mode; a sidecar's /healthz is the app's), with 200 within `timeout`
    seconds; else 1 and one line saying why. Redirects are not followed: a gateway's probe
    never redirects, so a 3xx is something else answering."""
    import http.client
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit, urlunsplit

    from gateway.proxy.sidecar import SIDECAR_HEALTH

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        print(f"error: --url {url!r}: give http(s)://host[:port][/prefix]", file=sys.stderr)
        return 1
    probe = urlunsplit(
        (parts.scheme, parts.netloc, parts.path.rstrip("/") + SIDECAR_HEALTH["/healthz"], "", "")
    )

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # the 3xx itself is the answer (an HTTPError below)

    opener = urllib.request.build_opener(NoRedirects)
    try:
        with opener.open(probe, timeout=timeout) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        print(f"unhealthy: {probe}: {reason}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {probe} answered {status}", file=sys.stderr)
        return 1
    return 0


def _check_config(path: str) -> int:
    settings = load_settings(path)
    try:
        asyncio.run(probe_store(settings))
        reachable = None
    except StoreUnavailable as exc:  # maybe checked on another machine: a warning, not an error
        reachable = str(exc)
    print(f"ok: {path}")
    print(f"  issuer:     {settings.issuer}")
    print(f"  store:      {settings.store.url} (prefix {settings.store.prefix})")
    print(f"  discovery:  {settings.issuer}/.well-known/openid-configuration")
    derived = (
        "" if settings.user_pool.id else " (derived from secret_key; set user_pool.id to fix it)"
    )
    print(f"  user pool:  {settings.user_pool_id}{derived}")
    for client in settings.clients:
        print(
            f"  client:     {client.client_id} ({client.token_endpoint_auth_method}; "
            f"{', '.join(client.grant_types)})"
        )
    for connector in settings.connectors:
        print(f"  connector:  {connector.id} ({connector.type})")
        if connector.type in ("oidc", "oauth2"):
            # What the IdP's administrator registers as the redirect (callback) URI.
            path = (
                "/oauth2/callback"
                if getattr(connector, "oauth2_proxy_callback", False)
                else "/oauth2/idpresponse"
                if getattr(connector, "cognito_callback", False)
                else f"/login/{connector.id}/callback"
            )
            print(f"              redirect URI: {settings.issuer}{path}")
        if connector.type == "saml":
            # What the IdP's administrator imports or types in (SP metadata, ACS, SLO).
            base = f"{settings.issuer}/saml/{connector.id}"
            print(f"              SP metadata:  {base}/metadata")
            print(f"              ACS:          {base}/acs")
            print(f"              single logout: {base}/slo")
    if settings.store.url.startswith("memory:"):
        print("  warning: memory store: single process only, forgets everything on restart")
    if reachable is not None:
        print(f"  warning: the store cannot be reached from here: {reachable}")
    pool_region = settings.user_pool_id.split("_", 1)[0]
    if pool_region != settings.region:
        # amazon-cognito-identity-js and Amplify derive the region from the pool id.
        print(
            f"  warning: user_pool.id names region {pool_region} but region is "
            f"{settings.region}: SDKs that derive the region from the pool id will disagree "
            f"with the identity pools' ids; use {settings.region}_… or set region: {pool_region}"
        )
    from gateway.proxy import setup_warnings  # check-config only: see the imports above
    from gateway.users.passkeys import setup_warnings as passkey_warnings

    for warning in [*setup_warnings(settings), *passkey_warnings(settings)]:
        print(f"  warning: {warning}")
    return 0


def _with_sidecar(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings with sidecar mode on: --upstream and --health-path over `sidecar:`."""
    current = settings.sidecar
    upstream = args.upstream or (current.upstream if current else None)
    if not upstream:
        raise ConfigError(["sidecar.upstream: give --upstream URL (the app to protect)"], "proxy")
    base = current.model_dump() if current else {}
    try:
        sidecar = SidecarSettings.model_validate(
            {
                **base,
                "upstream": upstream,
                "health_paths": [*base.get("health_paths", []), *args.health_path],
            }
        )
    except ValueError as exc:
        raise ConfigError([f"sidecar: {exc}"], "proxy") from None
    return settings.model_copy(update={"sidecar": sidecar})


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.metrics import metrics_listener, shared_exposition, shared_metrics_dir
    from gateway.observability import configure_logging
    from gateway.services import build_services

    if args.config:
        settings = load_settings(args.config)
    else:
        settings = demo_settings(args.host if args.host != "0.0.0.0" else "127.0.0.1", args.port)  # noqa: S104
    if args.command == "proxy":
        settings = _with_sidecar(settings, args)
        args.workers = 1  # one sidecar per app instance
    memory = settings.store.url.startswith("memory:")
    if memory and args.workers > 1:
        raise ConfigError(
            ["store: the memory store cannot be shared by several workers; use redis://"],
            args.config or "demo settings",
        )
    # Reach the store before uvicorn starts: an unreachable Redis or a database it does not
    # have is one line and exit code 3 (or 1), as for every other command — not a traceback
    # from the application's lifespan.
    asyncio.run(probe_store(settings))
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
        # The workers add their metrics up in one directory; the supervisor (this process)
        # serves the sum on metrics.listen, any worker on the public port.
        with shared_metrics_dir() as metrics_dir:
            with metrics_listener(settings.metrics, lambda: shared_exposition(metrics_dir)):
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
    with metrics_listener(settings.metrics, services.metrics.exposition):
        uvicorn.run(create_app(services, on_start=on_start), **server_options)
    return 0


def app_from_env() -> Any:
    """uvicorn factory for multi-worker mode: settings from $COGNATE_CONFIG."""
    from gateway.app import create_app
    from gateway.metrics import MULTIPROC_ENV, forget_on_exit
    from gateway.observability import configure_logging
    from gateway.services import build_services

    settings = load_settings(os.environ["COGNATE_CONFIG"])
    configure_logging(settings.log_level)
    forget_on_exit(os.environ.get(MULTIPROC_ENV))
    return create_app(build_services(settings))
