"""Backup and restore: the groups kept in the store (those the user-pool API created), users,
identities (with their linked logins) and, for reference, the registered clients, as JSON
Lines.

One record per line, `{"type": "group" | "user" | "identity" | "client" | "meta", ...}`;
groups come before the users that belong to them. Export reads the
store page by page; import is idempotent (each record is created only if absent; a record whose
e-mail or login already belongs to someone else is reported as a conflict and left alone), so an
interrupted import is resumed by running it again, or with `--skip N` to jump the lines already
done. Password hashes travel as they are (argon2id); client secrets never do: clients live in the
settings file, and the export carries their metadata only.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from gateway.identity.ids import Identity, Login
from gateway.users.directory import User
from gateway.users.groups import Group, GroupExists

if TYPE_CHECKING:
    from gateway.services import Services

FORMAT_VERSION = 1
Progress = Callable[[Counter[str]], None]


async def export_records(services: Services) -> AsyncIterator[dict[str, Any]]:
    """Every record to back up, in a stable order per type."""
    yield {
        "type": "meta",
        "format": FORMAT_VERSION,
        "issuer": services.settings.issuer,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for client in services.settings.clients:
        yield {"type": "client", **client.model_dump(exclude={"client_secret"})}
    for group in await services.users.group_directory.all():
        if not group.from_settings:  # settings' groups come back with the settings file
            yield {"type": "group", **asdict(group)}
    async for user in services.users.all():
        yield {"type": "user", **asdict(user)}
    cursor: str | None = None
    while True:
        page, cursor = await services.identities.page(None, cursor, 500)
        for identity in page:
            yield {"type": "identity", **asdict(identity)}
        if cursor is None:
            return


async def import_records(
    services: Services, lines: Iterable[str], skip: int = 0, progress: Progress | None = None
) -> Counter[str]:
    """Restore records; returns counts such as `user:created`, `identity:conflict`."""
    counts: Counter[str] = Counter()
    for number, line in enumerate(lines, start=1):
        if number <= skip or not line.strip():
            continue
        try:
            record = json.loads(line)
            kind = record.pop("type")
        except (ValueError, KeyError, AttributeError):
            counts["invalid"] += 1
            continue
        if kind == "group":
            outcome = await _restore_group(services, Group(**record))
        elif kind == "user":
            outcome = await services.users.restore(User(**record))
        elif kind == "identity":
            record["logins"] = [Login(**x) for x in record["logins"]]
            outcome = await services.identities.restore(Identity(**record))
        else:
            outcome = "skipped"  # meta and clients: informational
        counts[f"{kind}:{outcome}"] += 1
        counts["lines"] = number
        if progress is not None:
            progress(counts)
    return counts


async def _restore_group(services: Services, group: Group) -> str:
    """A stored group put back: 'created', or 'existing' when the store or the settings have
    one by that name (the one here stays)."""
    try:
        await services.users.group_directory.create(
            group.name,
            description=group.description,
            precedence=group.precedence,
            role_arn=group.role_arn,
        )
    except GroupExists:
        return "existing"
    return "created"
