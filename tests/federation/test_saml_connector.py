"""The `saml` connector against a real pysaml2 IdP over HTTP, with real XML signatures
(SECURITY-TESTS C23-C28): the happy paths first, then every way an answer can be wrong."""

from __future__ import annotations

import base64
import copy
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from tests.federation.saml_idp import (
    DS,
    SAML,
    SAMLP,
    SamlIdP,
    assertion_of,
    encode,
    fresh_id,
    logout_request_url,
    make_key_pair,
)
from tests.helpers import (
    Browser,
    GatewayServer,
    RedisServer,
    code_flow_params,
    form_fields,
    free_port,
    location_query,
    make_settings,
    pkce_pair,
    redeem,
    writes_paused,
)

SAML_POOL = "us-east-1:5c0ffee5-0000-4000-8000-000000000001"
SAML_ARN = "arn:aws:iam::123456789012:saml-provider/Corp"


@dataclass
class Saml:
    gateway: GatewayServer
    idp: SamlIdP
    sp_key: Path
    sp_cert: Path


@pytest.fixture(scope="session")
def saml(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Saml]:
    folder = tmp_path_factory.mktemp("saml")
    sp_key, sp_cert = make_key_pair(folder, "sp")
    idp = SamlIdP(folder)
    idp.server.start()
    port = free_port()
    common = {
        "type": "saml",
        "idp_metadata": f"{idp.url}/metadata",
        "sp_key_file": str(sp_key),
        "sp_cert_file": str(sp_cert),
    }
    gateway = GatewayServer(
        make_settings(
            port,
            redis_server.url,
            connectors=[
                {"id": "local", "type": "local"},
                {"id": "corp", "name": "Corp SSO", **common},
                {"id": "corp-post", "name": "Corp (POST)", "binding": "post", **common},
                {"id": "corp-xmlsec1", "name": "Corp (xmlsec1)", "crypto": "xmlsec1", **common},
                {"id": "corp-pool", "name": "Corp (identity pool)", **common},
                {
                    "id": "corp-idp",
                    "name": "Corp (IdP-initiated)",
                    "allow_idp_initiated": True,
                    "idp_initiated_redirect": "/welcome",
                    **common,
                },
            ],
            identity_pools=[
                {
                    "id": SAML_POOL,
                    "name": "SAML pool",
                    "providers": [{"type": "saml", "connector": "corp-pool", "name": SAML_ARN}],
                    "roles": {"authenticated": "arn:aws:iam::123456789012:role/corp-users"},
                }
            ],
        )
    )
    gateway.start()
    documents = [
        httpx.get(f"{gateway.url}/saml/{c}/metadata").text
        for c in ("corp", "corp-post", "corp-xmlsec1", "corp-idp", "corp-pool")
    ]
    idp.trust_sps(documents)
    yield Saml(gateway, idp, sp_key, sp_cert)
    gateway.stop()
    idp.server.stop()


@pytest.fixture
async def browser(saml: Saml) -> Iterator[Browser]:
    b = Browser(saml.gateway.url)
    yield b  # type: ignore[misc]
    await b.aclose()


@dataclass
class Started:
    """A sign-in the gateway sent to the IdP: what the IdP saw, and its honest answer."""

    connector: str
    request_id: str
    relay_state: str
    acs: str
    honest: str  # the IdP's own base64 Response
    verifier: str


