"""Settings of the edges: forward-auth (route policies, trusted proxies, which headers name
the original request) and sidecar mode; part of the settings schema (`gateway.settings`
re-exports them).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from gateway.settings_types import (
    Model,
    check_absolute_url,
)


class RoutePolicySettings(Model):
    """Who may pass forward-auth for one host and path prefix (empty lists: no condition)."""

    host: str = "*"
    path: str = Field("/", pattern=r"^/")
    groups: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)
    email_domains: list[str] = Field(default_factory=list)
    connectors: list[str] = Field(default_factory=list)
    mfa: bool = False  # the sign-in must have used a second factor (amr says so)
    deny: bool = False


_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def _suggested_host(entry: str) -> str:
    """What an `allowed_hosts` entry most likely meant, for the error message: the host of a
    URL or host:port, `.example.com` for `*.example.com`; a plain example when none is."""
    text = entry.strip()
    subdomains = text.startswith((".", "*."))
    text = text.lstrip("*.")
    try:
        host = (urlsplit(text if "//" in text else "//" + text).hostname or "").rstrip(".")
    except ValueError:
        host = ""
    if not _HOST_NAME.fullmatch(host):
        return "app.example.com, or .example.com for every subdomain"
    return (
        f".{host} (it and its subdomains)"
        if subdomains
        else f"{host}, or .{host} for its subdomains too"
    )


class ForwardAuthSettings(Model):
    """Reverse-proxy authentication (nginx auth_request, Traefik ForwardAuth, Caddy)."""

    # Hosts a sign-in may return to (rd); ".example.com" allows its subdomains too.
    allowed_hosts: list[str] = Field(default_factory=list)
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    policies: list[RoutePolicySettings] = Field(default_factory=list)
    # Which headers name the original request (only ever from `trusted_proxies`):
    # `forwarded`: X-Forwarded-Method/Proto/Host/Uri, as Traefik's ForwardAuth, Caddy's
    #   forward_auth and the shipped nginx config set them (overwriting the client's copies);
    # `original`: X-Original-URL and X-Original-Method, as oauth2-proxy's nginx examples set them.
    # The other family is ignored, so a header the proxy does not set can never override one
    # it does (Caddy and Traefik pass the client's own headers to the auth endpoint).
    mode: Literal["forwarded", "original"] = "forwarded"
    # oauth2-proxy's --pass-access-token: the upstream IdP's access token, when there is one,
    # as X-Auth-Request-Access-Token (off: it is a credential).
    pass_access_token: bool = False

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        for entry in value:
            name = entry[1:] if entry.startswith(".") else entry
            if not _HOST_NAME.fullmatch(name):
                raise ValueError(
                    f"{entry!r} is not a host name: give the name alone, without scheme, "
                    f"port or path (e.g. {_suggested_host(entry)})"
                )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not an IP network (e.g. 10.0.0.0/8)") from None
        return value


class SidecarCredentialsSettings(Model):
    """AWS credentials for the app behind the sidecar: a developer identity of a pool."""

    identity_pool: str
    developer_provider: str = Field(min_length=1, max_length=128)
    workload: str = Field(pattern=r"^[\w+=,.@:/-]{1,128}$")  # the app's developer user id
    token_path: str = (
        "/var/run/cognate/aws-token"  # written at start (not *_file: that key form reads a file)
    )


class SidecarSettings(Model):
    """`cognate proxy`: the gateway in front of one app (Kubernetes sidecar)."""

    upstream: str
    health_paths: list[Annotated[str, Field(pattern=r"^/[^?#]*$")]] = Field(default_factory=list)
    max_body_size: int = Field(1024**3, ge=1024)  # uploads to the app
    max_message_size: int = Field(16 * 1024**2, ge=1024)  # WebSocket frames
    credentials: SidecarCredentialsSettings | None = None

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str) -> str:
        return check_absolute_url(value).rstrip("/")
