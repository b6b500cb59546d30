"""What the web-identity tokens Cognate takes to STS look like to AWS: their audience, and the
name IAM knows an OIDC issuer by. Shared by the vendor (which mints the tokens), the Cognito
Identity API (which hands some to clients) and `cognate pools` (which writes trust policies), so
it lives with the credentials and imports nothing of the identity area.
"""

from __future__ import annotations

from urllib.parse import urlsplit

GUEST_AUDIENCE_SUFFIX = "/unauthenticated"
CLIENT_AUDIENCE_SUFFIX = "/client"


def token_audience(pool_id: str, authenticated: bool, for_sts: bool = True) -> str:
    """The `aud` of a web-identity token. IAM can condition only on `aud` for a generic OIDC
    provider (no `amr` key), so the audience carries what trust policies must tell apart:

    - guests get `<pool>/unauthenticated`, so their tokens cannot assume authenticated roles
      and never pass as authenticated logins;
    - tokens handed to clients (GetOpenIdToken…) get `…/client` unless the pool allows the
      classic flow, so only Cognate itself can take them to STS — they stay valid as
      `cognito-identity.amazonaws.com` logins for GetCredentialsForIdentity."""
    audience = pool_id if authenticated else pool_id + GUEST_AUDIENCE_SUFFIX
    return audience if for_sts else audience + CLIENT_AUDIENCE_SUFFIX


def provider_name(issuer: str) -> str:
    """AWS names an OIDC provider by its issuer without the scheme (`auth.example.com/path`)."""
    parts = urlsplit(issuer)
    return parts.netloc + parts.path.rstrip("/")
