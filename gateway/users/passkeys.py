"""Passkeys (WebAuthn, through the `webauthn` package): a second factor after the password, and
passwordless sign-in on their own.

The relying party is the issuer's host name (or `user_pool.passkey_relying_party_id`, a parent
domain of it), and the issuer's origin is the only origin the hosted pages' ceremonies accept, so
a passkey made for this gateway works nowhere else and a page elsewhere cannot use it. The
user-pool API's ceremonies (an app on its own origin, `gateway.cognito.webauthn_ops`) also accept
the app client's allowed origins that lie within the RP ID, as WebAuthn requires. Every ceremony
has its own challenge, kept in the store for five minutes under the flow (or session) it belongs
to — with the origins that may answer it, the app client that asked, and whose passkey may answer
— and taken (GETDEL) when the answer arrives: single use, and bound to the sign-in that asked.

An account's passkeys are one JSON record `passkeys:{user_id}` (public keys and counters: nothing
secret), changed by compare-and-swap; `passkey-id:{credential id}` finds the account a
discoverable credential belongs to. A signature counter that does not move forward (a cloned
authenticator) is refused by the library and the sign-in fails.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_attestation_object,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from gateway.errors import GatewayError, StoreContended
from gateway.store import Store

if TYPE_CHECKING:
    from gateway.settings import Settings

log = logging.getLogger("cognate.passkeys")

CHALLENGE_TTL = 300
MAX_PASSKEYS = 20
MAX_CREDENTIAL_JSON = 16 * 1024
Ceremony = Literal["register", "login", "mfa"]


@dataclass(frozen=True)
class Passkey:
    credential_id: str  # base64url
    public_key: str  # base64url COSE key
    sign_count: int
    name: str
    created: int
    last_used: int | None = None
    backed_up: bool = False
    transports: list[str] = field(default_factory=list)
    attachment: str | None = None  # "platform" or "cross-platform", as the browser said
    rp_id: str | None = None  # the RP ID it was made for (None: made before it was kept)


@dataclass(frozen=True)
class Asked:
    """A ceremony's pending challenge: the origins that may answer it, the app client that
    asked (an API registration: the one that must complete it), and whose passkey may answer
    (None: any account's, a discoverable sign-in; "": nobody's, a decoy)."""

    challenge: bytes
    origins: tuple[str, ...]
    client_id: str | None = None
    account: str | None = None


Refusal = Literal["challenge", "client", "origin", "rp_id", "unsupported", "taken", "contended"]


class RegistrationRefused(GatewayError):
    """A registration answer that was not kept, and why (the API names each reason)."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason)
        self.reason: Refusal = reason


@dataclass(frozen=True)
class PasskeyUse:
    """A passkey that just signed a challenge, and whether its user was verified (PIN or
    biometrics: two factors in one gesture)."""

    user_id: str
    credential_id: str
    user_verified: bool


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


_Change = Callable[[list[Passkey]], list[Passkey]]
# What a decoy credential says it travels by (a phone's or a laptop's passkey, the commonest).
DECOY_TRANSPORTS = ["hybrid", "internal"]


def _transports(names: list[str]) -> list[AuthenticatorTransport] | None:
    known = {t.value: t for t in AuthenticatorTransport}
    return [known[n] for n in names if n in known] or None


