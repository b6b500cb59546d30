"""Languages of the hosted pages: English (the source strings) and the catalogues in
`locales/<lang>.json` (English text → translation). A page speaks the first of the OIDC
`ui_locales` (a query parameter, or remembered on the flow), then `Accept-Language`, that the
deployment offers (`ui.languages`); anything missing from a catalogue stays in English.

Templates call `_("Sign in")`, or `_("to continue to %(name)s", name=client)` with arguments
(the translation is formatted, then autoescaped like any value). Messages made elsewhere
(password policy, form checks) are `gateway.text.Phrase`s: `_(error)` translates them too.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable

from gateway.text import LOCALES, Phrase, render

Translate = Callable[..., str]


@functools.cache
def catalogue(language: str) -> dict[str, str]:
    path = LOCALES / f"{language}.json"
    if language == "en" or not path.is_file():
        return {}
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


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
    """`_` of the templates: a catalogue lookup, then `%` formatting with `values`. A `Phrase`
    (an error message built in another layer) is looked up by its template and formatted with
    its own values, each translated in turn when it is a phrase too."""
    table = catalogue(language)

    def translate(text: str, **values: object) -> str:
        if isinstance(text, Phrase) and not values:
            template, values = text.template, text.values
        else:
            template = str(text)
        translated = table.get(template, template)
        if not values:
            return translated
        return translated % {k: render(v, translate) for k, v in values.items()}

    return translate