async def begin(saml: Saml, browser: Browser, connector: str = "corp") -> Started:
    verifier, challenge = pkce_pair()
    first = await browser.authorize(
        **code_flow_params(code_challenge=challenge, scope="openid email profile")
    )
    assert first.status_code == 303, first.text
    login = form_fields((await browser.http.get(first.headers["location"])).text)
    started = await browser.http.post(
        f"/login/{connector}/start", data={"flow": login["flow"], "_csrf": login["_csrf"]}
    )
    async with httpx.AsyncClient() as idp_browser:
        if "location" in started.headers:  # HTTP-Redirect binding
            page = await idp_browser.get(started.headers["location"])
        else:  # HTTP-POST binding: the gateway's auto-posting form
            to_idp = form_fields(started.text)
            assert set(to_idp) == {"SAMLRequest", "RelayState"}
            page = await idp_browser.post(f"{saml.idp.url}/sso/post", data=to_idp)
    assert page.status_code == 200, page.text
    fields = form_fields(page.text)
    request = saml.idp.requests[-1]
    return Started(
        connector,
        request.id,
        fields["RelayState"],
        request.assertion_consumer_service_url,
        fields["SAMLResponse"],
        verifier,
    )


async def post(browser: Browser, started: Started, response: str) -> httpx.Response:
    return await browser.http.post(
        f"/saml/{started.connector}/acs",
        data={"SAMLResponse": response, "RelayState": started.relay_state},
    )


async def signed_in_claims(browser: Browser, started: Started, done: httpx.Response) -> Any:
    assert done.status_code == 303, done.text
    code = location_query(done)["code"]
    tokens = (await redeem(browser.http, code, started.verifier)).json()
    userinfo = await browser.http.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    return userinfo.json()


def refused(done: httpx.Response, reason: str = "") -> None:
    """A friendly 4xx page and no code, no session."""
    assert 400 <= done.status_code < 500, (done.status_code, done.text[:300])
    assert "location" not in done.headers
    assert "Traceback" not in done.text
    assert reason in done.text, done.text[:500]


def forge(
    saml: Saml,
    started: Started,
    before: Callable[[etree._Element], None] | None = None,
    after: Callable[[etree._Element], None] | None = None,
    *,
    sign_assertion: bool = True,
    sign_response: bool = False,
    key: Path | None = None,
    cert: Path | None = None,
    in_response_to: str | None = "",
    **overrides: Any,
) -> str:
    """A Response for `started`, changed by `before` (then signed) and `after` (after signing)."""
    root = saml.idp.build(
        started.request_id if in_response_to == "" else in_response_to, started.acs, **overrides
    )
    if before:
        before(root)
    if sign_assertion:
        saml.idp.sign(assertion_of(root), key, cert)
    if sign_response:
        saml.idp.sign(root, key, cert)
    if after:
        after(root)
    return encode(root)


BACKENDS = ["corp", "corp-xmlsec1"]


# -- the happy paths ------------------------------------------------------------------------------


async def test_metadata_names_the_stable_urls(saml: Saml, browser: Browser) -> None:
    page = await browser.http.get("/saml/corp/metadata")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("application/samlmetadata+xml")
    base = saml.gateway.url
    assert f'entityID="{base}/saml/corp/metadata"' in page.text
    assert f'Location="{base}/saml/corp/acs"' in page.text
    assert f'Location="{base}/saml/corp/slo"' in page.text
    assert 'AuthnRequestsSigned="true"' in page.text
    assert (await browser.http.get("/saml/nope/metadata")).status_code == 404


@pytest.mark.parametrize("connector", ["corp", "corp-post", "corp-xmlsec1"])
async def test_sign_in_through_the_saml_idp(saml: Saml, browser: Browser, connector: str) -> None:
    started = await begin(saml, browser, connector)
    assert started.acs == f"{saml.gateway.url}/saml/{connector}/acs"
    claims = await signed_in_claims(browser, started, await post(browser, started, started.honest))
    assert claims["email"] == "ada@example.com"
    assert claims["email_verified"] is False  # trust_email is off
    assert claims["given_name"] == "Ada"
    assert claims["family_name"] == "Lovelace"


