"""The bench's tools still fit the code they measure."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_exchange_floor_patch_applies_to_this_checkout() -> None:
    """bench/exchange_floor.py measures a patched copy of HEAD: a change to the lines the patch
    touches must regenerate it (apply it by hand in a copy, redo what no longer fits, `git
    diff`), or the floor would be measured on nothing."""
    checked = subprocess.run(
        ["git", "apply", "--check", "bench/exchange_floor.patch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
