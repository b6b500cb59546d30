#!/usr/bin/env bash
# One command to try Cognate: venv, install, then the gateway with its embedded demo settings
# (memory store, a demo client, a demo user; the URLs and the password are printed at start).
# Extra arguments go to `cognate serve` (e.g. --port 9000, or --config config/gateway.example.yaml).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh ""   # no extras (and not this script's own arguments)
exec .venv/bin/cognate serve "$@"
