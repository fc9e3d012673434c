"""``autoops replay`` around the engine: settings, the service, signals, progress, exit code.

SIGTERM (``docker stop``, systemd, a CI timeout) and SIGINT (Ctrl-C) stop the run after the
event in hand: what was recorded is committed, delivery is tried within the flush deadline,
the summary is printed (``--json`` too) and the exit code is 143 or 130. A second signal
skips the delivery (the outbox keeps it). Progress goes to stderr on a terminal, and as JSON
lines to ``--progress-file``: every count on such a line is durable (on disk) when written.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoops_cli.actions.files import refuse_foreign_file
from autoops_cli.output import escape
from autoops_cli.output_files import open_writer
from autoops_cli.simulation.engine import (
    MAX_REJECTIONS_KEPT,
    ReplayEngine,
    ReplayOptions,
    ReplayProgress,
    ReplaySummary,
    load_orchestrator,
)
from autoops_cli.simulation.events import EventReader
from autoops_cli.simulation.partition import available_cpus
from config.errors import STOP_EXIT_CODES, ExitCode, LocalFileError, StopNow, UsageError
from config.redaction import redact_secrets

if TYPE_CHECKING:
    from rich.table import Table

    from autoops_cli.actions.replay_workers import WorkerPool
    from autoops_cli.simulation.events import RejectedLine
    from autoops_cli.state import AppState
    from config.delivery.sender import DeliveryProgress
    from config.langfuse_integration import LangfuseIntegrationService
    from config.settings import LangfuseConfig
    from config.tracing.span_records import SpanExporter

REJECTIONS_SHOWN = 50  # bad lines printed one by one; the rest are counted
COMMIT_POINTS_ONLY = 1_000_000  # the tracer's batch size: never reached between commit points


# The run id is the Langfuse session id: US-ASCII, at most 200 characters (the Langfuse SDKs
# drop any other session id with a warning).
MAX_RUN_ID_CHARS = 200


def check_run_id(run_id: str) -> str:
    """``run_id`` when it can be a Langfuse session id, else a ``UsageError`` (exit 2).

    An argument that is not valid UTF-8 reaches Python as lone surrogates, which no trace can
    carry: unchecked, every trace of the run failed to record.
    """
    problem = None
    if not run_id.strip():
        problem = "must not be empty"
    elif len(run_id) > MAX_RUN_ID_CHARS:
        problem = f"at most {MAX_RUN_ID_CHARS} characters (got {len(run_id)})"
    elif not (run_id.isascii() and run_id.isprintable()):
        problem = "printable US-ASCII characters only (a Langfuse session id)"
    if problem is not None:
        shown = run_id[:40].encode("ascii", "backslashreplace").decode("ascii")
        raise UsageError(f"--run-id '{shown}': {problem}")
    return run_id


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
    progress_file: Path | None = None,
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    worker: bool = False,
) -> tuple[ReplaySummary, int]:
    """Run a replay as the command line asked; the summary and the exit code.

    ``workers`` > 1 runs the agents in that many processes (``replay_workers``); ``worker``
    is one of them: it reads the lines its parent sends, writes the store or outbox without
    sending, reports its durable progress to ``progress_file`` and leaves the messages, the
    sampling report and the exit code to the parent.
    """
    with _stop_on_signals() as stops:
        from config.delivery.exporters import NullExporter
        from config.langfuse_integration import (
            LangfuseIntegrationService,
            install_langfuse_integration,
        )

        _check_workers(workers, speed)
        run_id = new_run_id() if run_id is None else check_run_id(run_id)
        config, masking = state.settings(flags=flags)
        rules = state.load_settings(flags=flags).sampling_rules
        orchestrator = load_orchestrator(orchestrator_spec)
        # Opened first: a file that is not there or not JSON Lines is refused before a store
        # or an outbox is created for it. A worker's lines come from its parent, which made
        # the event ids of the whole file unique and re-wrote each event's line
        # (``worker_line``).
        reader = _open_input(stops, source, worker=worker)
        if not isinstance(reader, EventReader):
            return _ended_before_input(state, run_id, reader, workers=workers, worker=worker)
        progress_out = _open_progress_file(progress_file, reader, source)
        # Built here rather than by initialize_langfuse_integration(), which would carry on
        # untraced: a replay that cannot record must say so (a bad store exits 6).
        service = install_langfuse_integration(
            LangfuseIntegrationService(
                config,
                masking,
                sample_rate=sample_rate,
                exporter=NullExporter() if dry_run else _writer_only(config) if worker else None,
                sampling_rules=rules,
                # The engine's commit points are the only batches: what is on disk is then
                # exactly what the run reported (a size-based batch would write part of an
                # unreported group).
                batch_size=COMMIT_POINTS_ONLY,
                # SQLite's work on a second CPU, beside the agents (workers have the CPUs).
                writer_process=workers == 1 and not worker and available_cpus() > 1,
            )
        )
        options = ReplayOptions(
            source=source,
            run_id=run_id,
            limit=limit,
            speed=speed,
            strict=strict,
            shard=shard,
        )
        destination = "none (dry run)" if dry_run else service.destination
        _announce(state, service, options, destination, workers)
        shown = 0

        def report_rejected(rejected: RejectedLine) -> None:
            nonlocal shown
            shown += 1
            if shown <= REJECTIONS_SHOWN:
                state.output.error(f"{source}:{rejected.line_number}: {rejected.reason}")

        if workers > 1:
            runner: ReplayEngine | WorkerPool = _worker_pool(
                state,
                service,
                reader,
                options,
                workers,
                flags,
                sample_rate,
                orchestrator_spec,
                dry_run,
            )
        else:
            runner = ReplayEngine(
                service,
                orchestrator,
                options,
                reader=reader,
                on_long_wait=_long_wait_warning(state, source, speed),
            )
        runner.on_rejected = report_rejected
        runner.summary.destination = destination
        try:
            stops.attach(runner)
            with _progress(state, progress_out) as on_progress:
                runner.on_progress = (
                    _to_parent(progress_out, runner) if worker and progress_out else None
                ) or on_progress
                started = time.monotonic()
                summary = runner.run()
            service.shutdown(timeout=0)  # the engine delivered while the server made progress
            if summary.delivery:
                # Counted once this run changes the outbox no more: what it left there.
                summary.delivery["batches_waiting"] = service.client.pending()
            if worker:  # the parent reports, records the sampling and decides the exit code
                return summary, 0
            if service.store_path is not None and not dry_run:
                _record_sampling(service, summary)
            _report_input(state, reader, shown, sharded=shard is not None)
            code = _exit_code(
                state,
                summary,
                getattr(runner, "failure", None),
                dry_run=dry_run,
                public_key=config.public_key,
            )
            code = _blank_input(state, reader, code)
            if progress_out is not None:
                # The time since the run started, as on every line before (delivery included).
                _write_progress_line(
                    progress_out, "done", summary, None, round(time.monotonic() - started, 3), code
                )
                code = _progress_file_outcome(state, summary, progress_out, code)
        finally:
            if progress_out is not None:
                progress_out.close()
        return summary, code


def _open_progress_file(
    path: Path | None, reader: EventReader, source: str | Path
) -> ProgressFile | None:
    """The ``--progress-file`` opened, if one was asked for; the reader closed if it fails."""
    if path is None:
        return None
    try:
        if source != "-" and _same_file(path, Path(source)):
            raise UsageError(f"--progress-file {path}: it is the event file being replayed")
        if source == "-" and _is_descriptor(path, 0) and not _is_terminal(0):
            # Written to, the pipe being read never ended: the run waited for ever. A
            # terminal is stdin and stderr at once: writing to it is the user's choice.
            raise UsageError(f"--progress-file {path}: it is the standard input being replayed")
        if _is_stdout(path):
            # The summary goes there: the two interleaved made neither readable.
            raise UsageError(
                f"--progress-file {path}: it is the command's standard output, where the "
                "summary goes; name another file (or /dev/stderr)"
            )
        store = _store_file_named(path)
        if store is not None:
            # Checked by name: a store not created yet is no file to recognise, and SQLite
            # took the empty progress file for its database (a corrupt store by line 39,000).
            raise UsageError(
                f"--progress-file {path}: it is the store {store}, which the run writes"
            )
        return ProgressFile(path)
    except BaseException:
        reader.close()
        raise


def _store_file_named(path: Path) -> Path | None:
    """The store file (the local store, or the outbox in langfuse mode) when ``path`` names
    it or one of SQLite's files beside it (``-wal``, ``-shm``, ``-journal``); else None."""
    from config.store.local_store import default_store_path

    store = default_store_path()
    named = os.path.realpath(path)
    for suffix in ("", "-wal", "-shm", "-journal"):
        if named == os.path.realpath(f"{store}{suffix}"):
            return store
    return None


