"""Cognito's SRP-6a, server side, against the clients nobody here wrote: pycognito's own
`AWSSRP` math in-process, and amazon-cognito-identity-js (pinned, installed from the npm
registry by this module's fixture) under Node. No network: the clients' challenge-answering
code runs on the SALT, SRP_B and SECRET_BLOCK our `challenge` produced, as they would on an
InitiateAuth answer.

Then what must be refused: a wrong password, a tampered signature, an answer replayed against
a new challenge, stale, future and malformed TIMESTAMPs, A ≡ 0 (mod N).
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gmpy2
import pytest
from pycognito.aws_srp import AWSSRP, N_HEX, calculate_u, compute_hkdf, hex_to_long, pad_hex

from gateway.users import srp
from tests.npm import node_modules, run_node

POOL_ID = "eu-west-1_AbC123xyZ"
POOL = "AbC123xyZ"
USER = "5f1e7d2a-9c1b-4a57-8f0e-3b2d6c9a1e44"  # USER_ID_FOR_SRP: Cognito sends the sub-like name
PASSWORD = "correct horse battery staple"
# pycognito stamps its answers with datetime.utcnow(), deprecated from Python 3.12 on.
utcnow = pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning")


@dataclass(frozen=True)
class Challenge:
    """What the server keeps (b, the verifier) and what it sends (the rest)."""

    salt: int
    verifier: int
    b: int
    big_b: int
    secret_block: bytes

    def parameters(self) -> dict[str, str]:
        """ChallengeParameters of the PASSWORD_VERIFIER challenge, as the wire sends them."""
        return {
            "USER_ID_FOR_SRP": USER,
            "SALT": srp.pad_hex(self.salt),
            "SRP_B": format(self.big_b, "x"),
            "SECRET_BLOCK": base64.b64encode(self.secret_block).decode(),
        }

    def verify(self, big_a: int, answer: dict[str, str], now: float | None = None) -> bool:
        return srp.verify(
            POOL,
            USER,
            self.verifier,
            self.b,
            self.big_b,
            big_a,
            base64.b64decode(answer["PASSWORD_CLAIM_SECRET_BLOCK"]),
            answer["TIMESTAMP"],
            answer["PASSWORD_CLAIM_SIGNATURE"],
            time.time() if now is None else now,
        )


def new_challenge(salt: int | None = None, password: str = PASSWORD) -> Challenge:
    if salt is None:
        salt, verifier = srp.new_verifier(POOL, USER, password)
    else:
        verifier = srp.password_verifier(POOL, USER, password, salt)
    b, big_b = srp.challenge(verifier)
    return Challenge(salt, verifier, b, big_b, secrets.token_bytes(96))


def pycognito_client(password: str = PASSWORD) -> AWSSRP:
    # `client` is never called: only the challenge arithmetic runs (no boto3, no network).
    return AWSSRP("alice", password, POOL_ID, "app-client", client=object())


def pycognito_answer(client: AWSSRP, challenge: Challenge) -> tuple[int, dict[str, str]]:
    """(A, ChallengeResponses) exactly as pycognito's authenticate_user builds them."""
    auth_parameters = client.get_auth_params()
    answer = client.process_challenge(challenge.parameters(), auth_parameters)
    return srp.parse_hex(auth_parameters["SRP_A"]), answer


# --- The group and the encodings ---------------------------------------------------------


def test_the_group_is_rfc_3526s_3072_bit_prime_and_the_clients() -> None:
    # RFC 3526 §4 defines the prime from pi: 2^3072 - 2^3008 - 1 + 2^64 * ([2^2942 pi] + 1690314).
    with gmpy2.context(precision=3100):  # every digit of 2^2942 pi, the product too
        digits = int(gmpy2.floor(gmpy2.const_pi() * 2**2942))
    assert srp.N == 2**3072 - 2**3008 - 1 + 2**64 * (digits + 1690314)
    assert srp.N == hex_to_long(N_HEX) and srp.G == 2
    assert srp.K == pycognito_client().val_k


