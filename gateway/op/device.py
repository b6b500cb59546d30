"""The device authorization grant (RFC 8628): sign-in for terminals, TVs and CLIs.

A device asks `POST /oauth2/device_authorization` for a *device code* (which it keeps and
polls the token endpoint with) and a *user code* (which the person types at `/device` on a
phone or laptop, where they sign in as usual and approve or deny). What lives here: the
device records and their state machine, the authorization endpoint, and the token endpoint's
`urn:ietf:params:oauth:grant-type:device_code` grant. The `/device` pages are in
`gateway.ui.device`.

State in the store (both keys expire):

- `device:{keyed hash of the device code}` → the sealed `DeviceRecord`. The device code itself
  is never stored, so a Redis dump cannot poll for anyone's tokens.
- `device-user:{keyed hash of the user code}` → the device key's hash: how `/device` finds the
  record. It is *taken* (GETDEL) by the one approval or denial, so a user code works once.

Every transition is a compare-and-swap of the whole sealed record (`Store.update`):
pending → approved | denied, approved → issued, and each poll's `last_poll`. So however many
browsers approve and however many pollers race, tokens are issued at most once: only the
poller whose swap approved → issued lands mints them.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from gateway.clients import Client
from gateway.crypto import Sealer, random_token
from gateway.errors import InvalidGrant, InvalidScope, OAuthError, StoreContended
from gateway.errors import UnauthorizedClient as Unauthorized
from gateway.forwarded import client_address
from gateway.grants import Authorization
from gateway.op.common import Handler, json_no_store, oauth_json, read_form
from gateway.op.minting import GrantHandler, TokenMinting, required_field
from gateway.ratelimit import Limit, RateLimited
from gateway.settings import DEVICE_CODE_GRANT, DeviceSettings
from gateway.store import Store, record_json

if TYPE_CHECKING:
    from gateway.services import Services

# RFC 8628 §6.1: no vowels (no words), no look-alikes (0/O, 1/I/L are absent or unambiguous).
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5: the interval grows by 5 s on each slow_down
_DEVICE = "device"
_USER = "device-user"
_CODE_ATTEMPTS = 4  # fresh user codes to try when one is taken (20^8: never, in practice)
_RETRIES = 4  # compare-and-swap attempts before a concurrent poller is told to slow down
# A decision only ever loses its swap to a poll (which changes last_poll and nothing else), and
# every lost swap is someone else's progress: so retry long enough that no burst of polls can
# make an approval fail.
_DECIDE_RETRIES = 64

PENDING, APPROVED, DENIED, ISSUED = "pending", "approved", "denied", "issued"


class AuthorizationPending(OAuthError):
    error = "authorization_pending"


class SlowDown(OAuthError):
    error = "slow_down"


class ExpiredToken(OAuthError):
    error = "expired_token"


class DeviceAccessDenied(OAuthError):
    """RFC 8628 §3.5: the user said no. A token-endpoint error, so 400 (RFC 6749 §5.2)."""

    error = "access_denied"


class TooManyDeviceCodes(OAuthError):
    """A client asking for device codes faster than its limit: each code is a chance for a
    guesser at /device, so their number is bounded."""

    error = "slow_down"
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__("too many device codes; retry later")

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Retry-After": str(self.retry_after)}


@dataclass(frozen=True)
class DeviceRecord:
    """One device authorization, from request to tokens."""

    client_id: str
    scope: list[str]
    user_code: str  # normalised: 8 letters of USER_CODE_ALPHABET, no dash
    created: int
    expires: int
    interval: int
    last_poll: int = 0
    status: str = PENDING
    authorization: Authorization | None = None  # set on approval


def normalize_user_code(typed: str) -> str | None:
    """The user code as typed (any case, dashes, spaces) in its stored form, or None when it
    cannot be one (then it is a wrong guess without a store lookup)."""
    code = "".join(c for c in typed.upper() if c not in "- \t")
    if len(code) != USER_CODE_LENGTH or set(code) - set(USER_CODE_ALPHABET):
        return None
    return code


def display_user_code(code: str) -> str:
    """XXXX-XXXX, as the device shows it and the user reads it."""
    half = USER_CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def new_user_code() -> str:
    """8 letters, ~34.6 bits: guessable only at a rate the limits at /device forbid."""
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


class DeviceFlows:
    """Device records in the store and their transitions. `clock` is injectable so tests can
    move time instead of waiting."""

    def __init__(self, store: Store, sealer: Sealer, config: DeviceSettings) -> None:
        self._store = store
        self._sealer = sealer
        self.config = config
        self.clock: Callable[[], float] = time.time

    def now(self) -> int:
        return int(self.clock())

    async def start(self, client_id: str, scope: list[str]) -> tuple[str, DeviceRecord]:
        """A new device code (returned once, never stored) and its record."""
        device_code = random_token(32)
        device_hash = self._hash_device(device_code)
        now = self.now()
        ttl = self.config.code_ttl
        for _ in range(_CODE_ATTEMPTS):
            user_code = new_user_code()
            # SET NX: two live authorizations can never share a user code.
            if await self._store.create(self._user_key(user_code), device_hash.encode(), ttl=ttl):
                break
        else:  # pragma: no cover - 20^8 codes; four collisions in a row means a broken RNG
            raise RuntimeError("no free user code")
        record = DeviceRecord(
            client_id=client_id,
            scope=scope,
            user_code=user_code,
            created=now,
            expires=now + ttl,
            interval=self.config.interval,
        )
        # The record outlives its expiry by one lifetime so a late poll hears expired_token
        # rather than an unknown code.
        await self._store.put(
            self._device_key(device_hash), self._seal(device_hash, record), 2 * ttl
        )
        return device_code, record

    async def by_user_code(self, user_code: str) -> tuple[str, bytes, DeviceRecord] | None:
        """The pending, unexpired authorization a (normalised) user code names, or None."""
        pointer = await self._store.get(self._user_key(user_code))
        if pointer is None:
            return None
        loaded = await self._load(pointer.decode())
        if loaded is None:
            return None
        raw, record = loaded
        if record.status != PENDING or self.now() >= record.expires:
            return None
        return pointer.decode(), raw, record

    async def decide(
        self, user_code: str, authorization: Authorization | None
    ) -> DeviceRecord | None:
        """Approve (with the signed-in user's authorization) or deny (None). The user code is
        consumed first (GETDEL), so of two browsers deciding at once only one gets here; the
        swap then guards against everything else. None when the code is gone or expired."""
        pointer = await self._store.take(self._user_key(user_code))
        if pointer is None:
            return None
        device_hash = pointer.decode()
        decided: DeviceRecord | None = None

        def decide_once(raw: bytes | None) -> bytes | None:
            nonlocal decided
            decided = None
            if raw is None:
                return None
            record = self._open(device_hash, raw)
            if record.status != PENDING or self.now() >= record.expires:
                return None
            if authorization is not None and authorization.client_id != record.client_id:
                return None
            decided = replace(
                record,
                status=APPROVED if authorization is not None else DENIED,
                authorization=authorization,
            )
            return self._seal(device_hash, decided)

        try:
            # A poll that updates last_poll in between makes the swap lose: read again.
            outcome = await self._store.modify(
                self._device_key(device_hash), decide_once, attempts=_DECIDE_RETRIES
            )
        except StoreContended:
            return None  # polled faster than we could swap, every time: as if expired
        return decided if outcome.written else None

    async def poll(self, device_code: str, client_id: str) -> DeviceRecord:
        """One poll at the token endpoint: the approved record (now marked issued, so this
        caller and no other mints tokens), or the RFC 8628 §3.5 error that fits."""
        device_hash = self._hash_device(device_code)
        answer: DeviceRecord | OAuthError = AuthorizationPending("")  # set by each poll_once

        def poll_once(raw: bytes | None) -> bytes:
            nonlocal answer
            if raw is None:
                raise InvalidGrant("the device_code is invalid")
            record = self._open(device_hash, raw)
            if record.client_id != client_id:
                # RFC 8628 §3.4 / RFC 6749 §5.2: a code issued to another client.
                raise InvalidGrant("the device_code was issued to another client")
            now = self.now()
            if record.status == ISSUED:
                raise InvalidGrant("the device_code was already used")
            if now >= record.expires:
                raise ExpiredToken("the device_code has expired; start again")
            if record.status == DENIED:
                raise DeviceAccessDenied("the user denied the request")
            if record.status == APPROVED:
                # The issued record keeps no authorization (profile, upstream tokens): it
                # only has to answer later polls with invalid_grant. Of two polls racing
                # here, the one that loses the swap finds ISSUED when it reads again.
                answer = record
                issued = replace(record, status=ISSUED, last_poll=now, authorization=None)
                return self._seal(device_hash, issued)
            too_fast = now - record.last_poll < record.interval
            interval = record.interval + SLOW_DOWN_STEP if too_fast else record.interval
            answer = (
                SlowDown(f"poll at most every {interval} seconds")
                if too_fast
                else AuthorizationPending("the user has not yet approved the request")
            )
            return self._seal(device_hash, replace(record, last_poll=now, interval=interval))

        try:
            await self._store.modify(self._device_key(device_hash), poll_once, attempts=_RETRIES)
        except StoreContended:
            # Every swap lost: others are polling this code at the same moment: too fast.
            raise SlowDown("poll at most once per interval") from None
        if isinstance(answer, DeviceRecord):
            return answer
        raise answer

    async def _load(self, device_hash: str) -> tuple[bytes, DeviceRecord] | None:
        raw = await self._store.get(self._device_key(device_hash))
        if raw is None:
            return None
        return raw, self._open(device_hash, raw)

    def _open(self, device_hash: str, raw: bytes) -> DeviceRecord:
        data = json.loads(
            self._sealer.open(raw, purpose=_DEVICE, context=self._device_key(device_hash).encode())
        )
        auth = data.get("authorization")
        data["authorization"] = Authorization(**auth) if auth else None
        return DeviceRecord(**data)

    def _seal(self, device_hash: str, record: DeviceRecord) -> bytes:
        return self._sealer.seal(
            record_json(record), purpose=_DEVICE, context=self._device_key(device_hash).encode()
        )

    def _hash_device(self, device_code: str) -> str:
        return self._sealer.keyed_hash(device_code, purpose="device-code")

    def _device_key(self, device_hash: str) -> str:
        return self._store.key(_DEVICE, device_hash)

    def _user_key(self, user_code: str) -> str:
        return self._store.key(_USER, self._sealer.keyed_hash(user_code, purpose="device-user"))


def requested_scope(form: FormData, client: Client) -> list[str]:
    """The scope asked for, or (RFC 6749 §3.3) the client's registered scope."""
    asked = str(form.get("scope") or "").split()
    scope = asked or sorted(client.config.scopes)
    unknown = set(scope) - client.config.scopes
    if unknown:
        raise InvalidScope(f"scope not allowed for this client: {' '.join(sorted(unknown))}")
    return scope


def authorization_endpoint(services: Services) -> Handler:
    """POST /oauth2/device_authorization (RFC 8628 §3.1-3.2); clients authenticate as at the
    token endpoint, public clients with their client_id alone."""
    flows: DeviceFlows = services.device
    issuer = services.settings.issuer

    @oauth_json
    async def endpoint(request: Request) -> Response:
        form = await read_form(request)
        client = services.clients.authenticate(request.headers, form)
        if DEVICE_CODE_GRANT not in client.config.grant_types:
            raise Unauthorized("this client may not use the device authorization grant")
        scope = requested_scope(form, client)
        config = flows.config
        limit = [
            (
                Limit("device-codes-ip", config.codes_per_ip, config.window),
                client_address(services.settings, request),
            ),
            (Limit("device-codes", config.codes_per_client, config.window), client.client_id),
        ]
        try:
            await services.limiter.take(limit)  # every code counts, not only failures
        except RateLimited as exc:
            raise TooManyDeviceCodes(exc.retry_after) from None
        device_code, record = await flows.start(client.client_id, scope)
        shown = display_user_code(record.user_code)
        await services.audit.record(
            "device.authorization", client_id=client.client_id, scope=" ".join(scope)
        )
        return json_no_store(
            {
                "device_code": device_code,
                "user_code": shown,
                "verification_uri": f"{issuer}/device",
                "verification_uri_complete": f"{issuer}/device?user_code={shown}",
                "expires_in": record.expires - record.created,
                "interval": record.interval,
            }
        )

    return endpoint


def device_code_grant(services: Services) -> GrantHandler:
    """The token endpoint's device_code grant handler (`gateway.op.token.GrantHandler`)."""

    class DeviceCodeGrant(TokenMinting):
        """RFC 8628 §3.4-3.5: poll until the user decides; tokens once, to the asking client."""

        grant_type = DEVICE_CODE_GRANT

        async def exchange(self, form: FormData, client: Client) -> dict[str, Any]:
            record = await services.device.poll(
                required_field(form, "device_code"), client.client_id
            )
            auth = record.authorization
            if auth is None:  # an approved record always carries one; never mint without
                raise InvalidGrant("the device_code is invalid")
            lifetime, with_refresh = self.family_lifetime(client)
            grant, refresh = await services.grants.create_grant(auth, lifetime, with_refresh)
            return await self.response(grant, refresh, auth.scope)

    return DeviceCodeGrant(services)
