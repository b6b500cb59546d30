"""The server side of SRP-6a exactly as Amazon Cognito runs it for USER_SRP_AUTH: pure
functions, no I/O, no clock (callers pass `now`). The wire API, sessions and the verifier store
live elsewhere (`gateway.users.srp_verifiers` keeps salts and verifiers sealed).

The formulas are the clients', read in amazon-cognito-identity-js 6.3.21
(`src/AuthenticationHelper.js`, `src/CognitoUser.js` authenticateUserDefaultAuth,
`src/DateHelper.js`) and pycognito 2024.5.1 (`pycognito/aws_srp.py`, the same as warrant-lite)::

    N, g   the RFC 5054 (= RFC 3526 group 15) 3072-bit prime, g = 2
    H      SHA-256; H(hex) hashes the bytes the hex string spells
    k    = H(padHex(N) + padHex(g))
    x    = H(padHex(salt) + hexdigest(poolName + userIdForSrp + ":" + password))
    v    = g^x                                   (the verifier, stored; never sent)
    B    = k*v + g^b                             (SRP_B; b is ours, secret, single use)
    u    = H(padHex(A) + padHex(B))
    S    = (A * v^u)^b                           (the client computes (B - k*g^x)^(a + u*x))
    key  = HKDF-SHA256(ikm=padHex(S), salt=padHex(u), info="Caldera Derived Key", L=16)
    PASSWORD_CLAIM_SIGNATURE = base64(HMAC-SHA256(key,
                     poolName + userIdForSrp + base64decode(SECRET_BLOCK) + TIMESTAMP))

all mod N, with poolName the user pool id after its "_" (`pool_name_of`). TIMESTAMP is
"ddd MMM D HH:mm:ss UTC YYYY" in English, the day without zero padding ("Tue Dec 1 ...").

Wire forms: the clients parse SRP_B and SALT as integers, except pycognito, which hashes the
SALT string as sent (`pad_hex(salt_hex)` keeps it when its length is even), so SALT must be sent
as `pad_hex(salt)` or pycognito and the JavaScript client would hash different bytes for salts
with leading zero bytes. SRP_A arrives as bare hex (`aValue.toString(16)`: no padding); read it
with `parse_hex`, never `int(text, 16)`, which takes "0x", "+", "-", "_" and spaces.

Exponentiation is GMP's (gmpy2): 6-9x Python's `pow` on 3072-bit numbers, which is the whole
cost of a sign-in (bench/srp.py measures both); constant time where the secret is long-lived.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime
from typing import Final

import gmpy2

N_HEX: Final = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E34"
    "04DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5C"
    "B6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A"
    "69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA"
    "18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995"
    "497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF"
    "0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06"
    "D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143"
    "DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF"
)
N: Final = int(N_HEX, 16)
G: Final = 2
INFO: Final = b"Caldera Derived Key"

SALT_BITS: Final = 128
"""Cognito's device verifiers take 16 random bytes of salt (AuthenticationHelper
generateHashDevice); user verifiers do the same. The clients accept a salt of any length."""

SECRET_BITS: Final = 384
"""The size of the server's ephemeral b. N is a safe prime, so a short exponent costs an attacker
the square root of its range (Pollard's kangaroo): NIST SP 800-56A rev. 3 §5.6.1.1.1 asks for
at least 2 × 128 = 256 bits for this group's 128-bit strength, RFC 7919 §5.2 at least 275 and
RFC 3526 §8 260 to 400; 384 clears them all for ~25% fewer sign-ins per core than 256
(bench/srp.py --secret-bits). The client's a is 1024 bits, but that cost is the client's."""

TIMESTAMP_WINDOW: Final = 300.0
"""How far (seconds) the client's TIMESTAMP may be from our clock, either way. Replay is already
stopped by the single-use b (a new challenge has a new S, so an old signature fails) and the
3-minute Session; the window only tolerates the skew of users' clocks. Five minutes is
Kerberos's customary skew (RFC 4120 §1.6): wide enough for phones off by a few minutes."""

HEX_LIMIT: Final = 1024
"""The longest hex number `parse_hex` reads: N is 768 digits; anything near this is junk."""

_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # datetime.weekday() order
_MONTHS: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
)  # fmt: skip
# Spelled out, not strptime: %a/%b follow the process locale, and %d takes "01" as well as
# "1", which neither client ever sends (pycognito: "strips leading zero ... required by AWS").
_TIMESTAMP: Final = re.compile(
    r"(?P<wday>[A-Z][a-z]{2}) (?P<month>[A-Z][a-z]{2}) (?P<day>[1-9]|[12][0-9]|3[01]) "
    r"(?P<hms>[01][0-9]|2[0-3]):(?P<min>[0-5][0-9]):(?P<sec>[0-5][0-9]) UTC (?P<year>[0-9]{4})"
)
_HEX: Final = re.compile(r"[0-9a-fA-F]+")


