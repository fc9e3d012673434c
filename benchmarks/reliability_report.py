"""Regenerate docs/reliability.md: run every reliability test, collect its figures, write the table.

Each row of ``tests/support/reliability_rows.py`` names a fault or bad input, what the tool does
about it, and the tests that fail when it stops doing so. This script runs exactly those
tests (with the example budget of ``AUTOOPS_PROPERTY_SCALE``, default 1), reads the figures
they record through the ``reliability`` fixture (inputs tried, records lost, exit codes,
HTTP statuses) and each test's outcome, and writes the page.

    .venv/bin/python benchmarks/reliability_report.py            # CI budget, a few minutes
    AUTOOPS_PROPERTY_SCALE=20 .venv/bin/python benchmarks/reliability_report.py

Exits non-zero when a test failed (the page is written anyway, with the failures marked).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.reliability_rows import ROWS, Row  # noqa: E402

PAGE = ROOT / "docs" / "reliability.md"


def run_tests(node_ids: list[str]) -> tuple[dict[str, dict], dict[str, str]]:
    """Run the tests; their figures by node id, and each test's outcome."""
    with tempfile.TemporaryDirectory() as tmp:
        log, junit = Path(tmp) / "figures.jsonl", Path(tmp) / "junit.xml"
        env = {**os.environ, "AUTOOPS_RELIABILITY_LOG": str(log)}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   f"--junitxml={junit}", *node_ids]  # fmt: skip
        subprocess.run(command, cwd=ROOT, env=env, check=False)
        figures: dict[str, dict] = {}
        if log.exists():
            for line in log.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                base = entry["test"].split("[", 1)[0]  # parametrized cases add up
                merged = figures.setdefault(
                    base,
                    {"inputs": 0, "lost": None, "exit_codes": Counter(), "statuses": Counter()},
                )
                merged["inputs"] += entry["inputs"]
                if entry["lost"] is not None:  # None: the test does not count lost records
                    merged["lost"] = (merged["lost"] or 0) + entry["lost"]
                merged["exit_codes"].update({int(k): v for k, v in entry["exit_codes"].items()})
                merged["statuses"].update({int(k): v for k, v in entry["statuses"].items()})
        outcomes: dict[str, str] = {}
        for case in ElementTree.parse(junit).getroot().iter("testcase"):
            module = case.get("classname", "").replace(".", "/") + ".py"
            node = f"{module}::{case.get('name', '').split('[', 1)[0]}"
            failed = case.find("failure") is not None or case.find("error") is not None
            skipped = case.find("skipped") is not None
            if failed:
                outcomes[node] = "FAILED"
            elif node not in outcomes:
                outcomes[node] = "skipped" if skipped else "passed"
    return figures, outcomes


def _codes(counter: Counter[int]) -> str:
    return ", ".join(f"{code} ({n})" if n > 1 else str(code) for code, n in sorted(counter.items()))


def row_line(row: Row, figures: dict[str, dict], outcomes: dict[str, str]) -> tuple[str, bool]:
    inputs = 0
    lost: int | None = None
    exits: Counter[int] = Counter()
    statuses: Counter[int] = Counter()
    for test in row.tests:
        if test in figures:
            inputs += figures[test]["inputs"]
            if figures[test]["lost"] is not None:
                lost = (lost or 0) + figures[test]["lost"]
            exits.update(figures[test]["exit_codes"])
            statuses.update(figures[test]["statuses"])
    results = [outcomes.get(test, "not run") for test in row.tests]
    ok = all(result == "passed" for result in results)
    tests = "<br>".join(f"`{test.split('::')[1]}`" for test in row.tests)
    cells = [
        row.area,
        row.fault,
        row.behaviour,
        str(inputs) if inputs else "-",
        "-" if lost is None else str(lost),
        _codes(exits) or "-",
        _codes(statuses) or "-",
        tests,
        "pass" if ok else "**" + ", ".join(sorted(set(results) - {"passed"})) + "**",
    ]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |", ok


def main() -> int:
    node_ids = sorted({test for row in ROWS for test in row.tests})
    started = time.monotonic()
    figures, outcomes = run_tests(node_ids)
    elapsed = time.monotonic() - started
    lines, all_ok = [], True
    for row in ROWS:
        line, ok = row_line(row, figures, outcomes)
        lines.append(line)
        all_ok = all_ok and ok
    scale = os.environ.get("AUTOOPS_PROPERTY_SCALE", "1")
    total_inputs = sum(f["inputs"] for f in figures.values())
    total_lost = sum(f["lost"] or 0 for f in figures.values())
    page = (
        f"""# Reliability: every fault and bad input tried, and what the tool did

Generated by `python benchmarks/reliability_report.py` (property budget scale {scale});
do not edit by hand: change `tests/support/reliability_rows.py` or the tests, then regenerate.
Each row is backed by the tests named in it; a test fails when the behaviour breaks, and
`tests/cli/test_reliability_doc.py` fails when a row's test is missing or this page is stale.

Last run: {len(ROWS)} rows, {len(node_ids)} tests, {total_inputs} inputs or faults tried,
{total_lost} records lost, {elapsed:.0f} s, {"every test passed" if all_ok else "SOME TESTS FAILED"}.

Columns: *inputs* is how many bad inputs or injected faults the tests tried (hypothesis
examples included); *lost* is how many records (spans, events) went missing where the test
counts them (always 0, and asserted); *exit codes* are those of the `autoops` runs, *HTTP*
the statuses answered or injected; "-" where a test does not count that figure.

A longer soak of the property tests is one command away:
`AUTOOPS_PROPERTY_SCALE=20 .venv/bin/python -m pytest -m property`.

| area | fault or bad input | what the tool did | inputs | lost | exit codes | HTTP | tests | result |
|---|---|---|---|---|---|---|---|---|
"""
        + "\n".join(lines)
        + "\n"
    )
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}: {len(ROWS)} rows, {'ok' if all_ok else 'FAILURES'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
