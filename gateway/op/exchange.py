"""Token exchange (RFC 8693) for workloads: a CI job or a Kubernetes pod trades the token its
platform gives it (GitHub Actions' OIDC token, a projected service-account token) for Cognate
tokens, without any secret of its own.

Only issuers listed in `token_exchange.trust` are believed. A subject token is checked in this
order, and the first failure is the answer:

1. it is a JWT of a supported `subject_token_type`, its `iss` names a trusted issuer, and its
   signature checks out with a key from *that issuer's* JWKS (RS256/ES256 only: never `none`,
   never HMAC, never a key from the token's header — `ProviderVerifier.signed_claims`);
2. it has a `sub`, an unexpired `exp`, and no `iat`/`nbf` in the future (with the leeway);
3. some rule for that issuer accepts it: one of its audiences is in `aud`, every configured
   claim matches (exact, or a glob such as `org/*`), and the client may use the rule;
4. unless the rule allows replay, its `jti` has not been exchanged before (SET NX, kept for
   the token's remaining lifetime).

Refusals name the rule(s) and claim that refused — in `error_description` and in the audit
stream — but never the values a rule expects. Per RFC 8693 §2.2.2 an unacceptable subject
token is `invalid_request`; an `audience`/`resource` we cannot serve is `invalid_target`.

The workload gets a stable identity ID for (issuer, sub), resolved like any login
(`IdentityStore.resolve`), and an access token (or, with `requested_token_type` id_token, an ID
token usable as a `Logins` entry at GetCredentialsForIdentity, whose RoleSessionName then names
the workload). Never a refresh token: the workload exchanges again with a fresh platform token.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData

from gateway.clients import Client
from gateway.credentials.web_identity import provider_name
from gateway.errors import InvalidRequest, InvalidScope, OAuthError, TemporarilyUnavailable
from gateway.identity.providers import LoginRejected
from gateway.op.minting import GrantHandler, required_field
from gateway.settings import TOKEN_EXCHANGE_GRANT, TrustRuleSettings

if TYPE_CHECKING:
    from gateway.services import Services

JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SUBJECT_TYPES = frozenset({JWT_TYPE, ID_TOKEN_TYPE})
MAX_SUBJECT_TOKEN = 16 * 1024  # GitHub's tokens are ~1.5 KB; nothing honest is near this


MAX_JTI_TTL = 86_400.0  # seconds a subject token may still live: its jti is kept that long


class InvalidTarget(OAuthError):
    """RFC 8693 §2.2.2: the audience or resource asked for is not one we issue tokens for."""

    error = "invalid_target"


@dataclass(frozen=True)
class Workload:
    """A subject token that some rule accepted."""

    rule: str
    issuer: str
    subject: str
    claims: dict[str, Any]
    scope: list[str]


def _audiences(claims: dict[str, Any]) -> set[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return {aud}
    return {a for a in aud if isinstance(a, str)} if isinstance(aud, list) else set()


def claim_matches(value: Any, wanted: str) -> bool:
    """A configured claim: exact, or a glob when it has `*`, `?` or `[`. Only string claims
    match: a list or number never equals a pattern by accident."""
    if not isinstance(value, str):
        return False
    if any(c in wanted for c in "*?["):
        return fnmatch.fnmatchcase(value, wanted)
    return value == wanted


def why_not(rule: TrustRuleSettings, claims: dict[str, Any], client_id: str) -> str | None:
    """Why `rule` refuses these (signature-checked) claims, or None when it accepts them."""
    if rule.client_ids and client_id not in rule.client_ids:
        return f"client {client_id} may not use it"
    if not _audiences(claims) & set(rule.audience):
        return "the token's audience (aud) does not match"
    for name, wanted in rule.claims.items():
        value = claim_value(claims, name)
        if value is None:
            return f"claim {name} is missing"
        if not claim_matches(value, wanted):
            return f"claim {name} does not match"
    return None


def claim_value(claims: dict[str, Any], name: str) -> Any:
    """A claim by its literal name (`kubernetes.io/serviceaccount/namespace` in legacy
    service-account tokens), else by a `/` path into nested objects (`kubernetes.io/namespace`
    in projected ones); None when absent."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("/"):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