def _long_wait_warning(
    state: AppState, source: str | Path, speed: float | None
) -> Callable[[int, float], None]:
    def warn(line: int, seconds: float) -> None:
        state.output.warning(
            f"{source}:{line}: waiting {_duration(seconds)} for this event's time at "
            f"--speed {speed or 1:g} (its timestamp is that far after the events before); "
            "Ctrl-C stops the run, what was replayed is kept"
        )

    return warn


def _is_stdout(path: Path) -> bool:
    """``path`` is where standard output goes, a pipe or a file that something reads. A
    terminal and a device (``/dev/null``) are left to the user, and so is standard output
    that is standard error too (``2>&1``: ``/dev/stderr`` was refused, as the error advised)."""
    try:
        out = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no stdout (a test's)
        return False
    if stat.S_ISCHR(out.st_mode):
        return False
    return _is_descriptor(path, sys.stdout.fileno()) and not _is_descriptor(path, 2)


def _is_terminal(descriptor: int) -> bool:
    """Whether ``descriptor`` is a character device (a terminal, ``/dev/null``)."""
    try:
        return stat.S_ISCHR(os.fstat(descriptor).st_mode)
    except (OSError, ValueError):
        return False


def _is_descriptor(path: Path, descriptor: int) -> bool:
    """Whether ``path`` is the file open as ``descriptor`` (False when either is not there)."""
    try:
        return os.path.samestat(path.stat(), os.fstat(descriptor))
    except (OSError, ValueError):
        return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:  # one of them is not there (yet)
        return False


def _progress_file_outcome(
    state: AppState, summary: ReplaySummary, progress: ProgressFile, code: int
) -> int:
    """The exit code once the progress file is accounted for: one it could not be written
    to all along is a local file that failed (6), unless the run failed otherwise; the
    summary says why (``progress_file_error``)."""
    if progress.failure is None:
        return code
    summary.progress_file_error = (
        f"cannot write the progress file {progress.path}: {progress.failure}"
    )
    state.output.error(
        f"{summary.progress_file_error}; it ends at its last whole line (the run went on, "
        "and the summary counts all of it)"
    )
    return code or int(ExitCode.LOCAL_FILE)


def _blank_input(state: AppState, reader: EventReader, code: int) -> int:
    """``code``, or 6 for an input of blank lines only (as an empty one): said so."""
    if code != ExitCode.OK or not reader.only_blank_lines:
        return code
    state.output.error(f"{reader.name}: no events (only blank lines)")
    return int(ExitCode.LOCAL_FILE)


def _report_input(state: AppState, reader: EventReader, shown: int, *, sharded: bool) -> None:
    """What the run's messages left out about the input: more bad lines, renamed events."""
    if shown > REJECTIONS_SHOWN:
        listed = "all" if shown <= MAX_REJECTIONS_KEPT else f"the first {MAX_REJECTIONS_KEPT}"
        state.output.error(
            f"... and {shown - REJECTIONS_SHOWN} more bad lines ({listed} listed in --json)"
        )
    if reader.events_renamed and sharded:
        # Renamed over the whole file (every shard names them alike); this run replayed
        # only those of its own products.
        state.output.warning(
            f"{reader.events_renamed} event(s) of the file repeated an earlier event_id: "
            "those of this shard were replayed as traces of their own, their id followed by "
            "#2, #3, ..."
        )
    elif reader.events_renamed:
        state.output.warning(
            f"{reader.events_renamed} event(s) repeated an earlier event_id: each was "
            "replayed as a trace of its own, its id followed by #2, #3, ..."
        )


def _open_input(
    stops: StopSignals, source: str | Path, *, worker: bool
) -> EventReader | StoppedWhileWaiting | LocalFileError:
    """The run's reader, the stop that came while its input's first bytes were awaited, or
    why the input was refused (a worker's refusal is raised: its parent reports)."""
    may_block = source == "-" or _is_fifo(source)  # a file opens and reads at once
    try:
        with stops.abandoning_waits(may_block=may_block):
            return _worker_reader(source) if worker else EventReader(source)
    except StoppedWhileWaiting as stop:
        return stop
    except LocalFileError as refused:
        if worker:
            raise
        return refused


def _is_fifo(path: str | Path) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


INPUT_REFUSED = "none (the input was refused)"


def _ended_before_input(
    state: AppState,
    run_id: str,
    ending: StoppedWhileWaiting | LocalFileError,
    *,
    workers: int,
    worker: bool,
) -> tuple[ReplaySummary, int]:
    """The summary and exit code of a run that ended before any event was read."""
    if isinstance(ending, LocalFileError):
        return _refused_input(state, run_id, ending, workers=workers)
    return _stopped_before_input(state, run_id, ending.signal_name, workers=workers, worker=worker)


def _refused_input(
    state: AppState, run_id: str, refused: LocalFileError, *, workers: int
) -> tuple[ReplaySummary, int]:
    """A run whose input was refused before any event was read (not there, empty, not JSON
    Lines): its one error line, and a summary of nothing for --json (``read_error`` says why;
    a CI step reading the summary got no document at all)."""
    state.output.error(refused.message, refused.hint)
    summary = ReplaySummary(
        run_id=run_id,
        destination=INPUT_REFUSED,
        workers=workers,
        lines_not_read=None,
        read_error=refused.message,
    )
    return summary, int(refused.exit_code)


def _stopped_before_input(
    state: AppState, run_id: str, signal_name: str, *, workers: int, worker: bool
) -> tuple[ReplaySummary, int]:
    """The summary and exit code of a run stopped before its input's first bytes came (a
    worker's parent reports)."""
    summary = ReplaySummary(
        run_id=run_id,
        destination="none (stopped before any input)",
        workers=workers,
        lines_not_read=None,
        stopped_early=signal_name,
    )
    if worker:
        return summary, 0
    state.output.warning(
        f"stopped by {signal_name} while waiting for the input's first line: nothing was read "
        "or recorded"
    )
    return summary, int(STOP_EXIT_CODES[signal_name])


def _worker_reader(source: str | Path) -> EventReader:
    from autoops_cli.actions.replay_workers import WORKER_MAX_LINE_BYTES

    return EventReader(
        source, max_line_bytes=WORKER_MAX_LINE_BYTES, allow_empty=True, check_event_ids=False
    )


def _worker_pool(
    state: AppState,
    service: LangfuseIntegrationService,
    reader: EventReader,
    options: ReplayOptions,
    workers: int,
    flags: dict[str, tuple[Any, str]] | None,
    sample_rate: float | None,
    orchestrator_spec: str | None,
    dry_run: bool,
) -> WorkerPool:
    from autoops_cli.actions.replay_workers import WorkerPool, parent_settings, worker_command

    command = worker_command(state, options.run_id, sample_rate, orchestrator_spec, dry_run=dry_run)
    return WorkerPool(
        service,
        reader,
        options,
        workers=workers,
        worker_command=command,
        settings=parent_settings(state.load_settings(flags=flags)),
    )


def _check_workers(workers: int, speed: float | None) -> None:
    if workers > 1 and speed:
        raise UsageError(
            "--speed paces one stream of events: replay with --workers 1 to keep the recorded pace"
        )


def _announce(
    state: AppState,
    service: LangfuseIntegrationService,
    options: ReplayOptions,
    destination: str,
    workers: int,
) -> None:
    """The first line on stderr: what is replayed where, and how."""
    source = options.source
    rule_count = sum(1 for _ in service.tracer.sampler.rules.items())
    state.output.info(
        f"replaying {source if source != '-' else 'stdin'} -> {destination} "
        f"(run {options.run_id}, sample rate {service.tracer.sampler.rate:g}"
        + (f", {rule_count} sampling rule(s)" if rule_count else "")
        + (f", shard {options.shard[0]}/{options.shard[1]}" if options.shard else "")
        + (f", {workers} workers" if workers > 1 else "")
        + ")"
    )


class ProgressFile:
    """``--progress-file``: JSON lines, each whole or not there.

    A write that fails (a full disk) is undone, and the file ends at its last whole line:
    the run goes on (what it records is its own), and says at its end that the file stopped
    (``failure``). A worker's progress file is its pipe to the parent (``write_line`` False:
    the parent is gone).
    """

    # How every progress file starts (``_write_progress_line``): the only content a run
    # overwrites.
    FIRST_BYTES = b'{"time": "'

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            descriptor = open_writer(path)
        except OSError as exc:
            raise LocalFileError(
                f"cannot write the progress file {path}: {exc.strerror or exc}"
            ) from None
        try:
            if stat.S_ISREG(os.fstat(descriptor).st_mode):  # not a pipe, /dev/null, ...
                refuse_foreign_file(
                    path,
                    "--progress-file",
                    ours=lambda head: head.startswith(self.FIRST_BYTES),
                    what="a progress file",
                )
                os.ftruncate(descriptor, 0)
        except BaseException:
            os.close(descriptor)
            raise
        self._file = os.fdopen(descriptor, "wb", buffering=0)
        self._written = 0  # bytes of whole lines
        self.failure: str | None = None
        self._lock = threading.Lock()  # the workers' progress threads write too

    def write_line(self, line: dict[str, Any]) -> bool:
        """Append one line and flush it to the kernel; False once writing has failed."""
        encoded = (json.dumps(line) + "\n").encode("utf-8")
        with self._lock:
            if self.failure is not None:
                return False
            left = memoryview(encoded)
            try:
                while left:  # a raw write may take part of it (a full disk, a signal)
                    left = left[self._file.write(left) or 0 :]
            except (OSError, ValueError) as exc:  # ValueError: closed
                self.failure = getattr(exc, "strerror", None) or str(exc)
                with suppress(OSError, ValueError):  # a pipe has no length to cut back to
                    os.ftruncate(self._file.fileno(), self._written)
                return False
            self._written += len(encoded)
            return True

    def close(self) -> None:
        with suppress(OSError):  # every line went to the kernel; a worker's parent may be gone
            self._file.close()


def _record_sampling(service: LangfuseIntegrationService, summary: ReplaySummary) -> None:
    """What sampling did in this run, for ``autoops sampling show``."""
    from autoops_cli.actions.sampling.report import record_replay_sampling

    assert service.store_path is not None
    try:
        record_replay_sampling(
            service.store_path.parent,
            {
                "run_id": summary.run_id,
                "configured_rate": service.adaptive.base_rate,
                # The run's (with --workers, the lowest a worker ended with).
                "final_rate": summary.tracing.get(
                    "effective_sample_rate", service.tracer.sampler.rate
                ),
                "events_sampled_out": summary.events_sampled_out,
                "traces_recorded": summary.traces_recorded,
                "changes": summary.sampling_changes,
            },
        )
    except OSError:
        if summary.write_error is None:  # a full disk was reported already
            raise


def _writer_only(config: LangfuseConfig) -> SpanExporter | None:
    """A replay worker's exporter in langfuse mode: it writes the outbox, the parent sends."""
    if not (config.enabled and config.tracing_enabled and config.mode == "langfuse"):
        return None
    from config.delivery.exporters import resource_attributes
    from config.delivery.outbox import Outbox
    from config.delivery.sender import OutboxExporter
    from config.store.local_store import default_store_path

    return OutboxExporter(
        config, Outbox(default_store_path()), resource=resource_attributes(config), sending=False
    )


def _to_parent(
    out: ProgressFile, runner: ReplayEngine | WorkerPool
) -> Callable[[ReplayProgress], None]:
    """A worker's progress: a JSON line per commit point, to its parent. A parent that is gone
    (the pipe broke) stops the run: the worker commits and ends instead of working unseen.

    Made once the stop handlers are in place, which a first ``started`` line tells the
    parent: from then on the worker stops when told (before, a second stop kills it).
    """
    gone = not _write_progress_line(out, "started", runner.summary, None, 0.0)
    if gone:
        runner.request_stop("SIGPIPE")

    def report(progress: ReplayProgress) -> None:
        nonlocal gone
        if gone or progress.phase != "replaying":
            return
        # The newest outbox row it wrote (langfuse mode): the parent sends and reports them.
        rows = runner.service.client.outbox_rows_up_to()
        extra = {"outbox_rows_up_to": rows} if rows is not None else None
        summary, elapsed = progress.summary, progress.elapsed_s
        if not _write_progress_line(out, "replaying", summary, None, elapsed, extra=extra):
            gone = True
            runner.request_stop("SIGPIPE")

    return report


class StoppedWhileWaiting(BaseException):
    """A stop that came while the replay waited for its input's first bytes (a BaseException:
    nothing on the way catches it as an error)."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class StopSignals:
    """SIGINT and SIGTERM stop the run cleanly, from the start of the command.

    A stop that comes before the run exists (while the settings load and the store or the
    outbox opens) is kept and handed to the run when it is attached: it then ends before its
    first event, with its summary and exit code, rather than dying by the signal. One that
    comes while the input is awaited (``abandoning_waits``) ends that wait at once.
    """

    def __init__(self) -> None:
        self.runner: ReplayEngine | WorkerPool | None = None
        self.pending: str | None = None
        self._abandon_waits = False

    def __call__(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self.runner is not None:
            self.runner.request_stop(name)
        elif self.pending is None:
            self.pending = name
            if self._abandon_waits:
                raise StoppedWhileWaiting(name)
        else:  # a second stop while the run is still being set up: give that up now
            raise StopNow(int(STOP_EXIT_CODES[self.pending]))

    @contextmanager
    def abandoning_waits(self, *, may_block: bool) -> Iterator[None]:
        """Around the opening of the input: a FIFO with no writer yet, or standard input of a
        feed that has not started, blocks in a system call that Python resumes after the
        handler, so a first stop there was ignored (a second one ended the run without a
        summary). There, a stop raises ``StoppedWhileWaiting``; so does one already pending
        when the input ``may_block`` (a file opens at once: its stop waits for the run,
        whose summary then counts the file's lines not read)."""
        if self.pending is not None and may_block:  # it came before (the settings loading)
            raise StoppedWhileWaiting(self.pending)
        self._abandon_waits = True
        try:
            yield
        finally:
            self._abandon_waits = False

    def attach(self, runner: ReplayEngine | WorkerPool) -> None:
        self.runner = runner
        if self.pending is not None:
            runner.request_stop(self.pending)


@contextmanager
def _stop_on_signals() -> Iterator[StopSignals]:
    """The run's ``StopSignals`` as the handlers of SIGINT and SIGTERM (main thread only).

    After the run they are ignored, not restored: a stop then (a CI timeout, a second
    Ctrl-C; in a worker, the parent's stop) must not cost the summary, the progress file's
    ``done`` line or the run's exit code, and the process ends right after. (An in-process
    caller, such as the tests' CLI runner, puts its own handlers back.)
    """
    stops = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield stops
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stops)
    # A worker is born with both blocked (``replay_workers._hold_stop_signals``): a stop its
    # parent passed on while it started is delivered here, before its first event.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT, signal.SIGTERM))
    try:
        yield stops
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def _note_other_hosts(state: AppState, host: str, public_key: str | None) -> None:
    """Batches kept for other hosts (LANGFUSE_HOST changed since) or another project's keys:
    a run sends only its own, and said nothing of the rest (only `buffer flush` did)."""
    from autoops_cli.actions.buffer import waiting_elsewhere_notes

    try:
        notes = waiting_elsewhere_notes(host, public_key)
    except LocalFileError:  # the outbox could not be read: the run's own messages say why
        return
    for note in notes:
        state.output.warning(note)


def _exit_code(
    state: AppState,
    summary: ReplaySummary,
    worker_failure: tuple[int, str] | None = None,
    *,
    dry_run: bool = False,
    public_key: str | None = None,
) -> int:
    out = state.output
    if summary.delivery.get("host") and not dry_run:
        _note_other_hosts(state, str(summary.delivery["host"]), public_key)
    if worker_failure is not None:  # a worker died or lost events (--workers): its error is above
        code, message = worker_failure
        out.error(f"{message}; {recorded_text(summary)}")
        return code
    tracing = summary.tracing
    delivery = summary.delivery
    waiting = int(delivery.get("batches_waiting") or 0)
    delivery_state = delivery.get("state")
    host = summary.destination
    if summary.write_error:
        out.error(
            f"{summary.write_error}; the run stopped at line {summary.lines_read}: "
            f"{recorded_text(summary, 'before the failure (the summary counts only those)')}",
            hint="free disk space or point AUTOOPS_HOME elsewhere, then replay the rest",
        )
        return int(ExitCode.LOCAL_FILE)
    if summary.read_error:
        out.error(
            f"{summary.read_error}; the run stopped after line {summary.lines_read}: "
            f"{recorded_text(summary)}"
        )
        return int(ExitCode.LOCAL_FILE)
    # A signal's stop is said and its code wins over what delivery met (rejected keys, a
    # host that is not Langfuse): the run was stopped, whatever else went wrong.
    stopped_by = STOP_EXIT_CODES.get(summary.stopped_early or "")

    def stopped_or(code: int) -> int:
        if stopped_by is None:
            return code
        out.warning(
            f"stopped by {summary.stopped_early} at line {summary.lines_read}: "
            f"{recorded_text(summary, dry_run=dry_run)}"
        )
        return int(stopped_by)

    if delivery_state == "credentials_rejected":
        out.error(
            f"Langfuse at {host} rejected the keys; {waiting} batch(es) kept in the "
            "outbox: fix LANGFUSE_PUBLIC_KEY/LANGFUSE_SECRET_KEY, then run `autoops buffer flush`"
        )
        return stopped_or(int(ExitCode.CONFIG))
    if delivery_state == "host_misconfigured":
        out.error(
            f"{delivery.get('last_error')}; sending stopped, {waiting} batch(es) kept in the outbox",
            hint="check LANGFUSE_HOST (the base URL of Langfuse, not a proxy or login page), "
            "then run `autoops buffer flush`",
        )
        return stopped_or(int(ExitCode.API))
    if waiting:
        reason = delivery.get("last_error")
        out.warning(
            f"{waiting} batch(es) not delivered to {host} yet, kept in the outbox; "
            "the next run or `autoops buffer flush` sends them"
            + (f" (last error: {reason})" if reason else "")
        )
    if stopped_by is not None:
        return stopped_or(0)
    # Each of these is said (a rejected line hid the failed events and the refused batches);
    # the exit code is the first one's.
    codes: list[int] = []
    if summary.events_rejected:
        if summary.stopped_early:  # --strict
            out.warning(
                f"line {summary.lines_read} rejected (--strict): the run stopped there, "
                f"{recorded_text(summary, dry_run=dry_run)}"
            )
        else:
            rejected, handled = summary.events_rejected, summary.events_handled
            what = what_became(summary, dry_run=dry_run)
            out.warning(f"{rejected} line(s) rejected; the other {handled} event(s) were {what}")
        codes.append(int(ExitCode.LOCAL_FILE))
    if tracing.get("dead_letters"):
        out.error(
            f"{tracing['dead_letters']} batch(es) refused by {host}; see `autoops buffer status`"
        )
        codes.append(int(ExitCode.API))
    if waiting:
        codes.append(int(ExitCode.NETWORK))
    if summary.events_failed:
        _report_failed_events(state, summary, dry_run=dry_run)
        codes.append(int(ExitCode.FAILURE))
    return codes[0] if codes else 0


def _report_failed_events(state: AppState, summary: ReplaySummary, *, dry_run: bool) -> None:
    failed = summary.events_failed
    if dry_run or summary.tracing.get("mode") == "disabled":  # nothing is recorded at all
        state.output.error(f"{failed} event(s) failed inside the agents (nothing recorded)")
    elif summary.events_sampled_out:
        state.output.error(
            f"{failed} event(s) failed inside the agents (recorded as ERROR traces, those "
            "the sample rate kept)"
        )
    else:
        state.output.error(f"{failed} event(s) failed inside the agents (recorded as ERROR traces)")


# --- progress -----------------------------------------------------------------------------


def what_became(summary: ReplaySummary, *, dry_run: bool = False) -> str:
    """What became of the events replayed, after "<n> event(s)": ``recorded``; ``replayed,
    41 recorded`` when sampling or tracing off left some out (the count is the traces on
    disk); ``replayed, nothing recorded (--dry-run)``."""
    handled = summary.events_handled
    if dry_run:
        return "replayed, nothing recorded (--dry-run)"
    if summary.traces_recorded == handled:
        return "recorded"
    return f"replayed, {summary.traces_recorded} recorded"


def recorded_text(summary: ReplaySummary, when: str = "", *, dry_run: bool = False) -> str:
    """``83 event(s) recorded, 1 rejected, 916 line(s) not read``: how far an early end got
    (``when`` follows "recorded"; see ``what_became``)."""
    handled = summary.events_handled
    recorded = f"{handled} event(s) {what_became(summary, dry_run=dry_run)}"
    parts = [f"{recorded} {when}" if when else recorded]
    if summary.events_rejected:
        parts.append(f"{summary.events_rejected} rejected")
    if unrecorded := events_not_recorded(summary):
        parts.append(f"{unrecorded} read but not recorded")
    if summary.lines_not_read is None:
        parts.append("the rest of the input not read")
    elif summary.lines_not_read:
        parts.append(f"{summary.lines_not_read} line(s) not read")
    return ", ".join(parts)


def events_not_recorded(summary: ReplaySummary) -> int:
    """Events read that an early end left unrecorded: with ``--workers``, those still in the
    workers' input pipes, which a stop discards; in one process, those after the last commit
    when the store or outbox could no longer be written (a stop commits the event in hand),
    or the event a stop came to while ``--speed`` waited for its time."""
    done = summary.events_handled + summary.events_rejected
    return max(0, summary.events_total - done)


def delivery_text(delivery: DeliveryProgress | None, phase: str) -> str:
    """Delivery in a few words: delivered, waiting, or unreachable since when."""
    if delivery is None:
        return ""
    if delivery.state == "credentials_rejected":
        return f"keys rejected: {delivery.waiting} batch(es) kept"
    if delivery.state == "host_misconfigured":
        return f"{delivery.host} is not Langfuse's API: sending stopped"
    if phase == "delivering":
        text = f"delivering {delivery.delivered}/{delivery.delivered + delivery.waiting} batches"
    else:
        text = f"{delivery.delivered} batch(es) delivered, {delivery.waiting} waiting"
    if delivery.unreachable_since is not None:
        since = datetime.fromtimestamp(delivery.unreachable_since).strftime("%H:%M:%S")
        text += f"; {delivery.host} unreachable since {since}"
    return text


def _write_progress_line(
    out: ProgressFile,
    phase: str,
    summary: ReplaySummary,
    delivery: DeliveryProgress | None,
    elapsed_s: float,
    exit_code: int | None = None,
    extra: dict[str, Any] | None = None,
) -> bool:
    """One JSON line of ``--progress-file`` (its counts are durable when it is written);
    False if it could not be written."""
    line: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "elapsed_s": round(elapsed_s, 3),
        "phase": phase,
        "run_id": redact_secrets(summary.run_id),  # masked as in the summary and the store
        "events_total": summary.events_total,
        "events_processed": summary.events_processed,
        "events_failed": summary.events_failed,
        "events_rejected": summary.events_rejected,
        "traces_recorded": summary.traces_recorded,
        "observations_recorded": summary.observations_recorded,
        "scores_recorded": summary.scores_recorded,
    }
    if delivery is not None:
        line["delivery"] = {
            "host": delivery.host,
            "state": delivery.state,
            "batches_delivered": delivery.delivered,
            "batches_waiting": delivery.waiting,
            "unreachable_since": delivery.unreachable_since,
        }
    elif summary.delivery:
        line["delivery"] = summary.delivery
    if exit_code is not None:
        line["exit_code"] = exit_code
    line.update(extra or {})
    return out.write_line(line)  # in the kernel before the process can be killed


