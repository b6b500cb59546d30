"""The `saml` connector: Cognate as a SAML 2.0 service provider (pysaml2), Web Browser SSO.

`start()` builds a signed AuthnRequest (HTTP-Redirect or HTTP-POST binding) and keeps its ID and
the RelayState on the flow. The IdP posts a Response to the ACS; `finish()` accepts it only when
all of this holds (pysaml2 does the protocol checks, Cognate adds its own where pysaml2 is lax):

- the body is small (`max_response_bytes`, checked before decoding), has no DOCTYPE or entity,
  and has the one shape that cannot hide a wrapped signature (`saml_xml.response_shape`);
- the assertion is signed (and the response, when `want_response_signed`), with a certificate
  from the IdP's metadata only — never one carried in the message (`KeyInfo`);
- the issuer of the response and of the assertion is the IdP of the metadata;
- Destination and the SubjectConfirmation Recipient are our ACS, the assertion has an
  AudienceRestriction and each one names our entity ID, NotBefore/NotOnOrAfter hold (with
  `clock_skew`), the Status is Success;
- InResponseTo is the AuthnRequest of *this* flow (unsolicited responses only when
  `allow_idp_initiated`);
- the assertion ID was never seen before (replay cache in the store until NotOnOrAfter).

Parsing and signature checks are CPU-bound and run in a bounded pool. IdP metadata is read from
a file or URL, refreshed every `idp_metadata_refresh` (a new certificate in the metadata is
trusted from then on: rollover), and a failed refresh keeps the metadata already loaded.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import calendar
import logging
import math
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, SAMLError
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import create_metadata_string
from saml2.response import AuthnResponse
from saml2.saml import NAMEID_FORMAT_UNSPECIFIED
from saml2.sigver import RSACrypto, SigverError, import_rsa_key_from_file
from saml2.time_util import str_to_time
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from gateway.connectors import (
    ConnectorError,
    LoginStart,
    SamlPending,
    SignInTooOld,
    UpstreamIdentity,
    UpstreamPending,
    UpstreamRefresh,
    UpstreamSignIn,
)
from gateway.connectors.mapping import SAML_DEFAULTS, map_attributes
from gateway.connectors.saml_xml import (
    InProcessBackend,
    UnsafeXml,
    parse_strict,
    response_shape,
    use_libxml2_schemas,
)
from gateway.crypto import random_token
from gateway.outbound import http_client
from gateway.pool import BoundedPool
from gateway.settings import SamlConnectorSettings
from gateway.store import Store

log = logging.getLogger("cognate.connectors.saml")

BINDINGS = {"redirect": BINDING_HTTP_REDIRECT, "post": BINDING_HTTP_POST}
MAX_METADATA = 2 * 1024 * 1024
_BASE64 = re.compile(rb"^[A-Za-z0-9+/=\s]*$")


class _NoPopulation:
    """pysaml2's SP keeps every user it has seen in memory; Cognate keeps nothing."""

    def add_information_about_person(self, session_info: object) -> None:
        return None


