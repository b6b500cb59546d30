"""The administrative commands of `cognate` (users, keys, identities, pools, sessions, audit,
export/import): each builds the services from the settings, works on the store, and releases
everything before returning an exit code. The parser and `serve` live in `gateway.cli`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from gateway.errors import GatewayError
from gateway.settings import Settings

if TYPE_CHECKING:  # services import the whole gateway; the CLI builds them only when it runs
    from gateway.identity.ids import Identity
    from gateway.services import Services
    from gateway.users.directory import User

Work = Callable[["Services"], Awaitable[int]]


async def with_services(settings: Settings, work: Work) -> int:
    """Build the services, run `work` on them, and release everything: its exit code."""
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


async def users(settings: Settings, args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
        users = services.users
        if args.action == "create":
            from gateway.users.directory import InvalidEmail, InvalidPassword

            password = read_password(args.password_stdin)
            try:
                user = await users.create(
                    args.email,
                    password,
                    name=args.name,
                    email_verified=args.verified,
                    username=args.username,
                )
            except InvalidEmail:
                raise GatewayError(f"{args.email!r} is not an e-mail address") from None
            except InvalidPassword as exc:
                raise GatewayError(f"the password {exc}") from None
            await services.audit.record("user.created", user_id=user.user_id, actor="cli")
            print(f"created {user.email} (user id {user.user_id})")
        elif args.action == "list":
            count = 0
            async for user in users.all():
                count += 1
                if args.json:
                    print(json.dumps(public(user)))
                else:
                    print(f"{user.user_id}  {user.status:8}  {user.email}")
            if not args.json:
                print(f"{count} user(s)", file=sys.stderr)
        elif args.action == "show":
            user = await users.resolve(args.user)
            print(json.dumps({**public(user), "mfa": await mfa_state(services, user)}, indent=2))
        elif args.action in ("enable", "disable"):
            user = await users.resolve(args.user)
            await users.set_status(
                user.user_id, "enabled" if args.action == "enable" else "disabled"
            )
            await services.audit.record(f"user.{args.action}d", user_id=user.user_id, actor="cli")
            if args.action == "disable":
                await end_sessions_of_user(services, user.user_id)
            print(f"{args.action}d {user.email}")
        elif args.action == "set-password":  # an administrator's reset
            user = await users.resolve(args.user)
            await users.set_password(user.user_id, read_password(args.password_stdin))
            await services.audit.record("user.password_reset", user_id=user.user_id, actor="cli")
            await end_sessions_of_user(services, user.user_id)
            print(f"new password set for {user.email}")
        elif args.action == "confirm":
            user = await users.mark_email_verified((await users.resolve(args.user)).user_id)
            await services.audit.record("user.email_verified", user_id=user.user_id, actor="cli")
            print(f"confirmed {user.email}")
        elif args.action == "reset-mfa":
            user = await users.resolve(args.user)
            await services.mfa.remove(user.user_id)
            await services.passkeys.remove_all(user.user_id)
            await services.audit.record("mfa.removed", user_id=user.user_id, actor="cli")
            print(f"two-step sign-in removed for {user.email}; they sign in with the password")
        elif args.action == "set-attribute":
            user = await users.set_attribute(
                (await users.resolve(args.user)).user_id, args.name, args.value
            )
            await services.audit.record(
                "user.attribute_set", user_id=user.user_id, attribute=args.name, actor="cli"
            )
            print(f"{user.email}: {args.name} = {args.value}")
        elif args.action == "groups":
            user = await users.resolve(args.user)
            if args.add or args.remove:
                user = await users.set_groups(user.user_id, args.add, args.remove)
                await services.audit.record(
                    "user.groups_changed",
                    user_id=user.user_id,
                    groups=",".join(user.groups),
                    actor="cli",
                )
                await end_sessions_of_user(services, user.user_id)  # new claims at next sign-in
            print(f"{user.email}: {', '.join(user.groups) or '(no groups)'}")
        elif args.action == "import":
            return await import_users(services, args.file)
        elif args.action == "export":
            out = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
            try:
                async for user in users.all():
                    out.write(json.dumps(portable(user)) + "\n")
            finally:
                if out is not sys.stdout:
                    out.close()
        elif args.action == "delete":
            user = await users.resolve(args.user)
            await users.delete(user.user_id)
            await services.audit.record("user.deleted", user_id=user.user_id, actor="cli")
            await end_sessions_of_user(services, user.user_id)
            print(f"deleted {user.email}")
        return 0

    return await with_services(settings, work)


async def import_users(services: Services, path: str) -> int:
    """`cognate users import FILE`: accounts from another system, one JSON object a line."""
    from collections import Counter

    from gateway.users.directory import InvalidAttribute

    counts: Counter[str] = Counter()
    show = Progress("users")
    with open(path) as lines:
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
    return {
        "user_id": user.user_id,
        "email": user.email,
        "email_verified": user.email_verified,
        "status": user.status,
        "name": user.name,
        "attributes": user.attributes,
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
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat:   ") != first:
        raise GatewayError("the passwords do not match")
    return first


async def keys(settings: Settings, args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
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

    return await with_services(settings, work)


async def identities(settings: Settings, args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
        store = services.identities
        if args.action == "list":
            cursor, count = None, 0
            while True:
                page, cursor = await store.page(args.pool, cursor, 100)
                for listed in page:
                    count += 1
                    if args.json:
                        print(json.dumps(identity_json(listed)))
                    else:
                        logins = ", ".join(f"{x.provider}:{x.subject}" for x in listed.logins)
                        state = (
                            "disabled"
                            if listed.disabled
                            else ("authenticated" if listed.authenticated else "guest")
                        )
                        print(f"{listed.identity_id}  {state:13}  {logins or '-'}")
                if cursor is None:
                    break
            if not args.json:
                print(f"{count} identit{'y' if count == 1 else 'ies'}", file=sys.stderr)
            return 0
        identity = await store.get(args.identity_id)
        if identity is None:
            raise GatewayError(f"no identity {args.identity_id}")
        if args.action == "show":
            print(json.dumps(identity_json(identity), indent=2))
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

    return await with_services(settings, work)


def identity_json(identity: Identity) -> dict[str, object]:
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


async def pools(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.identity.iam import pool_report

    pools = [p for p in settings.identity_pools if args.pool in (None, p.id)]
    if not pools:
        raise GatewayError(
            f"no identity pool {args.pool}" if args.pool else "no identity_pools in the settings"
        )
    problems = 0
    for pool in pools:
        report = pool_report(settings.issuer, pool, settings.user_pool.groups)
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


async def audit(settings: Settings, args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
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

    return await with_services(settings, work)


def print_audit(entry: tuple[str, dict[str, str]], as_json: bool) -> None:
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


# Characters that change how a terminal shows what follows: controls (ESC sequences, CR that
# overwrites the line) and the bidirectional overrides and isolates (U+202A-U+202E,
# U+2066-U+2069, the marks) that make "moc.elpmaxe@eve" read as an honest address.
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def terminal_safe(value: object, limit: int = 200) -> str:
    """An audit value as the terminal should show it: what a sign-in form or an IdP let an
    attacker choose (names, e-mails, reasons) with every control, bidi and other format
    character escaped (\\u202e), and cut visibly after `limit` characters."""
    text = str(value)
    cut = len(text) - limit
    if cut > 0:
        text = text[:limit]
    shown = "".join(
        f"\\u{ord(c):04x}"
        if c in _BIDI or unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
        else "\\\\"  # a typed backslash cannot pass for an escape
        if c == "\\"
        else c
        for c in text
    )
    return f"{shown}…[{cut} more]" if cut > 0 else shown


async def end_sessions_of_user(services: Services, user_id: str) -> None:
    """A disabled, deleted or reset local user loses every session and refresh token at once."""
    from gateway.logout import end_local_user

    ended, revoked = await end_local_user(services, user_id)
    await services.logout.drain()
    print(f"ended {ended} session(s) and {revoked} token famil{'y' if revoked == 1 else 'ies'}")


async def sessions(settings: Settings, args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
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

    return await with_services(settings, work)


class Progress:
    """A one-line progress report on stderr, refreshed at most ten times a second."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.last = 0.0

    def __call__(self, counts: Mapping[str, int], final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < 0.1:
            return
        self.last = now
        summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if k != "lines")
        print(f"\r{self.verb}: {summary}", end="\n" if final else "", file=sys.stderr, flush=True)


async def export(settings: Settings, args: argparse.Namespace) -> int:
    from collections import Counter

    from gateway.backup import export_records

    async def work(services: Services) -> int:
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

    return await with_services(settings, work)


async def restore(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.backup import import_records

    async def work(services: Services) -> int:
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

    return await with_services(settings, work)