def test_pad_hex_as_authentication_helper_documents_it() -> None:
    # AuthenticationHelper.padHex's own examples, and the cases around them.
    assert srp.pad_hex(20) == "14" and srp.pad_hex(56) == "38"
    assert srp.pad_hex(236) == "00ec" and srp.pad_hex(200) == "00c8"
    assert srp.pad_hex(0) == "00" and srp.pad_hex(0xABC) == "0abc" and srp.pad_hex(0x7F) == "7f"
    assert srp.pad_hex(srp.N).startswith("00ffff") and len(srp.pad_hex(srp.N)) == 770
    with pytest.raises(ValueError):
        srp.pad_hex(-236)  # the JS gives "ff14"; SRP never hashes a negative number


def test_pad_hex_agrees_with_pycognito() -> None:
    for bits in (1, 4, 7, 8, 9, 127, 128, 255, 256, 3071, 3072):
        for value in (2**bits - 1, 2 ** (bits - 1), secrets.randbits(bits)):
            assert srp.pad_hex(value) == pad_hex(value)


@pytest.mark.parametrize("text", ["0x1f", "+1f", "-1f", " 1f", "1f ", "1_f", "", "1g", "٣"])
def test_parse_hex_takes_digits_only(text: str) -> None:
    with pytest.raises(ValueError):
        srp.parse_hex(text)


def test_parse_hex() -> None:
    assert srp.parse_hex("00ABcd") == 0xABCD
    assert srp.parse_hex(N_HEX) == srp.N
    with pytest.raises(ValueError):
        srp.parse_hex("1" * (srp.HEX_LIMIT + 1))


def test_pool_name_is_the_pool_id_after_the_underscore() -> None:
    assert srp.pool_name_of(POOL_ID) == POOL
    for bad in ("AbC123xyZ", "eu-west-1_", ""):
        with pytest.raises(ValueError):
            srp.pool_name_of(bad)


def test_challenge() -> None:
    _, verifier = srp.new_verifier(POOL, USER, PASSWORD)
    b1, big_b1 = srp.challenge(verifier)
    b2, big_b2 = srp.challenge(verifier)
    assert b1 != b2 and big_b1 != big_b2
    for b, big_b in ((b1, big_b1), (b2, big_b2)):
        assert 0 < big_b < srp.N and 0 < b < 2**srp.SECRET_BITS
        assert big_b == (srp.K * verifier + pow(srp.G, b, srp.N)) % srp.N
    for bad in (0, 1, srp.N, srp.N + 5):
        with pytest.raises(ValueError):
            srp.challenge(bad)


# --- TIMESTAMP ---------------------------------------------------------------------------


def test_timestamp_single_digit_day() -> None:
    when = datetime(2026, 12, 1, 11, 20, 0, tzinfo=UTC)
    assert srp.format_timestamp(when) == "Tue Dec 1 11:20:00 UTC 2026"
    assert AWSSRP.get_cognito_formatted_timestamp(when) == "Tue Dec 1 11:20:00 UTC 2026"
    assert srp.parse_timestamp("Tue Dec 1 11:20:00 UTC 2026") == when
    assert srp.format_timestamp(datetime(2027, 3, 7, 3, 4, 5, tzinfo=UTC)) == (
        "Sun Mar 7 03:04:05 UTC 2027"
    )
    assert srp.parse_timestamp("Thu Dec 31 23:59:59 UTC 2026") == datetime(
        2026, 12, 31, 23, 59, 59, tzinfo=UTC
    )


def test_timestamp_agrees_with_pycognito_over_a_year() -> None:
    start = datetime(2028, 1, 1, tzinfo=UTC).timestamp()  # a leap year
    for hours in range(0, 366 * 24, 7):
        when = datetime.fromtimestamp(start + hours * 3600 + 59, UTC)
        text = srp.format_timestamp(when)
        assert text == AWSSRP.get_cognito_formatted_timestamp(when)
        assert srp.parse_timestamp(text) == when


@pytest.mark.parametrize(
    "text",
    [
        "Tue Dec 01 11:20:00 UTC 2026",  # zero-padded day: no client sends it
        "Wed Dec 1 11:20:00 UTC 2026",  # wrong weekday for the date
        "Tue Dec  1 11:20:00 UTC 2026",  # asctime's space padding
        "Tue Dec 1 11:20:00 GMT 2026",
        "Tue Dec 1 11:20 UTC 2026",
        "Tue Dec 1 1:20:00 UTC 2026",
        "Tue Dec 1 24:00:00 UTC 2026",
        "Tue Dec 1 11:20:60 UTC 2026",
        "Mon Feb 30 11:20:00 UTC 2026",  # no such date
        "Tue Dez 1 11:20:00 UTC 2026",  # German month names from a de_DE strftime
        "tue dec 1 11:20:00 UTC 2026",
        "Tue Dec 1 11:20:00 UTC 2026 ",
        "Tue Dec 1 11:20:00 UTC 2026\n",
        "2026-12-01T11:20:00Z",
        "",
    ],
)
def test_malformed_timestamps_do_not_parse(text: str) -> None:
    with pytest.raises(ValueError):
        srp.parse_timestamp(text)