class Passkeys:
    """Register, use and remove the passkeys of local accounts."""

    def __init__(
        self,
        store: Store,
        issuer: str,
        rp_name: str,
        wanted: bool = True,
        rp_id: str | None = None,
    ) -> None:
        parts = urlsplit(issuer)
        self._store = store
        # Settings check that a configured RP ID is the issuer's host or a parent domain of it.
        self.rp_id = rp_id or parts.hostname or "localhost"
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.rp_name = rp_name
        # Browsers accept only a domain as RP ID: on an IP-address issuer, passkeys stay off.
        self.enabled = wanted and not _is_ip(self.rp_id)

    def origins_with(self, candidates: Iterable[str]) -> tuple[str, ...]:
        """The gateway's origin and those of `candidates` (an app client's allowed origins)
        that may run a ceremony for this RP ID: its host is the RP ID or a subdomain of it, and
        the page is a secure context (https, or http on localhost), as WebAuthn requires."""
        return (self.origin, *sorted(o for o in set(candidates) if self._within(o)))

    def _within(self, origin: str) -> bool:
        parts = urlsplit(origin)
        host = (parts.hostname or "").lower()
        local = host == "localhost" or host.endswith(".localhost")
        secure = parts.scheme == "https" or (parts.scheme == "http" and local)
        return secure and (host == self.rp_id or host.endswith("." + self.rp_id))

    async def list(self, user_id: str) -> list[Passkey]:
        raw = await self._store.get(self._key(user_id))
        return [] if raw is None else [Passkey(**p) for p in json.loads(raw)]

    async def registration_options(
        self,
        owner: str,
        user_id: str,
        user_name: str,
        origins: Sequence[str] = (),
        client_id: str | None = None,
    ) -> str:
        """The options (JSON) for `navigator.credentials.create`, for the ceremony of `owner`
        (a session id). A discoverable credential is asked for, so it can sign in alone.
        `origins`: who may answer (default: the gateway's pages); `client_id`: the app client
        that must complete it (an API registration)."""
        existing = await self.list(user_id)
        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_id=user_id.encode(),
            user_name=user_name,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id))
                for p in existing
            ],
        )
        asked = Asked(options.challenge, tuple(origins) or (self.origin,), client_id)
        await self._keep_challenge("register", owner, asked)
        return options_to_json(options)

    async def register(
        self, owner: str, user_id: str, credential: str, name: str
    ) -> Passkey | None:
        """Verify the browser's answer to `registration_options` and keep the passkey; None if
        the answer is wrong, late, replayed, or the credential is already registered."""
        try:
            return await self.register_or_refuse(owner, user_id, credential, name)
        except RegistrationRefused as exc:
            log.info("passkey registration refused: %s", exc.reason)
            return None

    async def register_or_refuse(
        self,
        owner: str,
        user_id: str,
        credential: str,
        name: str,
        client_id: str | None = None,
    ) -> Passkey:
        """`register`, saying why an answer is refused (RegistrationRefused): no pending
        challenge (late, replayed, or another), another app client than the one that asked,
        an origin or RP ID that is not ours, a credential the library cannot verify, or one
        already registered (to any account)."""
        asked = await self._take_challenge("register", owner)
        if asked is None:
            raise RegistrationRefused("challenge")
        if asked.client_id is not None and asked.client_id != client_id:
            raise RegistrationRefused("client")
        if len(credential) > MAX_CREDENTIAL_JSON:
            raise RegistrationRefused("unsupported")
        try:
            parsed = parse_registration_credential_json(credential)
            client_data = parse_client_data_json(parsed.response.client_data_json)
            auth_data = parse_attestation_object(parsed.response.attestation_object).auth_data
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            log.info("passkey registration unreadable: %s", exc)
            raise RegistrationRefused("unsupported") from None
        # Checked before the library (which checks them again) only to say which was wrong.
        if client_data.origin not in asked.origins:
            raise RegistrationRefused("origin")
        if auth_data.rp_id_hash != hashlib.sha256(self.rp_id.encode()).digest():
            raise RegistrationRefused("rp_id")
        if client_data.challenge != asked.challenge:
            raise RegistrationRefused("challenge")
        try:
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=asked.challenge,
                expected_rp_id=self.rp_id,
                expected_origin=list(asked.origins),
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            log.info("passkey registration refused: %s", exc)
            raise RegistrationRefused("unsupported") from None
        attachment = parsed.authenticator_attachment
        passkey = Passkey(
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            name=(name.strip() or "Passkey")[:64],
            created=int(time.time()),
            backed_up=verified.credential_backed_up,
            transports=[t.value for t in parsed.response.transports or []],
            attachment=attachment.value if attachment else None,
            rp_id=self.rp_id,
        )
        index = self._index_key(passkey.credential_id)
        if not await self._store.create(index, user_id.encode()):
            raise RegistrationRefused("taken")  # one credential, one account
        if not await self._change(user_id, lambda keys: [*keys, passkey][-MAX_PASSKEYS:]):
            await self._store.delete(index)
            raise RegistrationRefused("contended")
        return passkey

    async def authentication_options(
        self,
        ceremony: Ceremony,
        owner: str,
        user_id: str | None,
        origins: Sequence[str] = (),
    ) -> str:
        """The options (JSON) for `navigator.credentials.get`: any discoverable passkey of this
        site (passwordless, `user_id` None; user verification required), or one of the
        account's (second factor). `origins`: who may answer (default: the gateway's own
        pages; the user-pool API adds its app client's, `origins_with`)."""
        allowed = (
            [
                PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id))
                for p in await self.list(user_id)
            ]
            if user_id
            else []
        )
        options = generate_authentication_options(
            rp_id=self.rp_id,
            allow_credentials=allowed,
            user_verification=UserVerificationRequirement.PREFERRED
            if user_id
            else UserVerificationRequirement.REQUIRED,
        )
        answering = tuple(origins) or (self.origin,)
        await self._keep_challenge(ceremony, owner, Asked(options.challenge, answering))
        return options_to_json(options)

    async def sign_in_options(
        self, owner: str, account: str, decoys: Sequence[bytes], origins: Sequence[str]
    ) -> str:
        """The options (JSON) for a passwordless sign-in of one named account (the user-pool
        API's WEB_AUTHN challenge, ceremony "login"): its passkeys are allowed, user
        verification is required, and only its passkey may answer. An account with none (or
        unknown: `account` "") is offered `decoys` instead, which no passkey answers."""
        # Read for an unknown account too: the same round trip, the same time.
        keys = await self.list(account or "-")
        allowed = [
            PublicKeyCredentialDescriptor(
                id=base64url_to_bytes(p.credential_id), transports=_transports(p.transports)
            )
            for p in keys
        ] or [
            PublicKeyCredentialDescriptor(id=decoy, transports=_transports(DECOY_TRANSPORTS))
            for decoy in decoys
        ]
        options = generate_authentication_options(
            rp_id=self.rp_id,
            allow_credentials=allowed,
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        asked = Asked(options.challenge, tuple(origins) or (self.origin,), None, account)
        await self._keep_challenge("login", owner, asked)
        return options_to_json(options)

    async def authenticate(
        self, ceremony: Ceremony, owner: str, credential: str, user_id: str | None
    ) -> PasskeyUse | None:
        """Verify a signed challenge: who signed (must be `user_id` when given), or None."""
        asked = await self._take_challenge(ceremony, owner)
        if asked is None or len(credential) > MAX_CREDENTIAL_JSON:
            return None
        try:
            credential_id = str(json.loads(credential)["id"])[:1024]
        except (ValueError, KeyError, TypeError):
            return None
        owner_raw = await self._store.get(self._index_key(credential_id))
        if owner_raw is None or (user_id is not None and owner_raw.decode() != user_id):
            return None
        account = owner_raw.decode()
        if asked.account is not None and account != asked.account:
            return None  # the sign-in named another account (or none: a decoy)
        passkey = next(
            (p for p in await self.list(account) if p.credential_id == credential_id), None
        )
        if passkey is None:
            return None
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=asked.challenge,
                expected_rp_id=self.rp_id,
                expected_origin=list(asked.origins),
                credential_public_key=base64url_to_bytes(passkey.public_key),
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=user_id is None,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            log.info("passkey sign-in refused: %s", exc)
            return None
        now = int(time.time())

        def used(keys: list[Passkey]) -> list[Passkey]:
            return [
                replace(k, sign_count=verified.new_sign_count, last_used=now)
                if k.credential_id == credential_id
                else k
                for k in keys
            ]

        if not await self._change(account, used):
            return None
        return PasskeyUse(account, credential_id, verified.user_verified)

    async def remove(self, user_id: str, credential_id: str) -> bool:
        """Remove one passkey; False when the account has none with this id, or a concurrent
        change to its passkeys won twice (nothing was removed)."""
        keys = await self.list(user_id)
        if not any(k.credential_id == credential_id for k in keys):
            return False
        # A lost change leaves the passkey listed: its index must stay too, or it would be
        # listed and yet unusable. The caller shows nothing removed; the user can try again.
        if not await self._change(
            user_id, lambda ks: [k for k in ks if k.credential_id != credential_id]
        ):
            return False
        await self._store.delete(self._index_key(credential_id))
        return True

    async def remove_all(self, user_id: str) -> None:
        for passkey in await self.list(user_id):
            await self._store.delete(self._index_key(passkey.credential_id))
        await self._store.delete(self._key(user_id))

    async def _change(self, user_id: str, change: _Change) -> bool:
        """Apply `change` to the account's list (`Store.modify`: compare-and-swap, tried twice
        when a concurrent change won); False when it never won and nothing was written."""

        def apply(raw: bytes | None) -> bytes:
            keys = [] if raw is None else [Passkey(**p) for p in json.loads(raw)]
            return json.dumps([asdict(k) for k in change(keys)]).encode()

        try:
            await self._store.modify(self._key(user_id), apply, attempts=2)
        except StoreContended:
            return False
        return True

    async def _keep_challenge(self, ceremony: Ceremony, owner: str, asked: Asked) -> None:
        record = {
            "challenge": bytes_to_base64url(asked.challenge),
            "origins": list(asked.origins),
            "client_id": asked.client_id,
            "account": asked.account,
        }
        await self._store.put(
            self._challenge_key(ceremony, owner), json.dumps(record).encode(), ttl=CHALLENGE_TTL
        )

    async def _take_challenge(self, ceremony: Ceremony, owner: str) -> Asked | None:
        raw = await self._store.take(self._challenge_key(ceremony, owner))
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            return Asked(
                base64url_to_bytes(record["challenge"]),
                tuple(record["origins"]),
                record["client_id"],
                record["account"],
            )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            # A bare challenge, kept before challenges had records (a rolling upgrade).
            return Asked(raw, (self.origin,))

    def _challenge_key(self, ceremony: Ceremony, owner: str) -> str:
        return self._store.key("webauthn-challenge", ceremony, owner)

    def _key(self, user_id: str) -> str:
        return self._store.key("passkeys", user_id)

    def _index_key(self, credential_id: str) -> str:
        return self._store.key("passkey-id", credential_id)


def setup_warnings(settings: Settings) -> list[str]:
    """What `check-config` warns about passkeys (valid, but likely wrong): an app client's
    allowed origin outside the relying party ID, whose pages could never use one."""
    keys = Passkeys(
        None,  # type: ignore[arg-type]  # only the relying party's rules are asked for
        settings.issuer,
        settings.ui.product_name,
        settings.user_pool.passkeys,
        settings.user_pool.passkey_relying_party_id,
    )
    if not keys.enabled:
        return []
    found = []
    for index, client in enumerate(settings.clients):
        for origin in client.allowed_origins or []:
            if origin not in keys.origins_with([origin]):
                found.append(
                    f"clients[{index}].allowed_origins: {origin} is outside the passkey "
                    f"relying party ID {keys.rp_id} (or not https), so that page cannot use "
                    "passkeys; serve the app under it, or set "
                    "user_pool.passkey_relying_party_id to a parent domain of the issuer's "
                    "host and the app's"
                )
    return found
