"""``autoops replay`` around the engine: settings, the service, progress, exit code, summary."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoops_cli.simulation.engine import (
    ReplayEngine,
    ReplayOptions,
    ReplaySummary,
    load_orchestrator,
)
from config.errors import ExitCode

if TYPE_CHECKING:
    from rich.table import Table

    from autoops_cli.simulation.events import RejectedLine
    from autoops_cli.state import AppState
    from config.langfuse_integration import LangfuseIntegrationService

REJECTIONS_SHOWN = 50  # bad lines printed one by one; the rest are counted


def new_run_id() -> str:
    """``run-20261127T190301-1a2b``: sortable by time, unique enough per machine."""
    return f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.urandom(2).hex()}"


def run_replay(
    state: AppState,
    *,
    source: str | Path,
    flags: dict[str, tuple[Any, str]] | None,
    sample_rate: float | None,
    limit: int | None,
    speed: float | None,
    strict: bool,
    dry_run: bool,
    run_id: str | None,
    orchestrator_spec: str | None,
) -> tuple[ReplaySummary, int]:
    """Run a replay as the command line asked; the summary and the exit code."""
    from config.delivery.exporters import NullExporter
    from config.langfuse_integration import (
        LangfuseIntegrationService,
        install_langfuse_integration,
    )

    config, masking = state.settings(flags=flags)
    rules = state.load_settings(flags=flags).sampling_rules
    orchestrator = load_orchestrator(orchestrator_spec)
    # Built here rather than by initialize_langfuse_integration(), which would carry on
    # untraced: a replay that cannot record must say so (a bad store exits 6).
    service = install_langfuse_integration(
        LangfuseIntegrationService(
            config,
            masking,
            sample_rate=sample_rate,
            exporter=NullExporter() if dry_run else None,
            sampling_rules=rules,
        )
    )
    out = state.output
    options = ReplayOptions(
        source=source, run_id=run_id or new_run_id(), limit=limit, speed=speed, strict=strict
    )
    destination = "none (dry run)" if dry_run else service.destination
    rule_count = sum(1 for _ in service.tracer.sampler.rules.items())
    out.info(
        f"replaying {source if source != '-' else 'stdin'} -> {destination} "
        f"(run {options.run_id}, sample rate {service.tracer.sampler.rate:g}"
        + (f", {rule_count} sampling rule(s))" if rule_count else ")")
    )
    shown = 0

    def report_rejected(rejected: RejectedLine) -> None:
        nonlocal shown
        shown += 1
        if shown <= REJECTIONS_SHOWN:
            out.error(f"{source}:{rejected.line_number}: {rejected.reason}")

    engine = ReplayEngine(service, orchestrator, options, on_rejected=report_rejected)
    engine.summary.destination = destination
    interrupted = False
    with _progress(state) as on_progress:
        engine.on_progress = on_progress
        try:
            summary = engine.run()
        except KeyboardInterrupt:
            interrupted = True
            summary = engine.summary
            summary.stopped_early = "interrupted"
    service.shutdown(timeout=0)  # the engine already flushed within the deadline
    if service.store_path is not None and not dry_run:
        _record_sampling(service, summary)
    if shown > REJECTIONS_SHOWN:
        out.error(f"... and {shown - REJECTIONS_SHOWN} more bad lines (all listed in --json)")
    return summary, _exit_code(state, summary, interrupted)


def _record_sampling(service: LangfuseIntegrationService, summary: ReplaySummary) -> None:
    """What sampling did in this run, for ``autoops sampling show``."""
    from autoops_cli.actions.sampling.report import record_replay_sampling

    assert service.store_path is not None
    record_replay_sampling(
        service.store_path.parent,
        {
            "run_id": summary.run_id,
            "configured_rate": service.adaptive.base_rate,
            "final_rate": service.tracer.sampler.rate,
            "events_sampled_out": summary.events_sampled_out,
            "traces_recorded": summary.traces_recorded,
            "changes": summary.sampling_changes,
        },
    )


def _exit_code(state: AppState, summary: ReplaySummary, interrupted: bool) -> int:
    out = state.output
    tracing = summary.tracing
    failed = tracing.get("spans_failed", 0) + tracing.get("scores_failed", 0)
    pending = tracing.get("batches_pending", 0)
    if tracing.get("delivery_state") == "credentials_rejected":
        out.error(
            f"Langfuse at {summary.destination} rejected the keys; {pending} batch(es) kept in the "
            "outbox: fix LANGFUSE_PUBLIC_KEY/LANGFUSE_SECRET_KEY, then run `autoops buffer flush`"
        )
        return int(ExitCode.CONFIG)
    if pending:
        out.warning(
            f"{pending} batch(es) not delivered to {summary.destination} yet, kept in the outbox; "
            "the next run or `autoops buffer flush` sends them"
        )
    if interrupted:
        out.warning("interrupted: what was processed before is recorded")
        return 130
    if summary.events_rejected:
        out.warning(f"{summary.events_rejected} line(s) rejected; the other events were recorded")
        return int(ExitCode.LOCAL_FILE)
    if tracing.get("dead_letters"):
        out.error(
            f"{tracing['dead_letters']} batch(es) refused by {summary.destination}; "
            "see `autoops buffer status`"
        )
        return int(ExitCode.API)
    if failed:
        out.error(f"{failed} score(s) rejected by {summary.destination}")
        return int(ExitCode.API)
    if pending:
        return int(ExitCode.NETWORK)
    if summary.events_failed:
        out.error(
            f"{summary.events_failed} event(s) failed inside the agents (recorded as ERROR traces)"
        )
        return int(ExitCode.FAILURE)
    return 0


@contextmanager
def _progress(state: AppState) -> Iterator[Any]:
    """A live progress line on a terminal; nothing when piped, --quiet or --json."""
    out = state.output
    if out.quiet or out.json_mode or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (
        SpinnerColumn(),
        TextColumn("{task.fields[done]} events"),
        TextColumn("{task.fields[rate]:.0f}/s"),
        TextColumn("{task.fields[rejected]} rejected"),
        TimeElapsedColumn(),
    )
    started = time.perf_counter()
    with Progress(*columns, console=out.stderr, transient=True) as progress:
        task = progress.add_task("replay", total=None, done=0, rate=0.0, rejected=0)
        last = 0.0

        def update(summary: ReplaySummary) -> None:
            nonlocal last
            now = time.perf_counter()
            if now - last < 0.1:
                return
            last = now
            done = summary.events_processed + summary.events_failed
            progress.update(
                task,
                done=done,
                rate=done / max(now - started, 1e-9),
                rejected=summary.events_rejected,
            )

        yield update


def summary_table(summary: ReplaySummary) -> Table:
    """The replay summary as a two-column table."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.ASCII, show_header=False, title="replay summary")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    rows: list[tuple[str, Any]] = [
        ("run_id", summary.run_id),
        ("destination", summary.destination),
        ("events_total", summary.events_total),
        ("events_processed", summary.events_processed),
        ("events_rejected", summary.events_rejected),
        ("events_failed", summary.events_failed),
        ("events_sampled_out", summary.events_sampled_out),
        ("traces_recorded", summary.traces_recorded),
        ("observations_recorded", summary.observations_recorded),
        ("scores_recorded", summary.scores_recorded),
        *((f"decisions.{agent}", count) for agent, count in summary.decisions.items()),
        ("conflicts_detected", summary.conflicts_detected),
        ("conflicts_resolved", summary.conflicts_resolved),
        ("duration_s", f"{summary.duration_s:.2f}"),
        ("events_per_s", f"{summary.events_per_s:.1f}"),
        ("tracing_overhead_ms", f"{summary.tracing.get('tracing_overhead_ms', 0.0):.4f}"),
        ("tracing_errors", summary.tracing.get("tracing_errors", 0)),
    ]
    for change in summary.sampling_changes:
        rows.append(
            (
                f"sample rate {change['from']:g} -> {change['to']:g}",
                f"after {change['after_traces']} traces: {change['reason']}",
            )
        )
    if summary.stopped_early:
        rows.append(("stopped_early", summary.stopped_early))
    for name, value in rows:
        table.add_row(name, str(value))
    return table
