"""Access policies: who may reach a route (forward-auth's `policies`) or an application
(a client's `access`). A policy is decided on a session's profile, its connector and its
`amr`; paths are folded (`normalize_path`) so that no spelling an application treats as the
same path slips past the rule for it.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from urllib.parse import unquote, urlsplit

from gateway.amr import passed_second_factor
from gateway.sessions import Session
from gateway.settings import RoutePolicySettings

# Whitespace (any Unicode kind) and control characters at either end of a path segment.
_EDGES = re.compile(r"^[\s\x00-\x1f\x7f-\x9f]+|[\s\x00-\x1f\x7f-\x9f]+$")


def normalize_path(raw: str) -> str:
    """The path as an application may serve it, folded so that every spelling common back
    ends treat as the same path meets the rule for it: percent-decoded (repeatedly), NFKC
    (a fullwidth slash is a slash), undecodable bytes as slashes (`%c0%af`), backslashes as
    slashes, each segment cut at `;` (Tomcat and Spring drop path parameters: `/admin;x`)
    and at NUL, whitespace and control characters at either end of a segment dropped
    (`/admin.`, `/admin%20`, `/admin%09`, `/%e3%80%80admin`: `trim()`/`strip()` back ends),
    trailing dots too, dot segments resolved, slashes collapsed, lower case (Express and IIS
    route case-insensitively). A rule may so cover more spellings than the app serves,
    never fewer: matching the raw path let `/%61dmin`, `//admin` or `/Admin` slip past."""
    path = raw or "/"
    for _ in range(3):  # %2561 → %61 → a
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    path = unicodedata.normalize("NFKC", path).replace("\ufffd", "/").replace("\\", "/")
    segments = []
    for segment in path.split("/"):
        segment = _EDGES.sub("", segment.split(";", 1)[0].split("\x00", 1)[0])
        segments.append(segment if segment in (".", "..") else segment.rstrip(". "))
    folded = "/".join(segments)
    normalized = re.sub("/+", "/", posixpath.normpath("/" + folded))
    trailing = folded.endswith("/") and normalized != "/"
    return (normalized + ("/" if trailing else "")).lower()


def policy_for(policies: list[RoutePolicySettings], url: str | None) -> RoutePolicySettings | None:
    """The most specific policy (longest path prefix, exact host before `*`) for a URL."""
    if not policies:
        return None
    try:
        parts = urlsplit(url or "/")
        host, path = (parts.hostname or "").lower(), normalize_path(parts.path)
    except ValueError:  # an unparseable URL: only the catch-all rules can apply
        host, path = "", "/"
    matches = [
        p
        for p in policies
        if (p.host == "*" or p.host.lower() == host)
        and (
            p.path == "/"
            or path == (rule := p.path.lower().rstrip("/") or "/")
            or path.startswith(rule + "/")
        )
    ]
    if not matches:
        return None
    return max(matches, key=lambda p: (len(p.path), p.host != "*"))


def refusal(policy: RoutePolicySettings, session: Session, where: str | None = None) -> str | None:
    """Why the policy refuses this session, or None when it allows it. `where` names the rule
    in the message (default: its host and path)."""
    profile = session.profile
    email = str(profile.get("email") or "").lower()
    groups = {str(g) for g in profile.get("groups") or []}
    where = where or f"{policy.host}{policy.path}"
    if policy.deny:
        return f"the rule for {where} denies everyone"
    if policy.connectors and session.connector_id not in policy.connectors:
        return f"the rule for {where} requires signing in with {', '.join(policy.connectors)}"
    verified = profile.get("email_verified") is True
    if policy.emails and not (verified and email in [e.lower() for e in policy.emails]):
        return f"the rule for {where} allows only listed e-mail addresses"
    if policy.email_domains and not (
        verified and any(email.endswith("@" + d.lower()) for d in policy.email_domains)
    ):
        return f"the rule for {where} allows only e-mail domains {', '.join(policy.email_domains)}"
    if policy.groups and not groups & set(policy.groups):
        return f"the rule for {where} requires membership of {', '.join(policy.groups)}"
    if policy.mfa and not passed_second_factor(session.amr):
        return f"the rule for {where} requires a sign-in with a second factor"
    return None
