"""USER_SRP_AUTH over the login machine (filled in with gateway.users.srp)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.clients import Client
from gateway.cognito.challenges import Challenge
from gateway.cognito.wire import Body, invalid_parameter
from gateway.login.flows import Flow
from gateway.login.machine import Context

if TYPE_CHECKING:
    from gateway.cognito.api import UserPoolApi


class SrpSignIn:
    def __init__(self, api: UserPoolApi) -> None:
        self.api = api

    async def start(self, client: Client, username: str, srp_a: str, ctx: Context) -> Body:
        raise invalid_parameter("USER_SRP_AUTH flow not enabled for this client")

    async def verify(
        self,
        client: Client,
        asked: Challenge,
        flow: Flow,
        responses: dict[str, str],
        ctx: Context,
    ) -> Body:
        raise invalid_parameter("USER_SRP_AUTH flow not enabled for this client")
