"""A real SAML 2.0 IdP for the tests, built on pysaml2's IdP classes (`saml2.server.Server`) with
the `xmlsec1` binary: it verifies the gateway's signed AuthnRequests, and answers with signed
(and, when asked, encrypted) Responses through an auto-posting form, over HTTP on loopback.

For the attack tests (SECURITY-TESTS C) it also hands out raw Responses to tamper with
(`build`), and re-signs tampered documents with any key (`sign`), so each test shows exactly
one thing wrong with an otherwise valid answer.
"""

from __future__ import annotations

import base64
import datetime
import html
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.helpers import AppServer

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
DS = "http://www.w3.org/2000/09/xmldsig#"


def make_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """A 2048-bit RSA key and a self-signed certificate, as PEM files."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = folder / f"{name}.key", folder / f"{name}.crt"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


@dataclass
class User:
    name_id: str = "ada@example.com"
    attributes: dict[str, list[str]] = field(
        default_factory=lambda: {
            "mail": ["ada@example.com"],
            "givenName": ["Ada"],
            "sn": ["Lovelace"],
            "eduPersonAffiliation": ["staff", "member"],
        }
    )


class SamlIdP:
    def __init__(self, folder: Path) -> None:
        self.key, self.cert = make_key_pair(folder, "idp")
        self.server = AppServer(
            Starlette(
                routes=[
                    Route("/metadata", self.metadata),
                    Route("/sso/redirect", self.sso, methods=["GET"]),
                    Route("/sso/post", self.sso, methods=["POST"]),
                ]
            )
        )
        self.url = self.server.url
        self.entity_id = f"{self.url}/metadata"
        self.user = User()
        self.encrypt = False
        self.sign_response = True
        self.requests: list[Any] = []  # AuthnRequests received (after their signature checked)
        self._idp: Server | None = None
        self._sp_cert: str = ""
        self._metadata = self._config(sp_metadata=None)
        self.metadata_override: str | None = None  # serve this instead (certificate rollover)

    def _config(self, sp_metadata: list[str] | None) -> IdPConfig:
        settings: dict[str, Any] = {
            "entityid": self.entity_id,
            "xmlsec_binary": "/usr/bin/xmlsec1",
            "key_file": str(self.key),
            "cert_file": str(self.cert),
            "service": {
                "idp": {
                    "endpoints": {
                        "single_sign_on_service": [
                            (f"{self.url}/sso/redirect", BINDING_HTTP_REDIRECT),
                            (f"{self.url}/sso/post", BINDING_HTTP_POST),
                        ],
                        "single_logout_service": [(f"{self.url}/slo", BINDING_HTTP_REDIRECT)],
                    },
                    "want_authn_requests_signed": True,
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    "policy": {
                        "default": {
                            "lifetime": {"minutes": 5},
                            "attribute_restrictions": None,
                            "name_form": NAME_FORMAT_URI,
                        }
                    },
                }
            },
        }
        if sp_metadata:
            settings["metadata"] = {"inline": sp_metadata}
        return IdPConfig().load(settings)

    def trust_sps(self, sp_metadata: list[str]) -> None:
        """Load the gateway's SP metadata documents (fetched over HTTP by the test)."""
        self._idp = Server(config=self._config(sp_metadata))
        match = re.search(r"X509Certificate>([^<]+)</", sp_metadata[0])
        assert match, "the SP metadata carries its certificate"
        self._sp_cert = match.group(1)

    @property
    def idp(self) -> Server:
        assert self._idp is not None, "call trust_sps() first"
        return self._idp

    def metadata_with(self, cert: Path) -> str:
        """This IdP's metadata naming another signing certificate."""
        config = self._config(sp_metadata=None)
        config.cert_file = str(cert)
        return str(create_metadata_string(None, config=config, valid=None).decode())

    async def metadata(self, request: Request) -> Response:
        xml = (
            self.metadata_override
            or create_metadata_string(None, config=self._metadata, valid=None).decode()
        )
        return Response(xml, media_type="application/samlmetadata+xml")

    # -- the browser flow ----------------------------------------------------------------------

    async def sso(self, request: Request) -> Response:
        if request.method == "POST":
            form = await request.form()
            fields = {k: str(v) for k, v in form.items()}
            binding = BINDING_HTTP_POST
        else:
            fields = dict(request.query_params)
            binding = BINDING_HTTP_REDIRECT
        try:
            parsed = self.idp.parse_authn_request(
                fields["SAMLRequest"],
                binding,
                relay_state=fields.get("RelayState"),
                sigalg=fields.get("SigAlg"),
                signature=fields.get("Signature"),
            )
        except Exception as exc:
            return Response(f"bad AuthnRequest: {type(exc).__name__}", status_code=400)
        message = parsed.message
        self.requests.append(message)
        xml = self.respond(message.id, message.assertion_consumer_service_url)
        return self.post_page(message.assertion_consumer_service_url, xml, fields["RelayState"])

    def respond(self, in_response_to: str | None, acs: str, **overrides: Any) -> str:
        """A Response as pysaml2's IdP makes it: signed assertion (and response), encrypted
        to the SP's certificate when `encrypt` is on."""
        options: dict[str, Any] = {
            "identity": self.user.attributes,
            "in_response_to": in_response_to,
            "destination": acs,
            "sp_entity_id": overrides.pop("audience", None) or self.sp_entity_id(acs),
            "name_id": NameID(format=NAMEID_FORMAT_PERSISTENT, text=self.user.name_id),
            "authn": {"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"},
            "sign_assertion": True,
            "sign_response": self.sign_response,
        }
        if self.encrypt:
            options |= {
                "encrypt_assertion": True,
                "encrypted_advice_attributes": False,
                "encrypt_cert_assertion": self._sp_cert,
            }
        return str(self.idp.create_authn_response(**(options | overrides)))

    @staticmethod
    def sp_entity_id(acs: str) -> str:
        return acs.removesuffix("/acs") + "/metadata"

    @staticmethod
    def post_page(acs: str, xml: str, relay_state: str) -> HTMLResponse:
        encoded = base64.b64encode(xml.encode()).decode()
        return HTMLResponse(
            f'<form method="post" action="{html.escape(acs)}">'
            f'<input type="hidden" name="SAMLResponse" value="{encoded}">'
            f'<input type="hidden" name="RelayState" value="{html.escape(relay_state)}">'
            "</form>"
        )

    # -- raw material for attacks --------------------------------------------------------------

    def build(self, in_response_to: str | None, acs: str, **overrides: Any) -> etree._Element:
        """An unsigned Response (to tamper with, then `sign`)."""
        xml = self.respond(
            in_response_to, acs, sign_assertion=False, sign_response=False, **overrides
        )
        return etree.fromstring(xml.encode())

    def sign(
        self, element: etree._Element, key: Path | None = None, cert: Path | None = None
    ) -> None:
        """Enveloped RSA-SHA256 signature over `element` (exc-c14n), placed after its Issuer,
        with the signing certificate in KeyInfo (as IdPs do)."""
        key, cert = key or self.key, cert or self.cert
        signature = xmlsec.template.create(
            element, xmlsec.constants.TransformExclC14N, xmlsec.constants.TransformRsaSha256
        )
        issuer = element.find(f"{{{SAML}}}Issuer")
        (issuer.addnext if issuer is not None else lambda s: element.insert(0, s))(signature)
        reference = xmlsec.template.add_reference(
            signature, xmlsec.constants.TransformSha256, uri=f"#{element.get('ID')}"
        )
        xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
        xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
        xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
        xmlsec.tree.add_ids(element, ["ID"])
        context = xmlsec.SignatureContext()
        context.key = xmlsec.Key.from_file(str(key), xmlsec.constants.KeyDataFormatPem)
        context.key.load_cert_from_file(str(cert), xmlsec.constants.KeyDataFormatPem)
        context.sign(signature)


def assertion_of(response: etree._Element) -> etree._Element:
    found = response.find(f"{{{SAML}}}Assertion")
    assert found is not None
    return found


def encode(element: etree._Element | str) -> str:
    raw = element.encode() if isinstance(element, str) else etree.tostring(element)
    return base64.b64encode(raw).decode()


def fresh_id() -> str:
    return "_" + secrets.token_hex(16)


def logout_request_url(idp: SamlIdP, slo: str, sp_entity_id: str, name_id: str, sign: bool) -> str:
    """The IdP's LogoutRequest for `name_id`, as an HTTP-Redirect URL to the SP's SLO endpoint
    (signed in the query string, as the binding says, when `sign`)."""
    from saml2.xmldsig import SIG_RSA_SHA256

    _, request = idp.idp.create_logout_request(
        slo,
        sp_entity_id,
        name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=name_id),
        sign=False,
    )
    info = idp.idp.apply_binding(
        BINDING_HTTP_REDIRECT, str(request), slo, "relay", sign=sign, sigalg=SIG_RSA_SHA256
    )
    return str(dict(info["headers"])["Location"])
