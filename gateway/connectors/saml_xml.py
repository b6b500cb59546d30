"""Strict XML for the SAML service provider: parsing, shape checks, and signatures in-process.

Everything an IdP (or an attacker) posts to the ACS passes `parse_strict` and `response_shape`
before any signature work:

- no DOCTYPE at all, so no entities, no external entities, no billion laughs (SAML never needs
  one; libxml2 is told not to load DTDs, resolve entities or touch the network anyway);
- one `samlp:Response`, holding at most one `Assertion` or `EncryptedAssertion`, as a direct
  child: every XML-signature-wrapping variant (XSW1–XSW8) moves or copies the signed element so
  that the one the signature covers is not the one the application reads, which needs a second
  Assertion or a Response/Assertion somewhere else in the tree;
- no two elements with the same `ID`, so a `#id` reference names exactly one element;
- every `ds:Signature` sits directly in the Response or the Assertion (enveloped), nowhere else.

pysaml2 checks each signed element against the SAML XML schemas before its signature, with the
pure-Python `xmlschema` package (two thirds of a response's cost). `use_libxml2_schemas()` swaps in
the same schemas compiled by libxml2 (lxml), which is an order of magnitude faster and as strict.

`InProcessBackend` is a pysaml2 `CryptoBackend` over python-xmlsec (libxmlsec1 in-process, ~100×
faster than pysaml2's default of running the `xmlsec1` binary per check). It verifies only with
the certificate pysaml2 hands it from the IdP's metadata, never with a key in `KeyInfo`: with a
key preset on the context libxmlsec1 does not read `KeyInfo` at all.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path
from typing import Any

import saml2.data.schemas
import saml2.sigver
import xmlsec
from lxml import etree
from saml2.sigver import CryptoBackend, DecryptError, SignatureError, XmlsecError
from saml2.xml.schema import XMLSchemaError

from gateway.errors import GatewayError

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"

CERT_PEM = xmlsec.constants.KeyDataFormatCertPem
CERT_DER = xmlsec.constants.KeyDataFormatCertDer
KEY_PEM = xmlsec.constants.KeyDataFormatPem

_PARSER_OPTIONS = {
    "resolve_entities": False,
    "load_dtd": False,
    "no_network": True,
    "huge_tree": False,
    "remove_comments": False,  # comments must survive: c14n drops them, a NameID must not
}


class UnsafeXml(GatewayError, ValueError):
    """The document is not one Cognate will look at; the message says why. Still a ValueError,
    as it was before it joined the error tree (`gateway.errors`)."""


def parse_strict(data: bytes | str) -> etree._Element:
    """Parse without DTDs, entities or network; refuse any DOCTYPE."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        root = etree.fromstring(raw, etree.XMLParser(**_PARSER_OPTIONS))  # noqa: S320
    except etree.XMLSyntaxError:
        raise UnsafeXml("not well-formed XML") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise UnsafeXml("a DOCTYPE is not allowed in SAML messages")
    if next(root.iter(etree.Entity), None) is not None:
        raise UnsafeXml("entities are not allowed in SAML messages")
    return root


def response_shape(root: etree._Element) -> None:
    """Refuse documents whose shape allows signature wrapping (see the module docstring)."""
    if root.tag != f"{{{SAMLP}}}Response":
        raise UnsafeXml("not a SAML Response")
    assertions = [e for e in root.iter(f"{{{SAML}}}Assertion", f"{{{SAML}}}EncryptedAssertion")]
    if len(assertions) > 1:
        raise UnsafeXml("a response must carry exactly one assertion")
    if assertions and assertions[0].getparent() is not root:
        raise UnsafeXml("the assertion must sit directly in the response")
    if sum(1 for _ in root.iter(f"{{{SAMLP}}}Response")) != 1:
        raise UnsafeXml("a response must not contain another response")
    ids_unique(root)
    signers = {root, *(a for a in assertions if a.tag == f"{{{SAML}}}Assertion")}
    for signature in root.iter(f"{{{DS}}}Signature"):
        if signature.getparent() not in signers:
            raise UnsafeXml("a signature must be enveloped in the response or the assertion")


def ids_unique(root: etree._Element) -> None:
    seen: set[str] = set()
    for element in root.iter():
        for name in ("ID", "Id", "id"):
            value = element.get(name)
            if value is None:
                continue
            if value in seen:
                raise UnsafeXml("two elements carry the same ID")
            seen.add(value)


# The bundled schemas import the W3C ones by their historical URLs; they are in the bundle too.
_SCHEMA_FILES = {
    "http://www.w3.org/TR/2002/REC-xmldsig-core-20020212/xmldsig-core-schema.xsd": (
        "xmldsig-core-schema.xsd"
    ),
    "http://www.w3.org/TR/2002/REC-xmlenc-core-20021210/xenc-schema.xsd": "xenc-schema.xsd",
}


