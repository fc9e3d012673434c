"""The outbox for the CLI: its status per host, flushing it, and the batches of other hosts.

Batches are addressed to the host they were recorded for. After a replay against a wrong
``LANGFUSE_HOST`` those batches wait for a host nobody sends to: ``status`` lists every host,
``flush`` says when others have batches, ``flush --from HOST`` sends them to the configured
host, and ``drop`` deletes them.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from config.errors import STOP_EXIT_CODES, ConfigurationError, ExitCode, UsageError

if TYPE_CHECKING:
    from rich.table import Table

    from config.delivery.outbox import Outbox
    from config.delivery.sender import DeliveryProgress, DeliveryStats, OutboxExporter
    from config.errors import LocalFileError
    from config.settings import LangfuseConfig


def outbox_status(current_host: str | None) -> dict[str, Any]:
    """The ``autoops buffer status --json`` document (``current_host``: the configured one)."""
    from config.delivery.outbox import outbox_status_at
    from config.store.local_store import default_store_path

    path = default_store_path()
    report = outbox_status_at(path)
    report["by_host"] = by_canonical_host(report["by_host"])
    report["hosts"] = {entry["host"]: entry["batches"] for entry in report["by_host"]}
    for entry in report["by_host"]:
        entry["current"] = entry["host"] == current_host
    return {"store": str(path), "current_host": current_host, **report}


def by_canonical_host(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``by_host`` entries with the spellings of one host (an older autoops kept
    ``HTTP://LOCALHOST:3000/``) added up under ``canonical_host``: shown apart, the
    configured host's rows were "another host", which a flush then sent as its own."""
    from config.settings import canonical_host

    merged: dict[str, dict[str, Any]] = {}
    for entry in entries:
        host = canonical_host(entry["host"])
        into = merged.get(host)
        if into is None:
            merged[host] = {**entry, "host": host}
            continue
        for field in ("batches", "spans", "scores", "bytes", "dead_letters"):
            into[field] += entry[field]
        ages = [age for age in (into["oldest_age_s"], entry["oldest_age_s"]) if age is not None]
        into["oldest_age_s"] = max(ages) if ages else None
    return list(merged.values())


def status_table(report: dict[str, Any]) -> Table:
    """The outbox status: the totals, then one row per host (the configured one marked)."""
    from rich import box
    from rich.table import Table

    from autoops_cli.output import escape

    table = Table(box=box.ASCII, show_header=False, title="outbox")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for key in (
        "store", "pending_batches", "pending_spans", "pending_scores", "pending_bytes",
        "oldest_age_s", "dead_letters", "dead_letter_items", "last_dead_letter_message",
    ):  # fmt: skip
        value = report.get(key)
        # A dead letter's message is a server's words: markup and control characters escaped.
        table.add_row(key, "-" if value is None else escape(str(value)))
    return table


def hosts_table(report: dict[str, Any]) -> Table:
    """One row per host with batches or dead letters; ``*`` marks the configured host."""
    from rich import box
    from rich.table import Table

    from autoops_cli.output import escape

    table = Table(box=box.ASCII, title="by host (* = the configured LANGFUSE_HOST)")
    columns = {"batches": "batches", "spans": "spans", "scores": "scores", "bytes": "bytes",
               "oldest_age_s": "age_s", "dead_letters": "dead"}  # fmt: skip
    table.add_column("host", no_wrap=True)
    for header in columns.values():
        table.add_column(header, justify="right", no_wrap=True)
    for entry in report["by_host"]:
        table.add_row(
            ("* " if entry["current"] else "") + escape(entry["host"]),
            *("-" if entry[key] is None else str(entry[key]) for key in columns),
        )
    return table


def other_hosts(report: dict[str, Any], host: str) -> list[dict[str, Any]]:
    """Hosts other than ``host`` with batches waiting: ``[{"host", "batches"}]``."""
    return [
        {"host": entry["host"], "batches": entry["batches"]}
        for entry in by_canonical_host(report["by_host"])
        if entry["host"] != host and entry["batches"]
    ]


