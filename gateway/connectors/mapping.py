"""Attribute mapping: what an upstream says about a user → Cognate's canonical profile.

A connector's mapping is `canonical name → rule`, where a rule is either

- a source name (`mail`, `urn:oid:0.9.2342.19200300.100.1.3`, `login`): a rename that keeps
  every value for list claims (`groups`) and the first value otherwise; or
- an expression with `{source}` placeholders and literal text, e.g. `"{givenName} {sn}"` or
  `"{department}/{title}"`: a join of the first value of each source. A missing source makes
  the whole expression absent (never `"Ada None"`). Nothing else is evaluated: no filters, no
  code (the mapping is written by an operator but fed by an IdP).

Canonical names: email, email_verified, name, given_name, family_name, preferred_username,
picture, locale, groups; any other name lands as a custom claim. `defaults` (per connector type)
apply where the operator's mapping says nothing.

Example (a SAML IdP that sends OIDs):

    attribute_mapping:
      email: urn:oid:0.9.2342.19200300.100.1.3
      name: "{urn:oid:2.5.4.42} {urn:oid:2.5.4.4}"
      groups: memberOf
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
LIST_CLAIMS = frozenset({"groups"})

# Well-known SAML attribute names (friendly names, OIDs of eduPerson/inetOrgPerson, and the
# claim URIs of AD FS / Entra ID), first match wins.
SAML_DEFAULTS: dict[str, tuple[str, ...]] = {
    "email": (
        "email",
        "mail",
        "emailAddress",
        "urn:oid:0.9.2342.19200300.100.1.3",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    ),
    "given_name": (
        "given_name",
        "givenName",
        "urn:oid:2.5.4.42",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
    ),
    "family_name": (
        "family_name",
        "sn",
        "surname",
        "urn:oid:2.5.4.4",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
    ),
    "name": (
        "name",
        "displayName",
        "cn",
        "urn:oid:2.16.840.1.113730.3.1.241",
        "http://schemas.microsoft.com/identity/claims/displayname",
    ),
    "preferred_username": ("preferred_username", "uid", "urn:oid:0.9.2342.19200300.100.1.1"),
    "groups": (
        "groups",
        "memberOf",
        "isMemberOf",
        "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    ),
    "locale": ("locale", "preferredLanguage", "urn:oid:2.16.840.1.113730.3.1.39"),
}


def _values(source: Mapping[str, Any], name: str) -> list[Any]:
    value = source.get(name)
    if value is None or value == "" or value == []:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def apply_rule(source: Mapping[str, Any], rule: str, as_list: bool = False) -> Any:
    """The value one rule yields from `source`, or None when its sources are absent."""
    if _PLACEHOLDER.search(rule):
        parts: list[str] = []
        position = 0
        for match in _PLACEHOLDER.finditer(rule):
            values = _values(source, match.group(1))
            if not values:
                return None
            parts.append(rule[position : match.start()])
            parts.append(str(values[0]))
            position = match.end()
        parts.append(rule[position:])
        joined = "".join(parts)
        return [joined] if as_list else joined
    values = _values(source, rule)
    if not values:
        return None
    return [str(v) for v in values] if as_list else values[0]


def map_attributes(
    source: Mapping[str, Any],
    rules: Mapping[str, str],
    defaults: Mapping[str, tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """The canonical profile from `source` by the operator's `rules`, then `defaults`."""
    profile: dict[str, Any] = {}
    for canonical, candidates in (defaults or {}).items():
        for name in candidates:
            value = apply_rule(source, name, canonical in LIST_CLAIMS)
            if value is not None:
                profile[canonical] = value
                break
    for canonical, rule in rules.items():
        value = apply_rule(source, rule, canonical in LIST_CLAIMS)
        if value is not None:
            profile[canonical] = value
    return profile
