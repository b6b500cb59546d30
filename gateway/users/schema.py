"""The rules an account's attributes follow, whoever writes them (sign-up, the account's own
changes, an administrator through the user-pool API or the CLI): `user_pool.attributes`
declares the custom ones and their patterns and lengths; phone numbers are E.164."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from gateway.settings import UserPoolSettings

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def check_update(pool: UserPoolSettings, given: Mapping[str, str]) -> tuple[str, str] | None:
    """What is wrong with changing these attributes of an account, if anything: (the first
    attribute at fault, why). A custom attribute must be one `user_pool.attributes` declares,
    a phone number is in international format, declared attributes keep their pattern and
    length, and a required one cannot be emptied. The same rules as at sign-up."""
    declared = {attribute.name: attribute for attribute in pool.attributes}
    for name, raw in given.items():
        value = unicodedata.normalize("NFKC", raw).strip()
        if name.startswith("custom:") and name not in declared:
            return name, "not an attribute of this user pool"
        if name == "phone_number" and value and not E164.match(value):
            return name, "use the international format, e.g. +33612345678"
        attribute = declared.get(name)
        if attribute is None:
            continue
        if not value and attribute.required:
            return name, "a required attribute cannot be removed"
        if len(value) > attribute.max_length:
            return name, f"at most {attribute.max_length} characters"
        if value and attribute.pattern and not re.fullmatch(attribute.pattern, value):
            return name, "not in the expected format"
    return None
