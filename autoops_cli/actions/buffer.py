"""The outbox for the CLI: its status as a table, and a bounded flush with an exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from config.errors import ConfigurationError, ExitCode

if TYPE_CHECKING:
    from rich.table import Table

    from config.settings import LangfuseConfig


def outbox_status() -> dict[str, Any]:
    """The ``autoops buffer status --json`` document."""
    from config.delivery.outbox import Outbox
    from config.store.local_store import default_store_path

    path = default_store_path()
    outbox = Outbox(path)
    try:
        report = outbox.status()
    finally:
        outbox.close()
    return {"store": str(path), **report}


def status_table(report: dict[str, Any]) -> Table:
    """The outbox status as a two-column table."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.ASCII, show_header=False, title="outbox")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for key in (
        "store", "pending_batches", "pending_spans", "pending_scores", "pending_bytes",
        "oldest_age_s", "dead_letters", "dead_letter_items", "last_dead_letter_message",
    ):  # fmt: skip
        value = report.get(key)
        table.add_row(key, "-" if value is None else str(value))
    for host, batches in sorted(report.get("hosts", {}).items()):
        table.add_row(f"pending for {host}", str(batches))
    return table


def flush_outbox(
    config: LangfuseConfig, *, timeout: float, dead_letters: bool
) -> tuple[dict[str, Any], int]:
    """Send the outbox for ``config.host``; the result document and the exit code."""
    from config.delivery.exporters import resource_attributes
    from config.delivery.outbox import Outbox
    from config.delivery.sender import OutboxExporter
    from config.store.local_store import default_store_path

    if not config.has_keys:
        raise ConfigurationError(
            "buffer flush needs Langfuse keys (LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY)",
            hint="the outbox is only used in langfuse mode",
        )
    outbox = Outbox(default_store_path())
    requeued = outbox.requeue_dead_letters(config.host) if dead_letters else 0
    before = outbox.count(config.host)
    exporter = OutboxExporter(config, outbox, resource=resource_attributes(config))
    try:
        delivered = exporter.flush(timeout)
    finally:
        exporter.shutdown(0)
    remaining = outbox.count(config.host)
    stats = exporter.stats
    outbox.close()
    result: dict[str, Any] = {
        "host": config.host,
        "requeued_dead_letters": requeued,
        "batches_before": before,
        "delivered_batches": stats.batches_delivered,
        "remaining_batches": remaining,
        "new_dead_letters": stats.dead_letters,
        "state": stats.state,
        "message": "",
    }
    if stats.state == "credentials_rejected":
        result["message"] = (
            f"Langfuse at {config.host} rejected the keys ({stats.last_error}); {remaining} batch(es) kept"
        )
        return result, int(ExitCode.CONFIG)
    if stats.dead_letters:
        result["message"] = (
            f"{stats.dead_letters} batch(es) refused by {config.host} ({stats.last_error}); kept as dead letters"
        )
        return result, int(ExitCode.API)
    if not delivered or remaining:
        result["message"] = (
            f"{remaining} batch(es) not delivered to {config.host} ({stats.last_error}); kept in the outbox"
        )
        return result, int(ExitCode.NETWORK)
    return result, 0