class SamlConnector:
    """One upstream SAML IdP."""

    type = "saml"

    def __init__(
        self, config: SamlConnectorSettings, issuer: str, store: Store, pool: BoundedPool
    ) -> None:
        self.id = config.id
        self.name = config.name
        self.config = config
        self.metadata_url = f"{issuer}/saml/{config.id}/metadata"
        self.acs_url = f"{issuer}/saml/{config.id}/acs"
        self.slo_url = f"{issuer}/saml/{config.id}/slo"
        self.entity_id = config.entity_id or self.metadata_url
        self._store = store
        self._pool = pool
        self._client: Saml2Client | None = None
        self._idp: str = ""
        self._loaded_at = -math.inf
        self._lock = asyncio.Lock()
        self._http = http_client(config.timeout)
        # pysaml2 and xmlsec1 read keys from files: a private directory only this process reads.
        self._keys = tempfile.TemporaryDirectory(prefix=f"cognate-saml-{config.id}-")
        self._key_file = Path(self._keys.name) / "sp.key"
        self._cert_file = Path(self._keys.name) / "sp.crt"
        self._key_file.touch(mode=0o600)
        self._key_file.write_text(config.sp_key)
        self._cert_file.write_text(config.sp_cert)

    # -- metadata ------------------------------------------------------------------------------

    async def client(self) -> Saml2Client:
        """The pysaml2 SP for the current IdP metadata (loaded on first use, then refreshed)."""
        stale = time.monotonic() - self._loaded_at > self.config.idp_metadata_refresh
        if self._client is not None and not stale:
            return self._client
        async with self._lock:
            if self._client is not None and time.monotonic() - self._loaded_at < 1:
                return self._client
            try:
                text = await self._read_metadata()
                client, idp = await self._pool.run(self._build, text)
            except ConnectorError as exc:
                if self._client is None:
                    raise
                log.warning("saml %s: metadata refresh failed, keeping the old: %s", self.id, exc)
                self._loaded_at = time.monotonic()  # retry after one more period
                return self._client
            self._client, self._idp, self._loaded_at = client, idp, time.monotonic()
            return client

    async def reload(self) -> None:
        """Re-read the IdP metadata now, rather than at the next scheduled refresh."""
        self._loaded_at = -math.inf
        await self.client()

    async def _read_metadata(self) -> str:
        source = self.config.idp_metadata
        if source.startswith(("http://", "https://")):
            try:
                response = await self._http.get(source)
            except httpx.HTTPError as exc:
                raise ConnectorError(
                    f"{self.name}: IdP metadata unreachable ({type(exc).__name__})"
                ) from None
            if response.status_code != 200 or len(response.content) > MAX_METADATA:
                raise ConnectorError(f"{self.name}: IdP metadata answered {response.status_code}")
            return response.text
        try:
            return Path(source).read_text()
        except OSError as exc:
            raise ConnectorError(f"{self.name}: cannot read IdP metadata ({exc})") from None

    def _settings(self, metadata: str | None) -> dict[str, Any]:
        """pysaml2's SP configuration; without IdP metadata it still describes the SP."""
        c = self.config
        settings: dict[str, Any] = {
            "entityid": self.entity_id,
            "key_file": str(self._key_file),
            "cert_file": str(self._cert_file),
            "encryption_keypairs": [
                {"key_file": str(self._key_file), "cert_file": str(self._cert_file)}
            ],
            "accepted_time_diff": c.clock_skew,
            "allow_unknown_attributes": True,
            "only_use_keys_in_metadata": True,
            "crypto_backend": "xmlsec1" if c.crypto == "xmlsec1" else "XMLSecurity",
            "service": {
                "sp": {
                    "name": c.name,
                    "endpoints": {
                        "assertion_consumer_service": [(self.acs_url, BINDING_HTTP_POST)],
                        "single_logout_service": [
                            (self.slo_url, BINDING_HTTP_REDIRECT),
                            (self.slo_url, BINDING_HTTP_POST),
                        ],
                    },
                    "authn_requests_signed": True,
                    "want_assertions_signed": True,
                    "want_response_signed": c.want_response_signed,
                    "want_assertions_or_response_signed": True,
                    # InResponseTo is checked by Cognate against the flow (see _parse), which
                    # also decides when an unsolicited response is acceptable.
                    "allow_unsolicited": True,
                    "name_id_format": c.name_id_format or NAMEID_FORMAT_UNSPECIFIED,
                    "name_id_format_allow_create": True,
                    "signing_algorithm": SIG_RSA_SHA256,
                    "digest_algorithm": DIGEST_SHA256,
                }
            },
        }
        if metadata is not None:
            settings["metadata"] = {"inline": [metadata]}
        return settings

    def _build(self, metadata: str) -> tuple[Saml2Client, str]:
        """A pysaml2 SP configured for this connector and the given IdP metadata."""
        try:
            root = parse_strict(metadata)
        except UnsafeXml as exc:
            raise ConnectorError(f"{self.name}: IdP metadata refused ({exc})") from None
        md = "urn:oasis:names:tc:SAML:2.0:metadata"
        if (
            root.tag != f"{{{md}}}EntityDescriptor"
            or root.find(f"{{{md}}}IDPSSODescriptor") is None
        ):
            raise ConnectorError(f"{self.name}: IdP metadata must be one IdP EntityDescriptor")
        idp = str(root.get("entityID") or "")
        try:
            config = SPConfig().load(self._settings(metadata))
            client = Saml2Client(config=config)
        except Exception as exc:  # pysaml2 raises a dozen kinds here; all mean "bad setup"
            raise ConnectorError(f"{self.name}: SAML setup failed ({exc})") from None
        if self.config.crypto == "inprocess":
            use_libxml2_schemas()
            client.sec.crypto = InProcessBackend()
            client.sec.sec_backend = RSACrypto(import_rsa_key_from_file(str(self._key_file)))
        client.users = _NoPopulation()
        # pysaml2 checks the signature of a LogoutRequest only when this *IdP* setting is on;
        # an unsigned LogoutRequest would let anyone sign anyone out.
        client.config._idp_want_authn_requests_signed = True
        return client, idp

    async def sp_metadata(self) -> str:
        """The SP metadata an IdP admin imports (entity ID, ACS, SLO, certificates)."""
        config = await self._pool.run(SPConfig().load, self._settings(None))
        document = create_metadata_string(None, config=config, valid=None)
        return document.decode() if isinstance(document, bytes) else str(document)

    # -- sign-in -------------------------------------------------------------------------------

    async def start(self, callback_url: str, flow_id: str) -> LoginStart:
        """A signed AuthnRequest to the IdP; its ID and the RelayState are kept on the flow."""
        client = await self.client()
        relay_state = f"{flow_id}.{random_token(16)}"
        binding = BINDINGS[self.config.binding]
        try:
            request_id, target, fields = await self._pool.run(
                self._authn_request, client, binding, relay_state
            )
        except (SAMLError, SigverError) as exc:  # e.g. xmlsec1 missing or failing
            log.error("saml %s: cannot build an AuthnRequest: %s", self.id, exc)
            raise ConnectorError(f"{self.name}: cannot sign the request") from None
        pending = SamlPending(relay_state, request_id)
        if fields:
            return LoginStart(redirect_url=target, pending=pending, form=fields)
        return LoginStart(redirect_url=target, pending=pending)

    def _authn_request(
        self, client: Saml2Client, binding: str, relay_state: str
    ) -> tuple[str, str, dict[str, str]]:
        destination = client.sso_location(self._idp, binding)
        if binding == BINDING_HTTP_REDIRECT:
            request_id, info = client.prepare_for_authenticate(
                entityid=self._idp,
                relay_state=relay_state,
                binding=binding,
                sign=True,
                sigalg=SIG_RSA_SHA256,
                digest_alg=DIGEST_SHA256,
            )
            location = dict(info["headers"])["Location"]
            return str(request_id), str(location), {}
        request_id, request = client.create_authn_request(
            destination,
            binding=BINDING_HTTP_POST,
            sign=True,
            sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
        )
        encoded = base64.b64encode(str(request).encode()).decode()
        return (
            str(request_id),
            str(destination),
            {"SAMLRequest": encoded, "RelayState": relay_state},
        )

    async def finish(self, params: Mapping[str, str], pending: UpstreamPending) -> UpstreamIdentity:
        """Validate the Response posted to the ACS for the AuthnRequest `pending` sent."""
        if not isinstance(pending, SamlPending):
            raise ConnectorError("The SAML response does not belong to this sign-in.")
        return await self.validate(params.get("SAMLResponse", ""), pending.request_id)

    async def validate(
        self, encoded: str, request_id: str | None, *, identity_pool: bool = False
    ) -> UpstreamIdentity:
        """The identity a base64 SAMLResponse proves. `request_id` None accepts only an
        unsolicited response, where IdP-initiated sign-in is enabled or for an identity pool.
        An identity-pool login may be shown more than once until it expires (GetId, then
        GetCredentialsForIdentity, as AWS allows); a browser sign-in uses it up."""
        if len(encoded) > self.config.max_response_bytes * 4 // 3 + 4:
            raise ConnectorError(f"{self.name}: the SAML response is too large")
        client = await self.client()
        answer = await self._pool.run(self._parse, client, encoded, request_id, identity_pool)
        assertion = answer.assertion
        if not identity_pool:
            expires = _not_on_or_after(answer)
            ttl = max(1.0, expires - time.time() + self.config.clock_skew)
            fresh = await self._store.create(
                self._store.key("saml", self.id, "assertion", str(assertion.id)), b"1", ttl
            )
            if not fresh:
                raise ConnectorError(f"{self.name}: this SAML response was already used")
        return self._identity(answer)

    def _parse(
        self, client: Saml2Client, encoded: str, request_id: str | None, identity_pool: bool
    ) -> AuthnResponse:
        """pysaml2's validation, fenced by Cognate's own checks (runs in the pool)."""
        raw = encoded.encode()
        if not _BASE64.match(raw):
            raise ConnectorError(f"{self.name}: the SAML response is not base64")
        try:
            document = base64.b64decode(raw, validate=False)
            root = parse_strict(document)
            response_shape(root)
        except (binascii.Error, UnsafeXml) as exc:
            raise ConnectorError(f"{self.name}: SAML response refused ({exc})") from None
        if root.get("Destination") != self.acs_url:
            raise ConnectorError(f"{self.name}: the SAML response is for another destination")
        if request_id is None and root.get("InResponseTo"):
            raise ConnectorError(f"{self.name}: the SAML response answers another sign-in")
        if request_id is None and not (identity_pool or self.config.allow_idp_initiated):
            raise ConnectorError(f"{self.name}: IdP-initiated sign-in is not enabled")
        outstanding = {request_id: "flow"} if request_id else {}
        try:
            answer = client.parse_authn_request_response(
                encoded, BINDING_HTTP_POST, outstanding=outstanding
            )
        except Exception as exc:  # pysaml2 signals each failed check with its own class
            log.info("saml %s: response refused: %s: %s", self.id, type(exc).__name__, exc)
            raise ConnectorError(f"{self.name}: SAML response refused ({_reason(exc)})") from None
        if not isinstance(answer, AuthnResponse) or answer.assertion is None:
            raise ConnectorError(f"{self.name}: SAML response refused (no assertion)")
        issuers = {answer.issuer(), _text(answer.assertion.issuer)}
        if issuers != {self._idp}:
            raise ConnectorError(f"{self.name}: the SAML response comes from another issuer")
        if (answer.in_response_to or None) != request_id:
            raise ConnectorError(f"{self.name}: the SAML response answers another sign-in")
        # pysaml2 lets a SubjectConfirmation without our ACS as Recipient pass; the Web SSO
        # profile (§4.1.4.3) requires it, or an assertion for another SP could be replayed here.
        confirmations = answer.assertion.subject.subject_confirmation
        for confirmation in confirmations:
            data = confirmation.subject_confirmation_data
            if data is None or data.recipient != self.acs_url:
                raise ConnectorError(f"{self.name}: the SAML assertion is for another recipient")
            if (data.in_response_to or None) != request_id:
                raise ConnectorError(f"{self.name}: the SAML assertion answers another sign-in")
        if not confirmations:
            raise ConnectorError(f"{self.name}: the SAML assertion has no bearer confirmation")
        # pysaml2's for_me() passes an assertion without any AudienceRestriction (or without
        # Conditions at all). The Web SSO profile (§4.1.4.2) requires one naming the SP in
        # every bearer assertion, or an assertion the IdP issued for any other SP would sign
        # in here too. Every restriction must name us: all of them apply (SAML Core §2.5.1.4).
        conditions = answer.assertion.conditions
        restrictions = conditions.audience_restriction if conditions is not None else []
        if not restrictions or not all(
            any(_text(audience) == self.entity_id for audience in restriction.audience)
            for restriction in restrictions
        ):
            raise ConnectorError(f"{self.name}: the SAML assertion is not restricted to us")
        return answer

    def _identity(self, answer: AuthnResponse) -> UpstreamIdentity:
        attributes: dict[str, list[str]] = {}
        for statement in answer.assertion.attribute_statement:
            for attribute in statement.attribute:
                values = [_text(v) for v in attribute.attribute_value if _text(v)]
                for key in (attribute.name, attribute.friendly_name):
                    if key:
                        attributes.setdefault(str(key), []).extend(values)
        name_id = answer.assertion.subject.name_id
        subject = _text(name_id)
        if self.config.subject_attribute:
            values = attributes.get(self.config.subject_attribute) or []
            subject = values[0] if values else ""
        if not subject:
            raise ConnectorError(f"{self.name}: the SAML response names no subject")
        claims = map_attributes(attributes, self.config.attribute_mapping, SAML_DEFAULTS)
        claims["email_verified"] = bool(claims.get("email")) and self.config.trust_email
        session_index = next(
            (s.session_index for s in answer.assertion.authn_statement if s.session_index), None
        )
        if session_index:
            claims["saml_session_index"] = session_index
        claims["saml_name_id"] = subject if not self.config.subject_attribute else _text(name_id)
        return UpstreamIdentity(
            self.id, subject, claims, amr=["ext", "saml"], expires_at=_not_on_or_after(answer)
        )

    # -- single logout -------------------------------------------------------------------------

    async def logout_request(self, fields: Mapping[str, str], method: str) -> tuple[str, str]:
        """Check the IdP's signed LogoutRequest; the NameID it ends, and where to send the
        browser with our signed LogoutResponse."""
        client = await self.client()
        return await self._pool.run(self._logout, client, dict(fields), method)

    def _logout(self, client: Saml2Client, fields: dict[str, str], method: str) -> tuple[str, str]:
        binding = BINDING_HTTP_POST if method == "POST" else BINDING_HTTP_REDIRECT
        encoded = fields.get("SAMLRequest", "")
        if not encoded:
            raise ConnectorError(f"{self.name}: no LogoutRequest")
        try:
            if binding == BINDING_HTTP_POST:
                parse_strict(base64.b64decode(encoded))
            request = client.parse_logout_request(
                encoded,
                binding,
                relay_state=fields.get("RelayState"),
                sigalg=fields.get("SigAlg"),
                signature=fields.get("Signature"),
            )
        except Exception as exc:  # pysaml2's many failure classes, and bad base64 or XML
            log.info("saml %s: logout refused: %s", self.id, type(exc).__name__)
            raise ConnectorError(f"{self.name}: LogoutRequest refused ({_reason(exc)})") from None
        message = getattr(request, "message", None)
        if message is None or _text(message.issuer) != self._idp or message.name_id is None:
            raise ConnectorError(f"{self.name}: LogoutRequest refused (wrong issuer)")
        endpoints = client.metadata.single_logout_service(
            self._idp, BINDING_HTTP_REDIRECT, "idpsso"
        )
        if not endpoints:
            raise ConnectorError(f"{self.name}: the IdP has no single logout endpoint")
        destination = endpoints[0].get("response_location") or endpoints[0]["location"]
        answer = client.create_logout_response(message, [BINDING_HTTP_REDIRECT], sign=False)
        info = client.apply_binding(
            BINDING_HTTP_REDIRECT,
            str(answer),
            destination,
            fields.get("RelayState", ""),
            response=True,
            sign=True,
            sigalg=SIG_RSA_SHA256,
        )
        return _text(message.name_id), str(dict(info["headers"])["Location"])

    def form_origins(self) -> list[str]:
        """The IdP's SSO origin (the POST binding submits a form there)."""
        client = self._client
        if client is None:
            return []
        try:
            url = client.sso_location(self._idp, BINDINGS[self.config.binding])
        except Exception:
            return []
        parts = httpx.URL(str(url))
        return [f"{parts.scheme}://{parts.netloc.decode()}"]

    async def refresh(self, signed_in: UpstreamSignIn) -> UpstreamRefresh | None:
        """`RefreshingConnector.refresh`: a SAML sign-in has nothing to refresh, so a
        downstream refresh is allowed only while it is younger than `max_session_age`."""
        if signed_in.now - signed_in.auth_time > self.config.max_session_age:
            raise SignInTooOld("the sign-in is too old; sign in again")
        return None

    async def close(self) -> None:
        await self._http.aclose()
        self._keys.cleanup()


