"""SAML ACS validations per second on one worker (one process, its default pool): the full
check of a signed Response (strict parse, shape checks, pysaml2's protocol checks, the XML
signature with the pinned certificate) with Cognate's in-process libxmlsec1 backend, against
pysaml2's default of running the `xmlsec1` binary per signature check — the baseline, measured
in the same run.

The Response comes from the test suite's pysaml2 IdP (signed assertion and response, the common
AD FS / Entra ID setup). Validation runs as at the ACS but without the replay cache (one Redis
SET, measured elsewhere), so one Response can be checked again and again.

    .venv/bin/python bench/saml.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.connectors.saml import SamlConnector  # noqa: E402
from gateway.pool import BoundedPool  # noqa: E402
from gateway.settings_connectors import SamlConnectorSettings  # noqa: E402
from gateway.store.memory import MemoryStore  # noqa: E402
from tests.federation.saml_idp import SamlIdP, encode, make_key_pair  # noqa: E402

ISSUER = "http://127.0.0.1:9"


async def measure(
    connector: SamlConnector, response: str, seconds: float, concurrency: int
) -> dict[str, float]:
    """`concurrency` ACS requests in flight at once (as wrk's connections elsewhere in bench/),
    through the connector's bounded pool, for `seconds`."""
    await connector.validate(response, None, identity_pool=True)  # warm up, and prove it passes
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await connector.validate(response, None, identity_pool=True)
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cognate-bench-saml-"))
    key, cert = make_key_pair(folder, "sp")
    idp = SamlIdP(folder)
    idp.server.start()
    results: dict[str, dict[str, float]] = {}
    try:
        connectors = {}
        for crypto in ("xmlsec1", "inprocess"):
            config = SamlConnectorSettings(
                id=f"bench-{crypto}",
                type="saml",
                name=crypto,
                idp_metadata=f"{idp.url}/metadata",
                sp_key=key.read_text(),
                sp_cert=cert.read_text(),
                crypto=crypto,  # type: ignore[arg-type]
            )
            # One gateway process with its default pool (one thread per usable CPU).
            connectors[crypto] = SamlConnector(config, ISSUER, MemoryStore(), BoundedPool("b"))
        metadata = [await c.sp_metadata() for c in connectors.values()]
        idp.trust_sps(metadata)
        for crypto, connector in connectors.items():
            acs = connector.acs_url
            response = encode(idp.respond(None, acs))
            results[crypto] = await measure(connector, response, args.seconds, args.concurrency)
            await connector.close()
    finally:
        idp.server.stop()
    baseline = results["xmlsec1"]["per_s"]
    print(f"{'SAML ACS validation':<34}{'per s':>10}{'p50 ms':>10}{'p99 ms':>10}{'ratio':>8}")
    for crypto, figures in results.items():
        label = {"xmlsec1": "xmlsec1 binary (pysaml2 default)"}.get(crypto, "in-process libxmlsec1")
        print(
            f"{label:<34}{figures['per_s']:>10.0f}{figures['p50_ms']:>10.2f}"
            f"{figures['p99_ms']:>10.2f}{figures['per_s'] / baseline:>7.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(uvloop.run(main()))  # the event loop a worker runs (`cognate serve`)