# --- pycognito: the client's math on our challenge -----------------------------------------


@utcnow
def test_pycognito_signs_in() -> None:
    challenge = new_challenge()
    big_a, answer = pycognito_answer(pycognito_client(), challenge)
    assert challenge.verify(big_a, answer)


@utcnow
@pytest.mark.parametrize(
    "salt",
    [
        0x80 << 120,  # high bit set: padHex puts "00" in front
        0x0F << 120,  # odd number of hex digits
        0x00FF << 112,  # a leading zero byte: shorter than 16 bytes
        1,
        secrets.randbits(128),
    ],
)
def test_pycognito_signs_in_with_salts_of_every_shape(salt: int) -> None:
    # pycognito hashes SALT as the string we send; the JS client re-pads the number. Sending
    # pad_hex(salt) makes them agree with each other and with our verifier.
    challenge = new_challenge(salt=salt)
    big_a, answer = pycognito_answer(pycognito_client(), challenge)
    assert challenge.verify(big_a, answer)


@utcnow
def test_pycognito_with_many_challenges() -> None:
    # u, S and B vary in length (leading zero bytes, high bits) from one sign-in to the next;
    # a padding slip shows up as an occasional refusal, so try a batch.
    salt, verifier = srp.new_verifier(POOL, USER, PASSWORD)
    for _ in range(12):
        b, big_b = srp.challenge(verifier)
        challenge = Challenge(salt, verifier, b, big_b, secrets.token_bytes(32))
        big_a, answer = pycognito_answer(pycognito_client(), challenge)
        assert challenge.verify(big_a, answer)


@utcnow
def test_wrong_password_is_refused() -> None:
    challenge = new_challenge()
    big_a, answer = pycognito_answer(pycognito_client("correct horse battery stapl3"), challenge)
    assert not challenge.verify(big_a, answer)


@utcnow
def test_tampered_answers_are_refused() -> None:
    challenge = new_challenge()
    big_a, answer = pycognito_answer(pycognito_client(), challenge)
    signature = base64.b64decode(answer["PASSWORD_CLAIM_SIGNATURE"])
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    bad_answers = [
        {**answer, "PASSWORD_CLAIM_SIGNATURE": base64.b64encode(flipped).decode()},
        {**answer, "PASSWORD_CLAIM_SIGNATURE": answer["PASSWORD_CLAIM_SIGNATURE"].rstrip("=")},
        {**answer, "PASSWORD_CLAIM_SIGNATURE": ""},
        {**answer, "PASSWORD_CLAIM_SIGNATURE": "\udcff"},
        {**answer, "PASSWORD_CLAIM_SECRET_BLOCK": base64.b64encode(b"another block").decode()},
    ]
    for bad in bad_answers:
        assert not challenge.verify(big_a, bad)
    assert not challenge.verify(big_a + 1, answer)  # another A
    # The right answer bound to another user or another pool does not pass either.
    now = time.time()
    block = challenge.secret_block
    args = (challenge.verifier, challenge.b, challenge.big_b, big_a, block, answer["TIMESTAMP"])
    signature_text = answer["PASSWORD_CLAIM_SIGNATURE"]
    assert srp.verify(POOL, USER, *args, signature_text, now)
    assert not srp.verify(POOL, USER + "x", *args, signature_text, now)
    assert not srp.verify("OtherPool", USER, *args, signature_text, now)


@utcnow
def test_an_answer_replayed_against_a_new_challenge_is_refused() -> None:
    first = new_challenge()
    big_a, answer = pycognito_answer(pycognito_client(), first)
    assert first.verify(big_a, answer)
    # Same user, same salt and verifier, same SECRET_BLOCK even: only b and B are new.
    b, big_b = srp.challenge(first.verifier)
    second = Challenge(first.salt, first.verifier, b, big_b, first.secret_block)
    assert not second.verify(big_a, answer)
    # Nor does the old answer pass with the new b and the old B (b is what S depends on).
    mixed = Challenge(first.salt, first.verifier, b, first.big_b, first.secret_block)
    assert not mixed.verify(big_a, answer)


