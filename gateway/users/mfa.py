"""Second factors: TOTP (RFC 6238), codes by e-mail, and single-use recovery codes. Passkeys
live in `gateway.users.passkeys`.

A record belongs to an "MFA subject": the local user id, or for federated sign-ins (when the
pool asks them for a second factor) the identity id.

The record `mfa:{user_id}` is sealed (AES-GCM under the master key, bound to its key name): the
TOTP secret is a credential, and a Redis dump must not yield it. Recovery codes are kept only as
keyed hashes and are spent with a compare-and-swap, so two concurrent uses of one code cannot
both pass. A TOTP code is accepted for the current 30-second step or one step either side
(clock drift), and each step only once per account (`totp-step:{user}:{step}` created with
SET NX): a code seen over someone's shoulder cannot be replayed in its window.

Enrollment is two-step: `begin` keeps a fresh secret for ten minutes, `confirm` makes it the
account's only when the user proves their app produces its codes.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import pyotp

from gateway.crypto import Sealer, constant_time_equals
from gateway.errors import StoreContended
from gateway.store import Store
from gateway.users.changes import AccountChanges

STEP = 30
ENROLL_TTL = 600
RECOVERY_CODES = 10
Method = Literal["totp", "recovery"]
# Second factors an account turns on and off (codes by e-mail and by text message need no
# secret of their own: the directory's verified address or number is where they go).
Factor = Literal["totp", "email", "sms"]


@dataclass(frozen=True)
class MfaRecord:
    """An account's confirmed second factors (an authenticator app, codes by e-mail, codes by
    text message, in any combination), its unspent recovery codes, and the factor it prefers
    when it has several (None: the sign-in asks which; see `gateway.login.machine`)."""

    totp_secret: str | None
    created: int
    recovery_hashes: list[str] = field(default_factory=list)
    email_otp: bool = False
    sms_otp: bool = False
    preferred: Factor | None = None

    def factors(self) -> list[Factor]:
        """The factors turned on, in the order a sign-in offers them."""
        on: list[tuple[Factor, bool]] = [
            ("totp", bool(self.totp_secret)),
            ("sms", self.sms_otp),
            ("email", self.email_otp),
        ]
        return [factor for factor, enabled in on if enabled]


class MfaStore:
    """Enroll, verify and remove second factors."""

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        issuer_name: str,
        changes: AccountChanges | None = None,
    ) -> None:
        self._store = store
        self._sealer = sealer
        self.issuer_name = issuer_name
        self.changes = changes or AccountChanges(store)  # told of every change of a record

    async def get(self, user_id: str) -> MfaRecord | None:
        loaded = await self._load(user_id)
        return loaded[1] if loaded else None

    async def begin(self, user_id: str) -> str:
        """A new TOTP secret for this account, pending until confirmed."""
        secret = base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")
        key = self._store.key("mfa-pending", user_id)
        await self._store.put(key, self._seal(key, {"secret": secret}), ttl=ENROLL_TTL)
        return secret

    async def pending(self, user_id: str) -> str | None:
        """The secret `begin` made and no code has confirmed yet (a wrong code keeps it, so
        the app the user already scanned stays usable), or None once it expired."""
        key = self._store.key("mfa-pending", user_id)
        raw = await self._store.get(key)
        return str(self._open(key, raw)["secret"]) if raw is not None else None

    def provisioning_uri(self, secret: str, account: str) -> str:
        """The otpauth:// URI an authenticator app scans."""
        return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=self.issuer_name)

    async def confirm(self, user_id: str, code: str) -> list[str] | None:
        """Make the pending secret the account's if `code` is right: its recovery codes (shown
        once, stored hashed), or None."""
        key = self._store.key("mfa-pending", user_id)
        raw = await self._store.get(key)
        if raw is None:
            return None
        secret = str(self._open(key, raw)["secret"])
        if await self._totp_step(user_id, secret, code) is None:
            return None
        await self._store.take(key)
        existing = await self.get(user_id)
        codes, hashes = self._recovery_codes(user_id)
        record = (
            replace(existing, totp_secret=secret, recovery_hashes=hashes)
            if existing is not None
            else MfaRecord(secret, int(time.time()), hashes)
        )
        await self._put(user_id, record)
        return codes

    async def enable(
        self, user_id: str, method: Literal["email", "sms"], new_codes: bool = True
    ) -> list[str]:
        """Turn on codes by e-mail or by text message as a second factor: new recovery codes
        (shown once, stored hashed), the other factors kept. `new_codes=False` keeps the codes
        the account has (for callers that cannot show new ones, like the Cognito API) and
        returns []."""
        existing = await self.get(user_id)
        codes, hashes = self._recovery_codes(user_id) if new_codes else ([], [])
        if not new_codes and existing is not None:
            hashes = existing.recovery_hashes
        record = replace(
            existing or MfaRecord(None, int(time.time())),
            recovery_hashes=hashes,
            email_otp=method == "email" or bool(existing and existing.email_otp),
            sms_otp=method == "sms" or bool(existing and existing.sms_otp),
        )
        await self._put(user_id, record)
        return codes

    async def prefer(self, user_id: str, method: Factor | None) -> None:
        """Which factor a sign-in asks for when the account has several (None: it asks
        which). The factor must be on; an account without a record has nothing to prefer."""
        existing = await self.get(user_id)
        if existing is None or (method is not None and method not in existing.factors()):
            raise ValueError(f"{method} is not a second factor of this account")
        await self._put(user_id, replace(existing, preferred=method))

    def _recovery_codes(self, user_id: str) -> tuple[list[str], list[str]]:
        codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
        return codes, [self._hash(user_id, c.replace("-", "")) for c in codes]

    async def verify(self, user_id: str, code: str) -> Method | None:
        """Which factor `code` proved ("totp" or a spent "recovery" code), or None."""
        loaded = await self._load(user_id)
        if loaded is None:
            return None
        raw, record = loaded
        code = code.strip().replace(" ", "")
        if code.isdigit() and len(code) == 6:
            if record.totp_secret is None:
                return None
            step = await self._totp_step(user_id, record.totp_secret, code)
            return "totp" if step is not None else None
        wanted = self._hash(user_id, code.upper().replace("-", ""))
        if wanted not in record.recovery_hashes:
            return None
        left = [h for h in record.recovery_hashes if h != wanted]
        key = self._key(user_id)
        spent = replace(record, recovery_hashes=left)
        sealed = self._seal(key, asdict(spent))
        try:
            # One swap from the record the code was found in: of two uses at once, one wins.
            async with self.changes.writing(user_id):
                await self._store.modify(key, lambda _: sealed, attempts=1, seen=raw)
        except StoreContended:
            return None
        return "recovery"

    async def disable(self, user_id: str, method: Factor) -> None:
        """Turn one second factor off, keeping the others (and the recovery codes) if the
        account has them; with none left the record goes, as `remove` does."""
        existing = await self.get(user_id)
        if existing is None:
            return
        record = replace(
            existing,
            totp_secret=None if method == "totp" else existing.totp_secret,
            email_otp=False if method == "email" else existing.email_otp,
            sms_otp=False if method == "sms" else existing.sms_otp,
            preferred=None if existing.preferred == method else existing.preferred,
        )
        if not record.factors():
            await self.remove(user_id)
            return
        await self._put(user_id, record)

    async def remove(self, user_id: str) -> None:
        async with self.changes.writing(user_id):
            await self._store.delete(self._key(user_id), self._store.key("mfa-pending", user_id))

    async def _put(self, user_id: str, record: MfaRecord) -> None:
        key = self._key(user_id)
        async with self.changes.writing(user_id):
            await self._store.put(key, self._seal(key, asdict(record)))

    async def _totp_step(self, user_id: str, secret: str, code: str) -> int | None:
        totp = pyotp.TOTP(secret)
        now = int(time.time()) // STEP
        for step in (now, now - 1, now + 1):
            if constant_time_equals(totp.at(step * STEP), code.strip()):
                used = self._store.key("totp-step", user_id, str(step))
                # Each step once: the second use of a code inside its window is refused.
                if await self._store.create(used, b"1", ttl=STEP * 4):
                    return step
                return None
        return None

    async def _load(self, user_id: str) -> tuple[bytes, MfaRecord] | None:
        key = self._key(user_id)
        raw = await self._store.get(key)
        if raw is None:
            return None
        return raw, MfaRecord(**self._open(key, raw))

    def _key(self, user_id: str) -> str:
        return self._store.key("mfa", user_id)

    def _hash(self, user_id: str, code: str) -> str:
        return self._sealer.keyed_hash(f"{user_id}:{code}", purpose="mfa-recovery")

    def _seal(self, key: str, data: dict[str, Any]) -> bytes:
        return self._sealer.seal(json.dumps(data).encode(), purpose="mfa", context=key.encode())

    def _open(self, key: str, raw: bytes) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            self._sealer.open(raw, purpose="mfa", context=key.encode())
        )
        return data


def _recovery_code() -> str:
    """Ten characters of Crockford-ish base32, shown as XXXXX-XXXXX."""
    alphabet = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
    raw = "".join(secrets.choice(alphabet) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"