@pytest.mark.parametrize("connector", BACKENDS)
async def test_encrypted_assertions(saml: Saml, browser: Browser, connector: str) -> None:
    saml.idp.encrypt = True
    try:
        started = await begin(saml, browser, connector)
    finally:
        saml.idp.encrypt = False
    assert b"EncryptedAssertion" in base64.b64decode(started.honest)
    claims = await signed_in_claims(browser, started, await post(browser, started, started.honest))
    assert claims["email"] == "ada@example.com"


async def test_the_forging_kit_makes_valid_answers(saml: Saml, browser: Browser) -> None:
    # Every attack below changes one thing in an answer this kit makes; unchanged, it passes.
    started = await begin(saml, browser)
    done = await post(browser, started, forge(saml, started, sign_response=True))
    assert (await signed_in_claims(browser, started, done))["email"] == "ada@example.com"


async def test_a_cross_site_post_is_re_posted_same_site(saml: Saml, browser: Browser) -> None:
    # Browsers send no SameSite=Lax cookie with the IdP's cross-site POST: the ACS answers with
    # a page that posts the same fields again from our own origin, where the cookies come along.
    started = await begin(saml, browser)
    async with httpx.AsyncClient(base_url=saml.gateway.url) as cookieless:
        page = await cookieless.post(
            "/saml/corp/acs",
            data={"SAMLResponse": started.honest, "RelayState": started.relay_state},
        )
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    fields = form_fields(page.text)
    assert fields["SAMLResponse"] == started.honest
    done = await browser.http.post("/saml/corp/acs", data=fields)
    assert (await signed_in_claims(browser, started, done))["email"] == "ada@example.com"


# -- C23: signature wrapping ----------------------------------------------------------------------


def _evil(assertion: etree._Element) -> etree._Element:
    evil = copy.deepcopy(assertion)
    for signature in evil.findall(f"{{{DS}}}Signature"):
        evil.remove(signature)
    evil.set("ID", fresh_id())
    evil.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID").text = "admin@example.com"
    return evil


def xsw1(root: etree._Element) -> None:
    # The signed Response moves into an Extensions element; a fresh evil Response wraps it.
    signed = copy.deepcopy(root)
    root.set("ID", fresh_id())
    for signature in root.findall(f"{{{DS}}}Signature"):
        root.remove(signature)
    assertion = assertion_of(root)
    assertion.addprevious(_evil(assertion))
    root.remove(assertion)
    extensions = etree.SubElement(root, f"{{{SAMLP}}}Extensions")
    extensions.append(signed)


def xsw2(root: etree._Element) -> None:
    # Like XSW1, with the signed copy before the evil content (a detached-looking signature).
    xsw1(root)
    extensions = root.find(f"{{{SAMLP}}}Extensions")
    root.insert(1, extensions)


def xsw3(root: etree._Element) -> None:
    # An evil Assertion before the signed one.
    signed = assertion_of(root)
    signed.addprevious(_evil(signed))


def xsw4(root: etree._Element) -> None:
    # The signed Assertion becomes a child of the evil one.
    signed = assertion_of(root)
    evil = _evil(signed)
    signed.addprevious(evil)
    evil.append(signed)


def xsw5(root: etree._Element) -> None:
    # The evil Assertion carries the original's signature; the original moves to the end.
    signed = assertion_of(root)
    evil = _evil(signed)
    evil.set("ID", signed.get("ID"))
    evil.insert(1, copy.deepcopy(signed.find(f"{{{DS}}}Signature")))
    signed.addprevious(evil)
    root.remove(signed)
    root.append(signed)


def xsw6(root: etree._Element) -> None:
    # The original hides in a ds:Object inside the evil Assertion's copied signature (same ID).
    _hide_in_object(root, same_id=True)


def xsw7(root: etree._Element) -> None:
    # The signed Assertion hides in an Extensions element; an evil one takes its place.
    signed = assertion_of(root)
    signed.addprevious(_evil(signed))
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    root.insert(1, extensions)
    extensions.append(signed)


def xsw8(root: etree._Element) -> None:
    # The evil Assertion keeps a copied signature whose ds:Object holds the original.
    _hide_in_object(root, same_id=False)


