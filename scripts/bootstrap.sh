#!/usr/bin/env bash
# Creates .venv and installs Cognate into it (editable, with dev tools when asked).
# Sourced by scripts/run.sh and scripts/test.sh; safe to run again (it only installs what changed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Cognate needs Python >= 3.11 (found: $("$PY" --version 2>&1))." >&2
  exit 1
fi

apt_install() {
  # Installs Debian packages when we are root on Debian; otherwise says what is missing.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if [ -z "${COGNATE_APT_UPDATED:-}" ]; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
      export COGNATE_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    echo "Please install these Debian packages first: $*" >&2
    exit 1
  fi
}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv 2>/dev/null || { rm -rf .venv; apt_install python3-venv; "$PY" -m venv .venv; }
fi

extras=${1:-}
stamp=.venv/.installed${extras:+-$extras}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
