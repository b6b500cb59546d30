"""Role choice (Cognito's rules) and session naming (SECURITY-TESTS F44, F45)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.credentials.roles import choose_role, rule_matches
from gateway.credentials.vendor import session_name
from gateway.errors import CognitoError
from gateway.settings import IdentityPoolSettings, MappingRuleSettings

ACCOUNT = "arn:aws:iam::123456789012:role/"
POOL = "us-east-1:11111111-2222-4333-8444-555555555555"


def pool(**changes: Any) -> IdentityPoolSettings:
    return IdentityPoolSettings.model_validate(
        {
            "id": POOL,
            "name": "p",
            "allow_unauthenticated": True,
            "roles": {"authenticated": ACCOUNT + "users", "unauthenticated": ACCOUNT + "guests"},
            **changes,
        }
    )


@pytest.mark.parametrize(
    ("match_type", "value", "claim", "expected"),
    [
        ("Equals", "paid", "paid", True),
        ("Equals", "paid", "paid-not", False),
        ("Equals", "true", True, True),
        ("Equals", "b", ["a", "b"], True),
        ("Contains", "@corp", "ada@corp.example", True),
        ("Contains", "x", "abc", False),
        ("StartsWith", "admin", "admin-7", True),
        ("StartsWith", "admin", "x-admin", False),
        ("NotEqual", "free", "paid", True),
        ("NotEqual", "free", "free", False),
        ("NotEqual", "free", None, False),  # a missing claim matches nothing
    ],
)
def test_match_types(match_type: str, value: str, claim: Any, expected: bool) -> None:
    rule = MappingRuleSettings(
        claim="c",
        match_type=match_type,  # type: ignore[arg-type]
        value=value,
        role_arn=ACCOUNT + "r",
    )
    assert rule_matches(rule, {} if claim is None else {"c": claim}) is expected


def test_first_matching_rule_wins_then_default_or_deny() -> None:
    rules = {
        "type": "Rules",
        "rules": [
            {"claim": "dept", "match_type": "Equals", "value": "ops", "role_arn": ACCOUNT + "ops"},
            {"claim": "dept", "match_type": "StartsWith", "value": "o", "role_arn": ACCOUNT + "o"},
        ],
    }
    p = pool(role_mappings={"idp": rules})
    assert choose_role(p, "idp", {"dept": "ops"}) == ACCOUNT + "ops"
    assert choose_role(p, "idp", {"dept": "other"}) == ACCOUNT + "o"
    assert choose_role(p, "idp", {"dept": "sales"}) == ACCOUNT + "users"
    deny = pool(role_mappings={"idp": {**rules, "ambiguous_role_resolution": "Deny"}})
    with pytest.raises(CognitoError) as caught:
        choose_role(deny, "idp", {"dept": "sales"})
    assert caught.value.type_name == "NotAuthorizedException"
    # Another provider is not governed by that mapping.
    assert choose_role(deny, "other", {}) == ACCOUNT + "users"


def test_token_mapping_uses_preferred_role_and_roles() -> None:
    p = pool(role_mappings={"up": {"type": "Token", "ambiguous_role_resolution": "Deny"}})
    roles = [ACCOUNT + "a", ACCOUNT + "b"]
    assert (
        choose_role(p, "up", {"cognito:roles": roles, "cognito:preferred_role": ACCOUNT + "b"})
        == ACCOUNT + "b"
    )
    assert choose_role(p, "up", {"cognito:roles": [ACCOUNT + "a"]}) == ACCOUNT + "a"
    with pytest.raises(CognitoError):  # two roles, no preference: ambiguous → Deny
        choose_role(p, "up", {"cognito:roles": roles})
    with pytest.raises(CognitoError):  # a preferred role outside cognito:roles is ignored
        choose_role(p, "up", {"cognito:roles": roles, "cognito:preferred_role": ACCOUNT + "x"})


def test_custom_role_only_from_the_token() -> None:
    p = pool()
    claims = {"cognito:roles": [ACCOUNT + "a"]}
    assert choose_role(p, "up", claims, custom_role_arn=ACCOUNT + "a") == ACCOUNT + "a"
    for arn in (ACCOUNT + "b", "arn:aws:iam::999999999999:role/a", "arn:aws:iam::*:role/*"):
        with pytest.raises(CognitoError):
            choose_role(p, "up", claims, custom_role_arn=arn)
    with pytest.raises(CognitoError):
        choose_role(p, None, {}, custom_role_arn=ACCOUNT + "a")


def test_guests() -> None:
    assert choose_role(pool(), None, {}) == ACCOUNT + "guests"
    with pytest.raises(CognitoError):
        choose_role(pool(allow_unauthenticated=False), None, {})


def test_session_names_are_sanitised_and_bounded() -> None:
    identity = "us-east-1:0f6e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
    assert session_name("ada@example.com", identity) == "ada@example.com"
    assert session_name("Ada Lovelace <ada>", identity) == "Ada-Lovelace--ada-"
    assert session_name("x" * 100, identity) == "x" * 64
    assert session_name(None, identity) == "0f6e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
    assert session_name("!", identity) == "0f6e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
    import re

    for raw in ("a/b\\c", "名前", "a\nb", "'; drop"):
        assert re.fullmatch(r"[\w+=,.@-]{2,64}", session_name(raw, identity)), raw