class TokenExchange:
    """Verify a subject token against the trust rules; remember spent `jti`s."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.config = services.settings.token_exchange

    def rules_for(self, issuer: str) -> list[tuple[str, TrustRuleSettings]]:
        return [
            (self.config.rule_name(i), rule)
            for i, rule in enumerate(self.config.trust)
            if rule.issuer == issuer
        ]

    async def verify(self, token: str, client_id: str, asked: list[str]) -> Workload:
        """The workload this token proves, or an OAuthError naming what refused it."""
        issuer = _unverified_issuer(token) or ""
        rules = self.rules_for(issuer)
        if not rules:
            raise InvalidRequest("the subject_token's issuer is not trusted")
        # The rules of one issuer agree on its key source (settings check that).
        claims = await self._signed(issuer, token, rules[0][1].jwks_uri)
        self._check_times(claims)
        refusals = []
        for name, rule in rules:
            reason = why_not(rule, claims, client_id)
            if reason is None:
                scope = _granted(rule, asked)
                await self._spend(rule, issuer, claims)
                return Workload(name, issuer, str(claims["sub"]), claims, scope)
            refusals.append(f"rule {name}: {reason}")
        raise InvalidRequest(
            "no trust rule accepts the subject_token (" + "; ".join(refusals) + ")"
        )

    async def _signed(self, issuer: str, token: str, jwks_uri: str | None) -> dict[str, Any]:
        try:
            return await self.services.verifier.signed_claims(issuer, token, jwks_uri)
        except LoginRejected as exc:
            reason = str(exc).removeprefix("Invalid login token. ").rstrip(".")
            if "keys are unavailable" in reason:  # the issuer is down: ours to retry, not theirs
                raise TemporarilyUnavailable(f"cannot check the subject_token: {reason}") from None
            raise InvalidRequest(f"the subject_token is not valid: {reason}") from None

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = time.time()
        leeway = self.services.settings.tokens.leeway
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise InvalidRequest("the subject_token has no sub")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise InvalidRequest("the subject_token has no numeric exp")
        if exp + leeway <= now:
            raise InvalidRequest("the subject_token has expired")
        if exp - now > MAX_JTI_TTL:
            # Its jti could not be remembered until it expires (and no workload platform
            # issues such tokens): refused rather than exchanged again after a day.
            raise InvalidRequest("the subject_token lives longer than a day")
        for name in ("iat", "nbf"):
            value = claims.get(name)
            if value is not None and (not isinstance(value, int | float) or value - leeway > now):
                raise InvalidRequest(f"the subject_token is not valid yet ({name})")

    async def _spend(self, rule: TrustRuleSettings, issuer: str, claims: dict[str, Any]) -> None:
        """Each token once, unless the rule says otherwise: a token lifted from a CI log must
        not be worth a second set of credentials."""
        if rule.allow_replay:
            return
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise InvalidRequest("the subject_token has no jti, and its rule forbids replay")
        store = self.services.store
        digest = self.services.sealer.keyed_hash(f"{issuer}\n{jti}", purpose="exchange-jti")
        # Kept until the token expires (at most a day: longer-lived tokens are refused).
        remaining = float(claims["exp"]) + self.services.settings.tokens.leeway - time.time()
        ttl = min(max(1.0, remaining), MAX_JTI_TTL + self.services.settings.tokens.leeway)
        if not await store.create(store.key("exchange-jti", digest), b"1", ttl=ttl):
            raise InvalidRequest("the subject_token was already exchanged (jti replay)")


def _unverified_issuer(token: str) -> str | None:
    """`iss` read before any signature check: only to choose whose keys to check it with.
    Something that is not a JWT at all is told so, not that its issuer is unknown."""
    parts = token.split(".")
    payload: Any = None
    if len(parts) == 3:
        try:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (ValueError, TypeError):
            pass
    if not isinstance(payload, dict):
        raise InvalidRequest("the subject_token is not valid: Not a JWT")
    issuer = payload.get("iss")
    return issuer if isinstance(issuer, str) else None


def _granted(rule: TrustRuleSettings, asked: list[str]) -> list[str]:
    allowed = rule.scope.split()
    if not asked:
        return allowed
    if set(asked) - set(allowed):
        raise InvalidScope(
            "scope not allowed for this workload: " + " ".join(sorted(set(asked) - set(allowed)))
        )
    return asked


def token_exchange_grant(services: Services) -> GrantHandler:
    """The token endpoint's token-exchange grant handler (`gateway.op.token.GrantHandler`)."""
    exchange = TokenExchange(services)
    issuer = services.settings.issuer

    class TokenExchangeGrant:
        grant_type = TOKEN_EXCHANGE_GRANT

        async def exchange(self, form: FormData, client: Client) -> dict[str, Any]:
            token = required_field(form, "subject_token")
            kind = required_field(form, "subject_token_type")
            if kind not in SUBJECT_TYPES:
                raise InvalidRequest("subject_token_type must be a jwt or an id_token")
            if len(token) > MAX_SUBJECT_TOKEN:
                raise InvalidRequest("the subject_token is too long")
            if "actor_token" in form or "actor_token_type" in form:
                raise InvalidRequest("delegation (actor_token) is not supported")
            wanted = form.get("requested_token_type") or ACCESS_TOKEN_TYPE
            if wanted not in (ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE):
                raise InvalidRequest("requested_token_type must be an access_token or id_token")
            for target in ("audience", "resource"):
                value = form.get(target)
                if value is not None and value not in (issuer, client.client_id):
                    raise InvalidTarget(f"tokens for {target} {value} are not issued here")
            asked = str(form.get("scope") or "").split()
            try:
                workload = await exchange.verify(token, client.client_id, asked)
            except OAuthError as exc:
                await services.audit.record(
                    "token_exchange.refused", client_id=client.client_id, reason=exc.description
                )
                raise
            identity_id = await _identity(
                services, provider_name(workload.issuer), workload.subject
            )
            # Not waited for, as the token endpoint's own token.issued (batched, held through
            # outages, never lost quietly): the answer does not depend on it. Refusals above
            # are still written before they are answered.
            services.audit.defer(
                "token_exchange.accepted",
                client_id=client.client_id,
                rule=workload.rule,
                identity_id=identity_id,
                subject=workload.subject,
            )
            return _response(services, client, workload, identity_id, str(wanted))

    return TokenExchangeGrant()