@utcnow
def test_stale_and_future_timestamps_are_refused() -> None:
    challenge = new_challenge()
    big_a, answer = pycognito_answer(pycognito_client(), challenge)
    signed_at = srp.parse_timestamp(answer["TIMESTAMP"]).timestamp()
    window = srp.TIMESTAMP_WINDOW
    # Our clock, `now`, moves; the client's signed TIMESTAMP stays.
    assert challenge.verify(big_a, answer, now=signed_at + window)
    assert challenge.verify(big_a, answer, now=signed_at - window)
    assert not challenge.verify(big_a, answer, now=signed_at + window + 1)  # stale
    assert not challenge.verify(big_a, answer, now=signed_at - window - 1)  # from the future
    assert not challenge.verify(big_a, answer, now=signed_at + 86400)


def test_a_correctly_signed_malformed_timestamp_is_refused() -> None:
    # The client's own key (pycognito derives it) signs timestamps in other formats: each
    # signature is right, so the format alone refuses them.
    challenge = new_challenge()
    client = pycognito_client()
    key = client.get_password_authentication_key(
        USER, PASSWORD, challenge.big_b, srp.pad_hex(challenge.salt)
    )
    now = datetime(2026, 12, 1, 11, 20, 0, tzinfo=UTC).timestamp()
    for timestamp, accepted in [
        ("Tue Dec 1 11:20:00 UTC 2026", True),
        ("Tue Dec 01 11:20:00 UTC 2026", False),
        ("Tue Dec  1 11:20:00 UTC 2026", False),
        ("2026-12-01T11:20:00+00:00", False),
        ("Tue Dec 1 11:20:00 GMT 2026", False),
    ]:
        answer = {
            "TIMESTAMP": timestamp,
            "PASSWORD_CLAIM_SECRET_BLOCK": base64.b64encode(challenge.secret_block).decode(),
            "PASSWORD_CLAIM_SIGNATURE": srp.claim_signature(
                key, POOL, USER, challenge.secret_block, timestamp
            ),
        }
        assert challenge.verify(client.large_a_value, answer, now=now) is accepted, timestamp


@utcnow
@pytest.mark.parametrize("multiple", [0, 1, 2])
def test_a_zero_mod_n_is_refused(multiple: int) -> None:
    # A ≡ 0 (mod N) makes S = 0 whatever the password (RFC 5054 §2.5.4): an attacker who sends
    # A = 0, N or 2N and signs with the key of S = 0 (pycognito's own u and HKDF make it) would
    # sign in knowing no password at all.
    challenge = new_challenge()
    _, honest = pycognito_answer(pycognito_client(), challenge)
    big_a = multiple * srp.N
    u = calculate_u(big_a, challenge.big_b)
    forged_key = compute_hkdf(bytearray.fromhex(pad_hex(0)), bytearray.fromhex(pad_hex(u)))
    answer = {
        **honest,
        "PASSWORD_CLAIM_SIGNATURE": srp.claim_signature(
            forged_key, POOL, USER, challenge.secret_block, honest["TIMESTAMP"]
        ),
    }
    assert not challenge.verify(big_a, answer)
    assert srp.password_key(challenge.verifier, challenge.b, challenge.big_b, big_a) is None


def test_a_outside_the_group_is_refused() -> None:
    # Genuine clients send g^a mod N: a negative A, or A + N (≡ A, but hashed differently into
    # u), is someone else's arithmetic.
    challenge = new_challenge()
    client = pycognito_client()
    for big_a in (-client.large_a_value, client.large_a_value + srp.N):
        assert srp.password_key(challenge.verifier, challenge.b, challenge.big_b, big_a) is None


# --- amazon-cognito-identity-js under Node -----------------------------------------------

NPM_PACKAGE, NPM_VERSION = "amazon-cognito-identity-js", "6.3.21"

