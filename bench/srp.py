"""The raw rate of the server's SRP arithmetic for Cognito's USER_SRP_AUTH: `srp.challenge`
(SRP_B) plus `srp.verify` (S, the HKDF, the claim HMAC) per sign-in, on one core, with no I/O.
It is the ceiling for the wire API's USER_SRP_AUTH (bench target: ≥ 0.8× this rate).

Each engine runs the same code (`gateway.users.srp`, its `_powmod` and `_powmod_sec`
swapped): Python's `pow` for both; "gmpy2", what the gateway runs (GMP's `powmod` for the
exponentiations by the single-use b, constant-time `powmod_sec` for v^u); and GMP's `powmod` or
`powmod_sec` for all three, to show what the choice costs.
The client's half (pycognito's AWSSRP, which must accept the same group) is computed between
the timed calls and not counted.

Times are the thread's CPU time (the work is single-threaded: one core), so other processes on
a shared machine slow the run but hardly change the rate; the engines take turns in each round
and the best round of each is reported.

    python bench/srp.py [--count 50] [--rounds 3] [--secret-bits 384]
"""

from __future__ import annotations

import argparse
import base64
import secrets
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gmpy2  # noqa: E402
from pycognito.aws_srp import AWSSRP  # noqa: E402

from gateway.users import srp  # noqa: E402

POOL_ID = "eu-west-1_BenchPool"
USER = "bench-user"
PASSWORD = "bench password"

Powmod = Callable[[int, int, int], int]


def _gmp(b: int, e: int, m: int) -> int:
    return int(gmpy2.powmod(b, e, m))


def _gmp_sec(b: int, e: int, m: int) -> int:
    return int(gmpy2.powmod_sec(b, e, m))


ENGINES: dict[str, tuple[Powmod, Powmod]] = {  # (_powmod, _powmod_sec)
    "pow": (pow, pow),
    "gmpy2": (_gmp, _gmp_sec),
    "gmpy2 powmod only": (_gmp, _gmp),
    "gmpy2 powmod_sec only": (_gmp_sec, _gmp_sec),
}


def run(engine: str, count: int) -> tuple[float, float]:
    """CPU seconds spent in challenge and in verify over `count` sign-ins, all accepted."""
    srp._powmod, srp._powmod_sec = ENGINES[engine]  # type: ignore[assignment]
    pool = srp.pool_name_of(POOL_ID)
    salt, verifier = srp.new_verifier(pool, USER, PASSWORD)
    client = AWSSRP(USER, PASSWORD, POOL_ID, "bench", client=object())
    big_a = client.large_a_value
    in_challenge = in_verify = 0.0
    for _ in range(count):
        t0 = time.thread_time()
        b, big_b = srp.challenge(verifier)
        in_challenge += time.thread_time() - t0
        block = secrets.token_bytes(64)
        parameters = {
            "USER_ID_FOR_SRP": USER,
            "SALT": srp.pad_hex(salt),
            "SRP_B": format(big_b, "x"),
            "SECRET_BLOCK": base64.b64encode(block).decode(),
        }
        with warnings.catch_warnings():  # pycognito's datetime.utcnow() on Python >= 3.12
            warnings.simplefilter("ignore", DeprecationWarning)
            answer = client.process_challenge(parameters, {"USERNAME": USER})
        now = time.time()
        t0 = time.thread_time()
        ok = srp.verify(
            pool,
            USER,
            verifier,
            b,
            big_b,
            big_a,
            block,
            answer["TIMESTAMP"],
            answer["PASSWORD_CLAIM_SIGNATURE"],
            now,
        )
        in_verify += time.thread_time() - t0
        assert ok, "a correct answer was refused"
    return in_challenge, in_verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=50, help="sign-ins per engine and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best is reported")
    parser.add_argument("--secret-bits", type=int, default=srp.SECRET_BITS, help="size of b")
    args = parser.parse_args()
    srp.SECRET_BITS = args.secret_bits  # type: ignore[misc]
    print(f"SRP server arithmetic, one core, b of {args.secret_bits} bits, {args.count} sign-ins")
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for engine in ENGINES:
            took = run(engine, args.count)
            if engine not in best or sum(took) < sum(best[engine]):
                best[engine] = took
    base = args.count / sum(best["pow"])
    for engine, (challenge_s, verify_s) in best.items():
        rate = args.count / (challenge_s + verify_s)
        print(
            f"  {engine:<21} {rate:7.1f} sign-ins/s"
            f"   (challenge {1000 * challenge_s / args.count:5.2f} ms,"
            f" verify {1000 * verify_s / args.count:5.2f} ms)   {rate / base:4.1f}x pow"
        )


if __name__ == "__main__":
    main()