async def _identity(services: Services, provider: str, subject: str) -> str:
    """The workload's identity ID. A workload exchanges again and again (every CI run, every
    pod of a deployment shares its service account's subject), so the known case is answered
    by `IdentityStore.linked` — from this replica's memory once seen, else its link and its
    record — where `resolve` spends four round trips (two refused SET NX and two GETs).
    Anything else (a first exchange, or a link whose record a crash left missing or
    incomplete) goes through `resolve`, which creates and repairs."""
    identities = services.identities
    identity_id = await identities.linked(provider, subject)
    if identity_id is not None:
        return identity_id
    return await identities.resolve(provider, subject)


def _response(
    services: Services, client: Client, workload: Workload, identity_id: str, wanted: str
) -> dict[str, Any]:
    tokens = services.tokens
    if wanted == ID_TOKEN_TYPE:
        now = int(time.time())
        id_token = tokens.id_token(
            sub=identity_id,
            client_id=client.client_id,
            auth_time=now,
            nonce=None,
            sid=None,
            access_token=None,
            amr=[],
            # The workload's own name, which CloudTrail shows as the RoleSessionName.
            profile={"preferred_username": workload.subject},
        )
        return {
            "access_token": id_token,
            "issued_token_type": ID_TOKEN_TYPE,
            "token_type": "N_A",  # RFC 8693 §2.2.1: not an access token
            "expires_in": services.settings.tokens.id_token_ttl,
        }
    access, parsed = tokens.access_token(
        sub=identity_id, client_id=client.client_id, scope=frozenset(workload.scope), gid=None
    )
    return {
        "access_token": access,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": parsed.exp - parsed.iat,
        "scope": " ".join(workload.scope),
    }
