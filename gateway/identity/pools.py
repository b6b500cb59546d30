"""Identity pools as the API sees them: the settings, plus roles changed at run time.

`SetIdentityPoolRoles` stores its roles and role mappings in the store (`pool-roles:{pool}`),
so every replica sees the change — within CACHE_SECONDS, since each replica keeps the effective
pool for that long instead of reading the store on every credentials call. The settings file
stays the baseline a restart keeps when no change was made. `GetIdentityPoolRoles` shows the
effective values.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import ValidationError

from gateway.errors import invalid_parameter, not_found
from gateway.settings import IdentityPoolSettings, PoolRoles, RoleMappingSettings
from gateway.store import Store

CACHE_SECONDS = 5.0


class IdentityPools:
    """Look up pools and their effective roles."""

    def __init__(self, pools: list[IdentityPoolSettings], store: Store) -> None:
        self._pools = {p.id: p for p in pools}
        self._store = store
        self._cache: dict[str, tuple[float, IdentityPoolSettings]] = {}

    def configured(self) -> list[IdentityPoolSettings]:
        return list(self._pools.values())

    def known(self, pool_id: str) -> bool:
        return pool_id in self._pools

    async def get(self, pool_id: str) -> IdentityPoolSettings:
        """The pool with run-time role changes applied; ResourceNotFoundException if unknown."""
        pool = self._pools.get(pool_id)
        if pool is None:
            raise not_found(f"IdentityPool '{pool_id}' not found.")
        cached = self._cache.get(pool_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        effective = await self._load(pool)
        self._cache[pool_id] = (time.monotonic() + CACHE_SECONDS, effective)
        return effective

    async def _load(self, pool: IdentityPoolSettings) -> IdentityPoolSettings:
        raw = await self._store.get(self._key(pool.id))
        if raw is None:
            return pool
        override = json.loads(raw)
        return pool.model_copy(
            update={
                "roles": PoolRoles.model_validate(override["roles"]),
                "role_mappings": {
                    k: RoleMappingSettings.model_validate(v)
                    for k, v in override["role_mappings"].items()
                },
            }
        )

    async def set_roles(
        self, pool_id: str, roles: dict[str, Any], mappings: dict[str, Any]
    ) -> None:
        """Validate and store new roles (AWS shapes in, settings shapes stored)."""
        await self.get(pool_id)
        try:
            parsed_roles = PoolRoles.model_validate(
                {k: v for k, v in roles.items() if k in ("authenticated", "unauthenticated")}
            )
            if set(roles) - {"authenticated", "unauthenticated"}:
                raise invalid_parameter("Roles keys must be authenticated or unauthenticated.")
            parsed_mappings = {
                provider: RoleMappingSettings.model_validate(
                    {
                        "type": m.get("Type"),
                        "ambiguous_role_resolution": m.get(
                            "AmbiguousRoleResolution", "AuthenticatedRole"
                        ),
                        "rules": [
                            {
                                "claim": r.get("Claim"),
                                "match_type": r.get("MatchType"),
                                "value": r.get("Value"),
                                "role_arn": r.get("RoleARN"),
                            }
                            for r in (m.get("RulesConfiguration") or {}).get("Rules", [])
                        ],
                    }
                )
                for provider, m in mappings.items()
            }
        except (ValidationError, AttributeError, TypeError) as exc:
            raise invalid_parameter(f"Invalid roles or role mappings: {_first(exc)}") from None
        await self._store.put(
            self._key(pool_id),
            json.dumps(
                {
                    "roles": parsed_roles.model_dump(),
                    "role_mappings": {k: v.model_dump() for k, v in parsed_mappings.items()},
                }
            ).encode(),
        )
        self._cache.pop(pool_id, None)  # this replica sees it at once; others within seconds

    def _key(self, pool_id: str) -> str:
        return self._store.key("pool-roles", pool_id)


def roles_as_aws(pool: IdentityPoolSettings) -> dict[str, Any]:
    """GetIdentityPoolRoles' body for a pool."""
    roles = {k: v for k, v in pool.roles.model_dump().items() if v}
    mappings = {
        provider: {
            "Type": m.type,
            "AmbiguousRoleResolution": m.ambiguous_role_resolution,
            **(
                {
                    "RulesConfiguration": {
                        "Rules": [
                            {
                                "Claim": r.claim,
                                "MatchType": r.match_type,
                                "Value": r.value,
                                "RoleARN": r.role_arn,
                            }
                            for r in m.rules
                        ]
                    }
                }
                if m.type == "Rules"
                else {}
            ),
        }
        for provider, m in pool.role_mappings.items()
    }
    body: dict[str, Any] = {"IdentityPoolId": pool.id, "Roles": roles}
    if mappings:
        body["RoleMappings"] = mappings
    return body


def _first(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
    return str(exc)
