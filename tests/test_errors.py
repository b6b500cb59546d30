"""The error tree in `gateway.errors`' docstring is the truth: every exception class of the
gateway is drawn there, under the class it derives from, and derives from GatewayError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import gateway
from gateway import errors
from gateway.errors import GatewayError

# The command-line client (`cognate aws-credentials`) talks to a gateway over HTTP; its error
# is the client's own and never crosses into the server.
OUTSIDE_THE_TREE = {"gateway.client_cli.ClientError"}
_NAME = re.compile(r"[A-Z_][A-Za-z0-9_]*")
_MODULE = re.compile(r"\bgateway(?:\.[a-z_0-9]+)+")


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module of the gateway, by dotted name."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(gateway.__path__, "gateway."):
        if info.name == "gateway.__main__":  # runs the CLI when imported
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
            ):
                found[f"{info.name}.{name}"] = obj
    return found


def drawn_tree() -> dict[str, tuple[str | None, str]]:
    """name → (parent name, module) from the docstring's drawing."""
    doc = errors.__doc__ or ""
    tree: dict[str, tuple[str | None, str]] = {}
    stack: list[str] = []  # the last name drawn at each depth
    for line in doc.splitlines():
        if not line.startswith("    ") or "Not a GatewayError" in line:
            continue
        body = line[4:]
        start = len(body) - len(body.lstrip("│├└─ "))
        rest = body[start:]
        if not rest or not _NAME.match(rest):
            continue
        depth = start // 4
        names_part = re.sub(r"\(.*?\)", "", re.split(r"\s{2,}", rest, maxsplit=1)[0])
        names = [n.strip() for n in names_part.split(",") if n.strip()]
        module = _MODULE.findall(line)
        where = module[-1] if module else "gateway.errors"
        assert depth <= len(stack), f"badly drawn (no parent one level up): {line!r}"
        parent = stack[depth - 1] if depth else None
        for name in names:
            tree[name] = (parent, where)
        del stack[depth:]
        stack.append(names[-1])
    return tree


def test_every_exception_is_in_the_tree_where_it_lives() -> None:
    tree = drawn_tree()
    missing = []
    for dotted, cls in exception_classes().items():
        if dotted in OUTSIDE_THE_TREE:
            continue
        drawn = tree.get(cls.__name__)
        if drawn is None:
            missing.append(f"{dotted} is not drawn in gateway.errors' docstring")
        elif drawn[1] != cls.__module__:
            missing.append(f"{dotted} is drawn as living in {drawn[1]}")
    assert not missing, "\n".join(missing)


def test_every_exception_derives_from_the_class_it_is_drawn_under() -> None:
    classes = {cls.__name__: cls for cls in exception_classes().values()}
    wrong = []
    for name, (parent, _) in drawn_tree().items():
        assert name in classes, f"{name} is drawn but no module of the gateway defines it"
        cls = classes[name]
        if not issubclass(cls, GatewayError):
            wrong.append(f"{name} does not derive from GatewayError")
        if parent is not None and not issubclass(cls, classes[parent]):
            wrong.append(f"{name} is drawn under {parent} but does not derive from it")
    assert not wrong, "\n".join(wrong)


def test_only_the_named_exceptions_stay_outside_the_tree() -> None:
    outside = {
        dotted for dotted, cls in exception_classes().items() if not issubclass(cls, GatewayError)
    }
    assert outside == OUTSIDE_THE_TREE
