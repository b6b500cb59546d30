"""The floor under issue 20's "token exchange → AWS credentials (cached) ≥ 0.5× cached
GetCredentialsForIdentity": how much of what an exchange must do has to go before its pairs
reach the target, on this stack, measured as bench/workloads.py measures the gateway.

A pair is two requests (the exchange, then GetCredentialsForIdentity with the ID token it
returned) against one in the reference, so the pairs reach 0.5× only if the two together cost
no more than two cached GetCredentialsForIdentity requests. This runs
`bench/workloads.py --exchange-only` (pairs, and the exchange alone, each alternating with the
reference, median of three rounds; by rate, and by the gateway's CPU per request, which drifts
far less) on a copy of this checkout's HEAD patched with
`bench/exchange_floor.patch`, which lets `COGNATE_BENCH_FLOOR` take parts out of the
exchange:

- `verify`: the subject token's signature is not checked at all (its claims are read);
- `sign`: the ID token is signed by hand (JSON, base64url, one ECDSA signature) instead of
  through joserfc;
- `jti`: replay is not tracked (no SET NX of the token's jti: one Redis round trip);
- `audit`: no audit entries (token_exchange.accepted and token.issued, both deferred);
- `lean`: none of the exchange's own code runs after client authentication; twenty-odd lines
  (`lean_exchange` in the patch) do what it must, for the bench's one rule: the subject
  token's RS256 signature checked with `cryptography` and its issuer's key (no joserfc), its
  issuer, audience, lifetime, sub and claims checked, its jti spent (SET NX), the workload's
  identity, and an ES256 ID token signed by hand and remembered as the product does. The
  token endpoint around it (form, client authentication, metrics, `token.issued`) and the
  server stay the gateway's. It is generous to the exchange: no `nbf` or at-most-a-day
  check, the issuer's key kept by kid for good, no `token_exchange.accepted` entry;
- `lean,crypto`: that, with neither signature computed at all (the subject token's not
  checked, the ID token's a constant): what an exchange costs without its cryptography.

Each knob acts wherever its code runs (`sign` on every ES256 token, `audit` on every grant's
`token.issued`, `verify` on identity pools' `oidc` logins too, `jti` on the "no jti" refusal
too); of the bench's scenarios only the exchange reaches them. Without `lean`, everything
else — the server, routing, middleware, the form, client authentication, the trust rules,
the identity, the GetCredentialsForIdentity half and the reference — is the gateway's own.
The issue requires the signature check and the replay tracking (and the audit stream is the
product's): a configuration that leaves any of them out is no product, only a measure of
what they cost; `lean` keeps both.

    python bench/exchange_floor.py [--duration 5] [--connections 8] [--only verify,sign]

2–4 minutes per configuration (minting the RS256 subject tokens takes about half).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATCH = ROOT / "bench" / "exchange_floor.patch"
CONFIGURATIONS = [
    "",  # the gateway as it is
    "sign",
    "verify,sign",
    "verify,sign,jti",
    "sign,jti,audit",  # all but the signature check
    "verify,sign,audit",  # all but the replay tracking
    "verify,sign,jti,audit",
    "lean",  # every required check, in the least code
    "lean,crypto",  # and without the two signatures
]
RATIO = re.compile(
    r"^(token exchange[^:]*): ([0-9.]+)x .*\(median of rounds ([0-9., ]+);.*"
    r"in CPU per request ([0-9.]+)x \(rounds ([0-9., ]+)\)"
)


def checkout(tree: Path) -> None:
    """A copy of HEAD at `tree` with the floor patch applied (sharing this checkout's venv)."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), "HEAD"],
        check=True,
    )
    applied = subprocess.run(
        ["git", "-C", str(tree), "apply", str(PATCH)],
        capture_output=True,
        text=True,
    )
    if applied.returncode:
        raise SystemExit(
            f"bench/exchange_floor.patch no longer applies to HEAD ({applied.stderr.strip()}): "
            "redo its changes by hand (see this file's docstring) and regenerate it"
        )
    (tree / ".venv").symlink_to(ROOT / ".venv")


def measure(tree: Path, parts: str, duration: int, connections: int) -> dict[str, list[str]]:
    """The pair's and the exchange alone's ratios in one bench/workloads.py run: by rate, and
    by the gateway's CPU per request (each with its rounds)."""
    env = {**os.environ, "COGNATE_BENCH_FLOOR": parts}
    done = subprocess.run(
        [
            sys.executable,
            "bench/workloads.py",
            "--exchange-only",
            "--duration",
            str(duration),
            "--connections",
            str(connections),
            "--json",
            str(tree / "floor.json"),
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(
            f"bench/workloads.py failed with {parts or 'nothing'} removed:\n{done.stderr}"
        )
    found = {}
    for line in done.stderr.splitlines():
        match = RATIO.match(line)
        if match:
            found[match[1]] = [
                f"{float(match[2]):.2f}x ({match[3]})",
                f"{float(match[4]):.2f}x ({match[5]})",
            ]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--only", action="append", help="one configuration (parts removed, comma-separated)"
    )
    args = parser.parse_args()
    configurations = args.only or CONFIGURATIONS
    with tempfile.TemporaryDirectory(prefix="cognate-floor-") as folder:
        tree = Path(folder) / "tree"
        try:  # the worktree goes however this ends (a patch that fails, ^C)
            checkout(tree)
            rows = []
            for parts in configurations:
                print(f"measuring with {parts or 'nothing'} removed…", file=sys.stderr)
                found = measure(tree, parts, args.duration, args.connections)
                rows.append((parts or "nothing (the gateway)", found))
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                check=False,
            )
    print(
        f"\n{'removed from the exchange':24} {'pairs: rate (target 0.5x)':26} {'pairs: CPU':26} "
        f"{'exchange alone: rate':26} exchange alone: CPU"
    )
    for name, found in rows:
        pairs = next((v for k, v in found.items() if "pairs" in k), ["?", "?"])
        alone = next((v for k, v in found.items() if "pairs" not in k), ["?", "?"])
        print(f"{name:24} {pairs[0]:26} {pairs[1]:26} {alone[0]:26} {alone[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
