"""Attribute mapping: renames, list claims, expressions, defaults and the operator's rules."""

from __future__ import annotations

from gateway.connectors.mapping import SAML_DEFAULTS, apply_rule, map_attributes

EMAIL_OID = "urn:oid:0.9.2342.19200300.100.1.3"


def test_a_rename_keeps_the_first_value_or_every_value_of_a_list_claim() -> None:
    source = {"mail": ["ada@example.com", "a@example.org"], "memberOf": ["ops", "dev"]}
    assert apply_rule(source, "mail") == "ada@example.com"
    assert apply_rule(source, "memberOf", as_list=True) == ["ops", "dev"]
    assert apply_rule({"memberOf": "ops"}, "memberOf", as_list=True) == ["ops"]


def test_an_expression_joins_first_values_and_is_absent_when_a_source_is() -> None:
    source = {"givenName": ["Ada", "Augusta"], "sn": "Lovelace"}
    assert apply_rule(source, "{givenName} {sn}") == "Ada Lovelace"
    assert apply_rule(source, "{sn}/staff", as_list=True) == ["Lovelace/staff"]
    assert apply_rule({"givenName": "Ada"}, "{givenName} {sn}") is None  # never "Ada None"
    assert apply_rule({"givenName": "Ada", "sn": ""}, "{givenName} {sn}") is None


def test_empty_values_count_as_absent() -> None:
    for empty in ("", [], None):
        assert apply_rule({"mail": empty}, "mail") is None


def test_nothing_but_placeholders_is_evaluated() -> None:
    source = {"a": "{b}", "b": "secret"}
    assert apply_rule(source, "{a}") == "{b}"  # a value is never read as a rule
    assert apply_rule({"x": 1}, "{x.__class__}") is None


def test_saml_defaults_find_well_known_names_first_match_wins() -> None:
    source = {
        EMAIL_OID: "oid@example.com",
        "mail": "mail@example.com",
        "urn:oid:2.5.4.42": "Ada",
        "isMemberOf": ["staff"],
    }
    profile = map_attributes(source, {}, SAML_DEFAULTS)
    assert profile == {"email": "mail@example.com", "given_name": "Ada", "groups": ["staff"]}


def test_the_operators_rules_win_over_defaults_and_add_custom_claims() -> None:
    source = {"mail": "mail@example.com", EMAIL_OID: "oid@example.com", "dept": "R&D"}
    rules = {"email": EMAIL_OID, "department": "dept", "name": "{missing}"}
    profile = map_attributes(source, rules, SAML_DEFAULTS)
    assert profile == {"email": "oid@example.com", "department": "R&D"}


def test_a_rule_whose_source_is_absent_keeps_the_default() -> None:
    profile = map_attributes({"mail": "m@example.com"}, {"email": "nope"}, SAML_DEFAULTS)
    assert profile == {"email": "m@example.com"}
