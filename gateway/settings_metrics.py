"""The `metrics:` settings: where Prometheus scrapes `/metrics`, and who may.

Kept apart from `gateway.settings` (already long); re-exported there as part of the schema.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from gateway.settings_types import Model


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP network: write e.g. 10.0.0.0/8 or 127.0.0.1/32"
        ) from None
    return value


def split_address(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:9100`) as (host, port); ValueError saying the fix."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"{value!r} is not HOST:PORT: write e.g. 127.0.0.1:9100 (loopback only), "
            "0.0.0.0:9100 (every interface) or [::1]:9100"
        )
    return host, int(port)


class MetricsSettings(Model):
    """Prometheus metrics. By default `/metrics` is on the public port for anyone who can reach
    it, as before. `listen` moves it to its own address (and off the public port); `allow`
    limits it to the scrapers' networks (the connecting address, never X-Forwarded-For)."""

    listen: str | None = None
    allow: list[Annotated[str, AfterValidator(_network)]] = Field(default_factory=list)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            split_address(value)
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) of `listen`, or None: /metrics on the public port."""
        return split_address(self.listen) if self.listen else None
