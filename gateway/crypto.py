"""Small cryptographic helpers shared by every area: sealing records at rest (AES-GCM),
keyed hashes for secrets we only compare, random identifiers, and PKCE.

What does not live here: JWT signing and verification (`gateway.keys`, `gateway.tokens`) and
password hashing (`gateway.users.passwords`), which have their own lifecycles.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of `b64url`; raises ValueError on junk."""
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def random_token(nbytes: int = 32) -> str:
    """An unguessable URL-safe token (256 bits by default)."""
    return secrets.token_urlsafe(nbytes)


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Compare secrets without leaking where they differ."""
    a_bytes = a.encode() if isinstance(a, str) else a
    b_bytes = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)


def s256_challenge(verifier: str) -> str:
    """The PKCE S256 code challenge of a verifier (RFC 7636 §4.2)."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


class Sealer:
    """Encrypts records at rest so that a Redis dump alone is useless.

    Each purpose gets its own subkey (HKDF from the master key), and the purpose plus the record's
    Redis key are bound in as associated data, so a sealed value cannot be moved to another key::

        sealer = Sealer(master_key)
        blob = sealer.seal(b"...", purpose="session", context=b"cognate:session:abc")
        sealer.open(blob, purpose="session", context=b"cognate:session:abc")
    """

    _VERSION = b"\x01"

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) < 32:
            raise ValueError("the master key must be at least 32 bytes")
        self._master = master_key
        self._subkeys: dict[tuple[str, bytes], AESGCM] = {}
        self._mac_keys: dict[str, bytes] = {}

    def _aead(self, purpose: str, extra_key: bytes = b"") -> AESGCM:
        cache_key = (purpose, extra_key)
        aead = self._subkeys.get(cache_key)
        if aead is None:
            okm = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=extra_key or None,
                info=b"cognate/" + purpose.encode(),
            ).derive(self._master)
            aead = AESGCM(okm)
            if not extra_key:  # per-session keys are not worth caching
                self._subkeys[cache_key] = aead
        return aead

    def seal(
        self, plaintext: bytes, *, purpose: str, context: bytes, extra_key: bytes = b""
    ) -> bytes:
        """Encrypt and authenticate; `extra_key` mixes in a secret the store never sees."""
        nonce = os.urandom(12)
        sealed = self._aead(purpose, extra_key).encrypt(nonce, plaintext, context)
        return self._VERSION + nonce + sealed

    def open(self, blob: bytes, *, purpose: str, context: bytes, extra_key: bytes = b"") -> bytes:
        """Decrypt; raises ValueError when the blob was tampered with or sealed elsewhere."""
        if len(blob) < 29 or blob[:1] != self._VERSION:
            raise ValueError("not a sealed record")
        try:
            return self._aead(purpose, extra_key).decrypt(blob[1:13], blob[13:], context)
        except Exception as exc:  # cryptography raises InvalidTag
            raise ValueError("sealed record failed authentication") from exc

    def keyed_hash(self, value: str, *, purpose: str) -> str:
        """A fast keyed hash (HMAC-SHA256) for high-entropy secrets we only ever compare:
        client secrets, refresh tokens, codes. Passwords use argon2id instead."""
        mac = hmac.new(self._hmac_key(purpose), value.encode(), hashlib.sha256)
        return b64url(mac.digest())

    def _hmac_key(self, purpose: str) -> bytes:
        key = self._mac_keys.get(purpose)
        if key is None:
            key = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=None,
                info=b"cognate-mac/" + purpose.encode(),
            ).derive(self._master)
            self._mac_keys[purpose] = key
        return key
