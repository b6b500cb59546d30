"""What every Cognito Identity operation shares, signed or not: the AWS JSON body's types and
field checks, and the steps from verified logins to an identity (`IdentitySteps`).

The operations themselves live in `cognito` (the transport and the unsigned operations) and
`cognito_admin` (the SigV4-signed ones); both import this module, and it imports neither.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gateway.credentials.web_identity import provider_name
from gateway.errors import CognitoError, invalid_parameter, not_authorized
from gateway.identity.ids import LoginTaken, TooManyLogins
from gateway.identity.providers import LoginRejected, VerifiedLogin

if TYPE_CHECKING:
    from gateway.identity.ids import Identity
    from gateway.services import Services
    from gateway.settings import IdentityPoolSettings

_ID = re.compile(r"^[\w-]+:[0-9a-f-]+$")
Body = dict[str, Any]
Operation = Callable[[Body], Awaitable[Body]]


def identity_id_in(body: Body, field: str = "IdentityId") -> str:
    """The identity (or identity pool) ID in `field`, refused in AWS's words when malformed."""
    value = body.get(field)
    if not isinstance(value, str) or not 1 <= len(value) <= 55 or not _ID.match(value):
        raise invalid_parameter(
            f"1 validation error detected: Value at '{field[0].lower()}"
            f"{field[1:]}' failed to satisfy constraint: Member must satisfy "
            "regular expression pattern: [\\w-]+:[0-9a-f-]+"
        )
    return value


def logins_in(body: Body, field: str = "Logins") -> dict[str, str]:
    """The provider name → token map in `field` (empty when absent), within AWS's limits."""
    logins = body.get(field) or {}
    if (
        not isinstance(logins, dict)
        or len(logins) > 10
        or not all(
            isinstance(k, str)
            and isinstance(v, str)
            and 1 <= len(k) <= 128
            and 1 <= len(v) <= 50000
            for k, v in logins.items()
        )
    ):
        raise invalid_parameter(f"{field} must map up to 10 provider names to tokens.")
    return logins


class IdentitySteps:
    """The steps both kinds of operation take with an identity pool's logins."""

    def __init__(self, services: Services) -> None:
        self.s = services

    async def verify_logins(
        self, pool: IdentityPoolSettings, logins: dict[str, str]
    ) -> list[VerifiedLogin]:
        """Each login token checked by its provider; NotAuthorizedException at the first bad one."""
        verified = []
        for name, token in logins.items():
            try:
                verified.append(await self.s.verifier.verify(pool, name, token))
            except LoginRejected as exc:
                raise not_authorized(str(exc)) from None
        return verified

    async def identity_for(
        self, pool: IdentityPoolSettings, verified: list[VerifiedLogin], start: str | None = None
    ) -> str:
        """The identity these logins belong to (creating or linking as needed)."""
        ids = self.s.identities
        owners: set[str] = {start} if start else set()
        for login in verified:
            if login.identity_id:
                owners.add(login.identity_id)
            elif await ids.find(login.provider, login.subject):
                # resolve, not just find: a concurrent first login may have claimed the link
                # but not yet written the record, and resolve completes it.
                owners.add(await ids.resolve(login.provider, login.subject, pool.id))
        if start and len(owners) > 1:
            guest = await ids.get(start)
            if guest is not None and not guest.authenticated:
                owners.discard(start)  # a guest signing in joins the identity it already has
        if len(owners) > 1:
            raise CognitoError(
                "ResourceConflictException", "The logins belong to different identities."
            )
        try:
            if owners:
                identity_id = owners.pop()
                if await ids.get(identity_id) is None:
                    raise not_authorized("Invalid login token. The identity no longer exists.")
            else:
                first = verified[0]
                identity_id = await ids.resolve(first.provider, first.subject, pool.id)
            for login in verified:
                if login.identity_id is None and not await ids.find(login.provider, login.subject):
                    await ids.link(identity_id, login.provider, login.subject)
                    await self.s.audit.record(
                        "identity.linked",
                        identity_id=identity_id,
                        provider=login.provider,
                        pool=pool.id,
                    )
            identity = await ids.add_pool(identity_id, pool.id)
        except LoginTaken:
            raise CognitoError(
                "ResourceConflictException", "A login is already linked to another identity."
            ) from None
        except TooManyLogins:
            raise CognitoError(
                "LimitExceededException", "An identity can have at most 20 logins."
            ) from None
        if identity.disabled:
            raise not_authorized(f"Access to Identity '{identity_id}' is forbidden.")
        return identity_id

    def login_name(self, identity: Identity, provider: str) -> str:
        """The `Logins` key an SDK uses for one of the identity's stored logins. A sign-in at
        this gateway's own pages is stored under its connector (`local`, `corp`…), but a pool
        knows it only through the gateway's ID tokens: by the `cognate` provider's name (the
        issuer host, as in the Logins map). Every other login keeps its provider name."""
        if provider not in self.s.connectors:
            return provider
        for pool in self.s.settings.identity_pools:
            if pool.id in identity.pools:
                for name, config in self.s.verifier.providers(pool).items():
                    if config.type == "cognate":
                        return name
        return provider_name(self.s.settings.issuer)
