"""No open redirects (SECURITY-TESTS D38 / E38)."""

from __future__ import annotations

import pytest

from gateway.proxy.redirects import safe_redirect

ISSUER = "https://auth.example.com"
ORIGIN = "https://app.example.com"
ALLOWED = [".example.com"]


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "/\\evil.example",
        "/%09/evil.example",
        "/%0a/evil.example",
        "https://good.example.com@evil.example/",
        "javascript:alert(1)",
        "data:text/html,x",
        "https://evil.example/",
        "https://example.com.evil.example/",
        "http://evil.example",
        "\\\\evil.example",
        "/%5C%5Cevil.example",
        "https://app.example.com\\@evil.example",
        "",
        "ftp://app.example.com/",
        "https:///evil.example",
    ],
)
def test_hostile_targets_are_refused(target: str) -> None:
    assert safe_redirect(target, ORIGIN, ALLOWED, ISSUER) is None


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/dashboard?x=1", "https://app.example.com/dashboard?x=1"),
        ("https://app.example.com/a", "https://app.example.com/a"),
        ("https://wiki.example.com/", "https://wiki.example.com/"),
        ("https://example.com/", "https://example.com/"),
        ("https://auth.example.com/", "https://auth.example.com/"),
    ],
)
def test_allowed_targets(target: str, expected: str) -> None:
    assert safe_redirect(target, ORIGIN, ALLOWED, ISSUER) == expected


def test_only_the_issuer_when_nothing_else_is_allowed() -> None:
    assert safe_redirect("https://app.example.com/", ISSUER, [], ISSUER) is None
    assert safe_redirect("/x", ISSUER, [], ISSUER) == "https://auth.example.com/x"
