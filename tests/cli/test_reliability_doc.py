"""docs/reliability.md stays true: every row backed by tests that exist, every page row listed."""

from __future__ import annotations

import ast
import importlib

from tests.support.paths import REPO_ROOT
from tests.support.reliability_rows import ROWS

PAGE = REPO_ROOT / "docs" / "reliability.md"


def test_every_test_named_by_a_row_exists() -> None:
    for row in ROWS:
        assert row.tests, row
        for node in row.tests:
            path, name = node.split("::")
            module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
            assert callable(getattr(module, name, None)), f"{node} (row: {row.fault})"


def test_every_test_recording_figures_has_a_row() -> None:
    """A test taking the ``reliability`` fixture is a reliability test: it needs a row."""
    named = {node for row in ROWS for node in row.tests}
    for path in sorted((REPO_ROOT / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            takes_figures = isinstance(node, ast.FunctionDef) and any(
                arg.arg == "reliability" for arg in node.args.args
            )
            if takes_figures and node.name.startswith("test_"):
                node_id = f"{path.relative_to(REPO_ROOT).as_posix()}::{node.name}"
                assert node_id in named, node_id


def test_the_page_lists_every_row() -> None:
    page = PAGE.read_text(encoding="utf-8")
    for row in ROWS:
        assert row.fault.replace("|", "\\|") in page, f"regenerate docs/reliability.md: {row.fault}"
        for node in row.tests:
            assert f"`{node.split('::')[1]}`" in page, node
    assert "SOME TESTS FAILED" not in page and "**FAILED" not in page
