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


def wait_of(seconds: int) -> Phrase:
    """How long until a limit's window ends, for people: seconds under a minute, then whole
    minutes (rounded up: never "try again in 0 minutes") under two hours, then hours."""
    if seconds < 60:
        return Phrase("a second") if seconds <= 1 else Phrase("%(n)s seconds", n=seconds)
    minutes = -(-seconds // 60)
    if minutes < 120:  # "61 minutes", not "2 hours"
        return Phrase("a minute") if minutes == 1 else Phrase("%(n)s minutes", n=minutes)
    hours = -(-minutes // 60)
    return Phrase("%(n)s hours", n=hours)
