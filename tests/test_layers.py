"""The layout's one rule: imports point down, and nothing imports in a circle.

The graph is computed from the source with ``ast``: every import counts, at the top of a
module, inside a function (the lazy imports that keep ``--help`` fast) or under
``TYPE_CHECKING``, because each is a dependency a reader has to follow. docs/architecture.md
describes the layers.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.support.paths import REPO_ROOT

PACKAGES = ("autoops_cli", "commands", "config")

# Highest first. A module may import modules of its own layer or of a lower one; the longest
# prefix names a module's layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("autoops_cli.app", "autoops_cli.main", "autoops_cli.__main__"),  # the entry points
    ("commands",),  # Typer: parse, call the action, render
    ("autoops_cli.actions",),  # the work behind each command
    (  # the CLI's shell: state, output, logging, command-line times
        "autoops_cli.state",
        "autoops_cli.output",
        "autoops_cli.logging_setup",
        "autoops_cli.timespec",
    ),
    ("autoops_cli.simulation", "autoops_cli.langfuse_api", "autoops_cli.local_api"),
    ("autoops_cli",),  # the package itself: its version
    ("config.langfuse_integration",),  # the seed's facade
    ("config.client", "config.trace_manager", "config.error_handler"),
    ("config.delivery",),
    ("config.store",),
    ("config.tracing",),
    ("config.settings_sources",),
    ("config.settings",),
    ("config.settings_layers", "config.sampling_rules"),
    ("config.models", "config.errors", "config.redaction", "config.http_answers", "config"),
)
# The composition root registers the command groups: the one edge allowed upwards.
ALLOWED_UPWARD = {("autoops_cli.app", "commands")}
# Side by side, never importing each other: the simulated system, the Langfuse API client and
# the local API are separate parts of the application.
PEERS = ("autoops_cli.simulation", "autoops_cli.langfuse_api", "autoops_cli.local_api")


def module_files() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imported_modules(name: str, path: Path, modules: set[str]) -> Iterator[str]:
    """The project modules ``name`` imports, wherever the import statement stands."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            # ``from package import module`` depends on the module, else on the package.
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            known = target
            while known and known not in modules:
                known = known.rpartition(".")[0]
            if known and known != name:
                yield known


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    modules = set(files)
    return {name: set(imported_modules(name, path, modules)) for name, path in files.items()}


def layer_of(module: str) -> tuple[int, str]:
    best: tuple[int, str] | None = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best[1])
            ):
                best = (rank, prefix)
    assert best is not None, (
        f"{module} belongs to no layer: add it to LAYERS (tests/test_layers.py)"
    )
    return best


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_every_module_belongs_to_a_layer() -> None:
    for module in import_graph():
        layer_of(module)


def test_imports_only_point_down() -> None:
    upward = []
    for module, targets in sorted(import_graph().items()):
        rank, prefix = layer_of(module)
        for target in sorted(targets):
            target_rank, target_prefix = layer_of(target)
            if target_rank < rank and (prefix, target_prefix) not in ALLOWED_UPWARD:
                upward.append(f"{module} -> {target}")
            if prefix in PEERS and target_prefix in PEERS and prefix != target_prefix:
                upward.append(f"{module} -> {target} (side by side: neither imports the other)")
    assert upward == []


def test_the_core_imports_nothing_of_the_cli() -> None:
    for module, targets in import_graph().items():
        if module.split(".")[0] == "config":
            assert all(t.split(".")[0] == "config" for t in targets), (module, targets)


def test_the_checker_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from config.errors import ExitCode\n"
        "def f():\n    from config import redaction\n    import config.models\n",
        encoding="utf-8",
    )
    modules = {"config", "config.errors", "config.redaction", "config.models", "sample"}
    assert set(imported_modules("sample", source, modules)) == {
        "config.errors",
        "config.redaction",
        "config.models",
    }
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
