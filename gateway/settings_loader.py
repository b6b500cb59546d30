"""Loading settings: one YAML file → `Settings`, with every problem reported by YAML path.

Order: YAML → `${VAR}` / `${VAR:-default}` expansion in strings → `<name>_file` keys replaced
by the file's content under `<name>` (for secrets) → validation by the models in
`gateway.settings`. Messages read like `clients[0].redirect_uris[1]: must be an absolute URL`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.errors import ConfigError
from gateway.settings import ClientSettings, Settings

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _path(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _expand(node: Any, where: tuple[Any, ...], problems: list[str], base: Path) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            key = str(key)
            if key.endswith("_file") and key != "files":
                target = key[: -len("_file")]
                if target in node:
                    problems.append(f"{_path((*where, key))}: give {target} or {key}, not both")
                    continue
                path = _expand(value, (*where, key), problems, base)
                file = (base / str(path)).resolve()
                try:
                    out[target] = file.read_text().rstrip("\r\n")
                except OSError as exc:
                    problems.append(f"{_path((*where, key))}: cannot read {file}: {exc.strerror}")
                continue
            out[key] = _expand(value, (*where, key), problems, base)
        return out
    if isinstance(node, list):
        return [_expand(v, (*where, i), problems, base) for i, v in enumerate(node)]
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name)
            if value is None:
                if default is None:
                    problems.append(f"{_path(where)}: environment variable {name} is not set")
                    return ""
                return default
            return value

        return _ENV.sub(substitute, node)
    return node


def _validation_problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against config/gateway.example.yaml)"
        elif error["type"] == "missing":
            message = "required"
        problems.append(f"{_path(loc)}: {message}" if loc else message)
    return problems


def settings_from_dict(
    data: dict[str, Any], source: str = "settings", base: Path | None = None
) -> Settings:
    """Validate an already-parsed mapping (after env and file expansion)."""
    problems: list[str] = []
    expanded = _expand(data, (), problems, base or Path.cwd())
    if problems:
        raise ConfigError(problems, source)
    try:
        return Settings.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(_validation_problems(exc), source) from None


def load_settings(path: str | Path) -> Settings:
    """Read and validate a YAML settings file; raises ConfigError with every problem found."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror}"], str(file)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], str(file)) from None
    if not isinstance(data, dict):
        raise ConfigError(["the top level must be a mapping of keys"], str(file))
    return settings_from_dict(data, str(file), file.parent)


def demo_settings(host: str, port: int) -> Settings:
    """Embedded defaults for `cognate serve` without a config: memory store, a demo client."""
    import secrets

    issuer = f"http://{host}:{port}"
    return Settings(
        issuer=issuer,
        secret_key=secrets.token_urlsafe(32),
        demo=True,
        clients=[
            ClientSettings(
                client_id="demo",
                client_name="Cognate demo app",
                token_endpoint_auth_method="none",
                redirect_uris=[f"{issuer}/demo/callback"],
                post_logout_redirect_uris=[f"{issuer}/demo/"],
            )
        ],
    )