def _hide_in_object(root: etree._Element, same_id: bool) -> None:
    signed = assertion_of(root)
    evil = _evil(signed)
    if same_id:
        evil.set("ID", signed.get("ID"))
    signature = copy.deepcopy(signed.find(f"{{{DS}}}Signature"))
    evil.insert(1, signature)
    obj = etree.SubElement(signature, f"{{{DS}}}Object")
    signed.addprevious(evil)
    obj.append(signed)


def twin_ids(root: etree._Element) -> None:
    # An evil Assertion with the signed one's ID, next to it.
    signed = assertion_of(root)
    evil = _evil(signed)
    evil.set("ID", signed.get("ID"))
    signed.addnext(evil)


def changed_after_signing(root: etree._Element) -> None:
    assertion_of(root).find(f"{{{SAML}}}Subject/{{{SAML}}}NameID").text = "admin@example.com"


@pytest.mark.parametrize("connector", BACKENDS)
@pytest.mark.parametrize(
    "wrap",
    [xsw1, xsw2, xsw3, xsw4, xsw5, xsw6, xsw7, xsw8, twin_ids, changed_after_signing],
)
async def test_signature_wrapping_is_refused(
    saml: Saml, browser: Browser, connector: str, wrap: Callable[[etree._Element], None]
) -> None:
    started = await begin(saml, browser, connector)
    response = forge(saml, started, after=wrap, sign_response=wrap in (xsw1, xsw2))
    refused(await post(browser, started, response))
    assert (
        await saml.gateway.call(lambda s: s.identities.find(connector, "admin@example.com")) is None
    )


# -- C24: no signature, or a key the IdP does not own -------------------------------------------


@pytest.mark.parametrize("connector", BACKENDS)
async def test_unsigned_and_foreign_signatures_are_refused(
    saml: Saml, browser: Browser, connector: str, tmp_path: Path
) -> None:
    attacker_key, attacker_cert = make_key_pair(tmp_path, "attacker")
    started = await begin(saml, browser, connector)
    refused(await post(browser, started, forge(saml, started, sign_assertion=False)))
    started = await begin(saml, browser, connector)
    # Signed by the attacker, whose certificate travels in KeyInfo: it must not be used.
    forged = forge(saml, started, key=attacker_key, cert=attacker_cert, sign_response=True)
    refused(await post(browser, started, forged))
    started = await begin(saml, browser, connector)

    def stripped(root: etree._Element) -> None:
        assertion = assertion_of(root)
        assertion.remove(assertion.find(f"{{{DS}}}Signature"))

    refused(await post(browser, started, forge(saml, started, after=stripped)))


# -- C25: DOCTYPE, entities -----------------------------------------------------------------------

DOCTYPES = {
    "internal-entity": '<!DOCTYPE r [<!ENTITY x "admin@example.com">]>',
    "external-entity": '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    "billion-laughs": '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
    + "]>",
}


@pytest.mark.parametrize("kind", sorted(DOCTYPES))
async def test_doctypes_are_refused_before_signature_work(
    saml: Saml, browser: Browser, kind: str
) -> None:
    started = await begin(saml, browser)
    signed = base64.b64decode(forge(saml, started)).decode()
    document = DOCTYPES[kind] + signed
    done = await post(browser, started, base64.b64encode(document.encode()).decode())
    refused(done, "DOCTYPE")


# -- C26: comments inside the NameID -------------------------------------------------------------


