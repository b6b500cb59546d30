"""The groups operations: CreateGroup, UpdateGroup, DeleteGroup, GetGroup, ListGroups,
AdminAddUserToGroup, AdminRemoveUserFromGroup, AdminListGroupsForUser.

Groups are `gateway.users.groups`' (settings win: a group named in `user_pool.groups` cannot be
changed or deleted here, and answers InvalidParameterException saying so); memberships go
through `gateway.users.accounts`, as `cognate users groups` does, so the member's sessions end
and the next tokens carry the new `cognito:groups` and roles.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gateway.cognito import paging
from gateway.cognito.auth import Call, this_pool
from gateway.cognito.users_view import named_user
from gateway.cognito.wire import Body, invalid_parameter, string, validation
from gateway.errors import CognitoError
from gateway.users import accounts
from gateway.users.groups import Group, GroupExists, GroupFromSettings, UnknownGroup

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.cognito.api import UserPoolApi

ACTOR = "cognito-idp"
GROUP_NAME = re.compile(r"[^\s\x00-\x1f]+")  # letters, marks, symbols, digits, punctuation
ROLE_ARN = re.compile(r"arn:[\w+=/,.@-]+:iam::\d{12}:role/[\w+=,.@/-]+")


def group_type(api: UserPoolApi, group: Group) -> Body:
    """Cognito's GroupType."""
    view: Body = {"GroupName": group.name, "UserPoolId": api.pool_id}
    if group.description:
        view["Description"] = group.description
    if group.role_arn:
        view["RoleArn"] = group.role_arn
    if group.precedence is not None:
        view["Precedence"] = group.precedence
    if group.created:
        view |= {"CreationDate": group.created, "LastModifiedDate": group.updated}
    return view


def _not_found() -> CognitoError:
    return CognitoError("ResourceNotFoundException", "Group not found.")


def _settings_group(exc: GroupFromSettings) -> CognitoError:
    return invalid_parameter(f"{exc}; the API cannot change a group the settings define.")


async def named_group(api: UserPoolApi, body: Body) -> Group:
    this_pool(api, body)
    try:
        return await api.s.users.group_directory.get(string(body, "GroupName", high=128))
    except UnknownGroup:
        raise _not_found() from None


def _fields(body: Body) -> dict[str, object]:
    """Description, RoleArn, Precedence as the body gives them (the ones present)."""
    found: dict[str, object] = {}
    if "Description" in body:
        found["description"] = string(body, "Description", required=False, low=0) or None
    if "RoleArn" in body:
        arn = string(body, "RoleArn", low=20)
        if not ROLE_ARN.fullmatch(arn):
            raise invalid_parameter(f"{arn} is not a valid IAM role ARN.")
        found["role_arn"] = arn
    if "Precedence" in body:
        precedence = body["Precedence"]
        if not isinstance(precedence, int) or isinstance(precedence, bool):
            raise CognitoError("SerializationException", "Precedence must be an integer.")
        if precedence < 0:
            raise validation("Precedence", "Member must have value greater than or equal to 0")
        if precedence > 2**31 - 1:  # Cognito's range: an integer a token can sort by
            raise validation(
                "Precedence", "Member must have value less than or equal to 2147483647"
            )
        found["precedence"] = precedence
    return found


async def create_group(api: UserPoolApi, call: Call) -> Body:
    body = call.body
    this_pool(api, body)
    name = string(body, "GroupName", high=128)
    if not GROUP_NAME.fullmatch(name):
        raise validation(
            "GroupName",
            "Member must satisfy regular expression pattern: [\\p{L}\\p{M}\\p{S}\\p{N}\\p{P}]+",
        )
    try:
        group = await api.s.users.group_directory.create(name, **_fields(body))
    except GroupExists:
        raise CognitoError(
            "GroupExistsException", "A group with the name already exists."
        ) from None
    await api.s.audit.record("group.created", group=name, actor=ACTOR)
    return {"Group": group_type(api, group)}


async def update_group(api: UserPoolApi, call: Call) -> Body:
    group = await named_group(api, call.body)
    try:
        updated = await accounts.update_group(api.s, group.name, ACTOR, **_fields(call.body))
    except GroupFromSettings as exc:
        raise _settings_group(exc) from None
    except UnknownGroup:
        raise _not_found() from None
    return {"Group": group_type(api, updated)}


async def delete_group(api: UserPoolApi, call: Call) -> Body:
    group = await named_group(api, call.body)
    if group.from_settings:
        raise _settings_group(GroupFromSettings(group.name))
    try:
        await accounts.delete_group(api.s, group, ACTOR)
    except UnknownGroup:
        raise _not_found() from None
    return {}


async def get_group(api: UserPoolApi, call: Call) -> Body:
    return {"Group": group_type(api, await named_group(api, call.body))}


def limit_of(body: Body, field: str = "Limit", high: int = 60) -> int:
    value = body.get(field)
    if value is None or value == 0:
        return high
    if not isinstance(value, int) or isinstance(value, bool):
        raise CognitoError("SerializationException", f"{field} must be an integer.")
    if not 0 <= value <= high:
        raise validation(field, f"Member must have value less than or equal to {high}")
    return value


def page_of(
    api: UserPoolApi, operation: str, query: str, names: list[str], body: Body, limit: int
) -> tuple[list[str], Body]:
    """One page of a sorted list of names, and its NextToken (a sealed last name)."""
    token = string(body, "NextToken", required=False, high=2048)
    after = paging.resume(api.s.sealer, operation, query, token) if token else None
    rest = [n for n in names if after is None or n > after]
    page = rest[:limit]
    more: Body = {}
    if len(rest) > limit:
        more = {"NextToken": paging.issue(api.s.sealer, operation, query, page[-1])}
    return page, more


async def list_groups(api: UserPoolApi, call: Call) -> Body:
    this_pool(api, call.body)
    groups = {g.name: g for g in await api.s.users.group_directory.all()}
    names, more = page_of(api, "ListGroups", "", sorted(groups), call.body, limit_of(call.body))
    return {"Groups": [group_type(api, groups[n]) for n in names], **more}


async def admin_list_groups_for_user(api: UserPoolApi, call: Call) -> Body:
    this_pool(api, call.body)
    user = await named_user(api, call.body)  # reads the groups too
    known = api.s.users.group_directory.known()
    mine = sorted(g for g in user.groups if g in known)
    names, more = page_of(
        api, "AdminListGroupsForUser", user.user_id, mine, call.body, limit_of(call.body)
    )
    return {"Groups": [group_type(api, known[n]) for n in names], **more}


async def _membership(api: UserPoolApi, call: Call, add: bool) -> Body:
    group = await named_group(api, call.body)
    user = await named_user(api, call.body)
    change = ([group.name], []) if add else ([], [group.name])
    if (group.name in user.groups) != add:
        await accounts.change_groups(api.s, user, *change, ACTOR)
    return {}


async def admin_add_user_to_group(api: UserPoolApi, call: Call) -> Body:
    return await _membership(api, call, add=True)


async def admin_remove_user_from_group(api: UserPoolApi, call: Call) -> Body:
    return await _membership(api, call, add=False)


OPERATIONS: dict[str, Callable[[UserPoolApi, Call], Awaitable[Body]]] = {
    "CreateGroup": create_group,
    "UpdateGroup": update_group,
    "DeleteGroup": delete_group,
    "GetGroup": get_group,
    "ListGroups": list_groups,
    "AdminListGroupsForUser": admin_list_groups_for_user,
    "AdminAddUserToGroup": admin_add_user_to_group,
    "AdminRemoveUserFromGroup": admin_remove_user_from_group,
}