def _text(element: Any) -> str:
    return str(getattr(element, "text", "") or "").strip()


def _not_on_or_after(answer: AuthnResponse) -> float:
    """When the assertion stops being usable: the earliest NotOnOrAfter it carries."""
    moments: list[str] = []
    assertion = answer.assertion
    if assertion.conditions is not None and assertion.conditions.not_on_or_after:
        moments.append(assertion.conditions.not_on_or_after)
    for confirmation in assertion.subject.subject_confirmation:
        data = confirmation.subject_confirmation_data
        if data is not None and data.not_on_or_after:
            moments.append(data.not_on_or_after)
    if not moments:
        return time.time() + 3600
    return min(float(calendar.timegm(str_to_time(m))) for m in moments)


# pysaml2 raises a bare Exception for some failed checks; its message says which.
_GENERIC_REASONS = {
    "AudienceRestrictions conditions not satisfied": "the assertion is for another audience "
    "(its Audience is not this service's entity ID)",
    "Unknown condition": "the assertion has a condition this service does not know",
    "Missing xsi:type": "the assertion has a condition without a type",
}


def _reason(exc: Exception) -> str:
    """A short, safe reason from pysaml2's exception (its messages can embed whole documents)."""
    name = type(exc).__name__
    if type(exc) is Exception:
        text = str(exc)
        fallback = "one of its conditions is not met"
        return next((r for k, r in _GENERIC_REASONS.items() if text.startswith(k)), fallback)
    return {
        "SignatureError": "bad or missing signature",
        "MissingKey": "unknown issuer",
        "UnsolicitedResponse": "not an answer to this sign-in",
        "StatusError": "the IdP reported a failure",
        "ResponseLifetimeExceed": "expired",
        "ToEarly": "not yet valid",
        "IncorrectlySigned": "bad or missing signature",
        "VerificationError": "not for this service",
        "DecryptError": "cannot be decrypted",
    }.get(name, name)
