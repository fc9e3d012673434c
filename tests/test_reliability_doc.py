"""docs/reliability.md stays true: every row backed by tests that exist, every page row listed."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from tests.reliability_rows import ROWS

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reliability.md"


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
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            takes_figures = isinstance(node, ast.FunctionDef) and any(
                arg.arg == "reliability" for arg in node.args.args
            )
            if takes_figures and node.name.startswith("test_"):
                assert f"tests/{path.name}::{node.name}" in named, f"{path.name}::{node.name}"


def test_the_page_lists_every_row() -> None:
    page = PAGE.read_text(encoding="utf-8")
    for row in ROWS:
        assert row.fault.replace("|", "\\|") in page, f"regenerate docs/reliability.md: {row.fault}"
        for node in row.tests:
            assert f"`{node.split('::')[1]}`" in page, node
    assert "SOME TESTS FAILED" not in page and "**FAILED" not in page
