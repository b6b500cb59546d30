"""The demo app's result page in a real browser (Debian's Chromium): it fits the card at a
phone's width and shows the shortened tokens with a real ellipsis, not an escape sequence."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import Browser

from tests.e2e.test_browser import chromium  # noqa: F401 - the fixture
from tests.helpers import PASSWORD, GatewayServer, RedisServer, free_port, make_settings


@pytest.fixture(scope="module")
def demo(redis_server: RedisServer) -> Iterator[GatewayServer]:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    settings = make_settings(
        port,
        redis_server.url,
        demo=True,
        clients=[
            {
                "client_id": "demo",
                "token_endpoint_auth_method": "none",
                "redirect_uris": [f"{issuer}/demo/callback"],
                "post_logout_redirect_uris": [f"{issuer}/demo/"],
            }
        ],
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


async def test_demo_result_fits_and_shows_a_real_ellipsis(
    chromium: Browser,  # noqa: F811
    demo: GatewayServer,
) -> None:
    await demo.add_user("demo-page@example.com", name="Demo Person", email_verified=True)
    page = await chromium.new_page(viewport={"width": 390, "height": 800})
    await page.goto(f"{demo.url}/demo/start")
    await page.fill("#email", "demo-page@example.com")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{demo.url}/demo/callback?**")
    text = await page.inner_text("main")
    assert "Token response" in text
    assert "\\u2026" not in text and "…" in text
    # Nothing sticks out of the card, and the page never scrolls sideways.
    overflow = await page.evaluate(
        """() => {
            const card = document.querySelector('main').getBoundingClientRect();
            const out = [...document.querySelectorAll('main *')].filter(
                e => e.getBoundingClientRect().right > card.right + 1);
            const hidden = [...document.querySelectorAll("main pre")].filter(
                e => e.scrollWidth > e.clientWidth + 1);
            return {page: document.documentElement.scrollWidth > window.innerWidth,
                    hidden: hidden.map(e => e.tagName),
                    elements: out.map(e => e.tagName)};
        }"""
    )
    assert overflow == {"page": False, "elements": [], "hidden": []}