class _BundledSchemas(etree.Resolver):  # type: ignore[misc]
    """Resolves every schema import to pysaml2's bundled copy; nothing from the network."""

    def resolve(self, url: str, pubid: str, context: Any) -> Any:
        name = _SCHEMA_FILES.get(url) or url.rsplit("/", 1)[-1]
        bundled = files(saml2.data.schemas).joinpath(name)
        return self.resolve_filename(str(bundled), context)


@functools.cache
def _saml_schema() -> etree.XMLSchema:
    parser = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False)
    parser.resolvers.add(_BundledSchemas())
    protocol = files(saml2.data.schemas).joinpath("saml-schema-protocol-2.0.xsd")
    return etree.XMLSchema(etree.parse(str(protocol), parser))  # noqa: S320 (our own files)


def validate_with_schema(document: str) -> None:
    """pysaml2's `validate_doc_with_schema`, by libxml2: XMLSchemaError when invalid."""
    try:
        root = parse_strict(document)
    except UnsafeXml as exc:
        raise XMLSchemaError({"error": str(exc)}) from None
    schema = _saml_schema()
    if not schema.validate(root):
        raise XMLSchemaError({"error": str(schema.error_log.last_error)})


def use_libxml2_schemas() -> None:
    """Make pysaml2 validate signed elements with `validate_with_schema` (process-wide: the
    same schemas and the same verdicts, only faster)."""
    saml2.sigver.validate_doc_with_schema = validate_with_schema


@functools.lru_cache(maxsize=64)
def _certificate_key(certificate: bytes, pem: bool) -> xmlsec.Key:
    """The verification key of an IdP certificate, parsed once (the context copies it)."""
    return xmlsec.Key.from_memory(certificate, CERT_PEM if pem else CERT_DER)


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


class InProcessBackend(CryptoBackend):  # type: ignore[misc]
    """pysaml2's crypto operations, done by libxmlsec1 in this process (see module docstring)."""

    @property
    def version(self) -> str:
        major, minor, patch = getattr(xmlsec, "get_libxmlsec_version")()  # noqa: B009 (no stub)
        return f"{major}.{minor}.{patch}"

    def validate_signature(
        self, signedtext: str | bytes, cert_file: str, cert_type: str, node_name: str, node_id: str
    ) -> bool:
        """Check the enveloped signature of the element `node_name` whose ID is `node_id`,
        with the certificate in `cert_file` only. Raises XmlsecError when it does not hold."""
        try:
            root = parse_strict(signedtext)
            ids_unique(root)
            namespace, _, local = node_name.rpartition(":")
            targets = [e for e in root.iter(f"{{{namespace}}}{local}") if e.get("ID") == node_id]
            if len(targets) != 1:
                raise XmlsecError(f"no single {local} with that ID")
            signatures = targets[0].findall(f"{{{DS}}}Signature")
            if len(signatures) != 1:
                raise XmlsecError("the element must carry exactly one enveloped signature")
            xmlsec.tree.add_ids(targets[0], ["ID"])
            context = xmlsec.SignatureContext()
            context.key = _certificate_key(_read(cert_file), cert_type == "pem")
            context.verify(signatures[0])
        except (UnsafeXml, xmlsec.Error) as exc:
            raise XmlsecError(str(exc)) from None
        return True

    def decrypt(self, enctext: str | bytes, key_file: str) -> str:
        """The document with every EncryptedAssertion's EncryptedData replaced by its plain
        text, decrypted with the private key in `key_file`."""
        try:
            root = parse_strict(enctext)
            manager = xmlsec.KeysManager()
            manager.add_key(xmlsec.Key.from_memory(_read(key_file), KEY_PEM))
            found = list(root.iter(f"{{{XENC}}}EncryptedData"))
            for data in found:
                xmlsec.EncryptionContext(manager).decrypt(data)
        except (UnsafeXml, xmlsec.Error) as exc:
            raise DecryptError(str(exc)) from None
        if not found:
            raise DecryptError("nothing to decrypt")
        return str(etree.tostring(root, encoding="unicode"))

    def sign_statement(self, statement: object, node_name: str, key_file: str, node_id: str) -> str:
        """Fill in the signature template inside the element `node_name` with ID `node_id`."""
        try:
            text = statement.decode() if isinstance(statement, bytes) else str(statement)
            root = parse_strict(text)
            namespace, _, local = node_name.rpartition(":")
            target = next(e for e in root.iter(f"{{{namespace}}}{local}") if e.get("ID") == node_id)
            signature = target.find(f"{{{DS}}}Signature")
            if signature is None:
                raise SignatureError("no signature template to fill")
            xmlsec.tree.add_ids(target, ["ID"])
            context = xmlsec.SignatureContext()
            context.key = xmlsec.Key.from_memory(_read(key_file), KEY_PEM)
            context.sign(signature)
        except (UnsafeXml, xmlsec.Error, StopIteration) as exc:
            raise SignatureError(str(exc)) from None
        return str(etree.tostring(root, encoding="unicode"))
