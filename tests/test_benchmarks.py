"""The benchmarks' own store builders still build a store: a schema change broke both
metrics benchmarks the README's performance section cites (a score column added after
``timestamp_us``), and no test noticed. The benchmarks themselves measure, so they are run
by hand; this only checks that their inputs can be made."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def test_the_metrics_benchmarks_store_is_built(tmp_path: Path) -> None:
    from benchmarks.metrics_query import generate

    store = tmp_path / "bench.db"
    generate(store, 300)
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM observations").fetchone()[0] == 300
        assert db.execute("SELECT COUNT(*) FROM scores WHERE source = 'API'").fetchone()[0] > 0