# What CognitoUser.authenticateUserDefaultAuth does between InitiateAuth and
# RespondToAuthChallenge, with the library's own AuthenticationHelper, BigInteger, DateHelper
# and the same Sha256: A, the HKDF, then the HMAC over the same concatenation. It also
# reports the library's N, k and padHex of the numbers it is given, to compare with ours.
CLIENT_JS = """
const lib = (name) => require("amazon-cognito-identity-js/lib/" + name).default;
const AuthenticationHelper = lib("AuthenticationHelper");
const BigInteger = lib("BigInteger");
const DateHelper = lib("DateHelper");
const { Sha256 } = require("@aws-crypto/sha256-js");
const { Buffer } = require("buffer");

const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const helper = new AuthenticationHelper(input.poolName);
helper.getLargeAValue((errA, aValue) => {
  if (errA) throw errA;
  const SRP_A = aValue.toString(16);  // as authParameters.SRP_A
  const p = input.challengeParameters;
  const username = p.USER_ID_FOR_SRP;
  helper.getPasswordAuthenticationKey(
    username, input.password, new BigInteger(p.SRP_B, 16), new BigInteger(p.SALT, 16),
    (errKey, hkdf) => {
      if (errKey) throw errKey;
      const dateNow = new DateHelper().getNowString();
      const concatBuffer = Buffer.concat([
        Buffer.from(input.poolName, "utf8"),
        Buffer.from(username, "utf8"),
        Buffer.from(p.SECRET_BLOCK, "base64"),
        Buffer.from(dateNow, "utf8"),
      ]);
      const awsCryptoHash = new Sha256(hkdf);
      awsCryptoHash.update(concatBuffer);
      const signatureString = Buffer.from(awsCryptoHash.digestSync()).toString("base64");
      process.stdout.write(JSON.stringify({
        SRP_A,
        challengeResponses: {
          USERNAME: username,
          PASSWORD_CLAIM_SECRET_BLOCK: p.SECRET_BLOCK,
          TIMESTAMP: dateNow,
          PASSWORD_CLAIM_SIGNATURE: signatureString,
        },
        N: helper.N.toString(16),
        k: helper.k.toString(16),
        padHex: input.padHex.map((h) => helper.padHex(new BigInteger(h, 16))),
      }));
    });
});
"""


@pytest.fixture(scope="session")
def cognito_js() -> Path:
    """node_modules holding the library (and its dependencies), installed once per version."""
    return node_modules(NPM_PACKAGE, NPM_VERSION)


def js_answer(
    modules: Path,
    challenge: Challenge,
    password: str,
    pad_hex_of: list[int] = [],  # noqa: B006
) -> dict[str, Any]:
    request = {
        "poolName": POOL,
        "password": password,
        "challengeParameters": challenge.parameters(),
        "padHex": [format(n, "x") for n in pad_hex_of],
    }
    answer: dict[str, Any] = run_node(modules, CLIENT_JS, request)
    return answer


def test_amazon_cognito_identity_js_signs_in(cognito_js: Path) -> None:
    challenge = new_challenge()
    samples = [0, 20, 56, 200, 236, 0xABC, 0x7F, 2**127, challenge.salt, challenge.big_b, srp.N]
    answer = js_answer(cognito_js, challenge, PASSWORD, samples)
    assert challenge.verify(srp.parse_hex(answer["SRP_A"]), answer["challengeResponses"])
    # The library's group, k and padHex are ours.
    assert int(answer["N"], 16) == srp.N and int(answer["k"], 16) == srp.K
    assert [h.lower() for h in answer["padHex"]] == [srp.pad_hex(n) for n in samples]


def test_amazon_cognito_identity_js_with_a_salt_that_needs_padding(cognito_js: Path) -> None:
    # A salt with its high bit set and one with a leading zero byte: the library re-pads the
    # number it parsed from SALT, so our pad_hex must be its padHex for x to agree.
    for salt in (0x80 << 120, 0x00FF << 112):
        challenge = new_challenge(salt=salt)
        answer = js_answer(cognito_js, challenge, PASSWORD)
        assert challenge.verify(srp.parse_hex(answer["SRP_A"]), answer["challengeResponses"])


def test_amazon_cognito_identity_js_wrong_password_is_refused(cognito_js: Path) -> None:
    challenge = new_challenge()
    answer = js_answer(cognito_js, challenge, PASSWORD.upper())
    assert not challenge.verify(srp.parse_hex(answer["SRP_A"]), answer["challengeResponses"])