def flush_outbox(
    config: LangfuseConfig,
    *,
    wait: float,
    dead_letters: bool,
    from_host: str | None = None,
    on_progress: Callable[[DeliveryProgress], None] | None = None,
) -> tuple[dict[str, Any], int]:
    """Send the outbox for ``config.host``; the result document and the exit code.

    Delivery goes on while the host makes progress and gives up after ``wait`` seconds
    without any (a refused connection fails after ``wait``; ``--wait 60`` waits for a server
    that is starting). ``from_host``: first address the batches kept for that host to this one.
    """
    from config.delivery.exporters import resource_attributes
    from config.delivery.outbox import Outbox
    from config.delivery.sender import OutboxExporter, rekey_body
    from config.store.local_store import default_store_path

    if not config.has_keys:
        raise ConfigurationError(
            "buffer flush needs Langfuse keys (LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY)",
            hint="the outbox is only used in langfuse mode",
        )
    assert config.public_key is not None
    path = default_store_path()
    if not path.is_file():  # nothing was ever kept: no store to create just to say so
        if from_host is not None:
            raise UsageError(f"--from {from_host}: no batches are kept for that host (no store)")
        return _nothing_to_flush(config.host), 0
    outbox = Outbox(path)
    try:
        # Before counting: the sender adopts them as it starts ("0 before, 4 delivered").
        outbox.adopt_spellings(config.host)
        moved = None
        if from_host is not None and from_host != config.host:
            outbox.adopt_spellings(from_host)
            public_key = config.public_key
            _check_movable(outbox, from_host, public_key)
            dead_moved = outbox.dead_letter_count(from_host, public_key)
            backlog = outbox.readdress(
                from_host,
                config.host,
                lambda kind, body: rekey_body(kind, body, public_key),
                public_key=public_key,  # re-keyed: this project's now
            )
            moved = {"host": from_host, "batches": backlog.batches, "dead_letters": dead_moved}
        requeued = (
            outbox.requeue_dead_letters(config.host, config.public_key) if dead_letters else 0
        )
        before = outbox.count(config.host, public_key=config.public_key)
        with _FlushStops() as stops:  # before the exporter: its sender starts at once
            exporter = OutboxExporter(config, outbox, resource=resource_attributes(config))
            flushed = False
            try:
                stops.interrupting(exporter)
                flushed = exporter.flush(wait, on_progress=on_progress)
            finally:
                in_flight = exporter.request_in_flight  # before shutdown(0) abandons it
                exporter.shutdown(0)
        stopped = stops.names[0] if stops.names else None
        remaining = outbox.count(config.host, public_key=config.public_key)
        others, projects = waiting_elsewhere(outbox, config.host, config.public_key)
    finally:
        outbox.close()
    stats = exporter.stats
    undeletable = exporter.undeletable[0]
    result: dict[str, Any] = {
        "host": config.host,
        "moved_from": moved,
        "requeued_dead_letters": requeued,
        "batches_before": before,
        "delivered_batches": stats.batches_delivered,
        "remaining_batches": remaining,
        "undeletable_batches": undeletable,
        "new_dead_letters": stats.dead_letters,
        "state": stats.state,
        "other_hosts": others,
        "other_projects": projects,
        "stopped": stopped,
        "message": "",
    }
    if stopped is not None:  # what was delivered is out of the outbox; the rest stays
        result["message"] = (
            f"stopped by {stopped}: {stats.batches_delivered} batch(es) delivered, "
            f"{remaining} kept in the outbox for {config.host}"
        )
        return result, int(STOP_EXIT_CODES[stopped])
    result["message"], code = _flush_outcome(
        config.host,
        stats,
        remaining,
        exporter.undeletable,
        wait,
        in_flight=in_flight,
        flushed=flushed,
    )
    if moved and moved["dead_letters"] and not dead_letters:
        # Moved, not sent: they were said nowhere (the question had counted them).
        result["message"] += (
            f"; {moved['dead_letters']} dead letter(s) moved from {from_host} wait for "
            "`autoops buffer flush --dead-letters`"
        )
    return result, code


