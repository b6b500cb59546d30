"""Password hashes from other systems, accepted on import and replaced at the next sign-in.

An imported account keeps the hash its old system made; the first sign-in that proves the
password rehashes it with argon2id (`PasswordHasher.needs_rehash` says so for every format
here). The formats, as the systems that made them write them:

- bcrypt: `$2a$`, `$2b$`, `$2y$` (cost in the hash);
- scrypt: `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<b64 salt>$<b64 hash>` (passlib's layout);
- PBKDF2: `pbkdf2_sha256$<iterations>$<salt>$<b64 hash>` (Django's), also `pbkdf2_sha512`;
- argon2 (`$argon2id$`, `$argon2i$`): verified by argon2-cffi itself.

Verification runs in the same bounded pool as argon2 and compares in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import bcrypt

MAX_SCRYPT_LOG_N = 20  # 2^20 * 128 * r bytes: an imported hash must not be a memory bomb
MAX_PBKDF2_ITERATIONS = 5_000_000


def is_legacy(stored: str) -> bool:
    return stored.startswith(
        ("$2a$", "$2b$", "$2y$", "$scrypt$", "pbkdf2_sha256$", "pbkdf2_sha512$")
    )


def known_format(stored: str) -> bool:
    """Can this hash be imported (argon2 or one of the legacy formats)?"""
    return stored.startswith(("$argon2id$", "$argon2i$")) or is_legacy(stored)


def verify_legacy(stored: str, password: str) -> bool:
    """Does `password` match a legacy hash? False for anything malformed."""
    secret = password.encode()
    try:
        if stored.startswith(("$2a$", "$2b$", "$2y$")):
            return bool(bcrypt.checkpw(secret[:72], stored.encode()))
        if stored.startswith("$scrypt$"):
            _, _, params, salt, digest = stored.split("$")
            values = dict(p.split("=") for p in params.split(","))
            log_n, r, p = int(values["ln"]), int(values["r"]), int(values["p"])
            if not (1 <= log_n <= MAX_SCRYPT_LOG_N and 1 <= r <= 32 and 1 <= p <= 16):
                return False
            expected = _b64(digest)
            derived = hashlib.scrypt(
                secret,
                salt=_b64(salt),
                n=2**log_n,
                r=r,
                p=p,
                dklen=len(expected),
                maxmem=2**log_n * 128 * r * 2 + 1024 * 1024,
            )
            return hmac.compare_digest(derived, expected)
        if stored.startswith(("pbkdf2_sha256$", "pbkdf2_sha512$")):
            algorithm, iterations, salt, digest = stored.split("$")
            rounds = int(iterations)
            if not 1 <= rounds <= MAX_PBKDF2_ITERATIONS:
                return False
            expected = _b64(digest)
            name = algorithm.removeprefix("pbkdf2_")
            derived = hashlib.pbkdf2_hmac(name, secret, salt.encode(), rounds, len(expected))
            return hmac.compare_digest(derived, expected)
    except (ValueError, KeyError, TypeError):
        return False
    return False


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"./" if "." in text else None)
