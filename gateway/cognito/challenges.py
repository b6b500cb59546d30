"""The `Session` of the user-pool API: what links a challenge's answer to its sign-in.

A Session value is opaque to the client (an unguessable token); the gateway keeps, under a
keyed hash of it, which challenge it asked and the login flow it belongs to (sealed: the flow
id is as good as the sign-in). It lives three minutes, as Cognito's does, and is single use:
answering takes it, and a further challenge comes with a new one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from gateway.crypto import Sealer, random_token
from gateway.store import Put, Store, Write, write

TTL = 180  # seconds: Cognito's authentication session lifetime
_PURPOSE = "cognito-session"


@dataclass(frozen=True)
class Challenge:
    """What a Session stands for."""

    name: str  # the ChallengeName asked
    flow_id: str  # the login flow (gateway.login.flows) it continues
    client_id: str
    username: str  # USERNAME in the challenge's parameters (the user's id)
    srp_b: str | None = None  # PASSWORD_VERIFIER: the server's secret exponent (hex)
    srp_big_b: str | None = None  # and the B it sent (hex)
    srp_a: str | None = None  # the client's A (hex): the answer does not repeat it
    secret_block: str | None = None  # the SECRET_BLOCK sent (base64), to come back unchanged
    login: str | None = None  # the USERNAME the sign-in started with (for the limits)
    verified: bool = False  # MFA_SETUP: VerifySoftwareToken accepted the new app's code


class Challenges:
    """Sessions in the store, sealed, three minutes, single use."""

    def __init__(self, store: Store, sealer: Sealer) -> None:
        self._store = store
        self._sealer = sealer

    async def issue(self, challenge: Challenge) -> str:
        """A new Session value for `challenge`."""
        token = random_token(48)
        await self.restore(token, challenge)
        return token

    async def restore(
        self, token: str, challenge: Challenge, batch: list[Write] | None = None
    ) -> None:
        """Keep `token` answering for `challenge` (again, after a wrong code). With `batch`,
        the write joins the caller's (`gateway.store.write`)."""
        key = self._key(token)
        blob = self._sealer.seal(
            json.dumps(asdict(challenge)).encode(), purpose=_PURPOSE, context=key.encode()
        )
        await write(self._store, batch, Put(key, blob, TTL))

    async def take(self, token: str) -> Challenge | None:
        """The challenge, consumed: None when unknown, expired or already answered."""
        if not 20 <= len(token) <= 4096:
            return None
        key = self._key(token)
        raw = await self._store.take(key)
        if raw is None:
            return None
        try:
            data = self._sealer.open(raw, purpose=_PURPOSE, context=key.encode())
            return Challenge(**json.loads(data))
        except (ValueError, TypeError):
            return None

    async def again(self, challenge: Challenge, **changes: object) -> str:
        """A new Session for the same sign-in (after a wrong code, or the next step)."""
        return await self.issue(replace(challenge, **changes))  # type: ignore[arg-type]

    def _key(self, token: str) -> str:
        return self._store.key(_PURPOSE, self._sealer.keyed_hash(token, purpose=_PURPOSE))
