"""Stock npm packages the tests drive, installed once per pinned version from the registry
into ~/.cache/cognate-tests (no network beyond the npm registry; never a browser download)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

CACHE = Path.home() / ".cache" / "cognate-tests"


def node_modules(package: str, version: str, *extra: str) -> Path:
    """`node_modules` holding `package@version` (and `extra` packages, `name@version`)."""
    name = f"npm-{package}-{version}" + "".join(f"+{e.replace('/', '_')}" for e in extra)
    prefix = CACHE / name
    modules = prefix / "node_modules"
    wanted = [(package, version), *(tuple(e.rsplit("@", 1)) for e in extra)]
    if not all((modules / name / "package.json").exists() for name, _ in wanted):
        npm = shutil.which("npm")
        assert npm, "Node 20 and npm are on the machine (FIELD-TESTS.md)"
        subprocess.run(  # noqa: S603
            [npm, "install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund"]
            + ["--prefix", str(prefix), f"{package}@{version}", *extra],
            check=True,
            capture_output=True,
            timeout=600,
        )
    for name, pinned in wanted:
        found = json.loads((modules / name / "package.json").read_text())["version"]
        assert found == pinned, (name, found, pinned)
    return modules


def run_node(
    modules: Path,
    script: str,
    request: Any,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> Any:
    """Run `script` (CommonJS, reading its JSON request on stdin) with `modules` on its path
    (and `env` added to its environment, e.g. NODE_EXTRA_CA_CERTS); its JSON answer on
    stdout."""
    node = shutil.which("node")
    assert node, "Node 20 is on the machine (FIELD-TESTS.md)"
    done = subprocess.run(  # noqa: S603
        [node, "-e", script],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {}), "NODE_PATH": str(modules)},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)
