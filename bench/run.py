"""Every benchmark of the project in one go, against one bare-Starlette baseline measured in
the same run: OP (discovery, JWKS, client_credentials, code exchange, refresh), identity pools
(GetId, cached credentials), edges (forward-auth, password sign-in, with the raw argon2id rate),
federation (upstream OIDC callbacks), terminals and workloads (device polling, token exchange
to AWS credentials). SAML ACS validations: bench/saml.py.
Prints a table and writes bench/results/all.json and bench/results/all.png.

    bench/run [--duration 5] [--connections 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import edge, federation, identity, oidc, workloads  # noqa: E402
from bench.harness import BASELINE, need_wrk, report  # noqa: E402


def chart(results: dict[str, dict[str, Any]], path: Path) -> None:
    """A horizontal bar chart of each scenario's ratio to the baseline, labelled with req/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baseline = results[BASELINE]["rps"]
    names = list(results)[::-1]
    ratios = [results[n]["rps"] / baseline for n in names]
    figure, axes = plt.subplots(figsize=(10, 0.45 * len(names) + 1.2))
    bars = axes.barh(
        names, ratios, color=["#9aa5b1" if n == BASELINE else "#2f5bea" for n in names]
    )
    for bar, name in zip(bars, names, strict=True):
        axes.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f"  {results[name]['rps']:,.0f}/s  p99 {results[name]['p99_ms']:.1f} ms",
            va="center",
            fontsize=8,
        )
    axes.set_xlabel("throughput relative to a bare Starlette JSON endpoint (one worker)")
    axes.set_xlim(0, max(ratios) * 1.45)
    axes.set_title("Cognate benchmarks")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    need_wrk()
    results = edge.run(args.duration, args.connections, baseline=True)
    results |= oidc.run(args.duration, args.connections, baseline=False)
    results |= identity.run(args.duration, args.connections, baseline=False)
    results |= federation.run(args.duration, args.connections, baseline=False)
    results |= workloads.run(args.duration, args.connections, baseline=False)
    ordered = {BASELINE: results.pop(BASELINE), **results}
    report(
        ordered,
        args.out / "all.json",
        {"connections": args.connections, "duration_s": args.duration},
    )
    chart(ordered, args.out / "all.png")
    print(f"written: {args.out / 'all.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
