"""The hosted pages' theme, per-client branding, languages and template overrides."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.errors import ConfigError
from tests.helpers import (
    Browser,
    GatewayServer,
    RedisServer,
    code_flow_params,
    free_port,
    make_settings,
)


@pytest.fixture(scope="module")
def themed(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    folder = tmp_path_factory.mktemp("theme")
    (folder / "templates").mkdir()
    (folder / "templates" / "error.html").write_text(
        '{% extends "base.html" %}{% block content %}<h1 id="custom">Custom: {{ _(title) }}</h1>'
        "{% endblock %}"
    )
    (folder / "extra.css").write_text(".card { border: 3px solid var(--accent); }")
    settings = make_settings(free_port(), redis_server.url)
    clients = [c.model_dump() for c in settings.clients]
    clients[1]["branding"] = {
        "name": "Acme Portal",
        "accent_color": "#aa0011",
        "logo_url": "https://cdn.acme.example/logo.svg",
    }
    server = GatewayServer(
        make_settings(
            int(settings.issuer.rsplit(":", 1)[1]),
            redis_server.url,
            clients=clients,
            ui={
                "product_name": "Example Sign-In",
                "accent_color": "#123456",
                "custom_css": str(folder / "extra.css"),
                "templates_dir": str(folder / "templates"),
            },
        )
    ).start()
    yield server
    server.stop()


async def login_page(
    gateway: GatewayServer, headers: dict[str, str] | None = None, **params: str
) -> httpx.Response:
    browser = Browser(gateway.url)
    first = await browser.authorize(**code_flow_params(**params))
    page = await browser.http.get(first.headers["location"], headers=headers or {})
    await browser.aclose()
    return page


async def test_theme_and_client_branding(themed: GatewayServer) -> None:
    page = await login_page(themed)
    assert "<title>Sign in · Example Sign-In</title>" in page.text
    assert 'href="/theme.css"' in page.text
    browser = Browser(themed.url)
    try:
        css = await browser.http.get("/theme.css")
        assert "--accent: #123456" in css.text and "border: 3px solid" in css.text
        spa = await login_page(themed, client_id="spa", redirect_uri="https://spa.example.com/cb")
        assert "Acme Portal" in spa.text and 'href="/theme.css?client=spa"' in spa.text
        assert 'src="https://cdn.acme.example/logo.svg"' in spa.text
        assert (
            "img-src 'self' data: https://cdn.acme.example;"
            in spa.headers["content-security-policy"]
        )
        assert "--accent: #aa0011" in (await browser.http.get("/theme.css?client=spa")).text
    finally:
        await browser.aclose()


async def test_languages_from_accept_language_or_ui_locales(themed: GatewayServer) -> None:
    french = await login_page(themed, headers={"Accept-Language": "fr-CA,fr;q=0.9,en;q=0.5"})
    assert '<html lang="fr">' in french.text
    assert "Connexion" in french.text and "Mot de passe oublié ?" in french.text
    english = await login_page(themed, headers={"Accept-Language": "de, en;q=0.4"})
    assert '<html lang="en">' in english.text and "Forgot your password?" in english.text
    browser = Browser(themed.url)
    try:
        first = await browser.authorize(**code_flow_params())
        asked = await browser.http.get(
            first.headers["location"] + "&ui_locales=fr", headers={"Accept-Language": "en"}
        )
        assert '<html lang="fr">' in asked.text
    finally:
        await browser.aclose()


async def test_templates_override_file_by_file(themed: GatewayServer) -> None:
    browser = Browser(themed.url)
    try:
        missing = await browser.http.get("/login?flow=nope", headers={"Accept-Language": "fr"})
        assert 'id="custom"' in missing.text  # the deployer's error.html
        assert "/static/style.css" in missing.text  # its base.html is still the bundled one
    finally:
        await browser.aclose()


def test_unknown_language_is_a_precise_error(redis_server: RedisServer) -> None:
    with pytest.raises(ConfigError, match=r"ui.languages: .*'xx': no catalogue"):
        make_settings(free_port(), redis_server.url, ui={"languages": ["en", "xx"]})


def test_every_french_entry_is_used_somewhere() -> None:
    # The catalogue does not rot: each English source string still appears in the code.
    import ast
    import json

    root = Path(__file__).resolve().parent.parent.parent / "gateway"
    sources = "".join(p.read_text() for p in root.rglob("*.html"))
    # Python's strings as the parser joins them ("one " "two" is one string, over two lines).
    sources += "\n".join(
        node.value
        for p in root.rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    )
    catalogue = json.loads((root / "ui" / "locales" / "fr.json").read_text())
    unused = [k for k in catalogue if k not in sources]
    assert unused == []


def device_page_strings() -> set[str]:
    """Every English string the /device pages show: the `_("…")` of device.html, and in
    gateway/ui/device.py the module's message constants and the titles and texts of the
    error pages it raises (PageError and its subclasses there)."""
    import ast
    import re

    root = Path(__file__).resolve().parent.parent.parent / "gateway" / "ui"
    template = (root / "templates" / "device.html").read_text()
    found = set(re.findall(r'_\(\s*"((?:[^"\\]|\\.)*)"', template))
    tree = ast.parse((root / "device.py").read_text())
    for node in tree.body:  # _WRONG = "…"
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            if isinstance(node.value.value, str):
                found.add(node.value.value)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        raised = isinstance(func, ast.Name) and func.id == "PageError"
        inherited = isinstance(func, ast.Attribute) and func.attr == "__init__"
        if raised or inherited:
            found |= {a.value for a in node.args if isinstance(a, ast.Constant)}
    return {s for s in found if isinstance(s, str)}


def test_every_device_page_string_is_in_french() -> None:
    import json

    root = Path(__file__).resolve().parent.parent.parent / "gateway"
    catalogue = json.loads((root / "ui" / "locales" / "fr.json").read_text())
    strings = device_page_strings()
    # The extraction itself found the page: its headings, its buttons, its error messages.
    expected = {"Connect a device", "Approve", "Too many attempts", "Choose Approve or Deny."}
    assert expected <= strings
    assert sorted(strings - catalogue.keys()) == []


def hosted_error_strings() -> set[tuple[str, str]]:
    """The English titles and texts of every hosted error page: the literal arguments of each
    `PageError(...)` in gateway/, and the `title`, `message` and `template` of the sign-in
    steps' errors (gateway/login/: `LoginError` and its kin), with the file each is in."""
    import ast

    root = Path(__file__).resolve().parent.parent.parent / "gateway"

    def literal(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = literal(node.left), literal(node.right)
            return left + right if left is not None and right is not None else None
        return None

    found: set[tuple[str, str]] = set()
    for path in root.rglob("*.py"):
        where = str(path.relative_to(root))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "PageError":
                found |= {(where, text) for arg in node.args[:2] if (text := literal(arg))}
            if isinstance(node, ast.ClassDef) and where.startswith("login/"):
                for item in node.body:
                    if isinstance(item, ast.Assign) and len(item.targets) == 1:
                        name = getattr(item.targets[0], "id", None)
                        if name in ("title", "message", "template"):
                            if text := literal(item.value):
                                found.add((where, text))
    return found


def test_every_hosted_error_page_speaks_french() -> None:
    import json

    root = Path(__file__).resolve().parent.parent.parent / "gateway"
    catalogue = json.loads((root / "ui" / "locales" / "fr.json").read_text())
    strings = hosted_error_strings()
    # The extraction found the pages (a CSRF refusal, a sign-in step's error, a template).
    assert {
        ("csrf.py", "Request refused"),
        ("login/steps.py", "This sign-in has expired"),
        ("login/steps.py", "Too many attempts. Try again in %(wait)s."),
    } <= strings
    assert sorted(s for s in strings if s[1] not in catalogue) == []
