"""Loading settings: one YAML file → `Settings`, with every problem reported by YAML path.

Order: YAML → `${VAR}` / `${VAR:-default}` expansion in strings → `<name>_file` keys replaced
by the file's content under `<name>` (for secrets) → validation by the models in
`gateway.settings`. Messages read like `clients[0].redirect_uris[1]: must be an absolute URL`.
Every problem comes out in one pass: the checks the models run only after every field is valid
(duplicate ids) also run here on the raw data, and an unknown key names the nearest known one.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any, get_args
from urllib.parse import parse_qsl, urlsplit

import yaml
from pydantic import BaseModel, ValidationError

from gateway.errors import ConfigError
from gateway.settings import ClientSettings, Settings

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _path(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


Problem = tuple[tuple[Any, ...], str]  # where in the file, what is wrong there


def _expand(
    node: Any,
    where: tuple[Any, ...],
    problems: list[Problem],
    unread: set[tuple[Any, ...]],
    base: Path,
) -> Any:
    """`node` with `${VAR}`s and `*_file`s replaced. What cannot be (an unset variable, a file
    that cannot be read) is a problem at its place, and that place is `unread`: its
    validation problems would only repeat it."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            key = str(key)
            if key.endswith("_file") and key != "files":
                target = key[: -len("_file")]
                if target in node:
                    problems.append(((*where, key), f"give {target} or {key}, not both"))
                    continue
                path = _expand(value, (*where, key), problems, unread, base)
                file = (base / str(path)).resolve()
                try:
                    out[target] = file.read_text().rstrip("\r\n")
                except OSError as exc:
                    problems.append(((*where, key), f"cannot read {file}: {exc.strerror}"))
                    unread.add((*where, target))
                continue
            out[key] = _expand(value, (*where, key), problems, unread, base)
        return out
    if isinstance(node, list):
        return [_expand(v, (*where, i), problems, unread, base) for i, v in enumerate(node)]
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name)
            if value is None:
                if default is None:
                    problems.append((where, f"environment variable {name} is not set"))
                    unread.add(where)
                    return ""
                return default
            return value

        return _ENV.sub(substitute, node)
    return node


def _validation_problems(
    exc: ValidationError, data: Any, unread: Collection[tuple[Any, ...]] = ()
) -> list[str]:
    problems = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
        where = _data_loc(loc, data)  # as the file has it: no union tag
        if any(where[: len(u)] == u for u in unread):
            continue  # about a value that could not be read: said already
        if error["type"] == "extra_forbidden":
            message = "unknown key" + nearest_key(loc)  # the tag picks the connector's kind
        elif error["type"] == "missing":
            message = "required"
        problems.append(f"{_path(where)}{_named(where, data)}: {message}" if where else message)
    return problems


