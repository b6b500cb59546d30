"""USER_SRP_AUTH: the password proved without being sent, through the login machine.

InitiateAuth(USER_SRP_AUTH, SRP_A) answers PASSWORD_VERIFIER with the user's SALT, a fresh
SRP_B, a SECRET_BLOCK and USER_ID_FOR_SRP (the user's id, Cognito's own username); the
Session keeps b, B, A and the block, single use. RespondToAuthChallenge(PASSWORD_VERIFIER) is
then `machine.first_factor` with the SRP check (`gateway.users.srp.verify`) as its proof: the
same per-account and per-IP limits, audit and second factor as a password.

An unknown user, or one without a verifier yet, gets a challenge of the same shape (a salt and
USER_ID_FOR_SRP derived from the name, so they are the same on every try) whose answer can
never verify: "Incorrect username or password.", as for a wrong password. An account has no
verifier until its password is seen once after Cognate derived verifiers (a password sign-in
on the hosted pages or with USER_PASSWORD_AUTH, a reset, a new password) — accounts imported
with hashes from elsewhere among them; README says so.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from typing import TYPE_CHECKING

from gateway import amr
from gateway.clients import Client
from gateway.cognito.auth import answer, discard, new_flow, refusal
from gateway.cognito.challenges import Challenge
from gateway.cognito.wire import (
    ATTEMPTS_EXCEEDED,
    INVALID_SESSION,
    Body,
    invalid_parameter,
    not_authorized,
)
from gateway.connectors import UpstreamIdentity, local_connector_id
from gateway.login import machine
from gateway.login.flows import Flow
from gateway.login.machine import Context
from gateway.login.steps import LoginError, TooManyAttempts
from gateway.store import Read, Write
from gateway.users import srp
from gateway.users.directory import User, normalize_email
from gateway.users.srp_verifiers import SrpVerifier

if TYPE_CHECKING:
    from gateway.cognito.api import UserPoolApi


class SrpSignIn:
    """The two halves of USER_SRP_AUTH."""

    def __init__(self, api: UserPoolApi) -> None:
        self.api = api
        # The verifier every name without a usable one is challenged and checked against: a
        # group element nobody knows the password of. Computed once, so an unknown user costs
        # the same exponentiations as a real one, in both round trips.
        self._decoy_verifier = srp.password_verifier(
            api.pool_name, "decoy", secrets.token_hex(32), secrets.randbits(128) | 1
        )

    async def start(self, client: Client, username: str, srp_a: str, ctx: Context) -> Body:
        """InitiateAuth(USER_SRP_AUTH): the PASSWORD_VERIFIER challenge."""
        if not srp_a:
            raise invalid_parameter("Missing required parameter SRP_A")
        if len(srp_a) > srp.HEX_LIMIT:
            raise invalid_parameter(f"SRP_A is longer than {srp.HEX_LIMIT} hexadecimal digits")
        try:
            big_a = srp.parse_hex(srp_a)
        except ValueError:
            raise invalid_parameter("SRP_A is not a hexadecimal number") from None
        if not 0 < big_a % srp.N:  # A ≡ 0 (mod N) would make the key known whatever the password
            raise invalid_parameter("SRP_A cannot be 0")
        api = self.api
        # As `user_by_name`, with the verifier read in the account's round trip.
        user, record, _ = await self._account(await api.s.users.owner(username) or username)
        if user is None or record is None or not record.is_for(api.pool_name, user.user_id):
            user_id, salt = self._decoy(username)
            verifier = self._decoy_verifier
        else:
            user_id, salt, verifier = user.user_id, record.salt, record.verifier
        b, big_b = srp.challenge(verifier)
        # Opaque to the client, and signed by its proof. It is also the challenge's key: like
        # Cognito's, the answer may come without a Session (pycognito sends none), and the
        # block it must return says which challenge it answers.
        block = secrets.token_bytes(96)
        session = base64.b64encode(block).decode()
        batch: list[Write] = []  # the flow and the challenge: one round trip
        flow = await new_flow(api, client, batch)
        await api.challenges.restore(
            session,
            Challenge(
                "PASSWORD_VERIFIER",
                flow.flow_id,
                client.client_id,
                user_id,
                srp_b=format(b, "x"),
                srp_big_b=format(big_b, "x"),
                srp_a=format(big_a, "x"),
                secret_block=session,
                login=username,
            ),
            batch,
        )
        await api.s.store.write_many(batch)
        return {
            "ChallengeName": "PASSWORD_VERIFIER",
            "Session": session,
            "ChallengeParameters": {
                "SALT": srp.pad_hex(salt),
                "SRP_B": format(big_b, "x"),
                "SECRET_BLOCK": session,
                "USER_ID_FOR_SRP": user_id,
                "USERNAME": user_id,
            },
        }

    async def verify(
        self, client: Client, asked: Challenge, responses: dict[str, str], ctx: Context
    ) -> Body:
        """RespondToAuthChallenge(PASSWORD_VERIFIER): the proof, as the machine's first factor.
        The sign-in's flow, the account and its verifier are read in one round trip."""
        api = self.api
        user, record, flow = await self._account(asked.username, asked.flow_id)
        if flow is None:
            raise not_authorized(INVALID_SESSION)

        # Looked up whoever asked: an unknown name costs what a known one does.
        named = await self._names(responses["USERNAME"], asked)
        usable = (
            named
            and user is not None
            and user.enabled
            and record is not None
            and record.is_for(api.pool_name, user.user_id)
        )

        async def prove() -> UpstreamIdentity | None:
            # The proof is checked whoever asked (a decoy's against the decoy verifier): an
            # unknown or disabled user costs the same work as a wrong password.
            block_matches = secrets.compare_digest(
                responses.get("PASSWORD_CLAIM_SECRET_BLOCK", ""), asked.secret_block or ""
            )
            try:
                big_a = srp.parse_hex(asked.srp_a or "")
            except ValueError:
                return None
            proved = srp.verify(
                api.pool_name,
                asked.username,
                record.verifier if usable and record is not None else self._decoy_verifier,
                int(asked.srp_b or "0", 16),
                int(asked.srp_big_b or "0", 16),
                big_a,
                base64.b64decode(asked.secret_block or ""),
                responses.get("TIMESTAMP", ""),
                responses.get("PASSWORD_CLAIM_SIGNATURE", ""),
                time.time(),
            )
            if not (proved and block_matches and usable) or user is None:
                return None
            return machine.local_upstream(api.s, user, amr.PASSWORD)

        local = local_connector_id(api.s.connectors) or "local"
        account = user.email if user is not None else (asked.login or asked.username)
        # The per-account limit counts the account's id (or, for a name that names none, the
        # name), as `machine.limited_account` would find it: the account was just read.
        limit_as = user.user_id if user is not None else normalize_email(account)
        try:
            step = await machine.first_factor(
                api.s, flow, local, True, account, prove, ctx, limit_as=limit_as
            )
        except TooManyAttempts:
            await discard(api, flow)
            raise not_authorized(ATTEMPTS_EXCEEDED) from None
        except LoginError:
            await discard(api, flow)
            raise await refusal(api, asked.login or asked.username) from None
        return await answer(api, client, step, ctx, user)

    async def _names(self, username: str, asked: Challenge) -> bool:
        """Whether the answer's USERNAME names the account the challenge was for: its id
        (USER_ID_FOR_SRP, what the SDKs send back), the name the sign-in started with, or
        another of the account's names (its e-mail for a username sign-in). An answer for
        someone else is a failed sign-in, as Cognito has it, even with a proof that holds."""
        if username in (asked.username, asked.login):
            return True
        return await self.api.s.users.owner(username) == asked.username

    async def _account(
        self, user_id: str, flow_id: str | None = None
    ) -> tuple[User | None, SrpVerifier | None, Flow | None]:
        """The account `user_id` names, its verifier (None when it has none yet, or when the
        record does not open: tampered with, or moved from another key) and, with `flow_id`,
        that login flow: all in one round trip."""
        s = self.api.s
        verifiers = s.users.srp
        account = s.users.reading(user_id)
        reads: list[Read] = [*account]
        if verifiers is not None:
            reads.append(verifiers.reading(user_id))
        if flow_id is not None:
            reads.append(s.flows.reading(flow_id))
        raws = await s.store.read_many(reads)
        user = s.users.read_back(raws[: len(account)])
        record = None
        if user is not None and verifiers is not None:
            try:
                record = verifiers.read_back(user_id, raws[len(account)])
            except ValueError:
                record = None
        flow = s.flows.read_back(flow_id, raws[-1]) if flow_id is not None else None
        return user, record, flow

    def _decoy(self, username: str) -> tuple[str, int]:
        """USER_ID_FOR_SRP and SALT for a name with no usable verifier: stable for the name (a
        second try looks the same as the first)."""
        seed = self.api.s.sealer.keyed_hash(username.lower(), purpose="srp-decoy")
        user_id = str(uuid.UUID(bytes=base64.urlsafe_b64decode(seed + "==")[:16], version=4))
        salt = int.from_bytes(base64.urlsafe_b64decode(seed + "==")[16:32] or b"\x01", "big")
        return user_id, salt
