"""The `oauth2` connector: providers that speak OAuth2 but not OpenID Connect.

There is no ID token to verify, so who the user is comes from the provider's API, over TLS,
with the access token just obtained; state (bound to the browser's flow) and PKCE protect the
redirect as for OIDC. The subject is the provider's immutable account id, never the login name
or e-mail. Presets:

- `github` (and GitHub Enterprise Server with `base_url`): the *primary, verified* e-mail from
  /user/emails; organisations and `org/team` slugs as groups.
- `facebook`: Graph API /me (id, name, email, picture); e-mail unverified unless `trust_email`.
- `amazon`: Login with Amazon /user/profile (user_id, name, email).
Anything else: explicit endpoints, `subject_claim`, `claim_mapping`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.connectors import (
    ConnectorError,
    LoginStart,
    OAuth2Pending,
    UpstreamIdentity,
    UpstreamPending,
    UpstreamRefresh,
    UpstreamSignIn,
)
from gateway.connectors.http import HttpConnector, upstream_tokens
from gateway.connectors.mapping import map_attributes
from gateway.crypto import random_token, s256_challenge
from gateway.settings import OAuth2ConnectorSettings


@dataclass(frozen=True)
class Endpoints:
    authorize: str
    token: str
    profile: str
    api: str  # base for the extra GitHub calls
    scopes: tuple[str, ...]
    subject: str


def endpoints(config: OAuth2ConnectorSettings) -> Endpoints:
    """Where a preset (or the explicit settings) says to go."""
    if config.preset == "github":
        base = (config.base_url or "https://github.com").rstrip("/")
        api = "https://api.github.com" if not config.base_url else f"{base}/api/v3"
        return Endpoints(
            f"{base}/login/oauth/authorize",
            f"{base}/login/oauth/access_token",
            f"{api}/user",
            api,
            ("read:user", "user:email", "read:org"),
            "id",
        )
    if config.preset == "facebook":
        graph = "https://graph.facebook.com/v19.0"
        return Endpoints(
            "https://www.facebook.com/v19.0/dialog/oauth",
            f"{graph}/oauth/access_token",
            f"{graph}/me?fields=id,name,email,picture",
            graph,
            ("email", "public_profile"),
            "id",
        )
    if config.preset == "amazon":
        return Endpoints(
            "https://www.amazon.com/ap/oa",
            "https://api.amazon.com/auth/o2/token",
            "https://api.amazon.com/user/profile",
            "https://api.amazon.com",
            ("profile",),
            "user_id",
        )
    assert config.authorization_endpoint and config.token_endpoint  # noqa: S101 - validated
    return Endpoints(
        config.authorization_endpoint,
        config.token_endpoint,
        str(config.userinfo_endpoint),
        "",
        (),
        config.subject_claim,
    )


class OAuth2Connector(HttpConnector):
    """Sign-in with a plain OAuth2 provider."""

    type = "oauth2"

    def __init__(self, config: OAuth2ConnectorSettings) -> None:
        super().__init__(config.id, config.name, config.timeout)
        self.config = config
        self.endpoints = endpoints(config)

    async def start(self, callback_url: str, flow_id: str) -> LoginStart:
        state, verifier = f"{flow_id}.{random_token(16)}", random_token(48)
        scopes = self.config.scopes if self.config.scopes is not None else self.endpoints.scopes
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": callback_url,
            "scope": " ".join(scopes),
            "state": state,
            "code_challenge": s256_challenge(verifier),
            "code_challenge_method": "S256",
        }
        return LoginStart(
            self.authorization_url(self.endpoints.authorize, params),
            OAuth2Pending(state, verifier, callback_url),
        )

    async def finish(self, params: Mapping[str, str], pending: UpstreamPending) -> UpstreamIdentity:
        if not isinstance(pending, OAuth2Pending):
            raise ConnectorError("The sign-in response does not belong to this sign-in.")
        if "error" in params:
            raise ConnectorError(f"{self.name} did not sign you in ({params['error'][:64]}).")
        if not params.get("code"):
            raise ConnectorError("The sign-in response had no authorization code.")
        tokens = await self.redeem(
            self.endpoints.token,
            params["code"],
            pending.callback,
            pending.verifier,
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            method="client_secret_post",
        )
        access = tokens.get("access_token")
        if not isinstance(access, str) or not access:
            raise ConnectorError(f"{self.name} returned no access token.")
        auth = {"Authorization": f"Bearer {access}", "Accept": "application/json"}
        profile = await self.get_json(self.endpoints.profile, headers=auth)
        if not isinstance(profile, dict):
            raise ConnectorError(f"{self.name} sent an unexpected profile.")
        subject = profile.get(self.endpoints.subject)
        if subject in (None, ""):
            raise ConnectorError(f"{self.name} did not say who you are.")
        claims = await self._claims(profile, auth)
        return UpstreamIdentity(
            self.id, str(subject), claims, amr=["fed"], tokens=upstream_tokens(tokens)
        )

    async def refresh_upstream(self, signed_in: UpstreamSignIn) -> UpstreamRefresh:
        """New upstream tokens with the provider's refresh token, where it issues them."""
        tokens, _ = await self.refresh_grant(
            self.endpoints.token,
            signed_in.tokens or {},
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            method="client_secret_post",
        )
        return UpstreamRefresh(tokens)

    async def _claims(self, profile: dict[str, Any], auth: dict[str, str]) -> dict[str, Any]:
        preset = self.config.preset
        claims: dict[str, Any] = {"name": profile.get("name")}
        if preset == "github":
            claims["preferred_username"] = profile.get("login")
            claims["picture"] = profile.get("avatar_url")
            emails = await self.get_json(f"{self.endpoints.api}/user/emails", headers=auth)
            primary = next((e for e in emails if isinstance(e, dict) and e.get("primary")), None)
            # Only the primary address, and verified only if GitHub says so.
            if primary:
                claims["email"] = primary.get("email")
                claims["email_verified"] = primary.get("verified") is True
            orgs = await self.get_json(f"{self.endpoints.api}/user/orgs", headers=auth)
            teams = await self.get_json(f"{self.endpoints.api}/user/teams", headers=auth)
            claims["groups"] = sorted(
                {str(o.get("login")) for o in orgs if isinstance(o, dict)}
                | {
                    f"{t['organization']['login']}/{t['slug']}"
                    for t in teams
                    if isinstance(t, dict) and isinstance(t.get("organization"), dict)
                }
            )
        else:
            claims["email"] = profile.get("email")
            claims["email_verified"] = bool(self.config.trust_email and profile.get("email"))
            picture = profile.get("picture")
            if isinstance(picture, dict):  # Facebook nests it
                picture = (picture.get("data") or {}).get("url")
            claims["picture"] = picture
        claims |= map_attributes(profile, self.config.claim_mapping)
        return {k: v for k, v in claims.items() if v not in (None, "", [])} | {
            "email_verified": bool(claims.get("email_verified"))
        }

    def form_origins(self) -> list[str]:
        return self.origins(self.endpoints.authorize)
