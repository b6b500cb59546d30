"""What a refused SAML response leaves behind: a page that says what was wrong, and pysaml2's
log lines at WARNING, one line each (SECURITY-TESTS C28; issue 15)."""

from __future__ import annotations

import logging

import pytest

from tests.federation.test_saml_connector import (  # noqa: F401 - fixtures
    BACKENDS,
    CHANGES,
    Saml,
    begin,
    browser,
    forge,
    post,
    refused,
    saml,
)
from tests.helpers import Browser


@pytest.mark.parametrize("connector", BACKENDS)
async def test_wrong_audience_says_so(
    saml: Saml,  # noqa: F811
    browser: Browser,  # noqa: F811
    connector: str,
) -> None:
    started = await begin(saml, browser, connector)
    forged = forge(saml, started, before=CHANGES["audience"], sign_response=True)
    done = await post(browser, started, forged)
    refused(done, "the assertion is for another audience")
    assert "(Exception)" not in done.text


async def test_pysaml2_logs_refusals_as_one_line_warnings(
    saml: Saml,  # noqa: F811
    browser: Browser,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="saml2")
    for change in ("expired-conditions", "audience", "issuer"):
        started = await begin(saml, browser)
        refused(await post(browser, started, forge(saml, started, before=CHANGES[change])))
    from_saml2 = [r for r in caplog.records if r.name.startswith("saml2")]
    assert any("conditions" in r.getMessage().lower() for r in from_saml2)  # it did log
    for record in from_saml2:
        message = record.getMessage()
        assert record.levelno <= logging.WARNING, message
        assert "\n" not in message and len(message) < 400 and record.exc_info is None
