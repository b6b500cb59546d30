"""Translatable text that travels through layers which must not know about languages.

A `Phrase` is an English template with named values. It *is* a `str` (the English text, so
logs, the CLI and `str(exc)` keep working unchanged), and it remembers its template and values,
so the hosted pages can look the template up in a catalogue and format it in the reader's
language (`gateway.ui.i18n`). Values may themselves be phrases, or lists of phrases (joined
with ", "), which are translated too:

    reason = Phrase("must be at least %(count)s characters", count=8)
    Phrase("Choose another password: it %(reason)s.", reason=reason)

Nothing here formats with f-strings: a message built by an f-string can never be translated.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

# The hosted pages' catalogues (`gateway.ui.i18n`), English text → translation, one per language.
LOCALES = Path(__file__).parent / "ui" / "locales"


def languages() -> list[str]:
    """The languages the hosted pages can speak: English, and one per catalogue."""
    return ["en", *sorted(p.stem for p in LOCALES.glob("*.json"))]


class Phrase(str):
    """English text from `template % values`, translatable later by its template."""

    template: str
    values: dict[str, object]

    def __new__(cls, template: str, **values: object) -> Phrase:
        english = template % {k: render(v, str) for k, v in values.items()} if values else template
        phrase = super().__new__(cls, english)
        phrase.template = template
        phrase.values = values
        return phrase


def render(value: object, translate: Callable[[str], str]) -> str:
    """A value for a template: a phrase (or plain text) through `translate`, a list of them
    joined with ", ", anything else as `str`."""
    if isinstance(value, list | tuple):
        return ", ".join(render(v, translate) for v in value)
    if isinstance(value, Phrase):
        return translate(value)
    return str(value)
