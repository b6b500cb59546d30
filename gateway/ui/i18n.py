"""Languages of the hosted pages: English (the source strings) and the catalogues in
`locales/<lang>.json` (English text → translation). A page speaks the first of the OIDC
`ui_locales` (a query parameter, or remembered on the flow), then `Accept-Language`, that the
deployment offers (`ui.languages`); anything missing from a catalogue stays in English.

Templates call `_("Sign in")`, or `_("to continue to %(name)s", name=client)` with arguments
(the translation is formatted, then autoescaped like any value).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from pathlib import Path

LOCALES = Path(__file__).parent / "locales"

Translate = Callable[..., str]


@functools.cache
def catalogue(language: str) -> dict[str, str]:
    path = LOCALES / f"{language}.json"
    if language == "en" or not path.is_file():
        return {}
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


def available() -> list[str]:
    return ["en", *sorted(p.stem for p in LOCALES.glob("*.json"))]


def choose(offered: Iterable[str], ui_locales: str | None, accept_language: str | None) -> str:
    """The language to speak: ui_locales first, then Accept-Language (by q), then the first
    offered."""
    offered = list(offered)
    wanted: list[str] = (ui_locales or "").split()
    weighted: list[tuple[float, str]] = []
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag:
            weighted.append((quality, tag))
    wanted += [tag for _, tag in sorted(weighted, key=lambda item: -item[0])]
    for tag in wanted:
        base = tag.lower().split("-")[0]
        if base in offered:
            return base
    return offered[0] if offered else "en"


def translator(language: str) -> Translate:
    table = catalogue(language)

    def translate(text: str, **values: object) -> str:
        translated = table.get(text, text)
        return translated % values if values else translated

    return translate
