"""Users as the admin operations show them: Cognito's `UserType` (ListUsers, AdminCreateUser)
and AdminGetUser's answer, and finding the account a `Username` names.

`Username` is the user id, as GetUser and InitiateAuth's USER_ID_FOR_SRP already say; an admin
call may also name the account by its e-mail or username, as Cognito accepts an alias. `sub` is
the user's identity ID (what tokens carry), made on first need as SignUp makes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.cognito.auth import user_by_name
from gateway.cognito.selfservice import user_attributes
from gateway.cognito.wire import Body, string
from gateway.connectors import local_connector_id
from gateway.errors import CognitoError
from gateway.users.search import user_status

if TYPE_CHECKING:
    from gateway.cognito.api import UserPoolApi
    from gateway.users.directory import User

NOT_FOUND = "User does not exist."


def user_not_found() -> CognitoError:
    return CognitoError("UserNotFoundException", NOT_FOUND)


async def named_user(api: UserPoolApi, body: Body) -> User:
    """The account the body's `Username` names; UserNotFoundException when none (admin calls
    are signed by the pool's operator: existence is theirs to know)."""
    user = await user_by_name(api, string(body, "Username", high=128))
    if user is None:
        raise user_not_found()
    return user


def _local(api: UserPoolApi) -> str:
    return local_connector_id(api.s.connectors) or "local"


async def subs(api: UserPoolApi, users: list[User]) -> dict[str, str]:
    """user id → `sub` (the identity ID), looked up in one round trip; made for those that
    have none yet."""
    local = _local(api)
    identities = api.s.identities
    owners = await api.s.store.read_many([identities.finding(local, u.user_id) for u in users])
    found: dict[str, str] = {}
    for user, owner in zip(users, owners, strict=True):
        found[user.user_id] = identities.found(owner) or await identities.resolve(
            local, user.user_id
        )
    return found


def user_type(user: User, sub: str, wanted: list[str] | None = None) -> Body:
    """Cognito's UserType; `wanted`: AttributesToGet (None: every attribute)."""
    attributes = user_attributes(user, sub)
    if wanted is not None:
        attributes = [a for a in attributes if a["Name"] in wanted]
    return {
        "Username": user.user_id,
        "Attributes": attributes,
        "UserCreateDate": user.created,
        "UserLastModifiedDate": user.updated,
        "Enabled": user.enabled,
        "UserStatus": user_status(user),
    }