class _FlushStops:
    """SIGINT and SIGTERM during a flush (main thread only): listed by name, and the
    exporter's flush interrupted, so it returns and the result says what was delivered (a
    Ctrl-C ended the flush with exit 130 and nothing said, not even under --json; SIGTERM
    ended it by the signal). The handler only sets flags: raising from it could leave a
    lock held. The handlers before are put back on exit."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._exporter: OutboxExporter | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _FlushStops:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._stop)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def interrupting(self, exporter: OutboxExporter) -> None:
        """The exporter a stop interrupts (at once, for one that came while it started)."""
        self._exporter = exporter
        if self.names:
            exporter.interrupt()

    def _stop(self, signum: int, frame: object) -> None:
        self.names.append(signal.Signals(signum).name)
        if self._exporter is not None:
            self._exporter.interrupt()


def _flush_outcome(
    host: str,
    stats: DeliveryStats,
    remaining: int,
    undeletable: tuple[int, LocalFileError | None],
    wait: float,
    *,
    in_flight: bool,
    flushed: bool,
) -> tuple[str, int]:
    """What a flush says at the end, and its exit code (``flushed``: every row there was
    when it started was delivered, by it or by another process)."""
    count, delete_failure = undeletable
    if stats.state == "credentials_rejected":
        message = (
            f"Langfuse at {host} rejected the keys ({stats.last_error}); {remaining} batch(es) kept"
        )
        return message, int(ExitCode.CONFIG)
    if stats.state == "host_misconfigured":
        message = f"{stats.last_error}; sending stopped, {remaining} batch(es) kept in the outbox"
        return message, int(ExitCode.API)
    if stats.dead_letters:
        message = f"{stats.dead_letters} batch(es) refused by {host} ({stats.last_error}); kept as dead letters"
        return message, int(ExitCode.API)
    if delete_failure is not None:
        message = (
            f"{delete_failure}; {count} delivered batch(es) stay in the outbox and may "
            "be sent again by a later flush (Langfuse stores them once)"
        )
        return message, int(ExitCode.LOCAL_FILE)
    if (
        remaining
        and stats.last_error is None
        and stats.state == "ok"
        and (flushed or not in_flight)
    ):
        # Nothing failed, and what it had to deliver is delivered (a request of its own for
        # newer rows may be under way: it was a "nothing delivered" exit 4 after a second),
        # or none of its requests hangs: the rows came after its last look, from another
        # process (a replay running) that writes or sends them.
        message = (
            f"{remaining} batch(es) for {host} are in the outbox still: another autoops "
            f"process is adding or sending them; {stats.batches_delivered} delivered here"
        )
        return message, 0
    if remaining:  # an empty outbox is delivered, whichever process sent the last of it
        reason = (
            f" ({stats.last_error})"
            if stats.last_error
            else " (a request was still waiting for its answer)"
            if in_flight
            else ""
        )
        message = (
            f"{remaining} batch(es) not delivered to {host}{reason}; "
            f"kept in the outbox, nothing delivered for {wait:g} s"
        )
        return message, int(ExitCode.NETWORK)
    message = f"no batch waits for {host}: {stats.batches_delivered} batch(es) delivered"
    return message, 0


def _nothing_to_flush(host: str) -> dict[str, Any]:
    return {
        "host": host,
        "moved_from": None,
        "requeued_dead_letters": 0,
        "batches_before": 0,
        "delivered_batches": 0,
        "remaining_batches": 0,
        "undeletable_batches": 0,
        "new_dead_letters": 0,
        "state": "ok",
        "other_hosts": [],
        "other_projects": [],
        "message": f"no batch waits for {host}: 0 batch(es) delivered",
    }


def _check_movable(outbox: Outbox, host: str, public_key: str) -> None:
    """UsageError when ``--from host`` would move nothing: no batch of this project (nor
    of no known project) is kept for it."""
    if outbox.backlog(host, public_key).batches or outbox.dead_letter_count(host, public_key):
        return
    raise nothing_to_move(host, others_kept=bool(outbox.backlog(host).batches) or bool(
        outbox.dead_letter_count(host)
    ))  # fmt: skip


def nothing_to_move(host: str, *, others_kept: bool) -> UsageError:
    """The error of ``--from host`` when none of its batches is this project's:
    ``others_kept``, another project's are kept for it."""
    if others_kept:
        return UsageError(
            f"--from {host}: the batches kept for that host are another project's (recorded "
            "with other keys): only their own keys send them"
        )
    return UsageError(
        f"--from {host}: no batches are kept for that host (`autoops buffer status` lists "
        "the hosts)"
    )