@pytest.mark.parametrize("connector", BACKENDS)
async def test_a_comment_in_the_name_id_never_truncates_it(
    saml: Saml, browser: Browser, connector: str
) -> None:
    name = f"victim-{secrets.token_hex(3)}@example.com.evil.test"
    saml.idp.user.name_id = name
    try:
        started = await begin(saml, browser, connector)

        def comment(root: etree._Element) -> None:
            name_id = assertion_of(root).find(f"{{{SAML}}}Subject/{{{SAML}}}NameID")
            head, tail = name.split(".evil", 1)
            name_id.text = head
            marker = etree.Comment("")
            name_id.append(marker)
            marker.tail = ".evil" + tail

        done = await post(browser, started, forge(saml, started, after=comment))
    finally:
        saml.idp.user.name_id = "ada@example.com"
    # c14n drops the comment, so the signature holds; the subject is the *whole* value.
    assert done.status_code == 303, done.text
    find = saml.gateway.call
    assert await find(lambda s: s.identities.find(connector, name)) is not None
    assert await find(lambda s: s.identities.find(connector, name.split(".evil")[0])) is None


# -- C27: replay, InResponseTo, unsolicited -------------------------------------------------------


async def test_an_assertion_is_accepted_once(saml: Saml, browser: Browser) -> None:
    started = await begin(saml, browser)
    assert (await post(browser, started, started.honest)).status_code == 303
    # The same Response again, inside a new sign-in (another browser: the first one is signed in):
    other = Browser(saml.gateway.url)
    try:
        again = await begin(saml, other)
        replayed = await other.http.post(
            "/saml/corp/acs", data={"SAMLResponse": started.honest, "RelayState": again.relay_state}
        )
        refused(replayed)
        # The same in the original flow: it is consumed too.
        refused(await post(browser, started, started.honest))
    finally:
        await other.aclose()


async def test_in_response_to_must_be_this_flows_request(saml: Saml, browser: Browser) -> None:
    first = await begin(saml, browser)
    second = await begin(saml, browser)
    # The answer to the first sign-in, posted for the second one (another flow):
    crossed = await browser.http.post(
        "/saml/corp/acs", data={"SAMLResponse": first.honest, "RelayState": second.relay_state}
    )
    refused(crossed)
    third = await begin(saml, browser)
    refused(await post(browser, third, forge(saml, third, in_response_to=fresh_id())))
    fourth = await begin(saml, browser)
    refused(await post(browser, fourth, forge(saml, fourth, in_response_to=None)))


async def test_relay_state_of_another_browser_is_refused(saml: Saml, browser: Browser) -> None:
    started = await begin(saml, browser)
    other = Browser(saml.gateway.url)
    try:
        await other.http.get("/login")  # a browser with cookies of its own
        other.http.cookies.set("cognate_csrf", "x" * 43)
        done = await other.http.post(
            "/saml/corp/acs",
            data={"SAMLResponse": started.honest, "RelayState": started.relay_state},
        )
    finally:
        await other.aclose()
    refused(done)


