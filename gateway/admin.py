"""The administrative commands of `cognate` (users, keys, identities, pools, sessions, audit,
export/import): `COMMANDS` maps each to its function, and a command with actions (`users
create`, `keys rotate`…) is a table of action functions (`USER_ACTIONS`…), each taking the
services and the parsed arguments and returning an exit code. The services are built from the
settings for one command and released before it returns (`with_services`).

What does not live here: the parser, `serve` and `check-config` (`gateway.cli`); how values
reach the terminal (`gateway.terminal`); the backup format (`gateway.backup`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping

from gateway.backup import export_records, import_records
from gateway.errors import GatewayError
from gateway.identity.iam import pool_report
from gateway.identity.ids import Identity
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.terminal import Progress, terminal_safe
from gateway.users import accounts
from gateway.users.directory import (
    InvalidAttribute,
    InvalidEmail,
    InvalidPassword,
    User,
    UserExists,
)
from gateway.users.search import user_status

CLI = "cli"  # the actor audit events name
Work = Callable[[Services], Awaitable[int]]
# An action of a command (`users create`, `keys rotate`…): the services built, the parsed
# arguments, an exit code.
Action = Callable[[Services, argparse.Namespace], Awaitable[int]]
# A command (`users`, `keys`…) as `cognate` runs it: `asyncio.run(command(settings, args))`.
Command = Callable[[Settings, argparse.Namespace], Coroutine[object, object, int]]


async def with_services(settings: Settings, work: Work) -> int:
    """Build the services, run `work` on them, and release everything: its exit code."""
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


def on_services(action: Action) -> Command:
    """A command that runs `action` on services built for it, and released after."""

    async def command(settings: Settings, args: argparse.Namespace) -> int:
        async def work(services: Services) -> int:
            return await action(services, args)

        return await with_services(settings, work)

    return command


def by_action(actions: Mapping[str, Action]) -> Command:
    """A command whose ACTION argument (`users create`, `keys rotate`…) picks from `actions`."""

    async def command(settings: Settings, args: argparse.Namespace) -> int:
        return await on_services(actions[args.action])(settings, args)

    return command


# -- users ----------------------------------------------------------------------------------------


async def create_user(services: Services, args: argparse.Namespace) -> int:
    """`users create EMAIL`: a local account, with the password typed twice or from stdin."""
    password = read_password(args.password_stdin)
    try:
        user = await accounts.create(
            services,
            CLI,
            args.email,
            password,
            name=args.name,
            email_verified=args.verified,
            username=args.username,
            confirmed=True,  # an administrator's account with its password: nothing to confirm
        )
    except InvalidEmail:
        raise GatewayError(f"{args.email!r} is not an e-mail address") from None
    except InvalidPassword as exc:
        raise GatewayError(f"the password {exc}") from None
    print(f"created {user.email} (user id {user.user_id})")
    return 0


async def list_users(services: Services, args: argparse.Namespace) -> int:
    """`users list [--json]`: one line a user, the count on stderr."""
    count = 0
    async for user in services.users.all():
        count += 1
        if args.json:
            print(json.dumps(public(user)))
        else:
            print(f"{user.user_id}  {user.status:8}  {user.email}")
    if not args.json:
        print(f"{count} user(s)", file=sys.stderr)
    return 0


async def show_user(services: Services, args: argparse.Namespace) -> int:
    """`users show USER`: the account and its second factors, as JSON."""
    user = await services.users.resolve(args.user)
    print(json.dumps({**public(user), "mfa": await mfa_state(services, user)}, indent=2))
    return 0


async def enable_user(services: Services, args: argparse.Namespace) -> int:
    """`users enable USER`."""
    user = await services.users.resolve(args.user)
    await accounts.set_enabled(services, user, True, CLI)
    print(f"enabled {user.email}")
    return 0


async def disable_user(services: Services, args: argparse.Namespace) -> int:
    """`users disable USER`: sign-in refused, and every session and refresh token ended."""
    user = await services.users.resolve(args.user)
    await report_ended(services, await accounts.set_enabled(services, user, False, CLI))
    print(f"disabled {user.email}")
    return 0


async def set_user_password(services: Services, args: argparse.Namespace) -> int:
    """`users set-password USER [--temporary]`: an administrator's reset; it ends the user's
    sessions (a temporary password must be replaced at the next sign-in)."""
    user = await services.users.resolve(args.user)
    password = read_password(args.password_stdin)
    await report_ended(
        services, await accounts.set_password(services, user, password, args.temporary, CLI)
    )
    print(f"new password set for {user.email}")
    return 0


async def confirm_user(services: Services, args: argparse.Namespace) -> int:
    """`users confirm USER`: the e-mail marked as verified (the sign-up confirmed)."""
    try:
        user = await accounts.confirm(services, await services.users.resolve(args.user), CLI)
    except UserExists as exc:
        print(f"error: {exc}: another account has that address now", file=sys.stderr)
        return 1
    print(f"confirmed {user.email}")
    return 0


async def reset_user_mfa(services: Services, args: argparse.Namespace) -> int:
    """`users reset-mfa USER`: second factors and passkeys removed (a lost phone)."""
    user = await services.users.resolve(args.user)
    await services.mfa.remove(user.user_id)
    await services.passkeys.remove_all(user.user_id)
    await services.audit.record("mfa.removed", user_id=user.user_id, actor=CLI)
    print(f"two-step sign-in removed for {user.email}; they sign in with the password")
    return 0


async def set_user_attribute(services: Services, args: argparse.Namespace) -> int:
    """`users set-attribute USER NAME VALUE` (an empty value removes it)."""
    found = await services.users.resolve(args.user)
    user = await accounts.set_attributes(services, found, {args.name: args.value}, CLI)
    print(f"{user.email}: {args.name} = {args.value}")
    return 0


async def user_groups(services: Services, args: argparse.Namespace) -> int:
    """`users groups USER [--add G] [--remove G]`: shows them, after changing them if asked
    (groups of user_pool.groups, or made through the user-pool API's CreateGroup)."""
    user = await services.users.resolve(args.user)
    if args.add or args.remove:
        user, ended = await accounts.change_groups(services, user, args.add, args.remove, CLI)
        await report_ended(services, ended)  # new claims at next sign-in
    print(f"{user.email}: {', '.join(user.groups) or '(no groups)'}")
    return 0


async def import_users(services: Services, args: argparse.Namespace) -> int:
    """`users import FILE`: accounts from another system, one JSON object a line."""
    counts: Counter[str] = Counter()
    show = Progress("users")
    with open(args.file) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise InvalidAttribute("not a JSON object")
                counts[await services.users.import_account(record)] += 1
            except (ValueError, InvalidAttribute) as exc:
                counts["invalid"] += 1
                print(f"\nline {number}: {exc}", file=sys.stderr)
            show(counts)
    show(counts, final=True)
    await services.audit.record("users.imported", actor="cli", created=str(counts["created"]))
    return 1 if counts["invalid"] else 0


async def export_users(services: Services, args: argparse.Namespace) -> int:
    """`users export [-o FILE]`: every account as `users import` reads it."""
    out = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
    try:
        async for user in services.users.all():
            out.write(json.dumps(portable(user)) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


async def delete_user(services: Services, args: argparse.Namespace) -> int:
    """`users delete USER`: the account gone (its second factors too), and every session and
    refresh token ended."""
    user = await services.users.resolve(args.user)
    await report_ended(services, await accounts.delete(services, user, CLI))
    print(f"deleted {user.email}")
    return 0


USER_ACTIONS: dict[str, Action] = {
    "create": create_user,
    "list": list_users,
    "show": show_user,
    "enable": enable_user,
    "disable": disable_user,
    "set-password": set_user_password,
    "confirm": confirm_user,
    "reset-mfa": reset_user_mfa,
    "set-attribute": set_user_attribute,
    "groups": user_groups,
    "import": import_users,
    "export": export_users,
    "delete": delete_user,
}


def portable(user: User) -> dict[str, object]:
    """A user as `users import` reads it (with the argon2id hash: keep the file secret)."""
    return {
        "email": user.email,
        "email_verified": user.email_verified,
        "name": user.name,
        "attributes": user.attributes,
        "groups": user.groups,
        "password_hash": user.password_hash,
    }


def public(user: User) -> dict[str, object]:
    """A user as `users list --json` and `users show` print it (no password hash)."""
    return {
        "user_id": user.user_id,
        "username": user.username,
        "email": user.email,
        "email_verified": user.email_verified,
        "phone_number_verified": user.phone_number_verified,
        "status": user.status,
        "user_status": user_status(user),  # Cognito's UserStatus, as AdminGetUser says it
        "name": user.name,
        "standard": user.standard,  # phone_number, preferred_username... (OIDC's names)
        "attributes": user.attributes,  # custom:*
        "groups": user.groups,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(user.created)),
    }


async def mfa_state(services: Services, user: User) -> dict[str, object]:
    """What `users show` says about a user's second factors (an administrator's first
    question when someone cannot sign in): whether sign-in asks for one, and which."""
    record = await services.mfa.get(user.user_id)
    passkeys = len(await services.passkeys.list(user.user_id))
    return {
        "enabled": record is not None or passkeys > 0,
        "authenticator_app": bool(record and record.totp_secret),
        "email_codes": bool(record and record.email_otp),
        "passkeys": passkeys,
        "recovery_codes_left": len(record.recovery_hashes) if record else 0,
    }


def read_password(from_stdin: bool) -> str:
    """A new password: one line of stdin, or typed twice at a prompt that does not echo."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    try:
        first = getpass.getpass("Password: ")
        repeated = getpass.getpass("Repeat:   ")
    except EOFError:  # no terminal and nothing on stdin (a script, a pipe from /dev/null)
        raise GatewayError(
            "no password given: type it at the prompt, or pipe it with --password-stdin"
        ) from None
    if repeated != first:
        raise GatewayError("the passwords do not match")
    return first


async def report_ended(services: Services, ended: accounts.Ended) -> None:
    """What ending a user's sessions ended, once the back-channel logouts have gone out (the
    command exits right after)."""
    await services.logout.drain()
    revoked = ended.grants
    print(
        f"ended {ended.sessions} session(s) and {revoked} token "
        f"famil{'y' if revoked == 1 else 'ies'}"
    )


# -- keys and identities --------------------------------------------------------------------------


async def list_keys(services: Services, args: argparse.Namespace) -> int:
    """`keys list`: each key of the set with its state."""
    for entry in services.keys.entries:
        when = entry.activated or entry.created
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(when))
        print(f"{entry.kid}  {entry.alg}  {entry.state:8}  since {stamp}")
    return 0


async def rotate_keys(services: Services, args: argparse.Namespace) -> int:
    """`keys rotate`: next → current → previous, a new next; then the set as `keys list`."""
    if not await services.keys.rotate():
        raise GatewayError(
            "another process changed the key set at the same moment; run the command again"
        )
    await services.audit.record("keys.rotated", actor="cli")
    print("rotated; replicas pick up the new key set within a minute")
    return await list_keys(services, args)


KEY_ACTIONS: dict[str, Action] = {"list": list_keys, "rotate": rotate_keys}


async def list_identities(services: Services, args: argparse.Namespace) -> int:
    """`identities list [--pool P] [--json]`: page by page, the count on stderr."""
    cursor, count = None, 0
    while True:
        page, cursor = await services.identities.page(args.pool, cursor, 100)
        for listed in page:
            count += 1
            print(json.dumps(identity_json(listed)) if args.json else identity_line(listed))
        if cursor is None:
            break
    if not args.json:
        print(f"{count} identit{'y' if count == 1 else 'ies'}", file=sys.stderr)
    return 0


def identity_line(identity: Identity) -> str:
    """An identity as `identities list` shows it: id, state, logins."""
    logins = ", ".join(f"{x.provider}:{x.subject}" for x in identity.logins)
    state = (
        "disabled"
        if identity.disabled
        else ("authenticated" if identity.authenticated else "guest")
    )
    return f"{identity.identity_id}  {state:13}  {logins or '-'}"


async def existing_identity(services: Services, identity_id: str) -> Identity:
    """The identity, or the one-line error the commands that work on one print."""
    identity = await services.identities.get(identity_id)
    if identity is None:
        raise GatewayError(f"no identity {identity_id}")
    return identity


async def show_identity(services: Services, args: argparse.Namespace) -> int:
    """`identities show IDENTITY_ID`, as JSON."""
    identity = await existing_identity(services, args.identity_id)
    print(json.dumps(identity_json(identity), indent=2))
    return 0


async def delete_identity(services: Services, args: argparse.Namespace) -> int:
    """`identities delete IDENTITY_ID`: the identity and its links."""
    await existing_identity(services, args.identity_id)
    await services.identities.delete(args.identity_id)
    await services.audit.record("identity.deleted", identity_id=args.identity_id, actor="cli")
    print(f"deleted {args.identity_id}")
    return 0


async def unlink_identity(services: Services, args: argparse.Namespace) -> int:
    """`identities unlink IDENTITY_ID PROVIDER SUBJECT`: one login removed."""
    identity = await existing_identity(services, args.identity_id)
    if not identity.has(args.provider, args.subject):
        raise GatewayError(f"{args.identity_id} has no login {args.provider}:{args.subject}")
    await services.identities.unlink(args.identity_id, args.provider, args.subject)
    await services.audit.record(
        "identity.unlinked",
        identity_id=args.identity_id,
        provider=args.provider,
        actor="cli",
    )
    print(f"unlinked {args.provider}:{args.subject} from {args.identity_id}")
    return 0


IDENTITY_ACTIONS: dict[str, Action] = {
    "list": list_identities,
    "show": show_identity,
    "delete": delete_identity,
    "unlink": unlink_identity,
}


def identity_json(identity: Identity) -> dict[str, object]:
    """An identity as `identities show` and `identities list --json` print it."""

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


# -- pools, audit, sessions, backups --------------------------------------------------------------


async def check_pools(settings: Settings, args: argparse.Namespace) -> int:
    """`pools check [POOL]`: what AWS needs for each pool, with the roles of every group
    (settings' and those the user-pool API keeps in the store)."""
    pools = [p for p in settings.identity_pools if args.pool in (None, p.id)]
    if not pools:
        raise GatewayError(
            f"no identity pool {args.pool}" if args.pool else "no identity_pools in the settings"
        )

    async def work(services: Services) -> int:
        groups = await services.users.group_directory.all()
        roles = [g.role_arn for g in groups if g.role_arn]
        problems = 0
        for pool in pools:
            report = pool_report(settings.issuer, pool, roles)
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

    return await with_services(settings, work)


async def tail_audit(services: Services, args: argparse.Namespace) -> int:
    """`audit tail [-n N] [-f] [--json]`: the last N events, then (-f) each new one."""
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
        print_audit(entry, args.json)
    while args.follow:
        for entry in await audit.read(after, 100, block=1.0):
            print_audit(entry, args.json)
            after = entry[0]
    return 0


def print_audit(entry: tuple[str, dict[str, str]], as_json: bool) -> None:
    """One audit event: a JSON line, or a line whose every value is `terminal_safe`."""
    entry_id, fields = entry
    if as_json:
        print(json.dumps({"id": entry_id, **fields}), flush=True)
        return
    rest = " ".join(
        f"{terminal_safe(k, 40)}={terminal_safe(v)}"
        for k, v in fields.items()
        if k not in ("ts", "event")
    )
    ts, event = (
        terminal_safe(fields.get("ts", "?"), 40),
        terminal_safe(fields.get("event", "?"), 60),
    )
    print(f"{ts}  {event:22} {rest}", flush=True)


async def revoke_sessions(services: Services, args: argparse.Namespace) -> int:
    """`sessions revoke --user USER`: every session and refresh token of a local user (all
    their identities) or of one identity, on every replica."""
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


async def export_backup(services: Services, args: argparse.Namespace) -> int:
    """`cognate export [-o FILE]`: users and identities as JSON Lines."""
    out = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
    counts: Counter[str] = Counter()
    show = Progress("exported")
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


async def restore_backup(services: Services, args: argparse.Namespace) -> int:
    """`cognate import FILE [--skip N]`: a backup restored (rerun to resume)."""
    show = Progress("imported")
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


COMMANDS: dict[str, Command] = {
    "users": by_action(USER_ACTIONS),
    "keys": by_action(KEY_ACTIONS),
    "identities": by_action(IDENTITY_ACTIONS),
    "pools": check_pools,  # `pools check`, its only action, needs the settings alone
    "audit": by_action({"tail": tail_audit}),
    "sessions": by_action({"revoke": revoke_sessions}),
    "export": on_services(export_backup),
    "import": on_services(restore_backup),
}
