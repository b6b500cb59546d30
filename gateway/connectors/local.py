"""The `local` connector: users from Cognate's own directory (e-mail or username + password).

The subject is the user id, never the e-mail, so changing an address keeps the identity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.connectors import UpstreamIdentity
from gateway.settings import LocalConnectorSettings
from gateway.users.directory import InvalidPassword, User, UserDirectory, UserExists

if TYPE_CHECKING:
    from gateway.users.hooks import Hooks


class LocalConnector:
    """Password sign-in against the user directory."""

    type = "local"

    def __init__(
        self, config: LocalConnectorSettings, users: UserDirectory, hooks: Hooks | None = None
    ) -> None:
        self.id = config.id
        self.name = config.name
        self._users = users
        self._hooks = hooks

    async def login(self, username: str, password: str) -> UpstreamIdentity | None:
        """The user's identity if the password is right and the account enabled (or, with
        the user_migration hook, once the legacy system vouches for an unknown e-mail)."""
        user = await self._users.authenticate(username, password)
        if user is None:
            user = await self._migrate(username, password)
        if user is None:
            return None
        return UpstreamIdentity(
            connector_id=self.id,
            subject=user.user_id,
            claims=self._users.claims(user),
            amr=["pwd"],
            new_password_due=user.must_change_password,
        )

    async def _migrate(self, email: str, password: str) -> User | None:
        """Lazy migration: an unknown e-mail is looked up in the legacy system by the hook,
        and created here with the password it just accepted."""
        from gateway.users.hooks import HookFailed

        hooks = self._hooks
        if hooks is None or not hooks.enabled("user_migration") or "@" not in email or not password:
            return None
        if await self._users.by_email(email) is not None:
            return None  # a known user with a wrong password: no second opinion
        try:
            answer = await hooks.call("user_migration", {"email": email, "password": password})
        except HookFailed:
            return None
        if answer.get("found") is not True:
            return None
        try:
            return await self._users.create(
                email,
                password,
                name=str(answer["name"])[:128] if answer.get("name") else None,
                email_verified=answer.get("email_verified") is True,
                enforce_policy=False,  # the legacy password is the one the user has
            )
        except (UserExists, InvalidPassword):
            return None
