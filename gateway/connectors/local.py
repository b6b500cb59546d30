"""The `local` connector: users from Cognate's own directory (e-mail + password).

The subject is the user id, never the e-mail, so changing an address keeps the identity.
"""

from __future__ import annotations

from gateway.connectors import UpstreamIdentity
from gateway.settings import LocalConnectorSettings
from gateway.users.directory import UserDirectory


class LocalConnector:
    """Password sign-in against the user directory."""

    type = "local"

    def __init__(self, config: LocalConnectorSettings, users: UserDirectory) -> None:
        self.id = config.id
        self.name = config.name
        self._users = users

    async def login(self, username: str, password: str) -> UpstreamIdentity | None:
        """The user's identity if the password is right and the account enabled."""
        user = await self._users.authenticate(username, password)
        if user is None:
            return None
        return UpstreamIdentity(
            connector_id=self.id, subject=user.user_id, claims=user.profile(), amr=["pwd"]
        )
