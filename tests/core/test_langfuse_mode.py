"""Langfuse mode over real HTTP: the same data as local mode, sent the way the SDK sends it."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from pathlib import Path

from config.store.otel_mapping import map_spans
from config.store.rows import OBSERVATION_COLUMNS
from tests.cli.test_replay import EXAMPLE
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET, Cli
from tests.support.fake_langfuse import FakeLangfuse

COMPARED = [c for c in OBSERVATION_COLUMNS if c not in ("start_us", "end_us")]


def _local_rows(path: Path) -> tuple[dict, dict, dict]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        observations = {
            r["id"]: {c: r[c] for c in COMPARED} for r in db.execute("SELECT * FROM observations")
        }
        traces = {
            r["id"]: (r["name"], r["session_id"], r["tags"], r["metadata"], r["input"], r["output"])
            for r in db.execute("SELECT * FROM traces")
        }
        scores = {
            r["id"]: (r["name"], r["value"], r["observation_id"])
            for r in db.execute("SELECT * FROM scores")
        }
    return observations, traces, scores


def test_replay_sends_the_same_traces_as_local_mode(
    cli: Cli, workdir: Path, fake_langfuse: FakeLangfuse
) -> None:
    local = cli("replay", str(EXAMPLE), "--limit", "40", "--run-id", "same-run", "--json")
    assert local.exit_code == 0, local.stderr
    observations, traces, scores = _local_rows(Path(os.environ["AUTOOPS_HOME"]) / "traces.db")

    env = {
        "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC,
        "LANGFUSE_SECRET_KEY": KNOWN_SECRET,
        "LANGFUSE_HOST": fake_langfuse.url,
        # Everything delivered before the exit, however busy the machine (default: 2 s).
        "AUTOOPS_FLUSH_DEADLINE": "60",
    }
    remote = cli("replay", str(EXAMPLE), "--limit", "40", "--run-id", "same-run", "--json", env=env)
    assert remote.exit_code == 0, remote.stderr
    summary = json.loads(remote.stdout)
    assert summary["destination"] == fake_langfuse.url
    assert f"-> {fake_langfuse.url}" in remote.stderr

    received = fake_langfuse.received
    mapped = map_spans(received.spans)
    assert len(received.spans) == len(observations) == summary["observations_recorded"]
    sent = {row["id"]: {c: row[c] for c in COMPARED} for row in mapped.observations}
    differing = [
        (key, column, sent[key][column], observations[key][column])
        for key in sent
        for column in COMPARED
        if sent[key][column] != observations.get(key, {}).get(column)
    ]
    assert differing == []
    sent_traces = {
        t["id"]: (t["name"], t["session_id"], t["tags"], t["metadata"], t["input"], t["output"])
        for t in mapped.traces.values()
    }
    assert sent_traces == traces
    assert {s["id"]: (s["name"], s["value"], s["observationId"]) for s in received.scores} == scores

    otlp_headers = [h for h in received.headers if h["path"] == "/api/public/otel/v1/traces"]
    assert otlp_headers, "no OTLP export arrived"
    for headers in otlp_headers:
        lowered = {k.lower(): v for k, v in headers.items()}
        assert lowered["x-langfuse-ingestion-version"] == "4"
        assert lowered["x-langfuse-sdk-name"] == "python"
        assert lowered["x-langfuse-public-key"] == KNOWN_PUBLIC
        assert lowered["content-encoding"] == "gzip"
        assert (
            lowered["authorization"]
            == "Basic " + base64.b64encode(f"{KNOWN_PUBLIC}:{KNOWN_SECRET}".encode()).decode()
        )
    assert KNOWN_SECRET not in remote.stdout + remote.stderr
