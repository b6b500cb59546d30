"""Everything a request needs, built once from settings and passed in (never import-time globals).

Tests build `Services` with their own store; `start()` / `stop()` run in the app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gateway.audit import Audit
from gateway.background import Background
from gateway.clients import ClientRegistry
from gateway.connectors import Connector, RedirectConnector
from gateway.connectors.registry import build_connectors
from gateway.credentials.vendor import CredentialVendor
from gateway.crypto import Sealer
from gateway.csrf import Csrf
from gateway.errors import StoreUnavailable
from gateway.grants import GrantStore
from gateway.identity.ids import IdentityStore
from gateway.identity.pools import IdentityPools
from gateway.identity.providers import ProviderVerifier
from gateway.keys import KeyRing
from gateway.login.flows import FlowStore
from gateway.logout import Logout
from gateway.metrics import Metrics
from gateway.op.device import DeviceFlows
from gateway.pool import BoundedPool
from gateway.ratelimit import RateLimiter
from gateway.sessions import SessionManager
from gateway.settings import Settings
from gateway.store import Store, open_store
from gateway.tokens import TokenService
from gateway.ui.pages import Pages
from gateway.users.changes import AccountChanges
from gateway.users.codes import Codes
from gateway.users.directory import UserDirectory
from gateway.users.hooks import Hooks
from gateway.users.mfa import MfaStore
from gateway.users.passkeys import Passkeys
from gateway.users.passwords import PasswordHasher
from gateway.users.senders import (
    EmailSender,
    MessageTemplates,
    SmsSender,
    WebhookSms,
    build_sender,
    build_sms_sender,
)
from gateway.users.srp import pool_name_of
from gateway.users.srp_verifiers import SrpVerifiers

log = logging.getLogger("cognate")

KEY_MAINTENANCE_INTERVAL = 30.0


def master_key(settings: Settings) -> bytes:
    """32 bytes from `secret_key` (any string of 32+ characters)."""
    return hashlib.sha256(b"cognate-master-key:" + settings.secret_key.encode()).digest()


@dataclass
class Services:
    """The gateway's collaborators."""

    settings: Settings
    store: Store
    sealer: Sealer
    keys: KeyRing
    tokens: TokenService
    clients: ClientRegistry
    grants: GrantStore
    flows: FlowStore
    sessions: SessionManager
    users: UserDirectory
    identities: IdentityStore
    connectors: dict[str, Connector]
    # The connectors that send the browser to an IdP, found once: isinstance against the
    # runtime-checkable protocol costs ~20 µs, on every callback.
    redirects: dict[str, RedirectConnector]
    pages: Pages
    csrf: Csrf
    pools: IdentityPools
    verifier: ProviderVerifier
    vendor: CredentialVendor
    limiter: RateLimiter
    metrics: Metrics
    audit: Audit
    logout: Logout
    codes: Codes
    mfa: MfaStore
    passkeys: Passkeys
    hooks: Hooks
    email: EmailSender
    sms: SmsSender
    messages: MessageTemplates
    background: Background
    device: DeviceFlows
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        """Load keys (creating them on first start), check the store, start maintenance."""
        problem = await self.store.durability_problem()
        if problem:
            log.warning("durable data at risk: %s", problem)
        await self.keys.load()
        self._tasks.append(asyncio.create_task(self._maintain_keys(), name="key-maintenance"))
        self._tasks.append(asyncio.create_task(self.sessions.listen(), name="session-ends"))
        self._tasks.append(asyncio.create_task(self.grants.listen(), name="grant-revocations"))
        changes = self.users.changes
        self._tasks.append(asyncio.create_task(changes.listen(), name="account-changes"))
        links = self.identities.links
        self._tasks.append(asyncio.create_task(links.listen(), name="identity-link-changes"))

    async def stop(self) -> None:
        """Stop background work and release connections."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self.users.hasher.close()
        await self.logout.close()
        await self.verifier.close()
        for connector in self.redirects.values():
            await connector.close()
        await self.vendor.close()
        await self.hooks.close()
        await self.audit.close()  # audit entries held through an outage: last try, or counted
        if isinstance(self.sms, WebhookSms):
            await self.sms.close()
        await self.store.close()

    async def _maintain_keys(self) -> None:
        # Every replica reloads the shared key set and rotates it when due; the rotation itself is
        # a compare-and-swap, so however many replicas notice at once, it happens once.
        while True:
            await asyncio.sleep(KEY_MAINTENANCE_INTERVAL)
            try:
                await self.keys.rotate_if_due()
            except StoreUnavailable as exc:  # an outage: said in one line, tried again
                log.warning("key maintenance failed; will retry: %s", exc)
            except Exception:  # anything else is a bug: its traceback, and the loop goes on
                log.exception("key maintenance failed; will retry")


def build_services(
    settings: Settings, store: Store | None = None, hasher: PasswordHasher | None = None
) -> Services:
    """Wire the gateway together. `store` and `hasher` are injectable for tests."""
    store = store or open_store(
        settings.store.url,
        prefix=settings.store.prefix,
        socket_timeout=settings.store.socket_timeout,
        connect_timeout=settings.store.connect_timeout,
        max_connections=settings.store.max_connections,
        replicas_acked=settings.store.replicas_acked,
        replica_timeout=settings.store.replica_timeout,
    )
    sealer = Sealer(master_key(settings))
    metrics = Metrics(settings.metrics)
    if hasattr(store, "observer"):
        store.observer = metrics.observe_store
    tokens_cfg = settings.tokens
    keys = KeyRing(
        store,
        sealer,
        algorithms=tuple(dict.fromkeys([settings.keys.access_token_alg, *settings.id_token_algs])),
        retention=max(tokens_cfg.access_token_ttl, tokens_cfg.id_token_ttl) + tokens_cfg.leeway,
        rotation_period=settings.keys.rotation_period,
        pem_files=tuple(settings.keys.files),
    )
    # Accounts read by GetUser, kept as long as sessions and grants (gateway.users.changes).
    changes = AccountChanges(store, settings.sessions.cache_ttl)
    users = UserDirectory(
        store,
        hasher or PasswordHasher(),
        settings.user_pool.password,
        settings.user_pool.groups,
        srp=SrpVerifiers(store, sealer),
        pool_name=pool_name_of(settings.user_pool_id),
        changes=changes,
    )
    pages = Pages(settings)
    tokens = TokenService(settings, keys)
    sessions = SessionManager(store, sealer, settings.sessions)
    grants = GrantStore(store, sealer, settings.sessions.cache_ttl)
    sessions.ended.append(grants.cache.evict_session)
    clients = ClientRegistry(settings.clients, sealer)
    background = Background()
    hooks = Hooks(settings.user_pool.hooks, settings.issuer)
    connectors = build_connectors(
        settings.connectors,
        users=users,
        hooks=hooks,
        leeway=tokens_cfg.leeway,
        issuer=settings.issuer,
        store=store,
        xml_pool=BoundedPool("xmlsec"),
    )
    return Services(
        settings=settings,
        store=store,
        sealer=sealer,
        keys=keys,
        tokens=tokens,
        clients=clients,
        grants=grants,
        flows=FlowStore(store, sealer, tokens_cfg.flow_ttl),
        sessions=sessions,
        users=users,
        # Workloads' links, kept as long as sessions and grants (gateway.identity.ids).
        identities=IdentityStore(store, settings.region, settings.sessions.cache_ttl),
        connectors=connectors,
        redirects={i: c for i, c in connectors.items() if isinstance(c, RedirectConnector)},
        pages=pages,
        csrf=Csrf(sealer, pages, settings.issuer),
        pools=IdentityPools(settings.identity_pools, store),
        verifier=ProviderVerifier(tokens, settings.issuer, tokens_cfg.leeway, connectors),
        vendor=CredentialVendor(store, sealer, tokens, metrics),
        limiter=RateLimiter(store, sealer),
        metrics=metrics,
        audit=Audit(store, settings.audit.retention, metrics, settings.audit.buffer),
        logout=Logout(sessions, grants, tokens, clients, background),
        codes=Codes(store, sealer, settings.user_pool.code_ttl, settings.user_pool.code_attempts),
        email=build_sender(settings.email),
        sms=build_sms_sender(settings.user_pool.sms),
        messages=MessageTemplates(settings.ui.templates_dir),
        mfa=MfaStore(store, sealer, urlsplit(settings.issuer).netloc, changes),
        passkeys=Passkeys(
            store,
            settings.issuer,
            settings.ui.product_name,
            settings.user_pool.passkeys,
            settings.user_pool.passkey_relying_party_id,
        ),
        hooks=hooks,
        background=background,
        device=DeviceFlows(store, sealer, settings.device),
    )
