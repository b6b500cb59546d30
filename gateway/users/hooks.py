"""Hooks: Cognito's Lambda triggers as signed HTTP webhooks.

Each configured trigger is a POST of JSON to its URL:

    {"trigger": "pre_sign_up", "issuer": "https://auth.example.com", "request": {...}}

signed like Stripe's webhooks, so the receiver knows it came from this gateway and is fresh:

    X-Cognate-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

The receiver answers 200 with JSON within `timeout` seconds:

- `pre_sign_up` {email, attributes} → `{"allow": true|false, "message": "...", "auto_confirm":
  bool}`: refuse a sign-up (the message is shown), or mark the e-mail verified at once.
- `post_confirmation` {user_id, email} → anything: told after an e-mail is verified.
- `pre_token_generation` {user_id, client_id, scope, claims} → `{"claims_to_add": {...},
  "claims_to_suppress": [...], "groups": [...]}`: shape the ID token (the protocol claims —
  iss, sub, aud, exp, nonce… — cannot be touched).
- `user_migration` {email, password} → `{"found": true, "email_verified": bool, "name": "..."}`:
  on a sign-in with an unknown e-mail, ask the legacy system; a found user is created here with
  that password (hashed with argon2id) and signs in — lazy migration, one user at a time.

Failures fail closed: no answer in time, not 200, not JSON → a sign-up is refused "for now", a
token request gets 503, a migration finds nobody. Post-confirmation failures are logged only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx

from gateway.errors import GatewayError
from gateway.outbound import http_client
from gateway.settings import HookSettings

log = logging.getLogger("cognate.hooks")

PROTECTED_CLAIMS = frozenset(
    {
        "iss",
        "sub",
        "aud",
        "azp",
        "exp",
        "iat",
        "nbf",
        "auth_time",
        "nonce",
        "sid",
        "amr",
        "at_hash",
        "jti",
        "acr",
    }
)


class HookFailed(GatewayError):
    """The hook did not answer usefully in time."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Cognate-Signature value for a body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class Hooks:
    """Calls the configured triggers."""

    def __init__(self, config: HookSettings | None, issuer: str) -> None:
        self.config = config
        self.issuer = issuer
        self._http = http_client(config.timeout if config else 5.0)

    def enabled(self, trigger: str) -> bool:
        return self.config is not None and getattr(self.config, trigger, None) is not None

    async def call(self, trigger: str, request: dict[str, Any]) -> dict[str, Any]:
        """The hook's JSON answer; HookFailed when there is none to use."""
        assert self.config is not None  # noqa: S101 - callers check enabled() first
        url = str(getattr(self.config, trigger))
        body = json.dumps({"trigger": trigger, "issuer": self.issuer, "request": request}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Cognate-Trigger": trigger,
            "X-Cognate-Signature": signature(self.config.secret, int(time.time()), body),
        }
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("hook %s unreachable: %s", trigger, type(exc).__name__)
            raise HookFailed(f"the {trigger} hook did not answer") from None
        if response.status_code != 200 or len(response.content) > 64 * 1024:
            log.warning("hook %s answered %s", trigger, response.status_code)
            raise HookFailed(f"the {trigger} hook answered {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            raise HookFailed(f"the {trigger} hook did not answer JSON") from None
        if not isinstance(answer, dict):
            raise HookFailed(f"the {trigger} hook did not answer a JSON object")
        return answer

    async def shape_claims(
        self, user_id: str, client_id: str, scope: list[str], claims: dict[str, Any]
    ) -> dict[str, Any]:
        """`pre_token_generation` applied to the profile claims of an ID token."""
        if not self.enabled("pre_token_generation"):
            return claims
        answer = await self.call(
            "pre_token_generation",
            {"user_id": user_id, "client_id": client_id, "scope": scope, "claims": claims},
        )
        shaped = dict(claims)
        for name in answer.get("claims_to_suppress") or []:
            if isinstance(name, str) and name not in PROTECTED_CLAIMS:
                shaped.pop(name, None)
        added = answer.get("claims_to_add") or {}
        if isinstance(added, dict):
            shaped |= {k: v for k, v in added.items() if k not in PROTECTED_CLAIMS}
        groups = answer.get("groups")
        if isinstance(groups, list):
            shaped["groups"] = [str(g) for g in groups]
        return shaped

    async def close(self) -> None:
        await self._http.aclose()