def _data_loc(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """A validation location as a path in the file: without the tag pydantic puts in it for a
    tagged union (a connector's `oidc` after `connectors[1]`, which the file has as `type`)."""
    out: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


# What an entry of a list is called by: a client by its client_id; anything else by its id,
# else its name (a connector also has a client_id, its IdP's, which does not name it).
ENTRY_NAMES = {"clients": ("client_id",)}
OTHER_NAMES = ("id", "name")
MAX_NAME = 64  # an identity pool id is 46 characters


def _named(loc: tuple[Any, ...], data: Any) -> str:
    """` (web)` when the problem is inside a list entry that has a name (a client's
    client_id, a connector's or pool's id, a trust rule's name): `clients[2]` alone makes the
    reader count entries. The innermost named entry on the path; "" when there is none. The
    name is shown escaped and cut short: it is the file's text, not ours."""
    name = None
    node, key = data, None
    for part in loc:
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            if isinstance(node, dict):
                keys = ENTRY_NAMES.get(str(key), OTHER_NAMES)
                found = next(
                    (node[k] for k in keys if isinstance(node.get(k), str) and node[k]), None
                )
                name = found or name
        elif isinstance(node, dict) and part in node:
            node, key = node[part], part
        else:
            break
    if not name:
        return ""
    shown = name if name.isprintable() else repr(name)[1:-1]
    return f" ({shown[:MAX_NAME]}…)" if len(shown) > MAX_NAME else f" ({shown})"


# Keys the schema accepted once though nothing read them: a settings file that still has one
# is told what became of it. By path, list indexes left out (a connector's `type` stays in).
RETIRED_KEYS: dict[tuple[str, ...], str] = {
    ("clients", "response_types"): "removed: `code` is the only response type, for every client",
    ("clients", "backchannel_logout_session_required"): (
        "removed: the logout tokens always carry sid"
    ),
    ("connectors", "saml", "want_assertions_encrypted"): (
        "removed: it was never enforced (an encrypted assertion is decrypted with sp_key, a "
        "plain one accepted; both must be signed)"
    ),
    ("identity_pools", "sts", "region"): (
        "removed: AssumeRoleWithWebIdentity is unsigned; for a regional STS give "
        "sts.endpoint: https://sts.<region>.amazonaws.com"
    ),
}


def nearest_key(loc: tuple[Any, ...]) -> str:
    """For an unknown key at `loc`: what became of it if the schema retired it, else the known
    key it most likely misspells (difflib), else a pointer to the example file."""
    retired = RETIRED_KEYS.get(tuple(str(p) for p in loc if not isinstance(p, int)))
    if retired:
        return f" ({retired})"
    known = known_keys(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return " (check the spelling against config/gateway.example.yaml)"


def known_keys(where: tuple[Any, ...]) -> list[str]:
    """The keys the settings models accept at the YAML path `where`, following lists, optional
    values and unions (a tagged union's tag, e.g. a connector's `type`, picks its member)."""
    models: list[type[BaseModel]] = [Settings]
    for part in where:
        if isinstance(part, int):
            continue  # a list item: the list's own element models are already in `models`
        found: list[type[BaseModel]] = []
        for model in models:
            field = model.model_fields.get(str(part))
            if field is not None:
                found += _models_in(field.annotation)
        if not found:  # a union's tag in the location (pydantic puts it there): pick by it
            found = [m for m in models if _tag_of(m) == part] or models
        models = found
    return sorted({name for model in models for name in model.model_fields})


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _tag_of(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("type")
    args = get_args(field.annotation) if field is not None else ()
    return args[0] if len(args) == 1 else None


def cross_checks(data: Any) -> list[str]:
    """Checks over the raw settings that the models run only once everything else is valid
    (pydantic skips model validators after a field error), so `check-config` reports them in
    the same pass: duplicate ids, and the store URL's database number."""
    if not isinstance(data, dict):
        return []
    problems = []
    for what, field in (("clients", "client_id"), ("connectors", "id"), ("identity_pools", "id")):
        items = data.get(what)
        ids = [i.get(field) if isinstance(i, dict) else None for i in items or []]
        for index, value in enumerate(ids):
            if value is not None and ids.index(value) != index:
                # The same words as Settings._unique_ids, so the two never both appear.
                first = ids.index(value)
                problems.append(
                    f"{what}[{index}].{field}: duplicate id {value!r} (also {what}[{first}])"
                )
    store = data.get("store")
    url = store.get("url") if isinstance(store, dict) else store
    if isinstance(url, str):
        problem = database_problem(url)
        if problem:
            problems.append(f"store.url: {problem}")
    return problems


def database_problem(url: str) -> str | None:
    """What is wrong with the database number a store URL names (redis-py would fail on it at
    the first connection, far from the settings file), or None."""
    scheme, _, rest = url.partition("://")
    parts = urlsplit(url)
    if scheme in ("redis", "rediss"):
        db = parts.path.strip("/")
    elif scheme == "unix":
        db = dict(parse_qsl(parts.query)).get("db", "")
    elif scheme == "redis+sentinel":
        db = rest.partition("/")[2].partition("/")[2].strip("/")
    elif scheme.endswith("+cluster"):
        if rest.partition("/")[2].strip("/") not in ("", "0"):
            return "Redis Cluster has only database 0: remove the /<number>"
        return None
    else:
        return None
    if db and not (db.isascii() and db.isdigit()):
        return f"the database must be a number (0, 1, …), not {db!r}"
    return None


def settings_from_dict(
    data: dict[str, Any], source: str = "settings", base: Path | None = None
) -> Settings:
    """Validate an already-parsed mapping (after env and file expansion)."""
    found: list[Problem] = []
    unread: set[tuple[Any, ...]] = set()
    expanded = _expand(data, (), found, unread, base or Path.cwd())
    problems = [f"{_path(where)}{_named(where, data)}: {what}" for where, what in found]
    extra = cross_checks(expanded)
    try:
        settings = Settings.model_validate(expanded)
    except ValidationError as exc:
        # Every problem in one pass, each once (a duplicate id may come from both checks).
        invalid = _validation_problems(exc, expanded, unread)
        raise ConfigError(list(dict.fromkeys([*problems, *invalid, *extra])), source) from None
    if problems or extra:
        raise ConfigError([*problems, *extra], source)
    return settings


def load_settings(path: str | Path) -> Settings:
    """Read and validate a YAML settings file; raises ConfigError with every problem found."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror}"], str(file)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text (byte {exc.start})"], str(file)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], str(file)) from None
    if not isinstance(data, dict):
        raise ConfigError(["the top level must be a mapping of keys"], str(file))
    try:
        return settings_from_dict(data, str(file), file.parent)
    except RecursionError:  # `a: &x [*x]`: an anchor inside itself
        raise ConfigError(["an alias refers to the value it is part of"], str(file)) from None


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
