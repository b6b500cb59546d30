"""Cookie rules for apps behind forward-auth: which parent domain a session cookie may be
shared with, and the Cookie header an app gets (the client's cookies without Cognate's own).

Not here: setting and reading the gateway's cookies (`gateway.ui.pages`), sessions themselves
(`gateway.sessions`).
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cache

from publicsuffixlist import PublicSuffixList


@cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list the package ships: no download at run time


def registrable_domain(value: str) -> str:
    """`sessions.cookie_domain` normalised (lower case, no leading dot), or ValueError.

    A cookie for a public suffix (`com`, `co.uk`, `github.io`) would reach every site under it,
    and browsers refuse to set one anyway; an IP address has no subdomains to share with."""
    domain = value.strip().lower().lstrip(".")
    labels = domain.split(".")
    if not domain or any(not label for label in labels) or len(domain) > 253:
        raise ValueError(f"{value!r} is not a domain name (e.g. example.com)")
    if all(label.isdigit() for label in labels) or ":" in domain:
        raise ValueError(f"{value!r} is an address; a cookie domain must be a name")
    if _suffixes().is_public(domain):
        raise ValueError(
            f"{value!r} is a public suffix: a cookie for it would reach every site under it "
            "(use your own domain, e.g. example.com)"
        )
    return domain


def without_cookies(header: str, names: Collection[str]) -> str:
    """A Cookie header without the cookies called `names` (empty when nothing is left)."""
    # The name as cookie parsers read it (`name = value` too), so what authenticates is
    # always what is removed.
    kept = [
        part.strip()
        for part in header.split(";")
        if part.strip() and part.split("=", 1)[0].strip() not in names
    ]
    return "; ".join(kept)
