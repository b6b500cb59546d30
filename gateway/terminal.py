"""What the command line prints for people to read: values an attacker may have chosen, escaped
so a terminal shows them as they are (`terminal_safe`), and a one-line progress report
(`Progress`). What does not live here: the commands themselves (`gateway.admin`, `gateway.cli`).
"""

from __future__ import annotations

import sys
import time
import unicodedata
from collections.abc import Mapping

# Characters that change how a terminal shows what follows: controls (ESC sequences, CR that
# overwrites the line) and the bidirectional overrides and isolates (U+202A-U+202E,
# U+2066-U+2069, the marks) that make "moc.elpmaxe@eve" read as an honest address.
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def terminal_safe(value: object, limit: int = 200) -> str:
    """An audit value as the terminal should show it: what a sign-in form or an IdP let an
    attacker choose (names, e-mails, reasons) with every control, bidi and other format
    character escaped (\\u202e), and cut visibly after `limit` characters."""
    text = str(value)
    cut = len(text) - limit
    if cut > 0:
        text = text[:limit]
    shown = "".join(
        f"\\u{ord(c):04x}"
        if c in _BIDI or unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
        else "\\\\"  # a typed backslash cannot pass for an escape
        if c == "\\"
        else c
        for c in text
    )
    return f"{shown}…[{cut} more]" if cut > 0 else shown


class Progress:
    """A one-line progress report on stderr, refreshed at most ten times a second."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.last = 0.0

    def __call__(self, counts: Mapping[str, int], final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < 0.1:
            return
        self.last = now
        summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if k != "lines")
        print(f"\r{self.verb}: {summary}", end="\n" if final else "", file=sys.stderr, flush=True)
