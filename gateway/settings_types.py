"""Building blocks of the settings schema: durations, URL checks and the frozen base model.

What does not live here: the models themselves (`gateway.settings`, `gateway.settings_connectors`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> int:
    """Seconds from `90`, `"90s"`, `"15m"`, `"12h"` or `"30d"`."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 300, '15m', '12h' or '30d'")
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError("must be a duration such as 300, '15m', '12h' or '30d'")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("must be a positive duration")
    return seconds


def is_loopback_host(host: str | None) -> bool:
    """RFC 8252 §7.3 loopback hosts (literal IPs; `localhost` is allowed for convenience)."""
    return host in ("127.0.0.1", "::1", "localhost")


def check_absolute_url(value: str, *, allow_http_loopback_only: bool = False) -> str:
    """Validate an absolute http(s) URL without fragment or user-info."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute URL")
    if parts.fragment or "#" in value:
        raise ValueError("must not contain a fragment")
    if "@" in parts.netloc:
        raise ValueError("must not contain user-info")
    if allow_http_loopback_only and parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError("must use https (plain http is allowed only on loopback hosts)")
    return value


def _client_uri(value: str) -> str:
    return check_absolute_url(value, allow_http_loopback_only=True)


ClientUri = Annotated[str, AfterValidator(_client_uri)]
Duration = Annotated[int, BeforeValidator(parse_duration)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
POOL_ID = re.compile(
    r"^[a-z]{2}(-[a-z]+)+-\d:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)


def _role_arn(value: str) -> str:
    if not ROLE_ARN.match(value):
        raise ValueError("must be an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)")
    return value


RoleArn = Annotated[str, AfterValidator(_role_arn)]