@contextmanager
def _progress(
    state: AppState, progress_out: ProgressFile | None
) -> Iterator[Callable[[ReplayProgress], None] | None]:
    """A live line on a terminal (nothing when piped, --quiet or --json); JSON lines to the
    progress file (each written once its counts are on disk)."""
    out = state.output
    last_line = 0.0

    def to_file(progress: ReplayProgress) -> None:
        nonlocal last_line
        now = time.monotonic()
        if progress_out is None or progress.phase == "done":  # the action writes the last line
            return
        if progress.phase == "replaying" or now - last_line >= 0.1:
            last_line = now
            _write_progress_line(
                progress_out,
                progress.phase,
                progress.summary,
                progress.delivery,
                progress.elapsed_s,
            )

    with out.status_line() as show:
        if show is None and progress_out is None:
            yield None
            return

        def update(progress: ReplayProgress) -> None:
            to_file(progress)
            if show is not None:
                show(progress_text(progress))

        yield update


def progress_text(progress: ReplayProgress) -> str:
    """The live line: events recorded, how much of the file was read and the time left
    (when its size is known), the rate, rejected lines, delivery."""
    summary = progress.summary
    done = summary.events_handled
    elapsed = max(progress.elapsed_s, 1e-9)
    parts = [f"{done:,} events recorded"]
    replaying = progress.phase == "replaying"
    of_file = _share_of_file_done(progress)
    if replaying and of_file is not None and progress.bytes_total:
        parts.append(f"{100 * of_file:.0f}% of {_size(progress.bytes_total)}")
    parts.append(f"{done / elapsed:,.0f}/s")
    # The run ends at the end of the file or at --limit, whichever comes first.
    of_limit = done / progress.limit if progress.limit else None
    share = max((s for s in (of_file, of_limit) if s is not None), default=None)
    if replaying and share and share < 1:
        parts.append(f"{_duration(elapsed * (1 - share) / share)} left")
    if summary.events_rejected:
        parts.append(f"{summary.events_rejected} rejected")
    text = delivery_text(progress.delivery, progress.phase)
    if text:
        parts.append(text)
    return " · ".join(parts)


