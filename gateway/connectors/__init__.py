"""Upstream identity sources ("connectors") and what they hand back.

A connector keeps no state of its own: whatever it needs between the redirect to an IdP and the
callback is stored on the flow (`gateway.flows.Flow.connector_state`). Password connectors
(`local`) implement `PasswordConnector.login`; redirect connectors (OIDC, OAuth2, SAML — later)
implement `RedirectConnector.start` / `finish`.

Adding one: a module here, a line in `build_connectors`, its tests, an example in `config/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from gateway.settings import ConnectorSettings


@dataclass(frozen=True)
class UpstreamIdentity:
    """What a connector proved: who the user is at that source, and what it says about them."""

    connector_id: str
    subject: str
    claims: dict[str, Any] = field(default_factory=dict)
    amr: list[str] = field(default_factory=list)


class Connector(Protocol):
    """Every connector has an id, a type and a button label."""

    id: str
    type: str
    name: str


@runtime_checkable
class PasswordConnector(Connector, Protocol):
    """A connector that checks a username and password itself."""

    async def login(self, username: str, password: str) -> UpstreamIdentity | None:
        """The identity if the credentials are right, else None (same cost either way)."""
        ...


def build_connectors(configs: list[ConnectorSettings], **dependencies: Any) -> dict[str, Connector]:
    """Instantiate every configured connector, keyed by id."""
    from gateway.connectors.local import LocalConnector

    connectors: dict[str, Connector] = {}
    for config in configs:
        if config.type == "local":
            connectors[config.id] = LocalConnector(config, dependencies["users"])
    return connectors
