"""ListUsers (Cognito's `Filter` grammar), ListUsersInGroup and AdminListUserAuthEvents.

A filter is `attribute = "value"` (exact) or `attribute ^= "prefix"`, on the attributes Cognito
allows; a quote inside the value is escaped with a backslash. It reads one page of the
directory's search index (gateway.users.search: a sorted set per attribute, ZRANGEBYLEX), never
every record: a page costs three round trips (the index, the records, their identity IDs)
however many users there are. Records are re-checked against the filter as they are read, so
an index entry a crash left behind never shows a user who does not match. `sub` (the identity
ID) is found through the identity itself, so it takes `=` only.

PaginationTokens are sealed positions in the index (gateway.cognito.paging): opaque, bound to
the filter, and stable while users are added or removed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gateway.cognito import paging
from gateway.cognito.auth import Call, this_pool
from gateway.cognito.group_ops import limit_of, named_group
from gateway.cognito.users_view import named_user, subs, user_type
from gateway.cognito.wire import Body, invalid_parameter, string
from gateway.connectors import local_connector_id
from gateway.errors import CognitoError
from gateway.users.search import SEARCHABLE, matches

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.cognito.api import UserPoolApi
    from gateway.users.directory import User

FILTER = re.compile(r'\s*([A-Za-z_:]+)\s*(\^=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
PARSE_ERROR = "Error while parsing filter."
ROUNDS = 4  # index reads a page may take when records no longer match their entries


def parse_filter(text: str) -> tuple[str, str, bool] | None:
    """(attribute, value, prefix) of a Cognito filter; None for the empty filter."""
    if not text.strip():
        return None
    found = FILTER.fullmatch(text)
    if found is None:
        raise invalid_parameter(PARSE_ERROR)
    attribute, operator, value = found.groups()
    if attribute not in (*SEARCHABLE, "sub"):
        raise invalid_parameter(f"Invalid search attribute: {attribute}")
    value = re.sub(r"\\(.)", r"\1", value)
    if attribute == "cognito:user_status":  # case-insensitive, as Cognito compares it
        value = value.upper()
    if attribute == "sub" and operator == "^=":
        raise invalid_parameter("Filter type ^= is not supported for the attribute sub here.")
    return attribute, value, operator == "^="


async def _by_sub(api: UserPoolApi, sub: str) -> list[User]:
    identity = await api.s.identities.get(sub)
    local = local_connector_id(api.s.connectors)
    subject = (
        next((x.subject for x in identity.logins if x.provider == local), None)
        if identity
        else None
    )
    user = await api.s.users.get(subject) if subject else None
    return [user] if user is not None else []


async def list_users(api: UserPoolApi, call: Call) -> Body:
    body = call.body
    this_pool(api, body)
    text = string(body, "Filter", required=False, low=0, high=256)
    query = parse_filter(text)
    limit = limit_of(body)
    wanted = body.get("AttributesToGet")
    if wanted is not None and (
        not isinstance(wanted, list) or not all(isinstance(n, str) for n in wanted)
    ):
        raise CognitoError("SerializationException", "AttributesToGet must be a list of names.")
    token = string(body, "PaginationToken", required=False, high=4096)
    after = paging.resume(api.s.sealer, "ListUsers", text, token) if token else None
    if query is not None and query[0] == "sub":
        found = [] if after else await _by_sub(api, query[1])
        more = None
    else:
        if not await api.s.users.index_ready():  # accounts from before the index: once
            api.s.background.spawn(api.s.users.build_index_once())
        attribute, value, prefix = query or ("username", "", True)
        found, more = await _page(api, attribute, value, prefix, after, limit)
    identity_ids = await subs(api, found) if found else {}
    answer: Body = {"Users": [user_type(u, identity_ids[u.user_id], wanted) for u in found]}
    if more is not None:
        answer["PaginationToken"] = paging.issue(api.s.sealer, "ListUsers", text, more)
    return answer


async def _page(
    api: UserPoolApi, attribute: str, value: str, prefix: bool, after: str | None, limit: int
) -> tuple[list[User], str | None]:
    """Up to `limit` matching users after the index member `after`, and the member the next
    page starts after (None: no more)."""
    search = api.s.users.search
    found: list[User] = []
    for _ in range(ROUNDS):
        want = limit - len(found)
        entries = await search.page(attribute, value, prefix, after, want + 1)
        records = await api.s.users.get_many([uid for _, uid in entries[:want]])
        for (member, _), user in zip(entries, records, strict=False):
            after = member
            if user is not None and matches(user, attribute, value, prefix):
                found.append(user)
        if len(entries) <= want:
            return found, None  # the index has no more
        if len(found) >= limit:
            return found, after
    return found, after  # stale entries kept this page short: the next one goes on


async def list_users_in_group(api: UserPoolApi, call: Call) -> Body:
    body = call.body
    group = await named_group(api, body)
    limit = limit_of(body)
    token = string(body, "NextToken", required=False, high=4096)
    after = paging.resume(api.s.sealer, "ListUsersInGroup", group.name, token) if token else None
    ids = await api.s.users.search.group_page(group.name, after, limit + 1)
    records = await api.s.users.get_many(ids[:limit])
    found = [u for u in records if u is not None and group.name in u.groups]
    identity_ids = await subs(api, found) if found else {}
    answer: Body = {"Users": [user_type(u, identity_ids[u.user_id]) for u in found]}
    if len(ids) > limit:
        answer["NextToken"] = paging.issue(
            api.s.sealer, "ListUsersInGroup", group.name, ids[limit - 1]
        )
    return answer


# Audit events → Cognito's (EventType, EventResponse).
EVENTS = {
    "sign_in.success": ("SignIn", "Pass"),
    "sign_in.failure": ("SignIn", "Fail"),
    "sign_in.limited": ("SignIn", "Fail"),
    "user.signed_up": ("SignUp", "Pass"),
    "user.password_reset": ("ForgotPassword", "Pass"),
    "user.password_changed": ("PasswordChange", "Pass"),
}
SCANNED = 200_000  # audit entries one call reads at most (the stream keeps `audit.retention`)


async def admin_list_user_auth_events(api: UserPoolApi, call: Call) -> Body:
    """The user's sign-ins, sign-up, resets and password changes from the audit stream,
    newest first (Cognito keeps them under advanced security; here the audit trail does)."""
    body = call.body
    this_pool(api, body)
    user = await named_user(api, body)
    limit = limit_of(body, "MaxResults")
    token = string(body, "NextToken", required=False, high=4096)
    before = (
        paging.resume(api.s.sealer, "AdminListUserAuthEvents", user.user_id, token)
        if token
        else None
    )
    identity_id = (await subs(api, [user]))[user.user_id]
    names = {user.email, user.user_id, identity_id, *([user.username] if user.username else [])}
    events: list[tuple[str, dict[str, str]]] = []
    cursor, read = "0", 0
    while read < SCANNED:
        batch = await api.s.audit.read(cursor, 1000)
        if not batch:
            break
        read += len(batch)
        cursor = batch[-1][0]
        for entry_id, fields in batch:
            if before is not None and _entry_key(entry_id) >= _entry_key(before):
                continue
            if "actor" in fields:  # an administrator's change, not the user's own doing
                continue
            if fields.get("event") in EVENTS and names & {
                fields.get("user_id"),
                fields.get("account"),
                fields.get("identity_id"),
            }:
                events.append((entry_id, fields))
    events.reverse()
    page = events[:limit]
    answer: Body = {"AuthEvents": [_auth_event(entry_id, fields) for entry_id, fields in page]}
    if len(events) > limit:
        answer["NextToken"] = paging.issue(
            api.s.sealer, "AdminListUserAuthEvents", user.user_id, page[-1][0]
        )
    return answer


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _auth_event(entry_id: str, fields: dict[str, str]) -> Body:
    kind, response = EVENTS[fields["event"]]
    event: Body = {
        "EventId": entry_id,
        "EventType": kind,
        "CreationDate": _entry_key(entry_id)[0] / 1000,
        "EventResponse": response,
    }
    if fields.get("ip"):
        event["EventContextData"] = {"IpAddress": fields["ip"]}
    return event


OPERATIONS: dict[str, Callable[[UserPoolApi, Call], Awaitable[Body]]] = {
    "ListUsers": list_users,
    "ListUsersInGroup": list_users_in_group,
    "AdminListUserAuthEvents": admin_list_user_auth_events,
}