def _powmod(base: int, exponent: int, modulus: int) -> int:
    """Variable time, for the single-use b: a timing measurement of one sign-in says little
    about its b, and the next sign-in has another."""
    return int(gmpy2.powmod(base, exponent, modulus))


def _powmod_sec(base: int, exponent: int, modulus: int) -> int:
    """Constant time (GMP's mpz_powm_sec), for the long-lived secrets: x, the password's
    exponent, and v, raised to a u an attacker can vary sign-in after sign-in (a fixed
    secret timed over many queries is what timing attacks need). ~1.5-2x `_powmod`'s cost."""
    return int(gmpy2.powmod_sec(base, exponent, modulus))


def pad_hex(value: int) -> str:
    """AuthenticationHelper.padHex for the non-negative integers SRP hashes: even-length hex,
    with "00" in front when the first nibble has its high bit set (the two's-complement bytes
    of Java's BigInteger.toByteArray, the JavaScript source says).

    The JavaScript version also encodes negative numbers (two's complement), but nothing SRP
    hashes is ever negative: A, B, u and the salt are positive and S is reduced mod N (the
    client's negative B - k*g^x only goes into modPow). A negative value here is a bug, so it
    raises rather than hash something no client would.
    """
    if value < 0:
        raise ValueError("SRP never hashes a negative number")
    digits = format(value, "x")
    if len(digits) % 2:
        return "0" + digits
    return "00" + digits if digits[0] in "89abcdef" else digits


def _hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _hash_int(*numbers: int) -> int:
    """H(padHex(n1) + padHex(n2) + ...) as an integer (the clients' hexHash of the joined hex)."""
    return int.from_bytes(_hash(b"".join(bytes.fromhex(pad_hex(n)) for n in numbers)), "big")


K: Final = _hash_int(N, G)


def pool_name_of(user_pool_id: str) -> str:
    """The pool name SRP hashes: the user pool id after its "_" ("eu-west-1_AbC123xyZ" →
    "AbC123xyZ"), as the clients take it (`UserPoolId.split('_')[1]`)."""
    parts = user_pool_id.split("_")
    if len(parts) < 2 or not parts[1]:
        raise ValueError(f"not a user pool id: {user_pool_id!r}")
    return parts[1]


def parse_hex(text: str) -> int:
    """A hex number from the wire (SRP_A): digits only, at most `HEX_LIMIT` of them; raises
    ValueError otherwise. `int(text, 16)` alone would accept "0x", signs, "_" and spaces."""
    if len(text) > HEX_LIMIT or not _HEX.fullmatch(text):
        raise ValueError("not a hex number")
    return int(text, 16)


def password_verifier(pool_name: str, user_id_for_srp: str, password: str, salt: int) -> int:
    """v = g^x with x = H(padHex(salt) + H(poolName + userIdForSrp + ":" + password)).

    The password is hashed as its UTF-8 bytes, unnormalised, as both clients do.
    """
    inner = _hash(f"{pool_name}{user_id_for_srp}:{password}".encode())
    x = int.from_bytes(_hash(bytes.fromhex(pad_hex(salt)) + inner), "big")
    return _powmod_sec(G, x, N)


def new_verifier(pool_name: str, user_id_for_srp: str, password: str) -> tuple[int, int]:
    """(salt, verifier) for a password: a fresh random 128-bit salt. Send the salt as
    `pad_hex(salt)`. The pair is password-equivalent for offline guessing: keep it sealed."""
    salt = secrets.randbits(SALT_BITS)
    return salt, password_verifier(pool_name, user_id_for_srp, password, salt)


