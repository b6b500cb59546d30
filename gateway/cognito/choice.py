"""USER_AUTH: choice-based sign-in, where the user (or the app, with PREFERRED_CHALLENGE)
picks the first factor — a password (PASSWORD), its SRP proof (PASSWORD_SRP), a code by
e-mail (EMAIL_OTP, with `user_pool.email_sign_in`) or a passkey (WEB_AUTHN, with
`user_pool.passkeys`).

Each choice is a transition of the login machine the other flows use too: a password is
`machine.password` (as USER_PASSWORD_AUTH), its proof `srp_flow` (as USER_SRP_AUTH), a code
`machine.send_sign_in_code` / `machine.sign_in_code`, a passkey `machine.passkey`; what comes
next (a second factor, a new password, tokens) is `auth.answer`, as for every flow.

The choices offered are the pool's, never the user's (the same list for an account with
passkeys, one without, and no account at all: existence is not told), and PREFERRED_CHALLENGE
names one without a round trip; a preferred challenge the pool does not offer gets the list
(SELECT_CHALLENGE), as Cognito answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.clients import Client
from gateway.cognito import webauthn_ops
from gateway.cognito.auth import answer, challenge, new_flow, password_sign_in, user_by_name
from gateway.cognito.challenges import Challenge
from gateway.cognito.wire import (
    ATTEMPTS_EXCEEDED,
    INCORRECT,
    INVALID_SESSION,
    LIMIT,
    MFA_CODE_MISMATCH,
    Body,
    invalid_parameter,
    masked_email,
    not_authorized,
)
from gateway.errors import CognitoError
from gateway.login import machine, notify
from gateway.login.flows import Flow
from gateway.login.machine import Context
from gateway.login.progress import SecondFactor
from gateway.login.steps import (
    LoginError,
    NeedsSecondFactor,
    SignInExpired,
    TooManyAttempts,
    TooManyCodes,
    WrongCode,
)

if TYPE_CHECKING:
    from gateway.cognito.api import UserPoolApi


class ChoiceSignIn:
    """USER_AUTH for one user pool API."""

    def __init__(self, api: UserPoolApi) -> None:
        self.api = api

    def available(self) -> list[str]:
        """The first factors this pool offers, in Cognito's names."""
        pool = self.api.s.settings.user_pool
        offered = ["PASSWORD", "PASSWORD_SRP"]
        if pool.email_sign_in:
            offered.append("EMAIL_OTP")
        if self.api.s.passkeys.enabled:
            offered.append("WEB_AUTHN")
        return offered

    async def start(
        self, client: Client, username: str, params: dict[str, str], ctx: Context
    ) -> Body:
        """InitiateAuth with USER_AUTH: the preferred challenge when the pool offers it,
        else the list to choose from (SELECT_CHALLENGE, with AvailableChallenges)."""
        preferred = params.get("PREFERRED_CHALLENGE", "")
        if preferred in self.available():
            return await self._chosen(client, username, preferred, params, ctx)
        asked = Challenge("SELECT_CHALLENGE", "", client.client_id, username, login=username)
        return {
            "ChallengeName": "SELECT_CHALLENGE",
            "Session": await self.api.challenges.issue(asked),
            "ChallengeParameters": {},
            "AvailableChallenges": self.available(),
        }

    async def select(
        self, client: Client, asked: Challenge, responses: dict[str, str], ctx: Context
    ) -> Body:
        """RespondToAuthChallenge with SELECT_CHALLENGE: ANSWER names the factor, and the
        responses carry what it needs (PASSWORD, SRP_A, CREDENTIAL)."""
        chosen = responses.get("ANSWER", "")
        if chosen not in self.available():
            raise invalid_parameter(f"{chosen or 'ANSWER'} is not one of AvailableChallenges.")
        return await self._chosen(client, asked.login or asked.username, chosen, responses, ctx)

    async def _chosen(
        self, client: Client, username: str, chosen: str, params: dict[str, str], ctx: Context
    ) -> Body:
        api = self.api
        if chosen == "PASSWORD":
            return await password_sign_in(api, client, username, params.get("PASSWORD", ""), ctx)
        if chosen == "PASSWORD_SRP":
            return await api.srp.start(client, username, params.get("SRP_A", ""), ctx)
        flow = await new_flow(api, client)
        if chosen == "WEB_AUTHN":  # the account's passkeys (a decoy's for an unknown name)
            user = await user_by_name(api, username)
            options = await webauthn_ops.request_options(
                api, flow, user.user_id if user is not None else None, username=username
            )
            return await challenge(
                api, "WEB_AUTHN", flow, client, username,
                {"CREDENTIAL_REQUEST_OPTIONS": options},
            )  # fmt: skip
        try:  # EMAIL_OTP
            flow, sent = await machine.send_sign_in_code(api.s, flow, username, ctx)
        except TooManyCodes:
            raise CognitoError("LimitExceededException", LIMIT) from None
        if sent is not None:
            notify.code(api.s, None, sent)
        # The destination shown depends only on what was typed: the same for every account.
        destination = masked_email(username) if "@" in username else "***"
        return await challenge(
            api, "EMAIL_OTP", flow, client, username,
            {"CODE_DELIVERY_DELIVERY_MEDIUM": "EMAIL", "CODE_DELIVERY_DESTINATION": destination},
        )  # fmt: skip

    async def email_code(
        self,
        client: Client,
        token: str,
        asked: Challenge,
        flow: Flow,
        responses: dict[str, str],
        ctx: Context,
    ) -> Body:
        """The EMAIL_OTP answer of a passwordless sign-in (a wrong code keeps the Session
        for another try; the machine's login limits count them)."""
        code = responses.get("EMAIL_OTP_CODE", "")[:32]
        try:
            step = await machine.sign_in_code(self.api.s, flow, code, ctx)
        except WrongCode:
            await self.api.challenges.restore(token, asked)
            raise CognitoError("CodeMismatchException", MFA_CODE_MISMATCH) from None
        except TooManyAttempts:
            raise not_authorized(ATTEMPTS_EXCEEDED) from None
        except LoginError:
            raise not_authorized(INVALID_SESSION) from None
        return await answer(self.api, client, step, ctx)

    async def passkey(
        self, client: Client, flow: Flow, responses: dict[str, str], ctx: Context
    ) -> Body:
        """The WEB_AUTHN answer (CREDENTIAL, the authenticator's assertion as JSON): the
        first factor of a USER_AUTH sign-in, or the second factor of an account whose only
        factor is a passkey (`passkey_challenge`)."""
        credential = responses.get("CREDENTIAL", "")
        try:
            if isinstance(flow.progress, SecondFactor):
                step = await machine.second_factor(self.api.s, flow)
                if not isinstance(step, NeedsSecondFactor):
                    raise SignInExpired
                done = await machine.submit_passkey(self.api.s, step, credential, ctx)
            else:
                done = await webauthn_ops.answer(self.api, flow, credential, ctx)
        except TooManyAttempts:
            raise not_authorized(ATTEMPTS_EXCEEDED) from None
        except LoginError:
            raise not_authorized(INCORRECT) from None
        return await answer(self.api, client, done, ctx)

    async def passkey_challenge(self, client: Client, step: NeedsSecondFactor) -> Body:
        """WEB_AUTHN as the second factor, for an account whose only factor is a passkey
        (Cognito has no such challenge after a password; Amplify answers WEB_AUTHN whenever
        it is asked). The app's origins may answer, as for a passwordless sign-in."""
        options = await self.api.s.passkeys.authentication_options(
            "mfa", step.flow.flow_id, step.subject,
            webauthn_ops.ceremony_origins(self.api, client.client_id),
        )  # fmt: skip
        return await challenge(
            self.api, "WEB_AUTHN", step.flow, client, step.subject,
            {"CREDENTIAL_REQUEST_OPTIONS": options},
        )  # fmt: skip
