"""``autoops replay FILE``: recorded simulation events through the agents, with tracing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from autoops_cli.state import AppState

if TYPE_CHECKING:
    from autoops_cli.simulation.engine import ReplaySummary


def replay(
    ctx: typer.Context,
    file: str = typer.Argument(
        ..., help="JSON Lines event file; '-' reads stdin, .gz is decompressed."
    ),
    sample_rate: float | None = typer.Option(
        None,
        "--sample-rate",
        min=0.0,
        max=1.0,
        help="Fraction of traces kept (overrides LANGFUSE_SAMPLE_RATE).",
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Stop after this many events."),
    speed: float | None = typer.Option(
        None,
        "--speed",
        min=0.001,
        help="Replay at this multiple of the recorded pace (default: as fast as possible).",
    ),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first bad line (exit 6)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Run the agents without recording anything."
    ),
    run_id: str | None = typer.Option(
        None,
        "--run-id",
        help="Id of this run: the Langfuse session id (printable ASCII, at most 200 characters).",
    ),
    orchestrator: str | None = typer.Option(
        None,
        "--orchestrator",
        help="Your own orchestrator as module:factory (factory() -> object with handle(event)).",
    ),
    progress_file: Path | None = typer.Option(
        None,
        "--progress-file",
        help="Write progress as JSON lines to this file; every count on a line is on disk.",
        readable=False,  # written, not read
    ),
    workers: str = typer.Option(
        "1",
        "--workers",
        help="Processes running the agents, each product's events in one of them, in order; "
        "'auto': one per available CPU.",
    ),
    shard: str | None = typer.Option(
        None,
        "--shard",
        help="K/N: replay only the products of shard K of N (one of N machines or CI jobs).",
    ),
    worker: bool = typer.Option(False, "--worker", hidden=True),
    settings_fd: int | None = typer.Option(None, "--settings-fd", hidden=True),
) -> None:
    """Replay recorded simulation events through the orchestrator and agents, with tracing.

    Every event becomes one trace (orchestrator workflow, agent operations, tools, collaboration, decisions). With no Langfuse keys the traces go to the local store (.autoops/traces.db or $AUTOOPS_HOME); with keys, to the outbox and on to Langfuse while the run goes on. An event counts as processed only once its trace is on disk. Bad lines are reported with their line number and skipped; the exit code is then 6. SIGTERM or Ctrl-C stops after the event in hand, keeps what was recorded and prints the summary (exit 143 or 130).

    --workers N runs the agents in N processes, each product's events in one of them in the file's order, with one progress line and one summary. --shard K/N replays only the products whose stable hash falls in shard K of N: N machines or CI jobs given the same file record it once between them (each reports the file's bad lines).

    **Example:** autoops replay examples/events.jsonl --sample-rate 0.5 --json

    **Example:** autoops replay events.jsonl --workers auto --shard 2/3
    """
    from autoops_cli.actions.replay import run_replay
    from autoops_cli.simulation.partition import parse_shard, parse_workers

    state: AppState = ctx.obj
    if settings_fd is not None:  # a worker: its parent's settings, whatever the files say now
        from autoops_cli.actions.replay_workers import read_parent_settings

        state.adopt_settings(read_parent_settings(settings_fd))
    flags = (
        {"langfuse.sample_rate": (sample_rate, "--sample-rate")}
        if sample_rate is not None
        else None
    )
    summary, exit_code = run_replay(
        state,
        source=file if file == "-" else Path(file),
        flags=flags,
        sample_rate=sample_rate,
        limit=limit,
        speed=speed,
        strict=strict,
        dry_run=dry_run,
        run_id=run_id,
        orchestrator_spec=orchestrator,
        progress_file=progress_file,
        workers=1 if worker else parse_workers(workers),
        shard=parse_shard(shard) if shard is not None else None,
        worker=worker,
    )
    _render(state, summary)
    if exit_code:
        raise typer.Exit(exit_code)


def _render(state: AppState, summary: ReplaySummary) -> None:
    from autoops_cli.actions.replay import INPUT_REFUSED, summary_table

    if state.output.json_mode:
        state.output.emit_json(summary.as_dict())
    elif summary.destination != INPUT_REFUSED:  # its error line says it all
        state.output.render(summary_table(summary))