async def test_idp_initiated_only_where_enabled(saml: Saml, browser: Browser) -> None:
    acs = f"{saml.gateway.url}/saml/corp-idp/acs"
    unsolicited = saml.idp.respond(None, acs)
    done = await browser.http.post(
        "/saml/corp-idp/acs",
        data={"SAMLResponse": encode(unsolicited), "RelayState": "https://evil.example/"},
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/welcome"  # never RelayState: no open redirect
    assert "cognate_session" in done.headers.get("set-cookie", "")
    refused(
        await browser.http.post(
            "/saml/corp-idp/acs", data={"SAMLResponse": encode(unsolicited), "RelayState": ""}
        )
    )  # and only once
    other_acs = f"{saml.gateway.url}/saml/corp/acs"
    done = await browser.http.post(
        "/saml/corp/acs",
        data={"SAMLResponse": encode(saml.idp.respond(None, other_acs)), "RelayState": ""},
    )
    refused(done)


# -- C28: wrong audience, recipient, destination, issuer, time, status ----------------------------


def _set(path: str, attribute: str, value: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        found = root.xpath(path, namespaces={"saml": SAML, "samlp": SAMLP})
        assert found, path
        for element in found:
            element.set(attribute, value)

    return change


PAST = "2020-01-01T00:00:00Z"
CHANGES = {
    "audience": lambda root: [
        e.__setattr__("text", "https://other.example/sp") for e in root.iter(f"{{{SAML}}}Audience")
    ],
    "recipient": _set("//saml:SubjectConfirmationData", "Recipient", "https://other.example/acs"),
    "destination": _set("/samlp:Response", "Destination", "https://other.example/acs"),
    "issuer": lambda root: [
        e.__setattr__("text", "https://evil.example/idp") for e in root.iter(f"{{{SAML}}}Issuer")
    ],
    "expired-conditions": _set("//saml:Conditions", "NotOnOrAfter", PAST),
    "expired-confirmation": _set("//saml:SubjectConfirmationData", "NotOnOrAfter", PAST),
    "not-yet-valid": _set("//saml:Conditions", "NotBefore", "2999-01-01T00:00:00Z"),
    "status": _set("//samlp:StatusCode", "Value", "urn:oasis:names:tc:SAML:2.0:status:Requester"),
    # pysaml2 alone accepts both: with no restriction, it deems any assertion meant for it.
    "no-audience-restriction": lambda root: _remove(root, "AudienceRestriction"),
    "no-conditions": lambda root: _remove(root, "Conditions"),
    "second-restriction-for-another-sp": lambda root: _add_restriction(
        root, "https://other.example/sp"
    ),
}


def _remove(root: etree._Element, name: str) -> None:
    found = list(root.iter(f"{{{SAML}}}{name}"))
    assert found, name
    for element in found:
        parent = element.getparent()
        assert parent is not None
        parent.remove(element)


def _add_restriction(root: etree._Element, audience: str) -> None:
    """A second AudienceRestriction (both apply, SAML Core §2.5.1.4) naming only another SP."""
    conditions = next(root.iter(f"{{{SAML}}}Conditions"))
    restriction = etree.SubElement(conditions, f"{{{SAML}}}AudienceRestriction")
    etree.SubElement(restriction, f"{{{SAML}}}Audience").text = audience


@pytest.mark.parametrize("connector", BACKENDS)
@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_wrong_fields_are_refused(
    saml: Saml, browser: Browser, connector: str, change: str
) -> None:
    started = await begin(saml, browser, connector)
    forged = forge(saml, started, before=CHANGES[change], sign_response=True)
    refused(await post(browser, started, forged))


async def test_a_huge_post_is_refused_before_parsing(saml: Saml, browser: Browser) -> None:
    started = await begin(saml, browser)
    huge = "A" * (10 * 1024 * 1024)
    done = await post(browser, started, huge)
    assert done.status_code == 413
    # The flow is untouched: the real answer still works.
    assert (await post(browser, started, started.honest)).status_code == 303


# -- single logout, setup failures ---------------------------------------------------------------


async def test_single_logout_from_the_idp_ends_the_session(saml: Saml, browser: Browser) -> None:
    name = f"slo-{secrets.token_hex(3)}@example.com"
    saml.idp.user.name_id = name
    try:
        started = await begin(saml, browser)
    finally:
        saml.idp.user.name_id = "ada@example.com"
    done = await post(browser, started, started.honest)
    assert done.status_code == 303
    code = location_query(done)["code"]
    access = (await redeem(browser.http, code, started.verifier)).json()["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    assert (await browser.http.get("/oauth2/userinfo", headers=bearer)).status_code == 200
    slo, sp = f"{saml.gateway.url}/saml/corp/slo", f"{saml.gateway.url}/saml/corp/metadata"

    # Unsigned: anyone could send it, so it ends nothing.
    unsigned = logout_request_url(saml.idp, slo, sp, name, sign=False)
    refused(await browser.http.get(unsigned.removeprefix(saml.gateway.url)))
    assert (await browser.http.get("/oauth2/userinfo", headers=bearer)).status_code == 200

    signed = logout_request_url(saml.idp, slo, sp, name, sign=True)
    answer = await browser.http.get(signed.removeprefix(saml.gateway.url))
    assert answer.status_code == 303
    back = httpx.URL(answer.headers["location"])
    assert str(back).startswith(f"{saml.idp.url}/slo?")
    assert {"SAMLResponse", "Signature", "SigAlg"} <= set(back.params)
    assert (await browser.http.get("/oauth2/userinfo", headers=bearer)).status_code == 401


async def test_missing_xmlsec1_fails_closed(
    saml: Saml, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.connectors import ConnectorError
    from gateway.connectors.saml import SamlConnector
    from gateway.pool import BoundedPool
    from gateway.settings_connectors import SamlConnectorSettings
    from gateway.store.memory import MemoryStore

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("saml2.sigver.get_xmlsec_binary", _no_binary)
    config = SamlConnectorSettings(
        id="x",
        type="saml",
        name="X",
        idp_metadata=f"{saml.idp.url}/metadata",
        sp_key=saml.sp_key.read_text(),
        sp_cert=saml.sp_cert.read_text(),
        crypto="xmlsec1",
    )
    connector = SamlConnector(config, "http://127.0.0.1:1", MemoryStore(), BoundedPool("t"))
    try:
        with pytest.raises(ConnectorError, match="SAML setup failed"):
            await connector.start("", "flow")
        with pytest.raises(ConnectorError):
            await connector.validate(started_nothing(), "id-1")
    finally:
        await connector.close()


def _no_binary(paths: object = None) -> str:
    from saml2.sigver import SigverError

    raise SigverError("xmlsec1 not found")


def started_nothing() -> str:
    return base64.b64encode(b"<r/>").decode()


async def test_unreachable_metadata_fails_only_that_connector(
    redis_server: RedisServer, saml: Saml
) -> None:
    port = free_port()
    gateway = GatewayServer(
        make_settings(
            port,
            redis_server.url,
            connectors=[
                {"id": "local", "type": "local"},
                {
                    "id": "down",
                    "type": "saml",
                    "name": "Down IdP",
                    "idp_metadata": f"http://127.0.0.1:{free_port()}/metadata",
                    "sp_key": saml.sp_key.read_text(),
                    "sp_cert": saml.sp_cert.read_text(),
                },
            ],
        )
    ).start()
    browser = Browser(gateway.url)
    try:
        first = await browser.authorize(**code_flow_params())
        login = await browser.http.get(first.headers["location"])
        assert login.status_code == 200 and "Down IdP" in login.text
        fields = form_fields(login.text)
        started = await browser.http.post(
            "/login/down/start", data={"flow": fields["flow"], "_csrf": fields["_csrf"]}
        )
        assert started.status_code == 502
        assert "IdP metadata unreachable" in started.text
        # The SP metadata does not need the IdP's: an IdP admin can import it first.
        metadata = await browser.http.get("/saml/down/metadata")
        assert metadata.status_code == 200 and "/saml/down/acs" in metadata.text
        # Local sign-in still works on the same flow's page.
        assert (await browser.http.get(first.headers["location"])).status_code == 200
    finally:
        await browser.aclose()
        gateway.stop()


# -- identity pools: a SAML response as the login ------------------------------------------------


async def test_identity_pool_accepts_saml_logins(saml: Saml, tmp_path: Path) -> None:
    import asyncio

    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    cognito = boto3.client(
        "cognito-identity",
        endpoint_url=saml.gateway.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )
    acs = f"{saml.gateway.url}/saml/corp-pool/acs"
    login = encode(saml.idp.respond(None, acs))
    got = await asyncio.to_thread(
        cognito.get_id, IdentityPoolId=SAML_POOL, Logins={SAML_ARN: login}
    )
    identity_id = got["IdentityId"]
    assert identity_id.startswith("us-east-1:")
    # The same response proves the login again (GetId, then the token), as AWS allows.
    token = await asyncio.to_thread(
        cognito.get_open_id_token, IdentityId=identity_id, Logins={SAML_ARN: login}
    )
    assert token["IdentityId"] == identity_id
    again = await asyncio.to_thread(
        cognito.get_id, IdentityPoolId=SAML_POOL, Logins={SAML_ARN: login}
    )
    assert again["IdentityId"] == identity_id  # same NameID, same identity

    attacker_key, attacker_cert = make_key_pair(tmp_path, "attacker")
    forged_root = saml.idp.build(None, acs)
    saml.idp.sign(assertion_of(forged_root), attacker_key, attacker_cert)
    for bad in (
        encode(forged_root),  # signed by a key the IdP does not own
        encode(saml.idp.respond(None, f"{saml.gateway.url}/saml/corp/acs")),  # another SP's
        "bm90IHhtbA==",  # not XML
    ):
        with pytest.raises(ClientError) as caught:
            await asyncio.to_thread(
                cognito.get_id, IdentityPoolId=SAML_POOL, Logins={SAML_ARN: bad}
            )
        assert caught.value.response["Error"]["Code"] == "NotAuthorizedException"


async def test_certificate_rollover_through_metadata_refresh(
    saml: Saml, browser: Browser, tmp_path: Path
) -> None:
    new_key, new_cert = make_key_pair(tmp_path, "idp-next")

    async def reload(services: Any) -> None:
        await services.connectors["corp"].reload()

    started = await begin(saml, browser)
    # Signed with the IdP's next key before its metadata says so: refused.
    refused(await post(browser, started, forge(saml, started, key=new_key, cert=new_cert)))
    saml.idp.metadata_override = saml.idp.metadata_with(new_cert)
    try:
        await saml.gateway.call(reload)
        started = await begin(saml, browser)
        old = forge(saml, started)  # the retired key no longer works
        refused(await post(browser, started, old))
        other = Browser(saml.gateway.url)
        try:
            started = await begin(saml, other)
            done = await post(other, started, forge(saml, started, key=new_key, cert=new_cert))
            assert done.status_code == 303, done.text
        finally:
            await other.aclose()
    finally:
        saml.idp.metadata_override = None
        await saml.gateway.call(reload)


async def test_refresh_of_a_saml_sign_in_is_bounded_by_max_session_age(
    saml: Saml, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time as real_time

    started = await begin(saml, browser)
    done = await post(browser, started, started.honest)
    code = location_query(done)["code"]
    tokens = (await redeem(browser.http, code, started.verifier)).json()

    async def refresh(token: str) -> httpx.Response:
        return await browser.http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": token},
            auth=("web", "web-secret-0123456789"),
        )

    fresh = await refresh(tokens["refresh_token"])
    assert fresh.status_code == 200, fresh.text

    class Later:
        """The token endpoint's clock, 8 hours and a minute on (the default max_session_age)."""

        @staticmethod
        def time() -> float:
            return real_time.time() + 8 * 3600 + 60

    monkeypatch.setattr("gateway.op.token.time", Later)
    late = await refresh(fresh.json()["refresh_token"])
    assert late.status_code == 400
    assert late.json() == {
        "error": "invalid_grant",
        "error_description": "the sign-in is too old; sign in again",
    }


async def test_a_store_failing_at_the_replay_check_fails_closed(
    saml: Saml, browser: Browser, redis_server: RedisServer
) -> None:
    # SECURITY-TESTS G48: the flow is read, the signature checks out, and the first write — the
    # replay cache's SET NX — cannot happen: 503, no code, no session; never "accepted anyway".
    started = await begin(saml, browser)
    with writes_paused(redis_server.url):
        done = await post(browser, started, started.honest)
    assert done.status_code == 503 and "location" not in done.headers
    assert "Traceback" not in done.text and "cognate_session" not in browser.http.cookies