def _share_of_file_done(progress: ReplayProgress) -> float | None:
    """How much of the file is done: the share read, times the share of the events read that
    are recorded (with ``--workers`` the reader runs ahead of the workers by what their pipes
    hold; one process records what it reads within a commit). None when the size is unknown."""
    read, total = progress.bytes_read, progress.bytes_total
    if read is None or not total:
        return None
    summary = progress.summary
    seen = summary.events_total + summary.events_other_shards
    recorded_share = 1 - events_not_recorded(summary) / seen if seen else 1.0
    return min(1.0, read / total) * recorded_share


def _size(size: int) -> str:
    """``3.1 MB``: a file size in decimal units, as ``ls -h --si`` and the Langfuse UI."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    """``7 s``, ``2 min 05 s``, ``1 h 02 min``, ``2,922 days``: a time left, to a useful
    precision."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 172_800:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86_400:,} days"


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
        ("lines_read", summary.lines_read),
        (
            "lines_not_read",
            "unknown (the rest of the input)"
            if summary.lines_not_read is None
            else summary.lines_not_read,
        ),
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
        # Escaped before Rich lays it out (a run id, a file name, a reason: markup, control
        # characters, a secret): masked after, a secret cut over two lines showed in part.
        table.add_row(escape(name), escape(str(value)))
    return table