def waiting_elsewhere(
    outbox: Outbox, host: str, public_key: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What waits that a sender of ``host`` with ``public_key``'s keys does not send: the
    batches of other hosts (``[{"host", "batches"}]``) and of other projects on this host
    (``[{"public_key", "batches"}]``)."""
    others = other_hosts(outbox.status(), host)
    if public_key is None:
        return others, []
    projects = outbox.other_projects(host, public_key)
    return others, [{"public_key": key, "batches": n} for key, n in projects.items()]


def waiting_elsewhere_notes(host: str, public_key: str | None) -> list[str]:
    """The warnings for what waits elsewhere in the store's outbox (none without one)."""
    from config.delivery.outbox import Outbox
    from config.store.local_store import default_store_path

    outbox = Outbox.existing(default_store_path())
    if outbox is None:
        return []
    try:
        others, projects = waiting_elsewhere(outbox, host, public_key)
    finally:
        outbox.close()
    notes = (other_hosts_note(others, host), other_projects_note(projects, host))
    return [note for note in notes if note is not None]


def other_projects_note(projects: list[dict[str, Any]], host: str) -> str | None:
    """What to say of batches kept for ``host`` under another project's keys."""
    if not projects:
        return None
    listed = ", ".join(f"{entry['public_key']} ({entry['batches']})" for entry in projects)
    return (
        f"batch(es) for {host} recorded with another project's keys remain in the outbox: "
        f"{listed}; they are sent only with their own keys (`autoops buffer flush` with "
        f"them), `autoops buffer drop --host {host}` drops every batch of the host"
    )


def other_hosts_note(others: list[dict[str, Any]], host: str) -> str | None:
    """What to say when batches for other hosts remain (None when there are none)."""
    if not others:
        return None
    listed = ", ".join(f"{entry['host']} ({entry['batches']})" for entry in others)
    return (
        f"batch(es) for other hosts remain in the outbox: {listed}; "
        f"`autoops buffer flush --from HOST` sends them to {host}, "
        "`autoops buffer drop --host HOST` drops them"
    )


def drop_batches(host: str) -> dict[str, Any]:
    """Delete the batches and dead letters kept for ``host``; what was dropped."""
    from config.delivery.outbox import Outbox
    from config.store.local_store import default_store_path

    path = default_store_path()
    if not path.is_file():
        return {"host": host, "dropped_batches": 0, "dropped_spans": 0, "dropped_scores": 0,
                "dropped_dead_letters": 0}  # fmt: skip
    outbox = Outbox(path)
    try:
        outbox.adopt_spellings(host)  # every spelling of the server: all of them dropped
        dropped, dead = outbox.drop(host)
    finally:
        outbox.close()
    return {
        "host": host,
        "dropped_batches": dropped.batches,
        "dropped_spans": dropped.spans,
        "dropped_scores": dropped.scores,
        "dropped_dead_letters": dead,
    }


def kept_host(host: str, option: str) -> str:
    """``host`` (``--from``, ``drop --host``) as the outbox keeps it (``canonical_host``:
    lower case, IDNA, no default port, no trailing dot or slash; a trailing slash was "no
    batches are kept for that host"). Batches an older autoops kept under another spelling
    are counted with it (``host_backlog``) and moved or dropped with it. UsageError for
    bytes that are not UTF-8 (SQLite cannot take them: an internal error)."""
    from config.settings import canonical_host

    try:
        host.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{option} {host!r}: not UTF-8 text") from None
    return canonical_host(host)


def host_backlog(host: str, public_key: str | None = None) -> dict[str, Any]:
    """What waits for ``host`` under any of its spellings (batches, spans, scores, dead
    letters): for a confirmation. ``public_key``: only what ``--from`` moves, that project's
    (and what has no known project)."""
    from config.delivery.outbox import Outbox, outbox_status_at
    from config.settings import canonical_host
    from config.store.local_store import default_store_path

    report = outbox_status_at(default_store_path())  # each spelling apart: counted below
    found = {"host": host, "batches": 0, "spans": 0, "scores": 0, "dead_letters": 0}
    kept_for = []
    outbox = Outbox.existing(default_store_path()) if public_key is not None else None
    try:
        for entry in report["by_host"]:
            kept_for.append(entry["host"])
            if canonical_host(entry["host"]) != host:
                continue
            counted = entry
            if outbox is not None:
                mine = outbox.backlog(entry["host"], public_key)
                counted = {"batches": mine.batches, "spans": mine.spans, "scores": mine.scores,
                           "dead_letters": outbox.dead_letter_count(entry["host"], public_key)}  # fmt: skip
            for field in ("batches", "spans", "scores", "dead_letters"):
                found[field] += counted[field]
    finally:
        if outbox is not None:
            outbox.close()
    if not found["batches"] and not found["dead_letters"]:
        found["kept_for"] = kept_for
    return found


def flush_progress_text(progress: DeliveryProgress) -> str:
    """The live line of ``buffer flush``."""
    total = progress.delivered + progress.waiting
    text = f"delivering {progress.delivered}/{total} batches to {progress.host}"
    if progress.state != "ok" and progress.last_error:
        text += f" ({progress.state}: {progress.last_error})"
    return text
