"""The package's areas import each other without cycles, so each can be read (and changed)
knowing only those below it.

An area is a subpackage (`gateway.op`, `gateway.login`…) or a top-level module
(`gateway.sessions`). Every import counts — at module level and inside functions alike (an
import hidden in a function to dodge a cycle is still a cycle) — except those under
`if TYPE_CHECKING:`, which exist for annotations only and never run. `services`, `app`, `cli`
and `admin` (the CLI's commands) are the composition root: they build everything, and only
type annotations may name them from below.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gateway"


def _type_only(tree: ast.Module) -> set[int]:
    """The ids of nodes inside `if TYPE_CHECKING:` blocks."""
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden.update(id(sub) for sub in ast.walk(node))
    return hidden


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package → the package modules it imports at run time."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        hidden = _type_only(tree)
        for node in ast.walk(tree):
            if id(node) in hidden:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                names = [source, *(f"{source}.{alias.name}" for alias in node.names)]
            else:
                continue
            found[module].update(n for n in names if n.split(".")[0] == "gateway")
    return found


def area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def area_graph(modules: dict[str, set[str]]) -> dict[str, dict[str, set[str]]]:
    """area → area it imports → the importing modules (for the failure message)."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for module, targets in modules.items():
        for target in targets:
            a, b = area(module), area(target)
            if a != b and b:  # `import gateway` alone names no area
                graph[a][b].add(module)
    return graph


def cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """The strongly connected groups of more than one area (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def describe(group: list[str], graph: dict[str, dict[str, set[str]]]) -> str:
    return "; ".join(
        f"{a} -> {b} ({', '.join(sorted(graph[a][b]))})"
        for a in group
        for b in sorted(graph[a])
        if b in group
    )


def test_the_areas_import_each_other_without_cycles() -> None:
    graph = area_graph(imports())
    found = [describe(group, graph) for group in cycles(graph)]
    assert found == [], "import cycles between areas:\n" + "\n".join(found)


def test_nothing_below_the_composition_root_imports_it_at_run_time() -> None:
    root = {"services", "app", "cli", "admin", "__main__"}
    graph = area_graph(imports())
    offenders = {
        f"{a} -> {b}: {', '.join(sorted(modules))}"
        for a, targets in graph.items()
        if a not in root
        for b, modules in targets.items()
        if b in root
    }
    assert offenders == set()


def module_graph(modules: dict[str, set[str]]) -> dict[str, dict[str, set[str]]]:
    """module → module it imports, package `__init__`s left out: a package's `routes()` may
    import its own submodules, which import helpers from it (`gateway.op` ↔ `gateway.op.token`)."""
    packages = {
        module for module in modules if (PACKAGE.parent / module.replace(".", "/")).is_dir()
    }
    graph: dict[str, dict[str, set[str]]] = defaultdict(dict)
    for module, targets in modules.items():
        for target in targets - packages - {module}:
            if module not in packages and target in modules:
                graph[module][target] = {module}
    return graph


def test_the_modules_of_an_area_import_each_other_without_cycles() -> None:
    # Within an area too: `identity.cognito` and `identity.cognito_admin` once imported each
    # other (one of the two inside a function); now both import `identity.cognito_steps`.
    graph = module_graph(imports())
    found = [describe(group, graph) for group in cycles(graph)]
    assert found == [], "import cycles between modules:\n" + "\n".join(found)


def test_the_checker_sees_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    # The checker itself: a cycle through an import inside a function is found, one under
    # TYPE_CHECKING is not.
    package = tmp_path / "gateway"
    (package / "a").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a" / "__init__.py").write_text("from gateway.b import thing\n")
    (package / "b.py").write_text(
        "import gateway.c\n\n\ndef thing():\n    from gateway.a import other\n"
    )
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gateway.b import x\n"
    )
    graph = area_graph(imports(package))
    assert cycles(graph) == [["a", "b"]]