def challenge(verifier: int) -> tuple[int, int]:
    """A new server secret b and SRP_B = k*v + g^b mod N for one PASSWORD_VERIFIER challenge.

    b is single use: keep it (sealed, server side) with this challenge only, and forget it once
    the answer is checked, right or wrong — a second answer to the same B could be an online
    guess that skips the work of a new challenge.
    """
    if not 1 < verifier < N:
        raise ValueError("not an SRP verifier")
    while True:
        b = secrets.randbits(SECRET_BITS)
        big_b = (K * verifier + _powmod(G, b, N)) % N
        # The clients refuse B ≡ 0 (mod N) (it would make S predictable); b = 0 is no secret.
        if b and big_b:
            return b, big_b


def format_timestamp(when: datetime) -> str:
    """The TIMESTAMP clients sign, "Tue Dec 1 11:20:00 UTC 2026", for an aware datetime."""
    t = when.astimezone(UTC)
    return (
        f"{_DAYS[t.weekday()]} {_MONTHS[t.month - 1]} {t.day} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} UTC {t.year}"
    )


def parse_timestamp(text: str) -> datetime:
    """The instant a TIMESTAMP names (aware, UTC); ValueError when it is not in exactly the
    clients' format, names no real date, or its weekday does not fit its date."""
    m = _TIMESTAMP.fullmatch(text)
    if m is None or m["month"] not in _MONTHS:
        raise ValueError("not a Cognito TIMESTAMP")
    when = datetime(
        int(m["year"]),
        _MONTHS.index(m["month"]) + 1,
        int(m["day"]),  # datetime raises for Feb 30 and the like
        int(m["hms"]),
        int(m["min"]),
        int(m["sec"]),
        tzinfo=UTC,
    )
    if _DAYS[when.weekday()] != m["wday"]:
        raise ValueError("the TIMESTAMP's weekday does not fit its date")
    return when


def _fresh(timestamp: str, now: float) -> bool:
    try:
        when = parse_timestamp(timestamp).timestamp()
    except ValueError:
        return False
    return abs(when - now) <= TIMESTAMP_WINDOW


def password_key(verifier: int, b: int, big_b: int, big_a: int) -> bytes | None:
    """The 16-byte key both sides derive (the HKDF of S salted with u), or None when A is
    unacceptable: outside 0 < A < N (RFC 5054 §2.5.4: A ≡ 0 would make S = 0 whatever the
    password; genuine clients send g^a mod N, so nothing else is ever needed) or u = 0."""
    if not 0 < big_a < N:
        return None
    u = _hash_int(big_a, big_b)
    if u == 0:  # the clients refuse it too ("U cannot be zero")
        return None
    s = _powmod(big_a * _powmod_sec(verifier, u, N) % N, b, N)
    # HKDF (RFC 5869) with L = 16 is its first block cut short: one extract, one expand.
    prk = hmac.new(bytes.fromhex(pad_hex(u)), bytes.fromhex(pad_hex(s)), hashlib.sha256).digest()
    return hmac.new(prk, INFO + b"\x01", hashlib.sha256).digest()[:16]


def claim_signature(
    key: bytes, pool_name: str, user_id_for_srp: str, secret_block: bytes, timestamp: str
) -> str:
    """PASSWORD_CLAIM_SIGNATURE as the clients compute it (base64, standard alphabet, padded)."""
    message = pool_name.encode() + user_id_for_srp.encode() + secret_block + timestamp.encode()
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode("ascii")


def verify(
    pool_name: str,
    user_id_for_srp: str,
    verifier: int,
    b: int,
    big_b: int,
    big_a: int,
    secret_block: bytes,
    timestamp: str,
    signature: str,
    now: float,
) -> bool:
    """Whether a PASSWORD_VERIFIER answer proves the password: the client's A (SRP_A, read
    with `parse_hex`) against the b and B of our `challenge`, the raw bytes of the SECRET_BLOCK
    we sent (the caller checks PASSWORD_CLAIM_SECRET_BLOCK is that block), and the client's
    TIMESTAMP and PASSWORD_CLAIM_SIGNATURE. `now`: epoch seconds.

    No salt: the server's S needs only the verifier (the salt went into it, and is sent to the
    client only so that it can compute x).
    """
    # The cheap checks first: a stale or malformed TIMESTAMP costs no exponentiation.
    if not _fresh(timestamp, now):
        return False
    key = password_key(verifier, b, big_b, big_a)
    if key is None:
        return False
    expected = claim_signature(key, pool_name, user_id_for_srp, secret_block, timestamp)
    # Constant time: a byte-by-byte early exit would let an online guesser learn the signature.
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))
