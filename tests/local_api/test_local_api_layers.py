"""The import rules of ``autoops_cli.local_api``, read from the source.

Every import counts: at module level, inside functions and under ``if TYPE_CHECKING:``.
No module imports another in a circle; ``query`` never imports ``http``; of the rest of the
toolkit only the core (``config``) and the package's ``__version__`` are imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import autoops_cli.local_api

PACKAGE = "autoops_cli.local_api"
ROOT = Path(autoops_cli.local_api.__file__).parent


def _modules() -> dict[str, ast.Module]:
    """Every module of the package by dotted name, parsed."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join((PACKAGE, *parts)).removesuffix(".__init__")
        found[name] = ast.parse(path.read_text(encoding="utf-8"))
    return found


def _imports(tree: ast.Module) -> set[str]:
    """Every dotted name an import of ``tree`` names (``from a import b``: ``a`` and ``a.b``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "local_api uses absolute imports"
            module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


MODULES = _modules()
GRAPH = {
    name: sorted(target for target in _imports(tree) if target in MODULES and target != name)
    for name, tree in MODULES.items()
}


def _cycle() -> list[str] | None:
    """One import cycle of the package, or None."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        for target in GRAPH[name]:
            if cycle := visit(target, [*path, name]):
                return cycle
        done.add(name)
        return None

    for name in GRAPH:
        if cycle := visit(name, []):
            return cycle
    return None


def test_the_rules_see_every_layer() -> None:
    assert f"{PACKAGE}.query.traces" in GRAPH and f"{PACKAGE}.http.server" in GRAPH
    assert f"{PACKAGE}.query.traces" in GRAPH[f"{PACKAGE}.http.server"]


def test_no_module_of_local_api_imports_another_in_a_circle() -> None:
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_query_never_imports_http() -> None:
    wrong = {
        name: [target for target in GRAPH[name] if target.startswith(f"{PACKAGE}.http")]
        for name in GRAPH
        if name.startswith(f"{PACKAGE}.query")
    }
    assert not any(wrong.values()), wrong


def test_local_api_imports_only_the_core_of_the_rest_of_the_toolkit() -> None:
    wrong = []
    for name, tree in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.module == "autoops_cli":
                    if any(alias.name != "__version__" for alias in node.names):
                        wrong.append((name, "autoops_cli"))
                    continue
                targets = [node.module or ""]
            else:
                continue
            wrong.extend(
                (name, target)
                for target in targets
                if target.split(".")[0] in ("autoops_cli", "commands")
                and not target.startswith(PACKAGE)
            )
    assert not wrong, wrong
