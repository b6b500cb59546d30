"""Every connector type, and building the configured ones: adding a connector is a module
in this package, a line here, its tests and an example in `config/`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.connectors import Connector
from gateway.connectors.local import LocalConnector
from gateway.connectors.oauth2 import OAuth2Connector
from gateway.connectors.oidc import OidcConnector
from gateway.connectors.saml import SamlConnector
from gateway.settings import (
    ConnectorSettings,
    LocalConnectorSettings,
    OAuth2ConnectorSettings,
    OidcConnectorSettings,
    SamlConnectorSettings,
)

if TYPE_CHECKING:
    from gateway.pool import BoundedPool
    from gateway.store import Store
    from gateway.users.directory import UserDirectory
    from gateway.users.hooks import Hooks


def build_connectors(
    configs: list[ConnectorSettings],
    *,
    users: UserDirectory,
    hooks: Hooks | None,
    leeway: int,
    issuer: str,
    store: Store,
    xml_pool: BoundedPool,
) -> dict[str, Connector]:
    """Instantiate every configured connector, keyed by id. `users` and `hooks`: the local
    directory's; `leeway`: the clock skew OIDC ID tokens may have; `issuer`, `store` and
    `xml_pool`: what SAML service providers need (their entity ID base, replay cache, and the
    bounded pool for XML signature work)."""
    connectors: dict[str, Connector] = {}
    for config in configs:
        if isinstance(config, LocalConnectorSettings):
            connectors[config.id] = LocalConnector(config, users, hooks)
        elif isinstance(config, OidcConnectorSettings):
            connectors[config.id] = OidcConnector(config, leeway)
        elif isinstance(config, OAuth2ConnectorSettings):
            connectors[config.id] = OAuth2Connector(config)
        elif isinstance(config, SamlConnectorSettings):
            connectors[config.id] = SamlConnector(config, issuer, store, xml_pool)
    return connectors
